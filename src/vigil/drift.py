"""When does a dynamic model retrain? :class:`RetrainPolicy`, a named and documented rule (any task's
stream can use it; checkpoints that pickled it as ``vigil.streaming.decision.RetrainPolicy`` still load,
see :meth:`vigil.streaming.results.ResultsStore.checkpoint`).

Rule "adwin-or-floor, min gap": after a window has been scored (prequentially: the dynamic model
predicts the window before it may learn from its labels),

1. every per-message error of the dynamic model (0 right, 1 wrong) goes into river's ADWIN drift
   detector (``delta`` = 0.002). ADWIN keeps a window of recent errors whose length adapts, and
   flags a change when two sub-windows have means that differ by more than a Hoeffding-style bound;
   the bound holds its false-alarm rate at about ``delta`` without a hand-picked threshold. Only a
   change towards *more* errors counts (this window's error rate above the mean of the windows
   since the last retrain): an improvement is no reason to retrain;
2. the assignment's metric boundary is kept as a safety net: the window's F1 (the real F1, not the
   accuracy the reference solution printed as "F1") below ``f1_floor`` (0.90);
3. either fires a retrain only when at least ``min_gap`` windows (2) have passed since the last one,
   so a drift is not answered by a storm of retrains on a buffer still full of pre-drift rows.

A retrain fits a fresh pipeline of the static model's design on the last ``retrain_windows`` (3)
labelled windows, this one included; ADWIN is then reset, since the error stream is the new model's.

    >>> policy = RetrainPolicy()
    >>> decision = policy.observe(errors=[0] * 990 + [1] * 10, f1=0.99)
    >>> decision.retrain, decision.reason
    (False, '')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Decision:
    retrain: bool
    reason: str


@dataclass
class RetrainPolicy:
    name: str = "adwin-or-floor"
    delta: float = 0.002
    f1_floor: float = 0.90
    min_gap: int = 2
    retrain_windows: int = 3
    windows_since_retrain: int = 1_000_000  # no retrain yet: the gap does not hold the first one back
    error_history: list = field(default_factory=list)
    _detector: Any = None

    def __post_init__(self):
        if self._detector is None:
            self._detector = self._new_detector()

    def _new_detector(self):
        from river.drift import ADWIN

        return ADWIN(delta=self.delta)

    def observe(self, errors, f1: float) -> Decision:
        errors = np.asarray(errors, dtype=float)
        detected = False
        for value in errors:
            self._detector.update(float(value))
            detected = detected or self._detector.drift_detected
        error_rate = float(errors.mean()) if len(errors) else 0.0
        baseline = float(np.mean(self.error_history)) if self.error_history else error_rate
        self.error_history.append(error_rate)
        self.windows_since_retrain += 1
        reasons = []
        if detected and error_rate > baseline:
            reasons.append(f"ADWIN: error rate rose to {error_rate:.3f} from {baseline:.3f}")
        if f1 == f1 and f1 < self.f1_floor:  # f1 == f1 skips NaN
            reasons.append(f"F1 {f1:.3f} < floor {self.f1_floor:.2f}")
        if not reasons:
            return Decision(False, "")
        if self.windows_since_retrain < self.min_gap:
            return Decision(False, f"held back by min gap {self.min_gap}: " + "; ".join(reasons))
        return Decision(True, "; ".join(reasons))

    def retrained(self) -> None:
        self.windows_since_retrain = 0
        self.error_history = []
        self._detector = self._new_detector()

    def describe(self) -> dict:
        """The rule's name and settings (not its state)."""
        return {key: getattr(self, key) for key in ("name", "delta", "f1_floor", "min_gap", "retrain_windows")}
