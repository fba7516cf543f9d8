"""When does a dynamic model retrain? :class:`RetrainPolicy`, a named and documented rule (any task's
stream can use it; it travels in a stream's checkpoint as plain data, :meth:`RetrainPolicy.to_state`
and :meth:`RetrainPolicy.from_state`).

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

import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vigil.plain import InvalidState, checked


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

    # -- checkpoints ---------------------------------------------------------------------------------
    def to_state(self) -> dict:
        """Settings, history and the ADWIN detector's buckets as plain data (numbers, lists, arrays).

        >>> policy = RetrainPolicy()
        >>> _ = policy.observe([0] * 99 + [1], f1=0.95)
        >>> restored = RetrainPolicy.from_state(policy.to_state())
        >>> restored.error_history, restored._detector.width
        ([0.01], 100.0)
        """
        return {
            **self.describe(),
            "windows_since_retrain": self.windows_since_retrain,
            "error_history": [float(rate) for rate in self.error_history],
            "detector": adwin_to_state(self._detector),
        }

    @classmethod
    def from_state(cls, state: dict) -> RetrainPolicy:
        """The policy :meth:`to_state` described; :class:`~vigil.plain.InvalidState` for anything else."""
        checked(state, dict, "policy")
        numbers = (int, float)
        policy = cls(
            name=checked(state.get("name"), str, "policy.name"),
            delta=float(checked(state.get("delta"), numbers, "policy.delta")),
            f1_floor=float(checked(state.get("f1_floor"), numbers, "policy.f1_floor")),
            min_gap=checked(state.get("min_gap"), int, "policy.min_gap"),
            retrain_windows=checked(state.get("retrain_windows"), int, "policy.retrain_windows"),
            windows_since_retrain=checked(state.get("windows_since_retrain"), int, "policy.windows_since_retrain"),
            error_history=[
                float(checked(rate, numbers, "policy.error_history"))
                for rate in checked(state.get("error_history"), list, "policy.error_history")
            ],
            _detector=adwin_from_state(state.get("detector")),
        )
        if not 0 < policy.delta < 1 or policy.retrain_windows < 1 or policy.min_gap < 0:
            raise InvalidState(f"policy settings out of range: {policy.describe()}")
        return policy


# -- river's ADWIN as plain data ------------------------------------------------------------------
# river keeps ADWIN's state in a Rust object whose only serialised form is bincode bytes; handing
# bytes from a file to its deserialiser would make a malformed file a Rust panic (a BaseException
# with a backtrace) and leave its invariants unchecked. So the bytes are read here into named numbers
# and bucket arrays (to_state), and written back only from values that passed the checks below
# (from_state): the Rust side only ever sees bytes that this module laid out.
# Layout (river 0.26, bincode 1: little-endian, fixed-width integers, u64 lengths): the window
# (delta f64, clock i32, max_buckets u64, min_window_length f64, grace_period f64, total f64,
# variance f64, width f64, total_width f64, n_buckets i32, max_n_buckets i32, tick i32,
# n_detections i32, buckets u64 + each bucket (max_size u64, current_idx u64, totals u64 + f64s,
# variances u64 + f64s)), then the Python wrapper's arguments (delta f64, clock i32, max_buckets u64,
# min_window_length i32, grace_period i32).
_ADWIN_HEAD = struct.Struct("<diQdddddd4iQ")
_ADWIN_BUCKET = struct.Struct("<QQQ")
_ADWIN_LENGTH = struct.Struct("<Q")
_ADWIN_TAIL = struct.Struct("<diQii")
_ADWIN_FLOATS = ("total", "variance", "width", "total_width")
_ADWIN_COUNTERS = ("n_buckets", "max_n_buckets", "tick", "n_detections")
_ADWIN_SETTINGS = ("delta", "clock", "max_buckets", "min_window_length", "grace_period")
MAX_ADWIN_BUCKETS = 64  # bucket i holds up to max_buckets summaries of 2**i values: 64 of them is 2**64 values


def adwin_to_state(detector) -> dict:
    """An ADWIN detector as numbers and two (buckets x max_buckets + 1) arrays, exactly what it holds."""
    blob = detector._helper.__getstate__()
    head = _ADWIN_HEAD.unpack_from(blob, 0)
    offset = _ADWIN_HEAD.size
    counts, totals, variances = [], [], []
    for _ in range(head[-1]):
        _max_size, current, length = _ADWIN_BUCKET.unpack_from(blob, offset)
        offset += _ADWIN_BUCKET.size
        totals.append(np.frombuffer(blob, "<f8", length, offset))
        offset += 8 * length
        offset += _ADWIN_LENGTH.size
        variances.append(np.frombuffer(blob, "<f8", length, offset))
        offset += 8 * length
        counts.append(current)
    state = {
        **dict(zip(_ADWIN_SETTINGS, (head[0], head[1], head[2], int(head[3]), int(head[4])))),
        **dict(zip(_ADWIN_FLOATS, head[5:9])),
        **dict(zip(_ADWIN_COUNTERS, head[9:13])),
        "drift_detected": bool(detector.drift_detected),
        "counts": np.array(counts, dtype=np.int64),
        "totals": np.array(totals, dtype=np.float64),
        "variances": np.array(variances, dtype=np.float64),
    }
    if _adwin_bytes(state) != blob:  # a river release with another layout: fail in the tests, not at restore
        raise RuntimeError("river's ADWIN state layout is not the one vigil.drift reads; update adwin_to_state")
    return state


def _adwin_bytes(state: dict) -> bytes:
    settings = [state[key] for key in _ADWIN_SETTINGS]
    counts, totals, variances = state["counts"], state["totals"], state["variances"]
    width = totals.shape[1]
    parts = [
        _ADWIN_HEAD.pack(
            settings[0],
            settings[1],
            settings[2],
            float(settings[3]),
            float(settings[4]),
            *(state[key] for key in _ADWIN_FLOATS),
            *(state[key] for key in _ADWIN_COUNTERS),
            len(counts),
        )
    ]
    for count, bucket_totals, bucket_variances in zip(counts.tolist(), totals, variances):
        parts.append(_ADWIN_BUCKET.pack(settings[2], count, width))
        parts.append(bucket_totals.astype("<f8").tobytes())
        parts.append(_ADWIN_LENGTH.pack(width))
        parts.append(bucket_variances.astype("<f8").tobytes())
    parts.append(_ADWIN_TAIL.pack(*settings))
    return b"".join(parts)


def adwin_from_state(state: Any):
    """The ADWIN detector :func:`adwin_to_state` described, once its invariants hold (every bucket
    within its capacity, the last one not empty, the width the sum of what the buckets summarise)."""
    from river.drift import ADWIN

    state = dict(checked(state, dict, "policy.detector"))
    numbers = (int, float)
    for key in ("delta", *_ADWIN_FLOATS):
        state[key] = float(checked(state.get(key), numbers, f"policy.detector.{key}"))
    for key in ("clock", "max_buckets", "min_window_length", "grace_period", *_ADWIN_COUNTERS):
        checked(state.get(key), int, f"policy.detector.{key}")
    checked(state.get("drift_detected"), bool, "policy.detector.drift_detected")
    counts, totals, variances = (
        checked(state.get(key), np.ndarray, f"policy.detector.{key}") for key in ("counts", "totals", "variances")
    )
    capacity = state["max_buckets"] + 1
    n = len(counts)
    if not (
        0 < state["delta"] < 1
        and 1 <= state["clock"] < 2**31
        and 1 <= state["max_buckets"] <= 1000
        and 0 <= state["min_window_length"] < 2**31
        and 0 <= state["grace_period"] < 2**31
        and all(0 <= state[key] < 2**31 for key in _ADWIN_COUNTERS)
        and 1 <= n <= MAX_ADWIN_BUCKETS
        and counts.shape == (n,)
        and counts.dtype.kind == "i"
        and totals.shape == variances.shape == (n, capacity)
        and totals.dtype.kind == variances.dtype.kind == "f"
        and np.isfinite(totals).all()
        and np.isfinite(variances).all()
        and ((counts >= 0) & (counts <= state["max_buckets"])).all()
        and (n == 1 or counts[-1] > 0)
        and state["width"] == float(sum(int(c) << i for i, c in enumerate(counts.tolist())))
    ):
        raise InvalidState("policy.detector: not the state of an ADWIN window")
    detector = ADWIN(
        delta=state["delta"],
        clock=state["clock"],
        max_buckets=state["max_buckets"],
        min_window_length=state["min_window_length"],
        grace_period=state["grace_period"],
    )
    detector._helper.__setstate__(_adwin_bytes(state))
    detector._drift_detected = state["drift_detected"]
    return detector
