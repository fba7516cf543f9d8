"""Training the web-events model: featurize, DBSCAN labels, classifier comparison, the tuned forest.

:func:`train_model` is what ``vigil web-events train`` and the default model run; the comparison and
the search live in :mod:`.training`, the clustering in :mod:`.clustering`.
"""

from __future__ import annotations

import pandas as pd

from vigil.tasks.web_events.features import build_featurizer


def label_events(
    frame: pd.DataFrame,
    min_samples: int | None = None,
    eps: float | None = None,
    sensitivity: float | None = None,
    attack_clusters: int | None = None,
    n_jobs: int = 1,
):
    """Fit the featurizer on ``frame`` and cluster its features: (featurizer, X, Clustering)."""
    from vigil.tasks.web_events.clustering import KNEE_SENSITIVITY, cluster_events

    featurizer = build_featurizer()
    X = featurizer.fit_transform(frame)
    clustering = cluster_events(
        X,
        min_samples=min_samples,
        eps=eps,
        sensitivity=KNEE_SENSITIVITY if sensitivity is None else sensitivity,
        attack_clusters=attack_clusters,
        n_jobs=n_jobs,
    )
    return featurizer, X, clustering


def model_pipeline(featurizer, classifier):
    """One Pipeline: wrangling, features, scaling, PCA and the classifier, all fitted already."""
    from sklearn.pipeline import Pipeline

    return Pipeline([*featurizer.steps, ("classifier", classifier)])


def train_model(
    frame: pd.DataFrame,
    *,
    min_samples=None,
    eps=None,
    sensitivity=None,
    attack_clusters=None,
    folds=5,
    repeats=2,
    n_iter=12,
    tune_folds=3,
    full=False,
    tune=True,
    jobs=1,
    seed=0,
    progress: bool = True,
) -> tuple[object, dict, pd.DataFrame | None]:
    """Cluster, compare classifiers, tune the forest; returns (pipeline, manifest metrics+extra, table)."""
    from tqdm import tqdm

    from vigil.metrics import weighted_f1
    from vigil.tasks.web_events.training import (
        MLPT_FOREST,
        candidate_classifiers,
        compare_classifiers,
        forest,
        tune_random_forest,
    )

    steps = tqdm(total=3, desc="web-events train", disable=not progress)
    steps.set_postfix_str("features + DBSCAN")
    featurizer, X, clustering = label_events(frame, min_samples, eps, sensitivity, attack_clusters, n_jobs=jobs)
    y = clustering.labels
    steps.update(1)
    table = None
    if folds > 1:
        models = candidate_classifiers(n_jobs=jobs, seed=seed, full=full)
        steps.set_postfix_str(f"comparing {len(models)} classifiers")
        with tqdm(total=len(models), desc="classifiers", leave=False, disable=not progress) as bar:
            table = compare_classifiers(X, y, models, folds=folds, repeats=repeats, seed=seed, progress=bar)
    steps.update(1)
    steps.set_postfix_str("tuning the forest" if tune else "fitting the forest")
    if tune:
        tuned = tune_random_forest(X, y, n_iter=n_iter, folds=tune_folds, seed=seed, n_jobs=jobs)
        params, cv_f1 = tuned.params, tuned.cv_f1
        tuning = {
            "randomized_params": tuned.random_params,
            "randomized_f1": tuned.random_f1,
            "candidates_searched": tuned.searched,
        }
    else:
        from sklearn.model_selection import cross_val_score

        from vigil.tasks.web_events.training import SCORING, make_cv

        params, tuning = dict(MLPT_FOREST), {"params_from": "ML-PT 05_tune_classifier"}
        cv_f1 = float(
            cross_val_score(
                forest(params, X.shape[1], seed=seed, n_jobs=jobs),
                X,
                y,
                cv=make_cv(y, tune_folds, 1, seed),
                scoring=SCORING["f1"],
            ).mean()
        )
    classifier = forest(params, X.shape[1], seed=seed, n_jobs=jobs).fit(X, y)
    steps.update(1)
    steps.close()
    summary = clustering.summary()
    metrics = {
        "train_f1_weighted": weighted_f1(y, classifier.predict(X)),
        "noise_share": summary["noise_share"],
        "clusters": summary["clusters"],
    }
    if cv_f1 is not None:
        metrics["cv_f1_weighted"] = cv_f1
    extra = {
        "clustering": summary,
        "attack_clusters": clustering.attack_clusters,
        "good_clusters": clustering.good_clusters,
        "forest_params": params,
        "tuning": tuning,
        "pca_components": int(X.shape[1]),
        "events": int(len(frame)),
    }
    if table is not None:
        extra["comparison"] = table.round(4).to_dict("records")
    return model_pipeline(featurizer, classifier), {"metrics": metrics, "extra": extra}, table


def save_trained(store, pipeline, info: dict, data_path, data_label: str | None = None) -> dict:
    """Save a pipeline from :func:`train_model` with its metrics and training details; ``data_label``
    names the data in the manifest (default: ``data_path``). The labels are classes (argmax), so the
    manifest holds no threshold."""
    from vigil.artifacts import data_fingerprint
    from vigil.tasks.web_events.features import FEATURE_VERSION

    return store.save(
        "web_events",
        pipeline,
        metrics=info["metrics"],
        feature_version=FEATURE_VERSION,
        data_fingerprint=data_fingerprint(data_path),
        extra={**info["extra"], "data": data_label or str(data_path)},
    )


__all__ = ["label_events", "model_pipeline", "save_trained", "train_model"]
