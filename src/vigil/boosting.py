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
    (:mod:`vigil.tree_kernels`) instead of ``Booster.predict``, for rows of one float type
    (``dtype``): on the demo EMBER model 3.2-5.3x faster at batch 1,000 on the same threads and
    7-13x at batch 1 (no per-call setup; ``python -m bench.ember_batch``). The first call of a
    process compiles the kernel for its row type (~0.5-1 s; ~0.25-0.4 s for the second type), or
    loads it from the signed kernel cache (:mod:`vigil.kernel_cache`) where an earlier process
    compiled it. A batch of at least 256 rows a thread is scored in parts, on the process's
    thread budget (:func:`vigil.parallel.in_parts`).

    The trees are read from ``booster.model_to_string()`` (LightGBM's own save format, numbers
    written to round-trip, the same iterations ``predict`` uses) into flat arrays: data, not code
    (``dump_model``'s JSON is 5x slower to read, and writes an infinite threshold as 1e300). What
    each split does with NaN and with values near zero is worked out here, once (see
    :mod:`vigil.tree_kernels`). The
    thresholds compared are kept in float64 and, for float32 rows, as the largest float32 not above
    each one: for a float32 value ``v`` and a double ``t``, ``double(v) <= t`` exactly when
    ``v <= t32`` (any float32 at most ``t`` is at most the largest such float32), so float32 rows
    are compared in float32 with the double comparison's answers.

    Refused (:class:`UnsupportedModel`) where the walk would not be LightGBM's: an objective other
    than ``binary`` with its sigmoid, more than one tree per iteration, categorical splits, linear
    trees, averaged (random forest) output.
    """

    def __init__(self, booster: Any, dtype: Any = np.float64):
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"rows of float32 or float64, not {self.dtype}")
        header, trees = _model_text(booster.model_to_string())
        objective = header.get("objective", "").split()
        if not objective or objective[0] != "binary":
            raise UnsupportedModel(f"objective {header.get('objective')!r}: only binary models are compiled")
        if header.get("num_tree_per_iteration", "1") != "1" or "average_output" in header:
            raise UnsupportedModel("more than one tree per iteration, or averaged output")
        parameters = dict(part.split(":", 1) for part in objective[1:] if ":" in part)
        self.sigmoid = float(parameters.get("sigmoid", 1.0))
        self.features = int(header["max_feature_idx"]) + 1
        columns: dict[str, list[np.ndarray]] = {key: [] for key in ("feature", "threshold", "kind", "left", "right")}
        leaves: list[np.ndarray] = []
        roots: list[int] = []
        nodes = 0
        for tree in trees:
            if tree.get("is_linear", "0") != "0":
                raise UnsupportedModel("linear trees are not compiled")
            if tree.get("num_cat", "0") != "0":
                raise UnsupportedModel("categorical splits are not compiled")
            leaf_value = np.array(tree["leaf_value"].split(), dtype=np.float64)
            first_leaf = sum(map(len, leaves))
            splits = int(tree["num_leaves"]) - 1
            roots.append(nodes if splits else -first_leaf - 1)
            if splits:
                for key, name, number in (
                    ("feature", "split_feature", np.int32),
                    ("threshold", "threshold", np.float64),  # as saved: "inf" included, 17 digits
                    ("kind", "decision_type", np.int32),
                ):
                    columns[key].append(np.array(tree[name].split(), dtype=number))
                for key, name in (("left", "left_child"), ("right", "right_child")):
                    child = np.array(tree[name].split(), dtype=np.int32)
                    # a split: its index in this tree; a leaf: -(its index) - 1, here both made global
                    columns[key].append(np.where(child >= 0, child + nodes, child - first_leaf))
            leaves.append(leaf_value)
            nodes += splits

        def joined(key: str, dtype: Any) -> np.ndarray:
            return np.concatenate(columns[key]).astype(dtype) if columns[key] else np.zeros(0, dtype=dtype)

        kind = joined("kind", np.int32)
        if np.any(kind & 1):  # LightGBM's kCategoricalMask
            raise UnsupportedModel("categorical splits are not compiled")
        self.roots = np.array(roots, dtype=np.int32)
        self.feature, self.threshold = joined("feature", np.int32), joined("threshold", np.float64)
        self.left, self.right = joined("left", np.int32), joined("right", np.int32)
        # each split's two children side by side: the short walk picks one by index, without a branch
        self.children = np.column_stack([self.left, self.right]).astype(np.int32).reshape(-1)
        self.leaf_value = np.concatenate(leaves) if leaves else np.zeros(0)
        self.default_left = (kind & 2) != 0  # kDefaultLeftMask
        missing = (kind >> 2) & 3  # MissingType: 0 None, 1 Zero, 2 NaN
        if np.any(missing == 3):
            raise UnsupportedModel("an unknown missing-value type")
        # each split reads its column from a copy of the row's used columns, gathered first: the walk's
        # loads depend on each other, and on the 9.5 KB EMBER row each would be a cache miss of its own
        used, position = np.unique(self.feature, return_inverse=True)
        self.used, self.position = used.astype(np.int32), position.astype(np.int32).reshape(-1)
        self.zero_missing = missing == 1
        self.any_zero_missing = bool(self.zero_missing.any())  # none (LightGBM's default): the kernel's short walk
        zero_goes_left = 0.0 <= self.threshold  # where LightGBM's 0 goes (values within the zero threshold too)
        self.nan_left = np.where(missing == 0, zero_goes_left, self.default_left)
        self.compared = _zero_band_moved(self.threshold, zero_goes_left)
        with np.errstate(over="ignore"):  # past float32's range: +-inf, then the largest float32 below
            below = self.compared.astype(np.float32)
        above = below.astype(np.float64) > self.compared  # rounded up (or to +inf): one float32 down
        self.compared32 = np.where(above, np.nextafter(below, np.float32(-np.inf)), below).astype(np.float32)

    def predict(self, X: Any, check_finite: bool = False) -> np.ndarray:
        """P(class 1) per row (float64) of a 2-D array of ``self.features`` columns, on
        :func:`process_threads` threads. A float64 scorer takes any numbers (as doubles, as LightGBM
        reads them); a float32 one only float32 rows, since rounding others to float32 would change
        their answers. ``check_finite``: every value must be a finite float32, checked in the pass
        that scores the row (a request's matrix is read once, not twice); the first that is not is
        refused as :func:`vigil.tensors.check_matrix` refuses it."""
        from vigil import tree_kernels
        from vigil.parallel import in_parts
        from vigil.tensors import FLOAT32_MAX, non_finite_value

        X = np.asarray(X)
        if self.dtype == np.float32 and X.dtype != np.float32:
            raise ValueError(f"this scorer takes float32 rows, not {X.dtype}")
        X = np.ascontiguousarray(X, dtype=self.dtype)
        if X.ndim != 2 or X.shape[1] != self.features:
            raise ValueError(f"expected rows of {self.features} features, got shape {X.shape}")
        threshold = self.compared32 if self.dtype == np.float32 else self.compared
        out = np.empty(len(X), dtype=np.float64)

        largest = FLOAT32_MAX if check_finite else 0.0

        def score(start: int, stop: int) -> tuple[int, int]:
            bad = np.full(2, -1, dtype=np.int64)
            tree_kernels.probabilities(
                X, start, stop, self.used, self.position, threshold, self.left, self.right, self.children,
                self.nan_left, self.zero_missing, self.any_zero_missing, self.default_left,
                self.leaf_value, self.roots, self.sigmoid, largest, bad, out,
            )  # fmt: skip
            return int(bad[0]), int(bad[1])

        for row, column in in_parts(score, len(X), process_threads(), _PARALLEL_ROWS):
            if row >= 0:  # the parts in row order: the first part's bad value is the first of all
                raise non_finite_value(row, column)
        return out

    def probe_rows(self, rows: int = PROBE_ROWS, seed: int = 0) -> np.ndarray:
        """float64 rows whose values sit on and next to the model's thresholds, in float64 and in
        float32 (and at 0, the zero threshold and NaN), so every split is tried on both sides of its
        boundary, as a float64 or a float32 row would see it."""
        rng = np.random.default_rng(seed)
        t = self.threshold
        with np.errstate(over="ignore"):
            t32 = t.astype(np.float32)
        near = [t, np.nextafter(t, np.inf), np.nextafter(t, -np.inf)]
        near += [t32, np.nextafter(t32, np.float32(np.inf)), np.nextafter(t32, np.float32(-np.inf))]
        values = np.stack([np.asarray(v, dtype=np.float64) for v in near], axis=1)  # (splits, 6)
        specials = np.array([0.0, 5e-36, -5e-36, 1e-35, -1e-35, float(np.float32(1e-35)), np.nan])
        X = np.zeros((rows, self.features))
        for column, position in zip(self.used.tolist(), range(len(self.used))):
            pool = np.concatenate([values[self.position == position].ravel(), specials])
            X[:, column] = pool[rng.integers(0, len(pool), rows)]
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


def _model_text(text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """LightGBM's saved model (``model_to_string``) as its header's ``key=value`` lines and each
    tree's; a bare word in the header (``average_output``) is a key with an empty value."""
    header: dict[str, str] = {}
    trees: list[dict[str, str]] = []
    for line in text.splitlines():
        if line.startswith("end of trees"):
            break
        if line.startswith("Tree="):
            trees.append({})
            continue
        key, _, value = line.partition("=")
        (trees[-1] if trees else header)[key] = value
    return header, trees


_checked: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # Booster -> {dtype: CompiledTrees | None}
_checked_lock = threading.Lock()


def checked_trees(
    booster: Any, rows: Any = None, where: str = "LightGBM model", dtype: Any = np.float64
) -> CompiledTrees | None:
    """The Booster's :class:`CompiledTrees` for rows of ``dtype`` if they give its own
    probabilities within TOLERANCE on the probe rows (in that type) and on ``rows`` (e.g.
    validation rows kept with the model); else None, with a log line saying why. Built once per
    Booster, row type and process, then cached; each row type compiles the kernel (~0.5-1 s for
    float64, less for the second; loaded from the signed kernel cache, :mod:`vigil.kernel_cache`,
    once an earlier process compiled it), so a caller asks only for the type it scores."""
    with _checked_lock:
        built = _checked.setdefault(booster, {})
        key = np.dtype(dtype).str
        if key not in built:
            built[key] = _build_checked(booster, rows, where, dtype)
        return built[key]


def _build_checked(booster: Any, rows: Any, where: str, dtype: Any) -> CompiledTrees | None:
    try:
        trees = CompiledTrees(booster, dtype)
        with np.errstate(over="ignore"):
            probes = trees.probe_rows().astype(dtype)
        checks = [probes] if rows is None else [probes, np.asarray(rows, dtype=dtype)]
        difference = max_difference(trees, booster, *checks)
    except Exception as exc:  # unsupported, or anything the compiler refuses: the Booster serves
        log.info("%s: compiled trees not used (%s: %s); the Booster serves", where, type(exc).__name__, exc)
        return None
    return trees if agrees(difference, where, "compiled trees", sum(map(len, checks))) else None


def max_difference(scorer: Any, booster: Any, *checks: Any) -> float:
    """max |``scorer.predict`` - ``booster.predict``| over the rows of every check (inf if there are
    no rows: nothing was checked)."""
    checks = tuple(rows for rows in checks if len(rows))
    if not checks:
        return float("inf")
    return max(float(np.max(np.abs(scorer.predict(rows) - booster.predict(rows)))) for rows in checks)


def agrees(difference: float, where: str, scorer: str, rows: int, tolerance: float = TOLERANCE) -> bool:
    """Whether a scorer checked against its Booster (``difference``: :func:`max_difference` on
    ``rows`` rows) may serve; if not, a warning saying so (the next scorer, in the end the Booster,
    serves)."""
    if difference <= tolerance:
        return True
    log.warning(
        "%s: %s refused, max |%s - Booster| %.3g > %g on %d rows; it is not used (the Booster serves where no other scorer does)",
        where,
        scorer,
        scorer,
        difference,
        tolerance,
        rows,
    )
    return False


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
        row_type = np.float32 if getattr(X, "dtype", None) == np.float32 else np.float64
        trees = checked_trees(booster, dtype=row_type) if compiled else None
        if trees is not None:
            return trees.predict(X)
        return booster.predict(X, num_threads=process_threads())
    return classifier.predict_proba(X)[:, 1]


__all__ = [
    "CompiledTrees",
    "UnsupportedModel",
    "agrees",
    "bagged_lightgbm",
    "checked_trees",
    "max_difference",
    "positive_probability",
    "process_threads",
]
