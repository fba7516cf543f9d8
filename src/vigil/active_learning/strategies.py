"""Query strategies: which ``n_rec`` unlabelled records to label next, from ``infer`` outputs.

Each strategy scores every record (higher = more worth labelling) from its class probabilities;
the ``n_rec`` highest scores win, ties broken by index so results are reproducible.

Example::

    >>> outputs = {3: {"softmax": [0.9, 0.1]}, 7: {"softmax": [0.55, 0.45]}, 9: {"softmax": [0.2, 0.8]}}
    >>> select(outputs, 1, "margin")
    [7]
"""

from __future__ import annotations

import numpy as np

from vigil.errors import InvalidInput


def least_confidence(proba: np.ndarray) -> np.ndarray:
    return 1.0 - proba.max(axis=1)


def margin(proba: np.ndarray) -> np.ndarray:
    top_two = np.sort(proba, axis=1)[:, -2:]
    return -(top_two[:, 1] - top_two[:, 0])  # small margin = uncertain = high score


def entropy(proba: np.ndarray) -> np.ndarray:
    p = np.clip(proba, 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1)


STRATEGIES = {"least_confidence": least_confidence, "margin": margin, "entropy": entropy, "random": None}


def select(outputs: dict, n_rec: int, strategy: str, seed: int = 0) -> list[int]:
    """The ``n_rec`` indices of ``outputs`` (``{index: {"softmax": [...]}}``) the strategy picks, sorted."""
    name = strategy.replace("-", "_")
    if name not in STRATEGIES:
        raise InvalidInput(f"unknown strategy '{strategy}'", {"field": "strategy", "known": list(STRATEGIES)})
    if isinstance(n_rec, bool) or not isinstance(n_rec, int) or n_rec <= 0:
        raise InvalidInput("n_rec must be a positive integer", {"field": "n_rec", "value": n_rec})
    indices = np.fromiter(outputs.keys(), dtype=np.int64, count=len(outputs))
    if indices.size <= n_rec:
        return sorted(indices.tolist())
    if STRATEGIES[name] is None:
        chosen = np.random.default_rng(seed).choice(indices, size=n_rec, replace=False)
    else:
        proba = np.array([value["softmax"] for value in outputs.values()], dtype=np.float64)
        scores = STRATEGIES[name](proba)
        order = np.lexsort((indices, -scores))  # highest score first, then lowest index
        chosen = indices[order[:n_rec]]
    return sorted(int(i) for i in chosen)
