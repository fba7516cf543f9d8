"""Shared detection metrics, checked against hand-computed values."""

import numpy as np
import pytest

from vigil.metrics import (
    binary_detection_report,
    confusion_at_threshold,
    detection_rate_at_fpr,
    fpr_suffix,
    pr_auc,
    roc_auc,
)


def test_auc_values_by_hand():
    y, s = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    assert roc_auc(y, s) == pytest.approx(0.75)  # 3 of 4 (pos, neg) pairs ordered right
    assert pr_auc(y, s) == pytest.approx((1 + 2 / 3) / 2)  # precision 1 at 0.8, 2/3 at 0.35
    assert np.isnan(roc_auc([1, 1], [0.2, 0.3]))


def test_detection_rate_at_fpr_uses_a_threshold_that_keeps_the_fpr():
    negatives = np.linspace(0, 0.5, 100)  # 100 benign scores
    positives = np.array([0.3, 0.5, 0.6, 0.7, 0.9])  # one ties with the highest benign score
    y = np.r_[np.zeros(100), np.ones(5)]
    s = np.r_[negatives, positives]
    point = detection_rate_at_fpr(y, s, 0.01)  # one benign (0.5) may be flagged
    assert point.threshold == pytest.approx(0.5) and point.fpr == pytest.approx(0.01)
    assert point.detection_rate == pytest.approx(4 / 5)
    strict = detection_rate_at_fpr(y, s, 0.001)  # no benign flagged: threshold above 0.5
    assert strict.fpr == 0 and strict.detection_rate == pytest.approx(3 / 5) and strict.threshold == 0.6
    cm = confusion_at_threshold(y, s, point.threshold)
    assert cm["matrix"] == [[99, 1], [1, 4]]


def test_report_keys_and_suffixes():
    report = binary_detection_report([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8])
    assert report["roc_auc"] == 1.0 and report["detection_rate_at_1pct_fpr"] == 1.0
    assert report["confusion_at_0.1pct_fpr"] == [[2, 0], [0, 2]]
    assert fpr_suffix(0.01) == "1pct" and fpr_suffix(0.001) == "0.1pct"
    assert "threshold_at_1pct_fpr" not in binary_detection_report([0, 0], [0.1, 0.2])
