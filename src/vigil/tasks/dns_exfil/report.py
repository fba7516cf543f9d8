"""``vigil dns train``: the analysis report and the model comparison, then the better model saved.

Writes to the report folder: ``report.md`` (the tables), ``comparison.csv``, ``metrics.json`` and the
plots ``class_balance.png``, ``distributions.png`` (each feature by class, log-scaled counts),
``skew.png`` (sample skewness of each feature) and ``comparison.png`` (F1 / ROC AUC / PR AUC /
accuracy of every feature-selection x algorithm pair on the held-out split).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from vigil.artifacts import ArtifactStore, data_fingerprint
from vigil.plotting import pyplot, save_figure
from vigil.tasks.dns_exfil.features import FEATURE_COLUMNS, FEATURE_VERSION
from vigil.tasks.dns_exfil.model import (
    ALGORITHMS,
    SELECTIONS,
    best_candidate,
    compare_candidates,
    make_pipeline,
    read_cic_csv,
)


def plot_class_balance(y: np.ndarray, path: Path) -> None:
    plt = pyplot()
    counts = np.bincount(y, minlength=2)
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.bar(["benign (0)", "exfiltration (1)"], counts, color=["#4c72b0", "#c44e52"])
    for i, c in enumerate(counts):
        ax.text(i, c, f"{c:,} ({c / counts.sum():.0%})", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("rows")
    ax.set_title("Class balance")
    save_figure(fig, path, dpi=110)


def plot_distributions(X: pd.DataFrame, y: np.ndarray, path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(4, 4, figsize=(13, 10))
    for ax, column in zip(axes.ravel(), FEATURE_COLUMNS):
        ax.set_title(column, fontsize=9)
        values = X[column].to_numpy()
        if np.ptp(values) == 0:  # a histogram of one value only confuses the log axis
            ax.text(0.5, 0.5, f"constant: {values[0]:g}", ha="center", va="center", transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        bins = np.histogram_bin_edges(values, bins=40)
        for label, color in ((0, "#4c72b0"), (1, "#c44e52")):
            # numpy counts + stairs: much cheaper than ax.hist's one patch per bar
            counts, _ = np.histogram(values[y == label], bins=bins)
            ax.stairs(np.maximum(counts, 0.8), bins, fill=True, alpha=0.55, color=color, label=str(label), baseline=0.8)
        ax.set_yscale("log")
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(FEATURE_COLUMNS) :]:
        ax.axis("off")
    axes[0, 0].legend(title="Target Attack", fontsize=7)
    fig.suptitle("Feature distributions by class (log counts)")
    fig.subplots_adjust(hspace=0.45, wspace=0.3, left=0.05, right=0.98, top=0.93, bottom=0.04)
    save_figure(fig, path, dpi=100, tight=False)  # the layout is the subplots_adjust above


def plot_skew(skew: pd.Series, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    skew.plot.bar(ax=ax, color=["#c44e52" if abs(v) > 1 else "#4c72b0" for v in skew])
    ax.axhline(1, color="grey", lw=0.8, ls="--")
    ax.axhline(-1, color="grey", lw=0.8, ls="--")
    ax.set_ylabel("sample skewness")
    ax.set_title("Skew of each feature (|skew| > 1 in red)")
    save_figure(fig, path, dpi=110)


def plot_comparison(table: pd.DataFrame, path: Path) -> None:
    plt = pyplot()
    metrics = ["f1", "roc_auc", "pr_auc", "accuracy"]
    labels = [f"{s}\n{a}" for s, a in zip(table["selection"], table["algorithm"])]
    x = np.arange(len(table))
    fig, ax = plt.subplots(figsize=(10, 4))
    for i, metric in enumerate(metrics):
        ax.bar(x + (i - 1.5) * 0.2, table[metric], width=0.2, label=metric)
    low = max(0.0, float(table[metrics].min().min()) - 0.05)
    ax.set_ylim(low, 1.0)
    ax.set_xticks(x, labels, fontsize=7)
    ax.legend(fontsize=8, ncol=4)
    ax.set_title("Held-out metrics: feature selection x algorithm")
    save_figure(fig, path, dpi=110)


def train_and_report(
    csv: Path,
    out: Path,
    store: ArtifactStore,
    max_rows: int | None = None,
    test_size: float = 0.25,
    n_jobs: int = 1,
    seed: int = 0,
    dask: str | None = None,
) -> tuple[dict, str]:
    """``dask`` (``local:N`` / ``tcp://host:port``): the LightGBM fits run on that Dask cluster."""
    from sklearn.model_selection import train_test_split

    from vigil.dask_training import fitter

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    X, y = read_cic_csv(csv, max_rows=max_rows)
    skew = X.skew()
    plot_class_balance(y, out / "class_balance.png")
    plot_distributions(X, y, out / "distributions.png")
    plot_skew(skew, out / "skew.png")

    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=test_size, random_state=seed, stratify=y)
    with fitter(dask, threads_per_worker=max(1, n_jobs)) as trainer:
        results = compare_candidates(
            X_train, y_train, X_test, y_test, SELECTIONS, ALGORITHMS, n_jobs=n_jobs, progress=True, fit=trainer.fit
        )
        best = best_candidate(results)
        # The held-out metrics decide; the saved model is then refitted on all rows with the same design.
        pipeline = trainer.fit(make_pipeline(best.selection, best.algorithm, n_jobs), X, y)
        training = trainer.summary()
    table = pd.DataFrame(
        [
            {
                "selection": r.selection,
                "algorithm": r.algorithm,
                **r.metrics,
                "fit_seconds": r.fit_seconds,
                "features": " ".join(r.features),
            }
            for r in results
        ]
    )
    table.to_csv(out / "comparison.csv", index=False)
    plot_comparison(table, out / "comparison.png")
    entry = store.save(
        "dns_exfil",
        pipeline,
        metrics=best.metrics,
        threshold=0.5,
        feature_version=FEATURE_VERSION,
        data_fingerprint=data_fingerprint(Path(csv)),
        extra={
            "kind": "static",
            "selection": best.selection,
            "algorithm": best.algorithm,
            "features": best.features,
            "training_rows": len(y),
            "csv": str(csv),
            **({"training": training} if training else {}),
        },
    )

    balance = np.bincount(y, minlength=2)
    lines = [
        "# DNS exfiltration: static model report",
        "",
        f"Data: `{csv}` ({len(y):,} rows; benign {balance[0]:,}, exfiltration {balance[1]:,}, "
        f"{balance[1] / len(y):.1%} attacks). Held-out split: {test_size:.0%}, stratified, seed {seed}.",
        "",
        "![class balance](class_balance.png)",
        "",
        "## Distributions and skew",
        "",
        "![distributions](distributions.png)",
        "",
        "![skew](skew.png)",
        "",
        "| feature | mean | std | skew |",
        "|---|---|---|---|",
        *[f"| {c} | {X[c].mean():.3f} | {X[c].std():.3f} | {skew[c]:.2f} |" for c in FEATURE_COLUMNS],
        "",
        "## Feature selection x algorithm (held-out split)",
        "",
        "Feature selection: `all_features` (none), `mutual_info_k8` (filter: SelectKBest on mutual information, "
        "k=8, the reference solution's choice), `tree_importance` (embedded: SelectFromModel on an "
        "ExtraTrees importance above the mean).",
        "",
        "| selection | algorithm | F1 | ROC AUC | PR AUC | accuracy | fit s | features |",
        "|---|---|---|---|---|---|---|---|",
        *[
            f"| {r.selection} | {r.algorithm} | {r.metrics['f1']:.4f} | {r.metrics['roc_auc']:.4f} | "
            f"{r.metrics['pr_auc']:.4f} | {r.metrics['accuracy']:.4f} | {r.fit_seconds:.1f} | {' '.join(r.features)} |"
            for r in results
        ],
        "",
        "![comparison](comparison.png)",
        "",
        f"**Saved:** `{best.selection}` + `{best.algorithm}` as dns_exfil v{entry['version']} "
        f"(best F1, then ROC AUC, then fit time), refitted on all rows.",
        "",
    ]
    (out / "report.md").write_text("\n".join(lines))
    (out / "metrics.json").write_text(
        json.dumps(
            {
                "best": {"selection": best.selection, "algorithm": best.algorithm, **best.metrics},
                "candidates": table.drop(columns=["features"]).to_dict("records"),
            },
            indent=2,
        )
    )
    summary = "\n".join(
        f"{r.selection:>16} {r.algorithm:<14} F1 {r.metrics['f1']:.4f}  ROC AUC {r.metrics['roc_auc']:.4f}"
        f"  PR AUC {r.metrics['pr_auc']:.4f}  accuracy {r.metrics['accuracy']:.4f}"
        for r in results
    )
    return entry, summary + f"\nbest: {best.selection} + {best.algorithm}"
