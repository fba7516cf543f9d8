"""LightGBM as the tasks configure it when they bag: one place for the settings they share.

:func:`bagged_lightgbm` is an ``LGBMClassifier`` that draws 80% of the rows (every iteration) and
80% of the columns for each tree, seeded and silent; a task gives the size of the model (trees,
learning rate, leaves) and anything of its own (``class_weight``, ``reg_lambda``). LightGBM is
imported on first use (never at ``vigil --help``). :func:`positive_probability` scores a fitted
classifier on the threads of the deployment (:func:`process_threads`), not those of its training run,
and for long-lived callers through :class:`CompiledTrees` where they matched the Booster
(:func:`checked_trees`).

>>> bagged_lightgbm(300, 0.05, 15, class_weight="balanced").get_params()["subsample_freq"]
1
"""

from __future__ import annotations

import functools
import logging
import threading
import weakref
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def bagged_lightgbm(n_estimators: int, learning_rate: float, num_leaves: int, n_jobs: int = 1, **options: Any) -> Any:
    """An unfitted ``LGBMClassifier``: rows and columns subsampled at 0.8, ``random_state=0``,
    ``min_child_samples=20``, no log output; ``options`` add to (or override) these."""
    from lightgbm import LGBMClassifier

    settings: dict[str, Any] = {
        "min_child_samples": 20,
        "subsample": 0.8,
        "subsample_freq": 1,
        "colsample_bytree": 0.8,
        "random_state": 0,
        "verbose": -1,
        **options,
    }
    return LGBMClassifier(
        n_estimators=n_estimators, learning_rate=learning_rate, num_leaves=num_leaves, n_jobs=n_jobs, **settings
    )


@functools.cache
def process_threads() -> int:
    """The threads a bare ``Booster.predict`` runs on in this process: the size of LightGBM's OpenMP
    pool, i.e. the cores unless OMP_NUM_THREADS says fewer (gunicorn_conf and ``vigil serve`` give
    each worker 1, so the workers share the cores). LightGBM's scorers run on exactly that many
    (ONNX Runtime and the classifier alike), whatever ``n_jobs`` the model was trained with: the
    deployment sets the thread budget, not the training run. Asked once per process (threadpoolctl, ~10 ms)."""
    import lightgbm  # noqa: F401  (loads the OpenMP runtime whose pool is asked about)
    from threadpoolctl import threadpool_info

    sizes = [pool["num_threads"] for pool in threadpool_info() if pool.get("user_api") == "openmp"]
    return max(1, min(sizes)) if sizes else 1


TOLERANCE = 1e-6  # max |compiled - Booster| probability on the check rows, else the Booster serves
PROBE_ROWS = 512  # rows made from the model's own thresholds to check the compiled trees on
_PARALLEL_ROWS = 256  # fewer rows than this per thread run on the calling thread alone


class UnsupportedModel(ValueError):
    """A Booster :class:`CompiledTrees` does not score (the Booster itself serves it)."""


class CompiledTrees:
    """P(class 1) of a binary LightGBM Booster, scored by a compiled walk of its trees
    (:mod:`vigil.tree_kernels`) instead of ``Booster.predict``: on the demo EMBER model 1.3-2.5x
    faster at batch 1,000 on the same threads and ~5x at batch 1 (no per-call setup;
    ``python -m bench.ember_batch``). The first call of a process compiles the kernel (~1 s, and
    ~0.4 s more for the other float type).

    The trees are read from ``booster.dump_model()`` (the same iterations ``predict`` uses) into flat
    arrays: data, not code. Their thresholds come from ``model_to_string()``, LightGBM's own save
    format, because the JSON dump writes an infinite threshold as 1e300. What each split does with
    NaN and with values near zero is worked out here, once (see :mod:`vigil.tree_kernels`). The
    thresholds compared are kept in float64 and, for float32 rows, as the largest float32 not above
    each one: for a float32 value ``v`` and a double ``t``, ``double(v) <= t`` exactly when
    ``v <= t32`` (any float32 at most ``t`` is at most the largest such float32), so float32 rows
    are compared in float32 with the double comparison's answers.

    Refused (:class:`UnsupportedModel`) where the walk would not be LightGBM's: an objective other
    than ``binary`` with its sigmoid, more than one tree per iteration, categorical splits, linear
    trees, averaged (random forest) output.
    """

    def __init__(self, booster: Any):
        model = booster.dump_model()
        objective = str(model.get("objective", "")).split()
        if not objective or objective[0] != "binary":
            raise UnsupportedModel(f"objective {model.get('objective')!r}: only binary models are compiled")
        parameters = dict(part.split(":", 1) for part in objective[1:] if ":" in part)
        if model.get("num_tree_per_iteration", 1) != 1 or model.get("average_output"):
            raise UnsupportedModel("more than one tree per iteration, or averaged output")
        self.sigmoid = float(parameters.get("sigmoid", 1.0))
        self.features = int(model["max_feature_idx"]) + 1
        trees = model["tree_info"]
        thresholds = _saved_thresholds(booster.model_to_string())
        if len(thresholds) != len(trees):
            raise UnsupportedModel(f"{len(trees)} trees dumped but {len(thresholds)} saved")
        # per split: feature, threshold, left, right, missing type, default left
        nodes: list[tuple[int, float, int, int, str, bool]] = []
        leaves: list[float] = []

        def add(tree: dict, tree_thresholds: list[float]) -> int:  # the node's index, or -(leaf index) - 1
            if "leaf_value" in tree:
                if "leaf_coeff" in tree:
                    raise UnsupportedModel("linear trees are not compiled")
                leaves.append(float(tree["leaf_value"]))
                return -len(leaves)
            if tree.get("decision_type") != "<=":
                raise UnsupportedModel(f"split {tree.get('decision_type')!r}: only numerical splits are compiled")
            if tree["missing_type"] not in ("None", "Zero", "NaN"):
                raise UnsupportedModel(f"missing type {tree['missing_type']!r}")
            index = len(nodes)
            nodes.append((0, 0.0, 0, 0, "", False))  # children are added before this node is complete
            left, right = add(tree["left_child"], tree_thresholds), add(tree["right_child"], tree_thresholds)
            split = (int(tree["split_feature"]), tree_thresholds[int(tree["split_index"])], left, right)
            nodes[index] = (*split, tree["missing_type"], bool(tree["default_left"]))
            return index

        if any(tree.get("is_linear") for tree in trees):
            raise UnsupportedModel("linear trees are not compiled")
        self.roots = np.array(
            [add(tree["tree_structure"], saved) for tree, saved in zip(trees, thresholds)], dtype=np.int32
        )
        columns = list(zip(*nodes)) if nodes else [()] * 6
        # each split reads its column from a copy of the row's used columns, gathered first: the walk's
        # loads depend on each other, and on the 9.5 KB EMBER row each would be a cache miss of its own
        self.used, feature = np.unique(np.array(columns[0], dtype=np.int32), return_inverse=True)
        self.used = self.used.astype(np.int32)
        self.position = feature.astype(np.int32).reshape(-1)  # each split's place among the used columns
        self.feature = self.used[self.position]  # and its column
        self.threshold = np.array(columns[1], dtype=np.float64)  # LightGBM's own (probe rows are made from them)
        self.left, self.right = (np.array(column, dtype=np.int32) for column in columns[2:4])
        missing = np.array(columns[4], dtype=object)
        self.default_left = np.array(columns[5], dtype=np.bool_)
        self.leaf_value = np.array(leaves, dtype=np.float64)
        self.zero_missing = missing == "Zero"
        zero_goes_left = 0.0 <= self.threshold  # where LightGBM's 0 goes (values within the zero threshold too)
        self.nan_left = np.where(missing == "None", zero_goes_left, self.default_left)
        self.compared = _zero_band_moved(self.threshold, zero_goes_left)
        with np.errstate(over="ignore"):  # past float32's range: +-inf, then the largest float32 below
            below = self.compared.astype(np.float32)
        above = below.astype(np.float64) > self.compared  # rounded up (or to +inf): one float32 down
        self.compared32 = np.where(above, np.nextafter(below, np.float32(-np.inf)), below).astype(np.float32)

    def predict(self, X: Any) -> np.ndarray:
        """P(class 1) per row (float64) of a 2-D array of ``self.features`` columns, on
        :func:`process_threads` threads; float32 rows stay float32, anything else becomes float64."""
        from vigil import tree_kernels

        X = np.asarray(X)
        if X.dtype != np.float32:
            X = np.asarray(X, dtype=np.float64)
        X = np.ascontiguousarray(X)
        if X.ndim != 2 or X.shape[1] != self.features:
            raise ValueError(f"expected rows of {self.features} features, got shape {X.shape}")
        threshold = self.compared32 if X.dtype == np.float32 else self.compared
        out = np.empty(len(X), dtype=np.float64)

        def score(start: int, stop: int) -> None:
            tree_kernels.probabilities(
                X, start, stop, self.used, self.position, threshold, self.left, self.right, self.nan_left,
                self.zero_missing, self.default_left, self.leaf_value, self.roots, self.sigmoid, out,
            )  # fmt: skip

        parts = min(process_threads(), len(X) // _PARALLEL_ROWS)
        if parts <= 1:
            score(0, len(X))
            return out
        bounds = np.linspace(0, len(X), parts + 1).astype(int)
        futures = [_pool().submit(score, start, stop) for start, stop in zip(bounds[1:-1], bounds[2:])]
        score(0, int(bounds[1]))  # the first part on this thread (the kernel lets go of the GIL)
        for future in futures:
            future.result()
        return out

    def probe_rows(self, rows: int = PROBE_ROWS, seed: int = 0) -> np.ndarray:
        """float64 rows whose values sit on and next to the model's thresholds (and at 0, the zero
        threshold and NaN), so that every split is tried on both sides of its boundary."""
        rng = np.random.default_rng(seed)
        candidates: dict[int, list[float]] = {}
        for feature, threshold in zip(self.feature.tolist(), self.threshold.tolist()):
            near = np.array([threshold, np.nextafter(threshold, np.inf), np.nextafter(threshold, -np.inf)])
            with np.errstate(over="ignore"):  # and the float32 values around it (a float32 row's)
                near32 = near.astype(np.float32)
            around32 = [near32, np.nextafter(near32, np.float32(np.inf)), np.nextafter(near32, np.float32(-np.inf))]
            candidates.setdefault(feature, []).extend([*near.tolist(), *np.concatenate(around32).tolist()])
        specials = [0.0, 5e-36, -5e-36, 1e-35, -1e-35, float(np.float32(1e-35)), np.nan]
        X = np.zeros((rows, self.features))
        for feature, values in candidates.items():
            pool = np.array(values + specials)
            X[:, feature] = pool[rng.integers(0, len(pool), rows)]
        return X


def _zero_band_moved(threshold: np.ndarray, zero_goes_left: np.ndarray) -> np.ndarray:
    """Thresholds for a plain ``value <= t`` that also sends every value within LightGBM's zero
    threshold Z (which it reads as 0) where 0 goes. Only a threshold in [-Z, Z) would split that
    band; it becomes Z (the band goes left, as 0 does when 0 <= t) or the double just below -Z (the
    band goes right). Values outside the band compare alike with both: none lies between."""
    from vigil.tree_kernels import ZERO_THRESHOLD

    in_band = (threshold >= -ZERO_THRESHOLD) & (threshold < ZERO_THRESHOLD)
    moved = np.where(zero_goes_left, ZERO_THRESHOLD, np.nextafter(-ZERO_THRESHOLD, -np.inf))
    return np.where(in_band, moved, threshold)


def _saved_thresholds(model_text: str) -> list[list[float]]:
    """Each tree's split thresholds, in split order, as LightGBM saves them (``inf`` included)."""
    trees: list[list[float]] = []
    for line in model_text.splitlines():
        if line.startswith("Tree="):
            trees.append([])
        elif line.startswith("threshold=") and trees:
            trees[-1] = [float(value) for value in line[len("threshold=") :].split()]
        elif line.startswith("end of trees"):
            break
    return trees


@functools.cache
def _pool() -> Any:
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=max(1, process_threads() - 1), thread_name_prefix="vigil-trees")


_checked: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # Booster -> CompiledTrees | None
_checked_lock = threading.Lock()


def checked_trees(booster: Any, rows: Any = None, where: str = "LightGBM model") -> CompiledTrees | None:
    """The Booster's :class:`CompiledTrees` if they give its own probabilities within TOLERANCE on
    the probe rows (float64 and float32) and on ``rows`` (e.g. validation rows kept with the model);
    else None, with a log line saying why. Built once per Booster and process, then cached."""
    with _checked_lock:
        if booster in _checked:
            return _checked[booster]
        _checked[booster] = scorer = _build_checked(booster, rows, where)
    return scorer


def _build_checked(booster: Any, rows: Any, where: str) -> CompiledTrees | None:
    try:
        trees = CompiledTrees(booster)
        probes = trees.probe_rows()
        with np.errstate(over="ignore"):
            checks = [probes, probes.astype(np.float32)]
        if rows is not None and len(rows):
            checks.append(np.asarray(rows))
        difference = max(
            float(np.max(np.abs(trees.predict(check) - booster.predict(check)))) if len(check) else 0.0
            for check in checks
        )
    except Exception as exc:  # unsupported, or anything the compiler refuses: the Booster serves
        log.info("%s: compiled trees not used (%s: %s); the Booster serves", where, type(exc).__name__, exc)
        return None
    if not difference <= TOLERANCE:
        log.warning(
            "%s: compiled trees refused, max |compiled - Booster| %.3g > %g; the Booster serves",
            where,
            difference,
            TOLERANCE,
        )
        return None
    return trees


def positive_probability(classifier: Any, X: Any, compiled: bool = False) -> Any:
    """P(class 1) per row of ``X`` by a fitted binary classifier: ``predict_proba``'s second column.
    A binary ``LGBMClassifier``'s is its Booster's own output, so the Booster is asked directly, on
    :func:`process_threads` threads: the scikit-learn wrapper's checks cost ~1 ms a call, and a model
    trained with ``n_jobs=1`` would score on one core of two (a DNS window of 1,000 rows: 2.1 ms
    this way, 3.9 ms through ``predict_proba``). Prediction parameters set on the classifier itself
    (``pred_early_stop`` and the like), which ``predict_proba`` would pass on, are not: none of
    Vigil's models sets any. With ``compiled`` (a caller that keeps the model for many calls) the
    Booster's :func:`checked_trees` score it where they passed their check."""
    if (
        type(classifier).__module__.startswith("lightgbm.")
        and len(getattr(classifier, "classes_", ())) == 2
        and not callable(classifier.objective)
    ):
        booster = classifier.booster_
        trees = checked_trees(booster) if compiled else None
        if trees is not None:
            return trees.predict(X)
        return booster.predict(X, num_threads=process_threads())
    return classifier.predict_proba(X)[:, 1]


__all__ = [
    "CompiledTrees",
    "UnsupportedModel",
    "bagged_lightgbm",
    "checked_trees",
    "positive_probability",
    "process_threads",
]
