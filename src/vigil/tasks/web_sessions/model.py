"""Training: a linear model and LightGBM compared with time-series cross-validation, the better kept.

Protocol (the README's figures come from it):
1. :func:`~vigil.tasks.web_sessions.data.time_split`: the last 20% of sessions by start time are held out.
2. On the earlier 80%, ``TimeSeriesSplit`` (each fold validates on sessions later than it trains on)
   scores every candidate by ROC AUC (logistic regression, LightGBM, and their blend: the mean of the
   two probabilities); the best mean wins. Its out-of-fold scores pick the decision
   threshold (best F1), so the held-out part never tunes anything.
3. The winner is refitted on the earlier 80% and scored once on the held-out 20%.
4. The saved model is the winner refitted on all labelled sessions (``refit_all=False`` keeps the
   80% model instead).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.ensemble import VotingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score
from sklearn.model_selection import TimeSeriesSplit
from sklearn.pipeline import Pipeline

from vigil.errors import InvalidInput
from vigil.tasks.web_sessions.data import time_split
from vigil.tasks.web_sessions.features import FEATURE_VERSION, SessionFeaturizer


def candidate_models(n_jobs: int = 1, quick: bool = False) -> dict[str, Pipeline]:
    """The two model families compared; ``train_and_evaluate`` also tries their blend."""
    from lightgbm import LGBMClassifier

    return {
        "logreg": Pipeline([
            ("features", SessionFeaturizer()),
            ("model", LogisticRegression(C=3.0, solver="liblinear", max_iter=1000)),
        ]),
        "lightgbm": Pipeline([
            ("features", SessionFeaturizer()),
            ("model", LGBMClassifier(n_estimators=60 if quick else 400, learning_rate=0.05, num_leaves=31,
                                     min_child_samples=10, colsample_bytree=0.5, subsample=0.8, subsample_freq=1,
                                     reg_lambda=1.0, n_jobs=n_jobs, verbose=-1, random_state=0)),
        ]),
    }


@dataclass
class TrainingReport:
    chosen: str
    cv_roc_auc: dict[str, list[float]]
    holdout: dict
    threshold: float
    n_train: int
    n_holdout: int
    seconds: dict[str, float] = field(default_factory=dict)
    holdout_scores: np.ndarray | None = None
    holdout_labels: np.ndarray | None = None

    def metrics(self) -> dict:
        return {
            "roc_auc": self.holdout["roc_auc"],
            "pr_auc": self.holdout["pr_auc"],
            "precision": self.holdout["precision"],
            "recall": self.holdout["recall"],
            "cv_roc_auc_mean": {name: float(np.mean(s)) if s else None for name, s in self.cv_roc_auc.items()},
            "cv_roc_auc_folds": self.cv_roc_auc,
            "model": self.chosen,
            "n_train": self.n_train,
            "n_holdout": self.n_holdout,
            "holdout_positives": self.holdout["positives"],
            "evaluation": "last 20% of sessions by start time held out; TimeSeriesSplit CV on the earlier 80%",
        }


def _labels(frame: pd.DataFrame) -> np.ndarray:
    if "target" not in frame.columns:
        raise InvalidInput("training data needs a target column (1 = Alice)", {"field": "target"})
    return frame["target"].to_numpy(dtype=int)


def blend(models: dict[str, Pipeline]) -> VotingClassifier:
    """The mean of the members' probabilities (each member keeps its own featurizer)."""
    return VotingClassifier(list(models.items()), voting="soft")


def time_series_cv(frame: pd.DataFrame, candidates: dict[str, Pipeline], n_splits: int = 3, progress=None):
    """ROC AUC per fold per candidate, plus each candidate's out-of-fold scores (NaN where unscored).

    With two or more candidates, "blend" (their mean probability) is scored from the same fits:
    soft voting is exactly that mean, so it costs no extra training.
    """
    y = _labels(frame)
    names = [*candidates, "blend"] if len(candidates) > 1 else list(candidates)
    scores = {name: [] for name in names}
    oof = {name: np.full(len(frame), np.nan) for name in names}
    for train_idx, valid_idx in TimeSeriesSplit(n_splits=n_splits).split(frame):
        if len(np.unique(y[train_idx])) < 2 or len(np.unique(y[valid_idx])) < 2:
            continue  # a fold without Alice on one side has no AUC
        for name, pipeline in candidates.items():
            fitted = clone(pipeline).fit(frame.iloc[train_idx], y[train_idx])
            oof[name][valid_idx] = fitted.predict_proba(frame.iloc[valid_idx])[:, 1]
            if progress is not None:
                progress.update(1)
        if "blend" in oof:
            oof["blend"][valid_idx] = np.mean([oof[name][valid_idx] for name in candidates], axis=0)
        for name in names:
            scores[name].append(float(roc_auc_score(y[valid_idx], oof[name][valid_idx])))
    return scores, oof


def best_f1_threshold(y: np.ndarray, scores: np.ndarray) -> float:
    mask = ~np.isnan(scores)
    if mask.sum() == 0 or len(np.unique(y[mask])) < 2:
        return 0.5
    precision, recall, thresholds = precision_recall_curve(y[mask], scores[mask])
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1[:-1]))])


def evaluate(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    decided = scores >= threshold
    true_positives = int((decided & (y == 1)).sum())
    return {
        "roc_auc": float(roc_auc_score(y, scores)) if len(np.unique(y)) == 2 else None,
        "pr_auc": float(average_precision_score(y, scores)) if len(np.unique(y)) == 2 else None,
        "precision": true_positives / max(int(decided.sum()), 1),
        "recall": true_positives / max(int((y == 1).sum()), 1),
        "positives": int((y == 1).sum()),
        "sessions": int(len(y)),
    }


def train_and_evaluate(labelled: pd.DataFrame, model: str = "auto", test_fraction: float = 0.2, n_splits: int = 3,
                       refit_all: bool = True, n_jobs: int = 1, quick: bool = False,
                       show_progress: bool = False) -> tuple[Pipeline, TrainingReport]:
    """Run the protocol in the module docstring; return the pipeline to save and the report."""
    from tqdm import tqdm

    candidates = candidate_models(n_jobs=n_jobs, quick=quick)
    if model not in ("auto", "blend"):
        if model not in candidates:
            raise InvalidInput(f"unknown model '{model}'", {"known": ["auto", *candidates, "blend"]})
        candidates = {model: candidates[model]}
    train, holdout = time_split(labelled, test_fraction)
    y_train, y_holdout = _labels(train), _labels(holdout)
    if len(np.unique(y_train)) < 2:
        raise InvalidInput("the training part needs both Alice (target 1) and other sessions (target 0)",
                           {"positives": int(y_train.sum()), "sessions": len(y_train)})
    seconds = {}
    started = time.perf_counter()
    with tqdm(total=n_splits * len(candidates), desc="time-series CV", unit="fit", disable=not show_progress) as bar:
        cv_scores, oof = time_series_cv(train, candidates, n_splits, progress=bar)
    seconds["cv"] = time.perf_counter() - started
    if "blend" in cv_scores:
        candidates = {**candidates, "blend": blend(candidates)}
    means = {name: np.mean(s) if s else -np.inf for name, s in cv_scores.items()}
    chosen = max(means, key=means.get) if any(np.isfinite(v) for v in means.values()) else next(iter(candidates))
    if model == "blend":
        chosen = "blend"
    threshold = best_f1_threshold(y_train, oof[chosen])

    started = time.perf_counter()
    fitted = clone(candidates[chosen]).fit(train, y_train)
    seconds["fit"] = time.perf_counter() - started
    started = time.perf_counter()
    holdout_scores = fitted.predict_proba(holdout)[:, 1]
    seconds["predict_holdout"] = time.perf_counter() - started
    report = TrainingReport(chosen=chosen, cv_roc_auc=cv_scores, holdout=evaluate(y_holdout, holdout_scores, threshold),
                            threshold=threshold, n_train=len(train), n_holdout=len(holdout), seconds=seconds,
                            holdout_scores=holdout_scores, holdout_labels=y_holdout)
    if refit_all:
        fitted = clone(candidates[chosen]).fit(labelled, _labels(labelled))
    return fitted, report


def feature_dims(fitted) -> dict[str, int]:
    """Width of each feature block of a fitted pipeline (of the first member, for a blend)."""
    pipeline = fitted.estimators_[0] if isinstance(fitted, VotingClassifier) else fitted
    return pipeline.named_steps["features"].feature_dims()


def make_bundle(pipeline: Pipeline, site_dic: dict[str, int] | None) -> dict:
    """What the artifact holds: the fitted pipeline and the site dictionary the API maps names with."""
    return {"pipeline": pipeline, "site_ids": dict(site_dic or {}), "feature_version": FEATURE_VERSION}


def plot_report(report: TrainingReport, path) -> None:
    """Held-out ROC curve and CV AUC per fold, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    figure, (roc_axes, cv_axes) = plt.subplots(1, 2, figsize=(10, 4))
    if report.holdout["roc_auc"] is not None:
        fpr, tpr, _ = roc_curve(report.holdout_labels, report.holdout_scores)
        roc_axes.plot(fpr, tpr, label=f"{report.chosen} (AUC {report.holdout['roc_auc']:.4f})")
    roc_axes.plot([0, 1], [0, 1], "k:", linewidth=0.8)
    roc_axes.set(xlabel="false positive rate", ylabel="true positive rate", title="held-out ROC (last 20% by time)")
    roc_axes.legend(loc="lower right")
    for name, scores in report.cv_roc_auc.items():
        cv_axes.plot(range(1, len(scores) + 1), scores, marker="o", label=name)
    cv_axes.set(xlabel="time-series fold (later = larger)", ylabel="ROC AUC", title="cross-validation")
    cv_axes.set_xticks(range(1, 1 + max((len(s) for s in report.cv_roc_auc.values()), default=0)))
    cv_axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
