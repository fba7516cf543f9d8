"""Why a model said what it said: additive per-feature contributions, and the reasons a client reads.

Every task that explains its verdicts (``/predict/<slug>?explain=N``, :meth:`Task.explain
<vigil.tasks.base.Task.explain>`) answers in one shape, per result item::

    "reasons": [{"feature": "section .upx0: entropy", "value": 7.9, "contribution": 1.31,
                 "text": "section .upx0: entropy 7.9 (raises the score by 1.31)"}, ...]

the ``N`` largest ``|contribution|`` first. Contributions are additive: ``expected value + sum of
every feature's contribution == the model's raw score`` for that row (LightGBM's log-odds from
``pred_contrib``; a forest's class probability from the decision paths, as treeinterpreter computes
it; a linear model's logit, ``coef * x``). The tests check that sum for each task.

Computed here, task-agnostic:

* :func:`forest_contributions`: scikit-learn trees and forests (RandomForest, ExtraTrees, a
  DecisionTree): each split on the way from the root to the leaf moves the prediction from the
  parent node's value to the child's; that change is credited to the split's feature. Exact and
  additive (Saabas' method; TreeSHAP's averages over feature orders are not needed for a sum).
* :func:`linear_contributions`: ``coef_j * x_j`` on the decision function, intercept as the base.
* :func:`baseline_shapley`: exact Shapley values against one baseline row, for models on a handful
  of raw inputs whatever the estimator (2^k model calls per row; k <= 8).

>>> import numpy as np
>>> from sklearn.ensemble import RandomForestClassifier
>>> X = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]); y = np.array([0, 1, 1, 0])
>>> forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
>>> base, contributions = forest_contributions(forest, X, classes=np.array([1, 1, 1, 1]))
>>> bool(np.allclose(base + contributions.sum(axis=1), forest.predict_proba(X)[:, 1]))
True
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Callable, Sequence

import numpy as np

MAX_SHAPLEY_FEATURES = 8


def reason(feature: str, value: Any, contribution: float, text: str | None = None) -> dict:
    """One reason in the common shape; ``text`` defaults to "<feature> <value> (raises/lowers ...)"."""
    contribution = float(contribution)  # not rounded: the contributions must still add up
    if isinstance(value, (float, np.floating)):
        value = round(float(value), 6)  # float32 features read 0.6000000238 otherwise
    if text is None:
        text = f"{feature} {format_value(value)}".strip()
    direction = "raises" if contribution > 0 else "lowers"
    return {
        "feature": feature,
        "value": value,
        "contribution": contribution,
        "text": f"{text} ({direction} the score by {abs(contribution):.3g})",
    }


def format_value(value: Any) -> str:
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.3g}"
    return "" if value is None else str(value)


def top_indices(contributions: np.ndarray, top: int) -> list[int]:
    """Positions of the ``top`` largest ``|contribution|`` (non-zero only), largest first."""
    contributions = np.asarray(contributions, dtype=np.float64)
    if top <= 0 or contributions.size == 0:
        return []
    order = np.argsort(-np.abs(contributions), kind="stable")[:top]
    return [int(i) for i in order if contributions[i] != 0.0]


def top_reasons(
    contributions: np.ndarray,
    top: int,
    describe: Callable[[int], tuple[str, Any, str | None]],
) -> list[dict]:
    """The ``top`` reasons of one row: ``describe(column) -> (feature name, value, text or None)``."""
    reasons = []
    for column in top_indices(contributions, top):
        name, value, text = describe(column)
        reasons.append(reason(name, value, contributions[column], text))
    return reasons


# -- trees -------------------------------------------------------------------------------------
def _tree_contributions(tree, X: np.ndarray, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """(base (k,), contributions (n, n_features, k)) of one fitted sklearn tree, k outputs
    (class probabilities for a classifier, the value for a regressor)."""
    from scipy import sparse

    structure = tree.tree_
    values = structure.value[:, 0, :].astype(np.float64)  # (nodes, k)
    if hasattr(tree, "classes_"):  # classifier: node values as class shares (what predict_proba gives)
        totals = values.sum(axis=1, keepdims=True)
        values = np.divide(values, totals, out=np.zeros_like(values), where=totals > 0)
    nodes, outputs = values.shape
    parent = np.full(nodes, -1)
    for side in (structure.children_left, structure.children_right):
        inner = side >= 0
        parent[side[inner]] = np.flatnonzero(inner)
    children = np.flatnonzero(parent >= 0)
    split_feature = structure.feature[parent[children]]
    delta = values[children] - values[parent[children]]  # (children, k)
    # (nodes, n_features * k): each child's change, in its parent's split feature's columns
    rows = np.repeat(children, outputs)
    columns = (split_feature[:, None] * outputs + np.arange(outputs)[None, :]).ravel()
    moves = sparse.csr_matrix((delta.ravel(), (rows, columns)), shape=(nodes, n_features * outputs))
    path = tree.decision_path(X)  # (n, nodes), 1 where the row passes
    contributions = np.asarray((path @ moves).todense()).reshape(X.shape[0], n_features, outputs)
    return values[0], contributions


def forest_contributions(estimator, X: np.ndarray, classes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(base (n,), contributions (n, features)) of a fitted sklearn tree or forest for each row's
    output ``classes[i]`` (a class index; default: the predicted class). ``base + contributions.sum(1)``
    is the row's ``predict_proba[:, classes[i]]`` (classifiers) or ``predict`` (regressors)."""
    X = np.asarray(X, dtype=np.float32)
    trees = list(getattr(estimator, "estimators_", [estimator]))
    n_features = X.shape[1]
    base, total = None, None
    for tree in trees:
        tree_base, tree_contributions = _tree_contributions(tree, X, n_features)
        base = tree_base if base is None else base + tree_base
        total = tree_contributions if total is None else total + tree_contributions
    base, total = base / len(trees), total / len(trees)
    if classes is None:
        classes = np.argmax(base[None, :] + total.sum(axis=1), axis=1)
    rows = np.arange(X.shape[0])
    return base[classes], total[rows, :, classes]


# -- linear models -----------------------------------------------------------------------------
def linear_contributions(coef: np.ndarray, intercept: float, X) -> tuple[np.ndarray, Any]:
    """(base (n,), contributions (n, features)) of ``intercept + X @ coef`` (a logistic regression's
    logit): feature j contributes ``coef_j * x_j``; sparse ``X`` gives sparse contributions."""
    from scipy import sparse

    coef = np.asarray(coef, dtype=np.float64).ravel()
    if sparse.issparse(X):
        contributions = sparse.csr_matrix(X).multiply(coef[None, :]).tocsr()
    else:
        contributions = np.asarray(X, dtype=np.float64) * coef[None, :]
    return np.full(X.shape[0], float(intercept)), contributions


# -- any model on a few inputs -----------------------------------------------------------------
def coalitions(k: int) -> list[tuple[int, ...]]:
    """Every subset of ``k`` features as a 0/1 mask, in a fixed order (the empty one first)."""
    return list(itertools.product((0, 1), repeat=k))


def shapley_weights(k: int) -> np.ndarray:
    """(2^k, k) matrix ``W`` with ``values @ W`` the exact Shapley values, ``values`` the model's score
    on each coalition of :func:`coalitions` (present features from the row, absent from the baseline):
    ``phi_i = sum over S without i of |S|! (k-|S|-1)! / k! * (v(S + i) - v(S))``."""
    if k > MAX_SHAPLEY_FEATURES:
        raise ValueError(f"exact Shapley values for {k} features would take 2^{k} model calls")
    weights = np.zeros((2**k, k))
    for row, mask in enumerate(coalitions(k)):
        size = sum(mask)
        for i in range(k):
            if mask[i]:  # v(S) with i present: + weight of S - {i}
                weights[row, i] += math.factorial(size - 1) * math.factorial(k - size) / math.factorial(k)
            else:  # v(S) without i: - weight of S
                weights[row, i] -= math.factorial(size) * math.factorial(k - size - 1) / math.factorial(k)
    return weights


def coalition_rows(row: dict, baseline: dict, features: Sequence[str]) -> list[dict]:
    """The 2^k rows to score for one (row, baseline) pair, in :func:`coalitions` order."""
    return [
        {**row, **{f: (row[f] if keep else baseline[f]) for f, keep in zip(features, mask)}}
        for mask in coalitions(len(features))
    ]


def baseline_shapley(score: Callable[[list[dict]], np.ndarray], row: dict, baseline: dict, features: Sequence[str]):
    """(base, {feature: contribution}) for one row: exact Shapley values of ``score`` with absent
    features taken from ``baseline``; ``base + sum(contributions) == score([row])`` exactly.
    ``score`` maps rows (dicts) to one number each; it is called once with all 2^k coalitions.

    >>> base, phi = baseline_shapley(lambda rows: [r["a"] * r["b"] for r in rows], {"a": 2, "b": 3}, {"a": 0, "b": 0}, "ab")
    >>> base, phi
    (0.0, {'a': 3.0, 'b': 3.0})
    """
    features = list(features)
    values = np.asarray(score(coalition_rows(row, baseline, features)), dtype=np.float64)
    contributions = values @ shapley_weights(len(features))
    return float(values[0]), {f: float(c) for f, c in zip(features, contributions)}


__all__ = [
    "baseline_shapley",
    "coalition_rows",
    "coalitions",
    "shapley_weights",
    "forest_contributions",
    "format_value",
    "linear_contributions",
    "reason",
    "top_indices",
    "top_reasons",
]
