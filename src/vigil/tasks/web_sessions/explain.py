"""Why a session looks like Alice's: per-feature contributions of the served model, named.

``/predict/web-sessions?explain=N`` adds three lists parallel to ``predictions``: ``reasons`` (the
``N`` largest contributions of each session), ``raw_scores`` and ``expected_values``, with
``expected_value + sum of every contribution == raw_score`` for each session:

* logistic regression: ``coef_j * x_j`` on the logit (raw score: the logit);
* LightGBM: ``pred_contrib`` on the log-odds (raw score: the log-odds);
* the blend (mean of the members' probabilities, the default model): each member's logit
  contributions are carried to its probability in proportion (``c_j / (logit - base) * (p - p_base)``,
  the "rescale" rule through the sigmoid; exact in sum, not a Shapley value of the blend) and
  averaged, so the raw score is the blend's probability and the expected value the mean of the
  members' base probabilities. A feature both members use gets one reason (its shares added).

Features are named after their block, site ids shown as site names ("sites vk.com facebook.com",
"hour=9", "visit gaps: gap 3").
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse

from vigil.explain import format_value, top_reasons


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def member_contributions(pipeline, sessions) -> dict[str, Any]:
    """One pipeline (its ``features`` step, then LogisticRegression or LGBMClassifier): the names,
    values and contributions of its features, its base value and raw score (logit / log-odds), per
    session."""
    featurizer, model = pipeline.named_steps["features"], pipeline.steps[-1][1]
    X = featurizer.transform(sessions)
    names = featurizer.feature_names()
    if hasattr(model, "coef_"):
        X = sparse.csr_matrix(X)
        contributions = X.multiply(np.asarray(model.coef_, dtype=np.float64).ravel()[None, :]).tocsr()
        base = np.full(X.shape[0], float(np.ravel(model.intercept_)[0]))
    elif hasattr(model, "booster_"):
        X = X.toarray() if sparse.issparse(X) else np.asarray(X)
        full = np.asarray(model.predict(X, pred_contrib=True), dtype=np.float64)
        contributions, base = sparse.csr_matrix(full[:, :-1]), full[:, -1]
        X = sparse.csr_matrix(X)
    else:
        raise NotImplementedError(f"no explanation for a {type(model).__name__}")
    raw = base + np.asarray(contributions.sum(axis=1)).ravel()
    return {"names": names, "values": X, "contributions": contributions, "base": base, "raw": raw}


def explain_sessions(pipeline, sessions, site_names: dict[str, str], top: int) -> dict[str, list]:
    """``{"reasons", "raw_scores", "expected_values"}``, one entry per session, for the saved
    pipeline (its last step a classifier after the featurizer, or the blend of two pipelines)."""
    members = getattr(pipeline.steps[-1][1], "estimators_", None)
    parts = (
        [member_contributions(m, sessions) for m in members] if members else [member_contributions(pipeline, sessions)]
    )
    n = sessions.shape[0]
    reasons, raw_scores, expected = [], [], []
    for row in range(n):
        merged: dict[str, list] = {}  # name -> [value, contribution]
        base_total = 0.0
        for part in parts:
            contributions = part["contributions"].getrow(row)
            values = part["values"].getrow(row).toarray().ravel()
            scale = 1.0
            base, raw = part["base"][row], part["raw"][row]
            if members:  # the blend: logit shares carried to this member's probability, averaged
                moved = raw - base
                scale = (_sigmoid(raw) - _sigmoid(base)) / moved / len(parts) if moved else 0.0
                base_total += float(_sigmoid(base)) / len(parts)
            else:
                base_total = float(base)
            for column, contribution in zip(contributions.indices, contributions.data):
                name = part["names"][column]
                entry = merged.setdefault(name, [float(values[column]), 0.0])
                entry[1] += float(contribution) * scale
        names = list(merged)
        vector = np.array([merged[name][1] for name in names])

        def describe(i: int, names=names, merged=merged) -> tuple[str, Any, str]:
            name = human_name(names[i], site_names)
            value = merged[names[i]][0]
            return name, value, f"{name} ({format_value(value)})"

        reasons.append(top_reasons(vector, top, describe))
        raw_scores.append(base_total + float(vector.sum()))
        expected.append(base_total)
    return {"reasons": reasons, "raw_scores": raw_scores, "expected_values": expected}


def human_name(name: str, site_names: dict[str, str]) -> str:
    """Site ids in n-gram names as site names: "sites 21 29" -> "sites vk.com facebook.com"."""
    if name.startswith("sites "):
        return "sites " + " ".join(site_names.get(token, token) for token in name[len("sites ") :].split())
    return name.replace("_", " ")


__all__ = ["explain_sessions", "human_name", "member_contributions"]
