"""Why a reading is odd: exact Shapley values of its three inputs, whatever the estimator.

The model reads three things (class, length, width), so the exact Shapley values are cheap: 2^3
model calls per reading and background object (:func:`vigil.explain.baseline_shapley`). The
background is one typical object per class (the manifest's ``typical_objects``: the median size of
the class's normal objects; older models: the scaler's mean size), so ``expected_value`` is the
model's mean score over those typical objects and ``expected_value + sum of the three
contributions == score``, the reading's odd probability (the 0/1 decision for a model without
probabilities, e.g. LinearSVC). This works for AdaBoost, the forest, the MLP and the SVC alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from vigil.explain import coalition_rows, shapley_weights, top_reasons

FEATURES = ("class", "length", "width")


def typical_objects(model, classes: list[str], entry: dict) -> list[dict]:
    """One background object per class: the manifest's typical size, else the scaler's mean."""
    typical = (entry.get("extra") or {}).get("typical_objects") or {}
    if typical:
        return [{"class": c, **typical[c]} for c in classes if c in typical]
    scaler = model.named_steps["features"].named_transformers_["size"]
    length, width = (float(v) for v in scaler.mean_)
    return [{"class": c, "length": length, "width": width} for c in classes]


def explain_rows(model, rows: list[dict], classes: list[str], entry: dict, top: int, score) -> list[dict]:
    """For each normalised row: ``{"score", "expected_value", "reasons"}``, with one model call."""
    if not rows:
        return []
    background = typical_objects(model, classes, entry)
    batch = [r for row in rows for reference in background for r in coalition_rows(row, reference, FEATURES)]
    values = np.asarray(score(model, pd.DataFrame(batch, columns=list(FEATURES))), dtype=np.float64)
    values = values.reshape(len(rows), len(background), 2 ** len(FEATURES))
    # Shapley values of the mean over the background objects = the mean of their Shapley values
    contributions = (values @ shapley_weights(len(FEATURES))).mean(axis=1)  # (rows, 3)
    bases = values[:, :, 0].mean(axis=1)
    explained = []
    for row, base, vector in zip(rows, bases, contributions):

        def describe(i: int, row=row) -> tuple[str, Any, str]:
            feature = FEATURES[i]
            value = row[feature]
            return feature, value, f"class {value}" if feature == "class" else f"{feature} {value:g} mm"

        explained.append(
            {
                "score": float(base + vector.sum()),
                "expected_value": float(base),
                "reasons": top_reasons(vector, top, describe),
            }
        )
    return explained


__all__ = ["explain_rows", "typical_objects"]
