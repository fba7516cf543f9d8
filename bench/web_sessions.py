"""Web-session intruder detection on the full data: held-out ROC AUC against a baseline, same run.

Reads ../shared/data/web_sessions (Alice's log, the 82,797 Kaggle test sessions, site_dic.pkl) when
present; says so and falls back to the shipped sample otherwise. Builds the labelled set (Alice's
sessions moved into the test period), holds out the latest 20% by start time, and fits on the earlier
80%:

* baseline: Kaggle's bag of sites (unigram counts) + logistic regression, no time features;
* vigil's logistic regression, LightGBM and their blend (site 1-3-gram TF-IDF + time features).

Prints each model's held-out ROC AUC, its ratio to the baseline's, and fit time (ratio too).

    python -m bench.web_sessions [--source DIR] [--models logreg,lightgbm,blend]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from vigil.tasks.web_sessions import SHIPPED_SAMPLE, build_from_folder, default_source
from vigil.tasks.web_sessions.data import time_split
from vigil.tasks.web_sessions.features import SiteNgrams
from vigil.tasks.web_sessions.model import candidate_models


def baseline() -> Pipeline:
    return Pipeline(
        [
            ("sites", FunctionTransformer(SiteNgrams().raw_features)),
            ("bag", CountVectorizer(tokenizer=str.split, token_pattern=None, lowercase=False)),
            ("model", LogisticRegression(C=1.0, solver="liblinear")),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.web_sessions", description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, help="folder with the full files (default: ../shared/data/web_sessions)")
    parser.add_argument("--models", default="logreg,lightgbm,blend")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--n-jobs", type=int, default=1)
    args = parser.parse_args(argv)

    source = args.source or default_source()
    if source is None:
        print("../shared/data/web_sessions is absent: using the shipped sample (figures not comparable to README)")
        source = SHIPPED_SAMPLE
    labelled, _ = build_from_folder(source)
    train, holdout = time_split(labelled, args.test_fraction)
    y_train, y_holdout = train["target"].to_numpy(), holdout["target"].to_numpy()
    print(
        f"source {source}: {len(train)} train / {len(holdout)} held-out sessions "
        f"({int(y_train.sum())} / {int(y_holdout.sum())} Alice); held-out = latest {args.test_fraction:.0%} by start time"
    )

    wanted = [name.strip() for name in args.models.split(",") if name.strip()]
    models = {"baseline (bag of sites + LR)": baseline()}
    candidates = candidate_models(n_jobs=args.n_jobs)
    models.update({name: candidates[name] for name in wanted if name in candidates})
    results = {}
    for name, model in models.items():
        started = time.perf_counter()
        model.fit(train, y_train)
        seconds = time.perf_counter() - started
        scores = model.predict_proba(holdout)[:, 1]
        results[name] = (scores, seconds)
    if "blend" in wanted and {"logreg", "lightgbm"} <= set(results):
        # the blend is the mean of its members' probabilities, so it reuses their fits
        members = [results["logreg"], results["lightgbm"]]
        results["blend"] = (np.mean([m[0] for m in members], axis=0), sum(m[1] for m in members))

    base_auc = roc_auc_score(y_holdout, results["baseline (bag of sites + LR)"][0])
    base_seconds = results["baseline (bag of sites + LR)"][1]
    print(f"{'model':<30} {'held-out ROC AUC':>16} {'vs baseline':>11} {'fit s':>8} {'fit vs baseline':>15}")
    for name, (scores, seconds) in results.items():
        auc = roc_auc_score(y_holdout, scores)
        print(f"{name:<30} {auc:>16.4f} {auc / base_auc:>10.3f}x {seconds:>8.1f} {seconds / base_seconds:>14.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
