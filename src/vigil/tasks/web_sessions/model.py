"""Training: a linear model and LightGBM compared with time-series cross-validation, the better kept.

Protocol (the README's figures come from it):
1. :func:`~vigil.tasks.web_sessions.data.time_split`: the last 20% of sessions by start time are held out.
2. On the earlier 80%, expanding-window time-series CV (:func:`time_series_folds`): 3 folds, each
   validating on the next block of sessions after the ones it trains on, every block as large a
   share of the earlier part as the held-out part is of the whole (20%), so each fold is the final
   evaluation in small. Every candidate is scored by ROC AUC (logistic regression, LightGBM, and
   their blend: the mean of the two probabilities); the best mean wins. Its out-of-fold scores pick
   the decision threshold (best F1), so the held-out part never tunes anything.
3. The winner is refitted on the earlier 80% and scored once on the held-out 20%.
4. The saved model is the winner refitted on all labelled sessions (``refit_all=False`` keeps the
   80% model instead).

``dask="local:N"`` or ``"tcp://host:8786"`` runs every LightGBM fit of the protocol on a Dask
cluster (:class:`~vigil.dask_training.DaskFitter`: featurizing here, boosting on the workers); the
saved pipeline is the same plain ``LGBMClassifier`` pipeline, scoring to within LightGBM's
documented distributed-training differences.

:func:`learning_curve` refits candidates on growing windows of the earlier part (each ending where
the held-out part begins) and scores them on the held-out part; :func:`feature_importance` says
which features carry a fitted model (coefficient x value for the linear model, gains for LightGBM).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import TimeSeriesSplit
from sklearn.pipeline import Pipeline

from vigil.boosting import bagged_lightgbm
from vigil.errors import InvalidInput
from vigil.metrics import best_f1_threshold, pr_auc, roc_auc, roc_points
from vigil.plotting import pyplot, save_figure
from vigil.tasks.web_sessions.data import time_split
from vigil.tasks.web_sessions.features import SessionFeaturizer, SiteDictionary, default_blocks, tree_blocks


def site_names_of(site_dic: dict[str, int] | None) -> dict[str, str]:
    """Site id (as a string) -> site name, from the site dictionary (name -> id)."""
    return {str(site_id): name for name, site_id in (site_dic or {}).items()}


def candidate_models(
    site_dic: dict[str, int] | None = None, n_jobs: int = 1, quick: bool = False
) -> dict[str, Pipeline]:
    """The two model families compared; ``train_and_evaluate`` also tries their blend.

    * ``logreg``: every block, sparse (site TF-IDF, name parts, time one-hots ...), L2 logistic regression.
    * ``lightgbm``: gradient-boosted trees on the sites' out-of-fold score and the plain-number
      blocks (:func:`~vigil.tasks.web_sessions.features.tree_blocks`), where trees can cut time
      windows and interactions a sum of weights cannot.
    """
    names = site_names_of(site_dic)
    return {
        "logreg": Pipeline(
            [
                ("features", SessionFeaturizer(default_blocks(names))),
                ("model", LogisticRegression(C=3.0, solver="liblinear", max_iter=1000)),
            ]
        ),
        "lightgbm": Pipeline(
            [
                ("features", SessionFeaturizer(tree_blocks(names))),
                (
                    "model",
                    bagged_lightgbm(60 if quick else 300, 0.1 if quick else 0.03, 15, n_jobs=n_jobs, reg_lambda=1.0),
                ),
            ]
        ),
    }


@dataclass
class TrainingReport:
    chosen: str
    cv_roc_auc: dict[str, list[float]]
    holdout: dict
    threshold: float
    n_train: int
    n_holdout: int
    test_fraction: float = 0.2
    seconds: dict[str, float] = field(default_factory=dict)
    holdout_scores: np.ndarray | None = None
    holdout_labels: np.ndarray | None = None
    importance: dict[str, pd.DataFrame] = field(default_factory=dict)
    training: dict | None = None  # where LightGBM ran: None on this machine, else DaskFitter.summary()

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
            "evaluation": f"last {self.test_fraction:.0%} of sessions by start time held out; expanding-window "
            f"time-series CV on the earlier part, validation blocks of {self.test_fraction:.0%} of it",
        }


def _labels(frame: pd.DataFrame) -> np.ndarray:
    if "target" not in frame.columns:
        raise InvalidInput("training data needs a target column (1 = Alice)", {"field": "target"})
    return frame["target"].to_numpy(dtype=int)


class MeanProbability(ClassifierMixin, BaseEstimator):
    """The blend: the mean of its members' probabilities, each member a whole pipeline (its own
    featurizer included). scikit-learn's soft ``VotingClassifier`` computes the same, but keeps a
    ``Bunch`` that the artifact store does not trust; this holds only the fitted members."""

    def __init__(self, estimators: list[tuple[str, Pipeline]]):
        self.estimators = estimators

    def fit(self, sessions: pd.DataFrame, y, fit=None) -> "MeanProbability":
        """``fit(estimator, X, y)`` fits each member (default ``clone(estimator).fit``; a
        :class:`~vigil.dask_training.DaskFitter`'s ``fit`` sends LightGBM to a cluster)."""
        fit = fit or (lambda estimator, X, labels: clone(estimator).fit(X, labels))
        self.estimators_ = [fit(estimator, sessions, y) for _, estimator in self.estimators]
        self.classes_ = self.estimators_[0].classes_
        return self

    def predict_proba(self, sessions: pd.DataFrame) -> np.ndarray:
        return np.mean([estimator.predict_proba(sessions) for estimator in self.estimators_], axis=0)

    def predict(self, sessions: pd.DataFrame) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(sessions), axis=1)]


def blend(models: dict[str, Pipeline]) -> MeanProbability:
    """The mean of the members' probabilities (each member keeps its own featurizer)."""
    return MeanProbability(list(models.items()))


def time_series_folds(n_rows: int, n_splits: int = 3, block_fraction: float | None = 0.2) -> TimeSeriesSplit:
    """Expanding-window folds over time-ordered rows: fold k trains on everything before its
    validation block, and the blocks are the last ``n_splits`` runs of ``block_fraction * n_rows``
    rows. ``None``, or blocks that would not leave a training part, give scikit-learn's equal split
    (n_rows / (n_splits + 1) rows a block).

    >>> [(len(fit), len(valid)) for fit, valid in time_series_folds(100, 3, 0.2).split(range(100))]
    [(40, 20), (60, 20), (80, 20)]
    """
    block = int(n_rows * block_fraction) if block_fraction else 0
    if block < 1 or n_splits * block >= n_rows:
        return TimeSeriesSplit(n_splits=n_splits)
    return TimeSeriesSplit(n_splits=n_splits, test_size=block)


def fit_candidate(candidate, X, y, fit=None):
    """A fitted copy of ``candidate`` (a pipeline or the blend), each pipeline fitted by ``fit``."""
    if isinstance(candidate, MeanProbability):
        return clone(candidate).fit(X, y, fit=fit)
    return fit(candidate, X, y) if fit is not None else clone(candidate).fit(X, y)


def time_series_cv(
    frame: pd.DataFrame,
    candidates: dict[str, Pipeline],
    n_splits: int = 3,
    block_fraction: float | None = 0.2,
    progress=None,
    fit=None,
):
    """ROC AUC per fold per candidate, plus each candidate's out-of-fold scores (NaN where unscored).

    ``frame`` must be in time order (:func:`~vigil.tasks.web_sessions.data.time_split` returns it so).
    With two or more candidates, "blend" (their mean probability) is scored from the same fits:
    soft voting is exactly that mean, so it costs no extra training.
    """
    y = _labels(frame)
    names = [*candidates, "blend"] if len(candidates) > 1 else list(candidates)
    scores: dict[str, list] = {name: [] for name in names}
    oof = {name: np.full(len(frame), np.nan) for name in names}
    for train_idx, valid_idx in time_series_folds(len(frame), n_splits, block_fraction).split(frame):
        if len(np.unique(y[train_idx])) < 2 or len(np.unique(y[valid_idx])) < 2:
            continue  # a fold without Alice on one side has no AUC
        for name, pipeline in candidates.items():
            fitted = fit_candidate(pipeline, frame.iloc[train_idx], y[train_idx], fit)
            oof[name][valid_idx] = fitted.predict_proba(frame.iloc[valid_idx])[:, 1]
            if progress is not None:
                progress.update(1)
        if "blend" in oof:
            oof["blend"][valid_idx] = np.mean([oof[name][valid_idx] for name in candidates], axis=0)
        for name in names:
            scores[name].append(roc_auc(y[valid_idx], oof[name][valid_idx]))
    return scores, oof


def evaluate(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    decided = scores >= threshold
    true_positives = int((decided & (y == 1)).sum())
    both_classes = len(np.unique(y)) == 2
    return {
        "roc_auc": roc_auc(y, scores) if both_classes else None,
        "pr_auc": pr_auc(y, scores) if both_classes else None,
        "precision": true_positives / max(int(decided.sum()), 1),
        "recall": true_positives / max(int((y == 1).sum()), 1),
        "positives": int((y == 1).sum()),
        "sessions": int(len(y)),
    }


def _candidates(model: str, site_dic, n_jobs: int, quick: bool) -> dict[str, Pipeline]:
    candidates = candidate_models(site_dic, n_jobs=n_jobs, quick=quick)
    if model in ("auto", "blend"):
        return candidates
    if model not in candidates:
        raise InvalidInput(f"unknown model '{model}'", {"known": ["auto", *candidates, "blend"]})
    return {model: candidates[model]}


def train_and_evaluate(
    labelled: pd.DataFrame,
    model: str = "auto",
    test_fraction: float = 0.2,
    n_splits: int = 3,
    refit_all: bool = True,
    n_jobs: int = 1,
    quick: bool = False,
    site_dic: dict | None = None,
    show_progress: bool = False,
    dask: str | None = None,
) -> tuple[Pipeline, TrainingReport]:
    """Run the protocol in the module docstring; return the pipeline to save and the report.

    ``dask``: a ``--dask`` address; every LightGBM fit then runs on that cluster (one client for all).
    """
    from vigil.dask_training import fitter

    with fitter(dask, threads_per_worker=max(1, n_jobs)) as trainer:
        fitted, report = _train_and_evaluate(
            labelled, model, test_fraction, n_splits, refit_all, n_jobs, quick, site_dic, show_progress, trainer.fit
        )
        report.training = trainer.summary()
    return fitted, report


def _train_and_evaluate(
    labelled, model, test_fraction, n_splits, refit_all, n_jobs, quick, site_dic, show_progress, fit
) -> tuple[Pipeline, TrainingReport]:
    from tqdm import tqdm

    candidates = _candidates(model, site_dic, n_jobs, quick)
    train, holdout = time_split(labelled, test_fraction)
    y_train, y_holdout = _labels(train), _labels(holdout)
    if len(np.unique(y_train)) < 2:
        raise InvalidInput(
            "the training part needs both Alice (target 1) and other sessions (target 0)",
            {"positives": int(y_train.sum()), "sessions": len(y_train)},
        )
    seconds = {}
    started = time.perf_counter()
    with tqdm(total=n_splits * len(candidates), desc="time-series CV", unit="fit", disable=not show_progress) as bar:
        cv_scores, oof = time_series_cv(
            train, candidates, n_splits, block_fraction=test_fraction, progress=bar, fit=fit
        )
    seconds["cv"] = time.perf_counter() - started
    if "blend" in cv_scores:
        candidates = {**candidates, "blend": blend(candidates)}
    means = {name: np.mean(s) if s else -np.inf for name, s in cv_scores.items()}
    chosen = max(means, key=means.get) if any(np.isfinite(v) for v in means.values()) else next(iter(candidates))
    if model == "blend":
        chosen = "blend"
    threshold = best_f1_threshold(y_train, oof[chosen])

    final = tqdm(total=2 if refit_all else 1, desc="final fits", unit="fit", disable=not show_progress)
    final.set_postfix_str(f"{chosen} on the earlier {1 - test_fraction:.0%}")
    started = time.perf_counter()
    fitted = fit_candidate(candidates[chosen], train, y_train, fit)
    seconds["fit"] = time.perf_counter() - started
    final.update(1)
    started = time.perf_counter()
    holdout_scores = fitted.predict_proba(holdout)[:, 1]
    seconds["predict_holdout"] = time.perf_counter() - started
    report = TrainingReport(
        chosen=chosen,
        cv_roc_auc=cv_scores,
        holdout=evaluate(y_holdout, holdout_scores, threshold),
        threshold=threshold,
        n_train=len(train),
        n_holdout=len(holdout),
        test_fraction=test_fraction,
        seconds=seconds,
        holdout_scores=holdout_scores,
        holdout_labels=y_holdout,
        importance=feature_importance(fitted, train, site_dic),
    )
    if refit_all:
        final.set_postfix_str(f"{chosen} on all {len(labelled)} sessions")
        started = time.perf_counter()
        fitted = fit_candidate(candidates[chosen], labelled, _labels(labelled), fit)
        seconds["refit_all"] = time.perf_counter() - started
        final.update(1)
    final.close()
    return fitted, report


def _members(fitted) -> dict[str, Pipeline]:
    if isinstance(fitted, MeanProbability):
        return dict(zip((name for name, _ in fitted.estimators), fitted.estimators_))
    name = "lightgbm" if hasattr(fitted.named_steps["model"], "booster_") else "logreg"
    return {name: fitted}


def feature_dims(fitted) -> dict[str, int]:
    """Width of each feature block of a fitted pipeline (of every member, for a blend)."""
    dims = {}
    for pipeline in _members(fitted).values():
        dims.update(pipeline.named_steps["features"].feature_dims())
    return dims


def _readable(feature: str, site_names: dict[str, str]) -> str:
    """``sites 29 731`` -> ``sites www.google.fr > vk.com`` where the site dictionary knows the ids."""
    if not feature.startswith("sites ") or not site_names:
        return feature
    return "sites " + " > ".join(site_names.get(token, token) for token in feature[len("sites ") :].split())


def _linear_importance(
    featurizer: SessionFeaturizer, estimator, sessions: pd.DataFrame, site_names: dict[str, str]
) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "feature": [_readable(f, site_names) for f in featurizer.feature_names()],
            "block": featurizer.block_of_each_feature(),
        }
    )
    coefficients = estimator.coef_.ravel()
    matrix = featurizer.transform(sessions)
    frame["coefficient"] = coefficients
    frame["importance"] = np.asarray(abs(matrix).mean(axis=0)).ravel() * np.abs(coefficients)
    return frame


def feature_importance(
    fitted, sessions: pd.DataFrame, site_dic: dict[str, int] | None = None, max_rows: int = 20_000
) -> dict[str, pd.DataFrame]:
    """Per member of a fitted model, one row per feature: ``feature``, ``block``, ``importance``, sorted.

    Logistic regression: the mean absolute contribution of the feature to the log-odds over
    ``sessions`` (|coefficient x value|, so a wide block of rare columns is not overrated), with the
    signed ``coefficient``. LightGBM: the share of the total split gain; its ``site_score`` block,
    itself a logistic regression, gets a table of its own (``"lightgbm site_score"``). Site ids in
    feature names are spelled out with ``site_dic``.
    """
    site_names = site_names_of(site_dic)
    sample = sessions.iloc[np.linspace(0, len(sessions) - 1, min(len(sessions), max_rows)).astype(int)]
    tables = {}
    for name, pipeline in _members(fitted).items():
        featurizer, estimator = pipeline.named_steps["features"], pipeline.named_steps["model"]
        if hasattr(estimator, "booster_"):
            frame = pd.DataFrame({"feature": featurizer.feature_names(), "block": featurizer.block_of_each_feature()})
            gain = estimator.booster_.feature_importance(importance_type="gain")
            frame["importance"] = gain / max(gain.sum(), 1e-12)
            tables[name] = frame
            for block in featurizer.blocks_:
                if hasattr(block, "model_") and hasattr(block, "featurizer"):
                    tables[f"{name} {block.name}"] = _linear_importance(
                        block.featurizer, block.model_, sample, site_names
                    )
        else:
            tables[name] = _linear_importance(featurizer, estimator, sample, site_names)
    return {
        name: table.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)
        for name, table in tables.items()
    }


def learning_curve(
    labelled: pd.DataFrame,
    fractions=(0.1, 0.2, 0.4, 0.6, 0.8, 1.0),
    models=("logreg", "lightgbm"),
    test_fraction: float = 0.2,
    site_dic: dict | None = None,
    n_jobs: int = 1,
    quick: bool = False,
    progress=None,
) -> pd.DataFrame:
    """Held-out ROC AUC of each model fitted on the latest ``fraction`` of the earlier part.

    Every window ends where the held-out part begins, so only the amount of history changes, not
    its distance from the held-out sessions; with both members fitted, the blend is scored too.
    """
    candidates = {
        name: pipeline
        for name, pipeline in candidate_models(site_dic, n_jobs=n_jobs, quick=quick).items()
        if name in models
    }
    train, holdout = time_split(labelled, test_fraction)
    y_holdout = _labels(holdout)
    rows = []
    for fraction in fractions:
        window = train.iloc[len(train) - max(int(round(len(train) * fraction)), 1) :]
        y_window = _labels(window)
        if len(np.unique(y_window)) < 2:
            continue
        scores = {}
        for name, pipeline in candidates.items():
            started = time.perf_counter()
            scores[name] = clone(pipeline).fit(window, y_window).predict_proba(holdout)[:, 1]
            rows.append(
                {
                    "fraction": fraction,
                    "n_train": len(window),
                    "alice_train": int(y_window.sum()),
                    "first_day": f"{window['time1'].min():%Y-%m-%d}",
                    "model": name,
                    "roc_auc": roc_auc(y_holdout, scores[name]),
                    "fit_s": time.perf_counter() - started,
                }
            )
            if progress is not None:
                progress.update(1)
        if len(scores) > 1:
            rows.append(
                {
                    "fraction": fraction,
                    "n_train": len(window),
                    "alice_train": int(y_window.sum()),
                    "first_day": f"{window['time1'].min():%Y-%m-%d}",
                    "model": "blend",
                    "roc_auc": roc_auc(y_holdout, np.mean(list(scores.values()), axis=0)),
                    "fit_s": sum(r["fit_s"] for r in rows[-len(scores) :]),
                }
            )
    return pd.DataFrame(rows)


def with_site_dictionary(fitted, site_dic: dict[str, int] | None) -> Pipeline:
    """What the artifact holds: one pipeline, the site dictionary the API maps names with
    (:class:`~vigil.tasks.web_sessions.features.SiteDictionary`) first, then the fitted model's
    steps (the featurizer and the classifier, or the blend of two such pipelines)."""
    steps = fitted.steps if isinstance(fitted, Pipeline) else [("model", fitted)]
    return Pipeline([("site_ids", SiteDictionary.from_mapping(site_dic)), *steps])


def plot_report(report: TrainingReport, path) -> None:
    """Held-out ROC curve and CV AUC per fold, one PNG."""
    plt = pyplot()
    figure, (roc_axes, cv_axes) = plt.subplots(1, 2, figsize=(10, 4))
    if report.holdout["roc_auc"] is not None:
        fpr, tpr = roc_points(report.holdout_labels, report.holdout_scores)
        roc_axes.plot(fpr, tpr, label=f"{report.chosen} (AUC {report.holdout['roc_auc']:.4f})")
        held_scores, labels = np.asarray(report.holdout_scores), np.asarray(report.holdout_labels)
        false_positive_rate = ((held_scores >= report.threshold) & (labels == 0)).sum() / max(
            int((labels == 0).sum()), 1
        )
        roc_axes.plot(
            [false_positive_rate],
            [report.holdout["recall"]],
            "o",
            color="black",
            label=f"decision threshold {report.threshold:.3f}",
        )
    roc_axes.plot([0, 1], [0, 1], "k:", linewidth=0.8)
    roc_axes.set(
        xlabel="false positive rate",
        ylabel="true positive rate",
        title=f"held-out ROC (latest {report.test_fraction:.0%} by time)",
    )
    roc_axes.legend(loc="lower right")
    for name, scores in report.cv_roc_auc.items():
        cv_axes.plot(range(1, len(scores) + 1), scores, marker="o", label=name)
    cv_axes.set(xlabel="time-series fold (later = larger)", ylabel="ROC AUC", title="cross-validation")
    cv_axes.set_xticks(range(1, 1 + max((len(s) for s in report.cv_roc_auc.values()), default=0)))
    cv_axes.legend()
    save_figure(figure, path, dpi=100)


def plot_importance(importance: dict[str, pd.DataFrame], path, top: int = 20) -> None:
    """Which features carry the model: per member, the importance summed by block and the top features."""
    plt = pyplot()
    members = list(importance)
    figure, axes = plt.subplots(len(members), 2, figsize=(13, 4.5 * max(len(members), 1)), squeeze=False)
    for row, name in enumerate(members):
        table = importance[name]
        by_block = table.groupby("block", sort=False)["importance"].sum().sort_values()
        by_block_axes, top_axes = axes[row]
        by_block_axes.barh(by_block.index, by_block.to_numpy() / max(by_block.sum(), 1e-12), color="tab:blue")
        what = "split gain" if "coefficient" not in table else "mean |coefficient x value|"
        by_block_axes.set(xlabel=f"share of {what}", title=f"{name}: by block")
        head = table.head(top).iloc[::-1]
        colours = (
            ["tab:red" if c > 0 else "tab:gray" for c in head["coefficient"]] if "coefficient" in head else "tab:blue"
        )
        top_axes.barh([f"{f[:50]}" for f in head["feature"]], head["importance"], color=colours)
        top_axes.set(
            xlabel=what,
            title=f"{name}: top {top} features" + (" (red: towards Alice)" if "coefficient" in head else ""),
        )
        top_axes.tick_params(axis="y", labelsize=7)
    save_figure(figure, path, dpi=100)


def plot_learning_curve(curve: pd.DataFrame, path) -> None:
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(6.5, 4))
    for name, rows in curve.groupby("model", sort=False):
        axes.plot(rows["n_train"], rows["roc_auc"], marker="o", label=name)
    sizes = curve.drop_duplicates("n_train")
    axes.set_xticks(
        sizes["n_train"], [f"{n:,}\n{a:,} Alice" for n, a in zip(sizes["n_train"], sizes["alice_train"])], fontsize=7
    )
    axes.set(
        xlabel="training sessions (the latest ones before the held-out part)",
        ylabel="held-out ROC AUC",
        title="learning curve",
    )
    axes.grid(alpha=0.3)
    axes.legend()
    save_figure(figure, path, dpi=100)
