"""Classifiers that learn the DBSCAN labels, so new events are labelled without re-clustering.

:func:`compare_classifiers` is ML-PT's 04 notebook (repeated k-fold, weighted F1 / precision /
recall); :func:`tune_random_forest` is their 05 notebook: a randomized search, then a grid around
the best point.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import f1_score, make_scorer, precision_score, recall_score
from sklearn.model_selection import (
    GridSearchCV,
    RandomizedSearchCV,
    RepeatedKFold,
    RepeatedStratifiedKFold,
    cross_validate,
)

# ML-PT's tuned forest (05_tune_classifier.ipynb): CV F1 0.9942 on their 57,833 events.
MLPT_FOREST = {"criterion": "entropy", "max_depth": 48, "max_features": 7, "min_samples_split": 4, "n_estimators": 33}

SCORING = {
    "f1": make_scorer(f1_score, average="weighted", zero_division=0),
    "precision": make_scorer(precision_score, average="weighted", zero_division=0),
    "recall": make_scorer(recall_score, average="weighted", zero_division=0),
}


def candidate_classifiers(n_jobs: int = 1, seed: int = 0, full: bool = False) -> dict:
    """A fast default set; ``full`` adds the slower candidates ML-PT also tried."""
    from lightgbm import LGBMClassifier
    from sklearn.ensemble import (
        BaggingClassifier,
        ExtraTreesClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.tree import DecisionTreeClassifier

    models = {
        "random forest": RandomForestClassifier(n_estimators=50, n_jobs=n_jobs, random_state=seed),
        "extra trees": ExtraTreesClassifier(n_estimators=50, n_jobs=n_jobs, random_state=seed),
        "bagging (trees)": BaggingClassifier(n_estimators=20, n_jobs=n_jobs, random_state=seed),
        "decision tree": DecisionTreeClassifier(random_state=seed),
        "k nearest neighbours": KNeighborsClassifier(n_jobs=n_jobs),
        "gaussian naive bayes": GaussianNB(),
    }
    if full:
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
        from sklearn.ensemble import AdaBoostClassifier
        from sklearn.neural_network import MLPClassifier
        from sklearn.svm import SVC

        models.update(
            {
                "lightgbm": LGBMClassifier(n_estimators=100, n_jobs=n_jobs, random_state=seed, verbose=-1),
                "hist gradient boosting": HistGradientBoostingClassifier(random_state=seed),
                "logistic regression": LogisticRegression(max_iter=2000),
                "linear discriminant": LinearDiscriminantAnalysis(),
                "adaboost": AdaBoostClassifier(random_state=seed),
                "mlp": MLPClassifier(hidden_layer_sizes=(64,), max_iter=300, random_state=seed),
                "svm (rbf)": SVC(),
            }
        )
    return models


def make_cv(y: np.ndarray, folds: int, repeats: int, seed: int = 0):
    # Stratify when every label can appear in every fold; DBSCAN's smallest clusters sometimes cannot.
    smallest = np.unique(y, return_counts=True)[1].min()
    if smallest >= folds:
        return RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    return RepeatedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)


def compare_classifiers(
    X: np.ndarray, y: np.ndarray, models: dict, folds: int = 5, repeats: int = 2, seed: int = 0, progress=None
) -> pd.DataFrame:
    cv = make_cv(y, folds, repeats, seed)
    rows = []
    for name, model in models.items():
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            warnings.simplefilter("ignore", UserWarning)
            scores = cross_validate(model, X, y, cv=cv, scoring=SCORING, n_jobs=1)
        rows.append(
            {
                "classifier": name,
                "f1": scores["test_f1"].mean(),
                "f1_std": scores["test_f1"].std(),
                "precision": scores["test_precision"].mean(),
                "recall": scores["test_recall"].mean(),
                "seconds": time.perf_counter() - started,
            }
        )
        if progress is not None:
            progress.update(1)
            progress.set_postfix_str(f"{name}: F1 {rows[-1]['f1']:.4f}")
    return pd.DataFrame(rows).sort_values("f1", ascending=False, ignore_index=True)


@dataclass
class TunedForest:
    params: dict
    cv_f1: float
    random_params: dict
    random_f1: float
    searched: int


def _around(value: int, step: int, low: int = 1) -> list[int]:
    return sorted({max(low, value - step), value, value + step})


def tune_random_forest(
    X: np.ndarray, y: np.ndarray, n_iter: int = 12, folds: int = 3, repeats: int = 1, seed: int = 0, n_jobs: int = 1
) -> TunedForest:
    from scipy.stats import randint
    from sklearn.ensemble import RandomForestClassifier

    n_features = X.shape[1]
    cv = make_cv(y, folds, repeats, seed)
    forest = RandomForestClassifier(random_state=seed, n_jobs=1)
    space = {
        "criterion": ["gini", "entropy"],
        "max_depth": randint(8, 64),
        "max_features": randint(1, n_features + 1),
        "min_samples_split": randint(2, 12),
        "n_estimators": randint(10, 80),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        randomized = RandomizedSearchCV(
            forest, space, n_iter=n_iter, scoring=SCORING["f1"], cv=cv, random_state=seed, n_jobs=n_jobs
        ).fit(X, y)
        best = randomized.best_params_
        grid = {
            "criterion": [best["criterion"]],
            "max_depth": _around(best["max_depth"], 8, 2),
            "max_features": [m for m in _around(best["max_features"], 1) if m <= n_features],
            "min_samples_split": [best["min_samples_split"]],
            "n_estimators": [best["n_estimators"]],
        }
        refined = GridSearchCV(forest, grid, scoring=SCORING["f1"], cv=cv, n_jobs=n_jobs).fit(X, y)
    searched = n_iter + len(refined.cv_results_["params"])
    if refined.best_score_ >= randomized.best_score_:
        params, score = refined.best_params_, refined.best_score_
    else:
        params, score = best, randomized.best_score_
    return TunedForest(
        params=dict(params),
        cv_f1=float(score),
        random_params=dict(best),
        random_f1=float(randomized.best_score_),
        searched=searched,
    )


def forest(params: dict, n_features: int, seed: int = 0, n_jobs: int = 1):
    from sklearn.ensemble import RandomForestClassifier

    params = dict(params)
    if isinstance(params.get("max_features"), int):
        params["max_features"] = max(1, min(params["max_features"], n_features))
    return RandomForestClassifier(random_state=seed, n_jobs=n_jobs, **params)
