"""LightGBM for EMBER: parameter presets, the saved pipeline, training and evaluation.

Presets:

* ``ember``: ember's published training parameters (``lgbm_params("ember")``);
* ``alectio``: the Alectio ember example's plain ``lightgbm.LGBMClassifier()`` (library defaults);
* a path to a JSON file: LightGBM parameters of your own (native names or sklearn-API names).

The saved model is one scikit-learn Pipeline, ``RawRecordVectorizer`` then ``LGBMClassifier``, so the
service featurizes exactly as training did; ``pipeline[-1]`` scores ready-made vectors.

Example::

    X, y = read_vectorized("data/ember2018", "train")
    estimator = make_estimator("alectio").fit(X[y != -1], y[y != -1])
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline

from vigil.metrics import binary_detection_report
from vigil.tasks.ember.features import DIMS, FeatureExtractor

PRESETS = ("ember", "alectio")

# ember's train_model() defaults (elastic/ember ember/__init__.py), LightGBM native names.
EMBER_PARAMS: dict[str, Any] = {
    "boosting": "gbdt",
    "objective": "binary",
    "num_iterations": 1000,
    "learning_rate": 0.05,
    "num_leaves": 2048,
    "max_depth": 15,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.5,
}

# LightGBM native name -> LGBMClassifier keyword, for the names the presets use.
_SKLEARN_NAMES = {
    "boosting": "boosting_type",
    "boosting_type": "boosting_type",
    "num_iterations": "n_estimators",
    "n_estimators": "n_estimators",
    "min_data_in_leaf": "min_child_samples",
    "feature_fraction": "colsample_bytree",
    "bagging_fraction": "subsample",
    "bagging_freq": "subsample_freq",
    "lambda_l1": "reg_alpha",
    "lambda_l2": "reg_lambda",
    "num_threads": "n_jobs",
}


def lgbm_params(preset: str = "ember") -> dict[str, Any]:
    """LightGBM parameters (native names) of a preset name or a JSON file path."""
    if preset == "ember":
        return dict(EMBER_PARAMS)
    if preset == "alectio":
        return {}  # LGBMClassifier() as the Alectio example builds it: library defaults
    path = Path(preset)
    if path.suffix == ".json" or path.exists():
        if not path.exists():
            raise FileNotFoundError(f"parameter file {path} does not exist")
        params = json.loads(path.read_text())
        if not isinstance(params, dict):
            raise ValueError(f"{path} must hold a JSON object of LightGBM parameters")
        return params
    raise ValueError(f"--params must be one of {', '.join(PRESETS)} or a .json file, not {preset!r}")


def sklearn_params(params: dict[str, Any]) -> dict[str, Any]:
    """Native LightGBM names -> LGBMClassifier keywords (unknown names pass through as-is)."""
    return {_SKLEARN_NAMES.get(key, key): value for key, value in params.items() if key != "objective"}


def make_estimator(preset: str = "ember", n_jobs: int | None = 2, random_state: int | None = 0, **overrides):
    """An unfitted ``lightgbm.LGBMClassifier`` for a preset (``ember``, ``alectio`` or FILE.json)."""
    import lightgbm

    keywords = sklearn_params(lgbm_params(preset))
    keywords.setdefault("n_jobs", n_jobs)
    keywords.setdefault("random_state", random_state)
    keywords.setdefault("verbose", -1)
    keywords.update(overrides)
    return lightgbm.LGBMClassifier(**keywords)


class RawRecordVectorizer(TransformerMixin, BaseEstimator):
    """Transformer: ember raw records (dicts) -> float32 vectors; numeric rows pass through checked."""

    def __init__(self, feature_version: int = 2):
        self.feature_version = feature_version

    def fit(self, X=None, y=None):
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return True  # stateless

    def transform(self, X) -> np.ndarray:
        dim = DIMS[self.feature_version]
        if len(X) and isinstance(X[0], dict):
            return FeatureExtractor(self.feature_version).process_raw_features_batch(list(X))
        array = np.asarray(X, dtype=np.float32)
        if array.ndim != 2 or array.shape[1] != dim:
            raise ValueError(f"expected vectors of {dim} floats, got shape {array.shape}")
        return array


def build_pipeline(classifier, feature_version: int) -> Pipeline:
    return Pipeline([("vectorize", RawRecordVectorizer(feature_version)), ("classifier", classifier)])


def labelled_rows(y: np.ndarray) -> np.ndarray:
    """Indices of rows labelled 0 or 1 (ember keeps -1 rows in the files and drops them here)."""
    return np.flatnonzero(np.asarray(y) != -1)


def load_labelled(X, y) -> tuple[np.ndarray, np.ndarray]:
    rows = labelled_rows(y)
    return np.asarray(X[rows], dtype=np.float32), np.asarray(y[rows]).astype(int)


def evaluate_classifier(classifier, X_test, y_test) -> tuple[dict, np.ndarray]:
    """ember's metrics on the labelled test rows; returns (report, scores).

    The rows are scored a batch at a time (``bounded.predict_rows``: the same numbers as one
    ``predict_proba`` call), so evaluating never holds the whole test set in memory.
    """
    from vigil.tasks.ember.bounded import predict_rows

    rows = labelled_rows(y_test)
    if len(rows) == 0:
        raise ValueError("the test set has no labelled rows")
    scores = predict_rows(classifier, X_test, rows)
    return binary_detection_report(np.asarray(y_test[rows]).astype(int), scores), scores


VALIDATION_CHECK_ROWS = 10_000  # rows the ONNX model is checked on at training (evenly spread)


def _validation_rows(X, rows: np.ndarray) -> np.ndarray:
    """Up to VALIDATION_CHECK_ROWS of the given rows of X, evenly spread, in memory as float32."""
    if len(rows) > VALIDATION_CHECK_ROWS:
        rows = rows[np.linspace(0, len(rows) - 1, VALIDATION_CHECK_ROWS).astype(np.int64)]
    return np.asarray(X[rows], dtype=np.float32)


def scores(loaded, vectors: np.ndarray, check_finite: bool = False) -> np.ndarray:
    """P(malicious) of float32 vectors by a loaded EMBER pipeline: its compiled trees or its ONNX
    session, whichever first passed its check against the Booster (``vigil.tasks.ember.runtime``),
    else the classifier itself. ``check_finite``: the vectors' values are not checked yet; every one
    must be a finite float32 (the compiled trees check them in their scoring pass)."""
    from vigil.boosting import positive_probability, process_threads
    from vigil.tasks.ember.runtime import scorer_for
    from vigil.tensors import require_finite

    classifier = loaded.model[-1]
    scorer = scorer_for(loaded, getattr(classifier, "booster_", None))
    if scorer is not None:  # both scorers take float32 rows
        return scorer.predict(np.asarray(vectors, dtype=np.float32), check_finite=check_finite)
    if check_finite:
        require_finite(vectors, threads=process_threads())
    return positive_probability(classifier, vectors)


def booster_of(classifier):
    """The native ``lightgbm.Booster`` inside an LGBMClassifier (or a Pipeline ending in one)."""
    if isinstance(classifier, Pipeline):
        classifier = classifier[-1]
    return getattr(classifier, "booster_", None)


def rounds_progress(desc: str):
    """A LightGBM callback drawing a tqdm bar of the boosting rounds on stderr."""
    import sys

    from tqdm import tqdm

    bars: list = []

    def callback(env) -> None:
        if not bars:
            bars.append(tqdm(total=env.end_iteration - env.begin_iteration, desc=desc, unit="round", file=sys.stderr))
        bars[0].update(1)
        if env.iteration + 1 >= env.end_iteration:
            bars[0].close()

    return callback


def train_and_save(
    store,
    data_dir: Path | str,
    feature_version: int = 2,
    preset: str = "ember",
    n_jobs: int | None = 2,
    extra: dict | None = None,
    bounded: bool = False,
    histogram_pool_mb: int | None = None,
    binary_dataset: Path | str | None = None,
    dask: str | None = None,
    progress: bool = False,
    **overrides,
) -> dict:
    """Fit LightGBM on the labelled train rows of a vectorized data dir, evaluate on its test rows,
        and save the pipeline to ``store`` (task ``ember``) with the threshold at 1 % FPR.

        By default the labelled rows are loaded into memory, as ember does. ``bounded=True`` trains from
        the memmaps in bounded memory (``vigil.tasks.ember.bounded``: histogram pool capped at
        ``histogram_pool_mb``, default 1,024 MB; the binned Dataset saved to / reused from
        ``binary_dataset``); ``dask="tcp://host:8786"`` or ``"local:N"`` trains with LightGBM's Dask
        interface (``vigil.tasks.ember.distributed``). All three save the same kind of artifact.
    ``progress=True`` shows a bar of the boosting rounds (in memory) on stderr.

        Returns the manifest entry. Without a labelled test set of both classes the metrics and the
        threshold come from the training rows, and the entry says so (``extra.metrics_on``).
    """
    from vigil.artifacts import data_fingerprint
    from vigil.tasks.ember.bounded import predict_rows
    from vigil.tasks.ember.vectorize import read_vectorized

    data_dir = Path(data_dir)
    if dask:
        from vigil.dask_training import parse_dask_address

        parse_dask_address(dask)  # a bad address fails before any work
        if bounded or binary_dataset is not None:
            raise ValueError(
                "--bounded-memory and --binary-dataset are for one machine; with --dask each worker "
                "holds its share of the rows (--histogram-pool-mb still applies)"
            )
    X_train, y_train = read_vectorized(data_dir, "train", feature_version)
    fingerprint = data_fingerprint(*(data_dir / f"{kind}_train.dat" for kind in ("X", "y")))
    rows = labelled_rows(y_train)
    y = np.asarray(y_train[rows]).astype(int)
    if len(np.unique(y)) < 2:
        raise ValueError(
            f"the labelled train rows of {data_dir} hold only class(es) {sorted(set(y))}; LightGBM needs both 0 and 1"
        )
    training: dict | None = None
    if dask:
        from vigil.tasks.ember.distributed import fit_on_dask

        if histogram_pool_mb is not None:
            overrides["histogram_pool_size"] = float(histogram_pool_mb)
        classifier, training = fit_on_dask(
            make_estimator(preset, n_jobs=None, **overrides), X_train, y_train, rows, dask, threads_per_worker=n_jobs
        )
    elif bounded or histogram_pool_mb is not None or binary_dataset is not None:
        from vigil.tasks.ember.bounded import HISTOGRAM_POOL_MB, fit_bounded

        classifier, training = fit_bounded(
            make_estimator(preset, n_jobs=n_jobs, **overrides),
            X_train,
            y_train,
            rows,
            histogram_pool_mb=HISTOGRAM_POOL_MB if histogram_pool_mb is None else histogram_pool_mb,
            binary_path=binary_dataset,
            fingerprint=fingerprint,
        )
    else:
        X, _ = load_labelled(X_train, y_train)
        callbacks = [rounds_progress("LightGBM")] if progress else None
        classifier = make_estimator(preset, n_jobs=n_jobs, **overrides).fit(X, y, callbacks=callbacks)
        del X

    metrics_on = "test"
    try:
        X_test, y_test = read_vectorized(data_dir, "test", feature_version)
        report, _ = evaluate_classifier(classifier, X_test, y_test)
        if "threshold_at_1pct_fpr" not in report:
            raise ValueError("test set has one class only")
        validation = _validation_rows(X_test, labelled_rows(y_test))
    except (FileNotFoundError, ValueError):
        metrics_on = "train"
        report = binary_detection_report(y, predict_rows(classifier, X_train, rows))
        validation = _validation_rows(X_train, rows)
    from vigil.tasks.ember.runtime import convert_checked

    sidecars, runtime = convert_checked(classifier.booster_, validation)
    del validation
    return store.save(
        "ember",
        build_pipeline(classifier, feature_version),
        metrics=report,
        threshold=report["threshold_at_1pct_fpr"],
        feature_version=feature_version,
        data_fingerprint=fingerprint,
        lightgbm_booster=classifier.booster_,
        sidecars=sidecars,
        extra={
            "preset": preset,
            "params": classifier.get_params(),
            "metrics_on": metrics_on,
            "train_rows": int(len(y)),
            "data_dir": str(data_dir),
            "runtime": runtime,
            **({"training": training} if training else {}),
            **(extra or {}),
        },
    )
