"""Reading the CIC CSVs, the candidate pipelines, and their comparison.

A model is one sklearn :class:`~sklearn.pipeline.Pipeline`, saved as it is: the columns it reads
(:class:`FeatureColumns`, the 14 of :data:`FEATURE_COLUMNS`), the feature selection, then the
classifier. The decision threshold, the metrics and the design (``selection``, ``algorithm``,
``kind``: static, dynamic or query-real) are in the artifact's manifest entry, not in the model.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.feature_selection import SelectFromModel, SelectKBest, mutual_info_classif
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from vigil.boosting import positive_probability
from vigil.files import read_csv_checked
from vigil.metrics import accuracy, binary_confusion, confusion_ratios, pr_auc, roc_auc
from vigil.tasks.dns_exfil.features import FEATURE_COLUMNS, LABEL_COLUMN, coerce_csv_value

SELECTIONS = ("all_features", "mutual_info_k8", "tree_importance")
ALGORITHMS = ("lightgbm", "random_forest")


def read_cic_csv(path: Path | str, max_rows: int | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """A static_dataset.csv / Kafka_dataset.csv (or ours) as (numeric feature frame, labels)."""
    frame = read_csv_checked(
        path,
        [*FEATURE_COLUMNS, LABEL_COLUMN],
        what="CIC CSV",
        nrows=max_rows,
        dtype={"longest_word": object, "sld": object},
    )
    return cic_frame_to_features(frame), frame[LABEL_COLUMN].astype(int).to_numpy()


def cic_frame_to_features(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    for column in FEATURE_COLUMNS:
        if column in ("longest_word", "sld"):
            out[column] = [coerce_csv_value(column, v) for v in frame[column]]
        else:
            out[column] = pd.to_numeric(frame[column], errors="raise").astype(float)
    return out


class FeatureColumns(TransformerMixin, BaseEstimator):
    """The first step of every DNS pipeline: the model's feature columns, in its order, taken from
    a frame that may hold more (a frame lacking one is a ``KeyError`` naming it).

    >>> import pandas as pd
    >>> FeatureColumns(["b", "a"]).fit_transform(pd.DataFrame({"a": [1], "b": [2], "c": [3]})).columns.tolist()
    ['b', 'a']
    """

    def __init__(self, columns=()):
        self.columns = columns

    def fit(self, X=None, y=None) -> "FeatureColumns":
        return self  # nothing to learn: the columns are given

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return X[list(self.columns)]

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.asarray(list(self.columns), dtype=object)

    def __sklearn_is_fitted__(self) -> bool:
        return True


def feature_columns(pipeline: Pipeline) -> list[str]:
    """The columns a saved DNS pipeline reads (its :class:`FeatureColumns` step)."""
    return list(pipeline.named_steps["columns"].columns)


def with_feature_columns(columns, *steps: tuple[str, Any]) -> Pipeline:
    """``steps`` (fitted or not) behind a :class:`FeatureColumns` step reading ``columns``."""
    return Pipeline([("columns", FeatureColumns(list(columns))), *steps])


def _mutual_info(X, y):
    # A fixed seed makes the k-best choice reproducible (MI estimation uses random jitter).
    return mutual_info_classif(X, y, random_state=0)


def make_selector(selection: str):
    if selection == "all_features":
        return FunctionTransformer(validate=False, feature_names_out="one-to-one")
    if selection == "mutual_info_k8":
        return SelectKBest(_mutual_info, k=8)
    if selection == "tree_importance":
        return SelectFromModel(ExtraTreesClassifier(n_estimators=50, random_state=0, n_jobs=1), threshold="mean")
    raise ValueError(f"unknown feature selection {selection}")


def make_classifier(algorithm: str, n_jobs: int = 1):
    if algorithm == "lightgbm":
        from lightgbm import LGBMClassifier

        return LGBMClassifier(
            n_estimators=200, learning_rate=0.1, num_leaves=31, random_state=0, n_jobs=n_jobs, verbose=-1
        )
    if algorithm == "random_forest":
        return RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=n_jobs, min_samples_leaf=2)
    raise ValueError(f"unknown algorithm {algorithm}")


def make_pipeline(selection: str, algorithm: str, n_jobs: int = 1) -> Pipeline:
    return with_feature_columns(
        FEATURE_COLUMNS, ("select", make_selector(selection)), ("model", make_classifier(algorithm, n_jobs))
    )


def scores(y_true, probability, threshold: float = 0.5) -> dict[str, float]:
    """F1, accuracy, ROC AUC and PR AUC; the AUCs are NaN when a window holds one class only."""
    y_true = np.asarray(y_true).astype(int)
    predicted = (np.asarray(probability) >= threshold).astype(int)
    both = len(np.unique(y_true)) == 2
    return {
        "f1": confusion_ratios(binary_confusion(y_true, predicted))["f1"],
        "accuracy": accuracy(y_true, predicted),
        "roc_auc": roc_auc(y_true, probability),
        "pr_auc": pr_auc(y_true, probability) if both else math.nan,
    }


def window_scores(y_true, probability, threshold: float = 0.5) -> dict[str, float]:
    """F1, accuracy and ROC AUC of one stream window, as :func:`scores` gives them, in numpy: the
    scikit-learn metric functions validate their arguments at every call, which on a window of 1,000
    rows costs more than scoring it (the same values to 1e-12: tests/test_dns_stream_speed.py)."""
    from scipy.stats import rankdata

    y = np.asarray(y_true).astype(int)
    p = np.asarray(probability, dtype=float)
    predicted = p >= threshold
    tp = int(np.sum(predicted & (y == 1)))
    fp = int(np.sum(predicted & (y == 0)))
    fn = int(np.sum(~predicted & (y == 1)))
    denominator = 2 * tp + fp + fn
    positives = int(np.sum(y == 1))
    negatives = len(y) - positives
    if positives and negatives:
        ranks = rankdata(p)  # ties take their mean rank: the trapezoids of the ROC curve
        auc = (float(ranks[y == 1].sum()) - positives * (positives + 1) / 2) / (positives * negatives)
    else:
        auc = math.nan
    return {
        "f1": 2 * tp / denominator if denominator else 0.0,
        "accuracy": float(np.mean(predicted == (y == 1))) if len(y) else math.nan,
        "roc_auc": auc,
    }


_SELECTED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _selected_columns(pipeline) -> tuple[list[str], np.ndarray, Any] | None:
    """(columns read, kept column mask, final estimator) of a fitted columns-select-classify
    pipeline, cached per pipeline object. SelectFromModel.transform recomputes its forest's feature
    importances on every call (50 trees walked in joblib: 25 ms, more than the classifier's own
    predict on a 1,000-row window); the mask is fixed once fitted, so it is taken once and the same
    columns are sliced."""
    if not isinstance(pipeline, Pipeline) or [name for name, _ in pipeline.steps] != ["columns", "select", "model"]:
        return None
    try:
        return _SELECTED[pipeline]
    except KeyError:
        pass
    select, model = pipeline.named_steps["select"], pipeline.named_steps["model"]
    if not hasattr(select, "get_support"):
        return None
    found = (feature_columns(pipeline), np.asarray(select.get_support()), model)
    _SELECTED[pipeline] = found
    return found


def predict_proba(pipeline: Pipeline, X: pd.DataFrame, compiled: bool = False) -> np.ndarray:
    """The probability of exfiltration per row of ``X`` (a frame holding the pipeline's columns);
    ``compiled``: a caller that scores many windows with the pipeline (the stream) has its LightGBM
    trees compiled (``vigil.boosting.positive_probability``)."""
    fast = _selected_columns(pipeline)
    if fast is not None:  # the same numbers as pipeline.predict_proba (checked in tests/test_dns_stream_speed.py)
        columns, mask, model = fast
        return positive_probability(model, X[columns].to_numpy(dtype=float)[:, mask], compiled=compiled)
    return pipeline.predict_proba(X)[:, 1]


def refit(pipeline: Pipeline, X: pd.DataFrame, y: np.ndarray) -> Pipeline:
    """A fresh pipeline of the same design fitted on (X, y): what the stream's retrain does."""
    return clone(pipeline).fit(X, y)


def selected_features(pipeline: Pipeline) -> list[str]:
    support = pipeline.named_steps["select"]
    if hasattr(support, "get_support"):
        return [c for c, keep in zip(feature_columns(pipeline), support.get_support()) if keep]
    return feature_columns(pipeline)


@dataclass
class CandidateResult:
    selection: str
    algorithm: str
    metrics: dict
    features: list[str]
    fit_seconds: float
    pipeline: Pipeline


def compare_candidates(
    X_train,
    y_train,
    X_test,
    y_test,
    selections=SELECTIONS,
    algorithms=ALGORITHMS,
    n_jobs: int = 1,
    progress: bool = False,
    fit=None,
) -> list[CandidateResult]:
    """Every selection x algorithm fitted on the training part and scored on the test part.

    ``fit(pipeline, X, y)``: a :class:`~vigil.dask_training.DaskFitter`'s ``fit`` trains the
    LightGBM candidates on a Dask cluster (the random forests stay here); default: on this machine.
    """
    import time

    grid = [(s, a) for s in selections for a in algorithms]
    if progress:
        from tqdm import tqdm

        grid = tqdm(grid, desc="candidates", unit="model")
    results = []
    for selection, algorithm in grid:
        started = time.perf_counter()
        candidate = make_pipeline(selection, algorithm, n_jobs)
        pipeline = fit(candidate, X_train, y_train) if fit is not None else candidate.fit(X_train, y_train)
        seconds = time.perf_counter() - started
        probability = pipeline.predict_proba(X_test)[:, 1]
        results.append(
            CandidateResult(
                selection, algorithm, scores(y_test, probability), selected_features(pipeline), seconds, pipeline
            )
        )
    return results


def best_candidate(results: list[CandidateResult]) -> CandidateResult:
    # F1 first (the assignment's metric, correctly named), then ROC AUC, then the cheaper fit.
    return max(results, key=lambda r: (round(r.metrics["f1"], 4), round(r.metrics["roc_auc"], 4), -r.fit_seconds))
