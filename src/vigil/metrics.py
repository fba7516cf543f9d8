"""Detection metrics shared by every task: ROC AUC, PR AUC, the ROC curve, detection rate at a fixed
false-positive rate (with the threshold that achieves it), the threshold of the best F1, the binary
confusion matrix and its ratios, accuracy, weighted F1 for multi-class labels.

Scores are "higher means more likely positive" (malicious, attack, anomalous). The threshold for a
target FPR is found on the negatives' scores, as ember and the malware literature quote it.

Example::

    >>> from vigil.metrics import binary_detection_report
    >>> report = binary_detection_report([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> round(report["roc_auc"], 2)
    0.75
    >>> confusion_ratios(binary_confusion([0, 0, 1, 1], [0, 1, 1, 1]))["fpr"]
    0.5
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

RATIO_NAMES = ("tpr", "fpr", "tnr", "fnr", "ppv", "f1")


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


def roc_points(y_true, scores) -> tuple[np.ndarray, np.ndarray]:
    """The ROC curve as (false-positive rates, true-positive rates), for plotting."""
    y_true, scores = _as_arrays(y_true, scores)
    fpr, tpr, _ = roc_curve(y_true, scores)
    return fpr, tpr


def best_f1_threshold(y_true, scores, default: float = 0.5) -> float:
    """The score threshold (``score >= threshold`` is positive) with the highest F1; NaN scores
    (rows not scored) are left out, and without both classes the answer is ``default``.

    >>> best_f1_threshold([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.35
    """
    y_true, scores = _as_arrays(y_true, scores)
    scored = ~np.isnan(scores)
    if not scored.any() or len(np.unique(y_true[scored])) < 2:
        return default
    precision, recall, thresholds = precision_recall_curve(y_true[scored], scores[scored])
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1[:-1]))])


def accuracy(y_true, y_pred) -> float:
    """Share of hard predictions equal to their labels."""
    return float(accuracy_score(np.asarray(y_true).astype(int), np.asarray(y_pred).astype(int)))


def binary_confusion(y_true, y_pred) -> np.ndarray:
    """Confusion matrix ``[[tn, fp], [fn, tp]]`` of hard 0/1 predictions, both labels always present."""
    return confusion_matrix(np.asarray(y_true).astype(int), np.asarray(y_pred).astype(int), labels=[0, 1])


def confusion_ratios(matrix) -> dict[str, float]:
    """Ratios of a binary confusion matrix ``[[tn, fp], [fn, tp]]`` (positive = 1); 0/0 is 0.0.

    >>> confusion_ratios([[90, 10], [5, 45]])["tpr"]
    0.9
    """
    (tn, fp), (fn, tp) = np.asarray(matrix, dtype=float)

    def ratio(num, den):
        return float(num / den) if den else 0.0

    return {
        "tpr": ratio(tp, tp + fn),
        "fpr": ratio(fp, fp + tn),
        "tnr": ratio(tn, tn + fp),
        "fnr": ratio(fn, fn + tp),
        "ppv": ratio(tp, tp + fp),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
    }


def weighted_f1(y_true, y_pred) -> float:
    """F1 averaged over the labels, weighted by their support; a label never predicted scores 0."""
    return float(f1_score(y_true, y_pred, average="weighted", zero_division=0))


def confusion_at_threshold(y_true, scores, threshold: float) -> dict:
    """Confusion matrix ``[[tn, fp], [fn, tp]]`` of ``score >= threshold`` and its four cells."""
    y_true, scores = _as_arrays(y_true, scores)
    matrix = binary_confusion(y_true, (scores >= threshold).astype(int))
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
