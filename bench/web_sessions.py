"""Web-session intruder detection on the full data: held-out ROC AUC against a baseline, same run.

Reads ../shared/data/web_sessions (Alice's log, the 82,797 Kaggle test sessions, site_dic.pkl) when
present; says so and falls back to the shipped sample otherwise. Builds the labelled set (Alice's
sessions moved into the test period), holds out the latest 20% by start time, and fits on the earlier
80%:

* baseline: Kaggle's bag of sites (unigram counts) + logistic regression, no time features;
* vigil's logistic regression, LightGBM and their blend (the feature blocks of features.py).

Prints each model's held-out ROC AUC and PR AUC, the AUC's ratio to the baseline's, and fit time
(ratio too). ``--seeds N`` refits LightGBM with N random seeds (its row and column subsampling) and
prints the spread of its held-out AUC; ``--compare-cv`` runs the time-series CV of ``vigil
web-sessions train`` on the earlier part twice, with validation blocks of 20% (the default) and
with scikit-learn's three equal folds, and says which model each would choose.

    python -m bench.web_sessions [--source DIR] [--models logreg,lightgbm,blend] [--seeds 5] [--compare-cv]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from vigil.tasks.web_sessions import SHIPPED_SAMPLE, build_from_folder, default_source
from vigil.tasks.web_sessions.data import time_split
from vigil.tasks.web_sessions.features import SiteNgrams
from vigil.tasks.web_sessions.model import candidate_models, time_series_cv


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
    parser.add_argument("--seeds", type=int, default=0, help="refit LightGBM with this many seeds; print the spread")
    parser.add_argument("--compare-cv", action="store_true", help="model choice under both CV fold designs")
    args = parser.parse_args(argv)

    source = args.source or default_source()
    if source is None:
        print("../shared/data/web_sessions is absent: using the shipped sample (figures not comparable to README)")
        source = SHIPPED_SAMPLE
    labelled, site_dic = build_from_folder(source)
    train, holdout = time_split(labelled, args.test_fraction)
    y_train, y_holdout = train["target"].to_numpy(), holdout["target"].to_numpy()
    print(
        f"source {source}: {len(train)} train / {len(holdout)} held-out sessions "
        f"({int(y_train.sum())} / {int(y_holdout.sum())} Alice); held-out = latest {args.test_fraction:.0%} by start time"
    )

    wanted = [name.strip() for name in args.models.split(",") if name.strip()]
    models = {"baseline (bag of sites + LR)": baseline()}
    candidates = candidate_models(site_dic, n_jobs=args.n_jobs)
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
    print(
        f"{'model':<30} {'held-out ROC AUC':>16} {'PR AUC':>7} {'vs baseline':>11} {'fit s':>8} {'fit vs baseline':>15}"
    )
    for name, (scores, seconds) in results.items():
        auc = roc_auc_score(y_holdout, scores)
        print(
            f"{name:<30} {auc:>16.4f} {average_precision_score(y_holdout, scores):>7.4f} {auc / base_auc:>10.3f}x "
            f"{seconds:>8.1f} {seconds / base_seconds:>14.1f}x"
        )

    if args.seeds:
        aucs = []
        for seed in range(args.seeds):
            pipeline = clone(candidates["lightgbm"]).set_params(model__random_state=seed)
            aucs.append(roc_auc_score(y_holdout, pipeline.fit(train, y_train).predict_proba(holdout)[:, 1]))
        print(
            f"lightgbm over {args.seeds} seeds: held-out ROC AUC min {min(aucs):.4f}, mean {np.mean(aucs):.4f}, "
            f"max {max(aucs):.4f} ({', '.join(f'{a:.4f}' for a in aucs)})"
        )

    if args.compare_cv:
        members = {name: candidates[name] for name in ("logreg", "lightgbm")}
        for label, block_fraction in (
            ("validation blocks of 20% (vigil's default)", args.test_fraction),
            ("three equal folds (scikit-learn's default)", None),
        ):
            cv_scores, _ = time_series_cv(train, members, 3, block_fraction=block_fraction)
            means = {name: float(np.mean(s)) for name, s in cv_scores.items()}
            print(
                f"CV with {label}: "
                + "; ".join(
                    f"{name} {means[name]:.4f} ({', '.join(f'{s:.4f}' for s in folds)})"
                    for name, folds in cv_scores.items()
                )
                + f" -> chooses {max(means, key=means.get)}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
