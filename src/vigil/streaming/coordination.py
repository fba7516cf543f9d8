"""The retrain lease moved to :mod:`vigil.lease` (a task's window processor takes it without
importing the streaming layer); this name stays for existing imports."""

from vigil.lease import DEFAULT_TTL_S, RetrainLease

__all__ = ["DEFAULT_TTL_S", "RetrainLease"]
