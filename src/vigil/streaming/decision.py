"""The retrain policy moved to :mod:`vigil.drift` (any task's stream uses it); this name stays so
that existing imports and checkpoints pickled as ``vigil.streaming.decision.RetrainPolicy`` load."""

from vigil.drift import Decision, RetrainPolicy

__all__ = ["Decision", "RetrainPolicy"]
