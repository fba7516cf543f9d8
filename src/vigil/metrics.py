"""Binary-detection metrics shared by every task: ROC AUC, PR AUC, detection rate at a fixed
false-positive rate (with the threshold that achieves it), confusion matrix.

Scores are "higher means more likely positive" (malicious, attack, anomalous). The threshold for a
target FPR is found on the negatives' scores, as ember and the malware literature quote it.

Example::

    >>> from vigil.metrics import binary_detection_report
    >>> report = binary_detection_report([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> round(report["roc_auc"], 2)
    0.75
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score, roc_curve


def _as_arrays(y_true, scores) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true).astype(int).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if y_true.shape != scores.shape:
        raise ValueError(f"{y_true.shape[0]} labels but {scores.shape[0]} scores")
    return y_true, scores


def roc_auc(y_true, scores) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    y_true, scores = _as_arrays(y_true, scores)
    return float(roc_auc_score(y_true, scores)) if len(np.unique(y_true)) == 2 else float("nan")


def pr_auc(y_true, scores) -> float:
    """Area under the precision-recall curve (average precision); NaN without positives."""
    y_true, scores = _as_arrays(y_true, scores)
    return float(average_precision_score(y_true, scores)) if y_true.any() else float("nan")


@dataclass(frozen=True)
class DetectionAtFpr:
    """Detection rate (TPR) reachable while keeping the false-positive rate at or below ``target_fpr``."""

    target_fpr: float
    detection_rate: float
    threshold: float  # decide positive when score >= threshold
    fpr: float  # the false-positive rate actually reached on the data


def detection_rate_at_fpr(y_true, scores, target_fpr: float = 0.01) -> DetectionAtFpr:
    """Highest TPR with FPR <= ``target_fpr``, and the score threshold that gives it."""
    y_true, scores = _as_arrays(y_true, scores)
    if len(np.unique(y_true)) < 2:
        raise ValueError("detection rate at a fixed FPR needs both classes")
    fpr, tpr, thresholds = roc_curve(y_true, scores, drop_intermediate=False)
    allowed = np.flatnonzero(fpr <= target_fpr + 1e-12)
    best = allowed[np.argmax(tpr[allowed])]
    threshold = float(thresholds[best])
    if not np.isfinite(threshold):  # roc_curve's first point is "nothing flagged" (threshold inf)
        threshold = float(np.nextafter(scores.max(), np.inf))
    return DetectionAtFpr(float(target_fpr), float(tpr[best]), threshold, float(fpr[best]))


def confusion_at_threshold(y_true, scores, threshold: float) -> dict:
    """Confusion matrix ``[[tn, fp], [fn, tp]]`` of ``score >= threshold`` and its four cells."""
    y_true, scores = _as_arrays(y_true, scores)
    matrix = confusion_matrix(y_true, (scores >= threshold).astype(int), labels=[0, 1])
    tn, fp, fn, tp = (int(v) for v in matrix.ravel())
    return {"matrix": matrix.tolist(), "tn": tn, "fp": fp, "fn": fn, "tp": tp}


def binary_detection_report(y_true, scores, fprs: tuple[float, ...] = (0.01, 0.001)) -> dict:
    """Everything people quote for a detector, as plain JSON-able values.

    Keys: ``roc_auc``, ``pr_auc``, ``n``, ``positives``, and per target FPR ``f`` (e.g. 0.01 ->
    suffix ``1pct``, 0.001 -> ``0.1pct``): ``detection_rate_at_<s>_fpr``, ``threshold_at_<s>_fpr``,
    ``fpr_at_<s>_fpr``, ``confusion_at_<s>_fpr`` (confusion matrix at that threshold).
    """
    y_true, scores = _as_arrays(y_true, scores)
    report: dict = {
        "n": int(y_true.size),
        "positives": int(y_true.sum()),
        "roc_auc": roc_auc(y_true, scores),
        "pr_auc": pr_auc(y_true, scores),
    }
    if len(np.unique(y_true)) == 2:
        for target in fprs:
            suffix = fpr_suffix(target)
            point = detection_rate_at_fpr(y_true, scores, target)
            report[f"detection_rate_at_{suffix}_fpr"] = point.detection_rate
            report[f"threshold_at_{suffix}_fpr"] = point.threshold
            report[f"fpr_at_{suffix}_fpr"] = point.fpr
            report[f"confusion_at_{suffix}_fpr"] = confusion_at_threshold(y_true, scores, point.threshold)["matrix"]
    return report


def fpr_suffix(target_fpr: float) -> str:
    """0.01 -> '1pct', 0.001 -> '0.1pct'."""
    return f"{target_fpr * 100:g}pct"
