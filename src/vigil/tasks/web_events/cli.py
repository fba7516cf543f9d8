"""``vigil web-events ...``: generate, describe, cluster, train, replay (a click group, mounted by the root)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from vigil.config import Settings
from vigil.context import option_group, with_args
from vigil.errors import InvalidInput

if TYPE_CHECKING:
    import numpy as np


@click.group(help="Web-attack events (ML-PT): DBSCAN labels, tuned forest, ML-PT's /predict", no_args_is_help=True)
def commands() -> None:
    pass


def clustering_options(sensitivity: float | None = None):
    """The DBSCAN and output flags ``cluster`` and ``train`` share."""
    return option_group(
        click.option("--min-samples", type=int, help="DBSCAN min_samples (default 2 x n_features)"),
        click.option("--eps", type=float, help="DBSCAN eps (default: the knee of the k-distance curve)"),
        click.option(
            "--sensitivity",
            type=float,
            default=sensitivity,
            help="Kneedle sensitivity S for the knee (default 20, as ML-PT)",
        ),
        click.option(
            "--attack-clusters",
            type=int,
            help="the N smallest clusters are attacks (default: all but the 11 largest, as ML-PT)",
        ),
        click.option("--jobs", type=int, default=1, help="parallel jobs (default 1)"),
        click.option("--out-dir", help="where plots and reports go (default runs/web_events)"),
    )


def _dbscan_params(args) -> dict[str, Any]:
    """The labelling flags of :func:`clustering_options` by the names the clustering functions take."""
    return {
        "min_samples": args.min_samples,
        "eps": args.eps,
        "sensitivity": args.sensitivity,
        "attack_clusters": args.attack_clusters,
    }


def _out_dir(args, settings: Settings) -> Path:
    folder = Path(args.out_dir) if getattr(args, "out_dir", None) else settings.work_dir / "web_events"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _events_path(args, settings: Settings) -> Path:
    from vigil.tasks.web_events.data import SAMPLE_CSV

    return Path(args.csv) if getattr(args, "csv", None) else settings.data_dir / SAMPLE_CSV


@commands.command("generate", help="write realistic synthetic events (ML-PT's part_10.csv shape)")
@click.option("--rows", type=int, default=57_833, help="distinct events (default 57,833 as ML-PT)")
@click.option("--duplicates", type=int, help="extra duplicate rows (default 12 per 57,833)")
@click.option("--seed", type=int, default=0)
@click.option("--out", default="runs/web_events/events.csv")
@with_args
def cmd_generate(args) -> int:
    from vigil.tasks.web_events.data import describe_events, load_events_csv
    from vigil.tasks.web_events.generator import PUBLISHED, generate_events, write_events_csv

    frame = generate_events(args.rows, seed=args.seed, duplicates=args.duplicates)
    path = write_events_csv(frame, args.out)
    print(f"wrote {len(frame):,} rows to {path}")
    table = describe_events(load_events_csv(path))
    print(table.T.to_string())
    if args.rows == PUBLISHED["rows"]:
        print("\nML-PT published (part_10.csv): distinct", PUBLISHED["distinct"], "missing", PUBLISHED["missing"])
    return 0


@commands.command("describe", help="ML-PT's summary of an events CSV (counts, distinct, missing)")
@click.argument("csv")
@with_args
def cmd_describe(args) -> int:
    from vigil.tasks.web_events.data import describe_events, load_events_csv

    frame = load_events_csv(args.csv, drop_duplicates=False)
    unique = frame.drop_duplicates()
    print(f"{len(frame):,} rows, {len(unique):,} after dropping duplicates")
    print(describe_events(unique).T.to_string())
    return 0


@commands.command("cluster", help="DBSCAN labels with eps at the k-distance knee (PNG)")
@click.option("--csv", help="raw events CSV (default: the shipped sample)")
@click.option("--features", help="an already featurized matrix: .npz with array X")
@click.option("--compare-labels", help=".npz with array y to compare the labels with")
@clustering_options(sensitivity=20.0)
@with_args
def cmd_cluster(args) -> int:
    import numpy as np

    from vigil.tasks.web_events.clustering import cluster_events, plot_k_distance
    from vigil.tasks.web_events.data import load_events_csv
    from vigil.tasks.web_events.train import label_events

    settings = args.settings
    out = _out_dir(args, settings)
    if args.features:
        with np.load(args.features) as archive:
            if "X" not in archive:
                raise InvalidInput(f"{args.features} has no array named X", {"arrays": list(archive.keys())})
            X = archive["X"]
        source = str(args.features)
        clustering = cluster_events(X, **_dbscan_params(args), n_jobs=args.jobs)
    else:
        path = _events_path(args, settings)
        frame = load_events_csv(path)
        source = str(path)
        _, X, clustering = label_events(frame, **_dbscan_params(args), n_jobs=args.jobs)
    summary = clustering.summary()
    summary["features"] = int(X.shape[1])
    summary["source"] = source
    knee = clustering.knee
    summary["knee"] = {"index": knee.knee_index, "distance": None if knee.eps is None else round(knee.eps, 6)}
    if args.compare_labels:
        from sklearn.metrics import adjusted_rand_score

        with np.load(args.compare_labels) as archive:
            reference = archive["y"] if "y" in archive else archive[list(archive.keys())[0]]
        if len(reference) != len(clustering.labels):
            raise InvalidInput(
                "reference labels and features differ in length",
                {"labels": len(reference), "features": len(clustering.labels)},
            )
        summary["compare"] = {
            "reference_labels": int(len(np.unique(reference))),
            "reference_noise": int((reference == -1).sum()),
            "same_label_share": round(float((reference == clustering.labels).mean()), 6),
            "adjusted_rand_index": round(float(adjusted_rand_score(reference, clustering.labels)), 6),
        }
    png = plot_k_distance(clustering, out / "k_distance.png", title=f"k-distance curve of {Path(source).name}")
    np.savez_compressed(out / "dbscan_labels.npz", y=clustering.labels)
    summary["plot"], summary["labels_file"] = str(png), str(out / "dbscan_labels.npz")
    sizes = sorted(((c, s) for c, s in clustering.sizes.items() if c != -1), key=lambda cs: -cs[1])
    print(json.dumps(summary, indent=2))
    print("largest clusters:", ", ".join(f"{c}:{s}" for c, s in sizes[:12]))
    print("attack clusters:", clustering.attack_clusters)
    return 0


def _load_npz_array(path, name: str) -> np.ndarray:
    import numpy as np

    with np.load(path) as archive:
        if name not in archive:
            raise InvalidInput(f"{path} has no array named {name}", {"arrays": list(archive.keys())})
        return archive[name]


def train_on_features(args) -> int:
    """Compare and tune on an already featurized matrix (e.g. ML-PT's X.npz / y.npz); saves no model,
    because a model without its featurizer cannot label raw events."""
    import numpy as np
    from tqdm import tqdm

    from vigil.tasks.web_events.clustering import cluster_events
    from vigil.tasks.web_events.training import candidate_classifiers, compare_classifiers, tune_random_forest

    X = _load_npz_array(args.features, "X")
    if args.labels:
        y = _load_npz_array(args.labels, "y")
    else:
        y = cluster_events(X, args.min_samples, args.eps, args.sensitivity or 20.0, n_jobs=args.jobs).labels
    if len(y) != len(X):
        raise InvalidInput("features and labels differ in length", {"X": len(X), "y": len(y)})
    print(f"{len(X):,} events x {X.shape[1]} features, {len(np.unique(y))} labels")
    if args.folds > 1:
        models = candidate_classifiers(n_jobs=args.jobs, seed=args.seed, full=args.full)
        with tqdm(total=len(models), desc="classifiers") as bar:
            table = compare_classifiers(
                X, y, models, folds=args.folds, repeats=args.repeats, seed=args.seed, progress=bar
            )
        print(f"\nRepeated {args.folds}-fold x {args.repeats}:")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if not args.no_tune:
        tuned = tune_random_forest(X, y, n_iter=args.n_iter, folds=args.tune_folds, seed=args.seed, n_jobs=args.jobs)
        print(f"\nrandomized search best: {json.dumps(tuned.random_params)} F1 {tuned.random_f1:.4f}")
        print(f"after the grid: {json.dumps(tuned.params)} CV F1 {tuned.cv_f1:.4f} ({tuned.searched} candidates)")
    print("(features only: no model saved; train on a raw events CSV to get a servable model)")
    return 0


@commands.command("train", help="compare classifiers, tune a random forest, save the model")
@click.option("--csv", help="raw events CSV (default: the shipped sample); part_10.csv works")
@click.option("--features", help="compare and tune on a featurized .npz (array X) instead; saves no model")
@click.option("--labels", help="with --features: .npz with array y (default: DBSCAN labels of X)")
@click.option("--folds", type=int, default=5, help="k of the repeated k-fold comparison (0 skips it)")
@click.option("--repeats", type=int, default=2)
@click.option("--n-iter", type=int, default=12, help="randomized-search candidates")
@click.option("--tune-folds", type=int, default=3)
@click.option("--no-tune", is_flag=True, help="use ML-PT's tuned forest parameters as they are")
@click.option(
    "--full",
    is_flag=True,
    help="ML-PT-sized run: 13 candidates, 10-fold x 3, 50 random candidates, 5-fold tuning",
)
@click.option("--seed", type=int, default=0)
@clustering_options()
@with_args
def cmd_train(args) -> int:
    if args.full:
        args.folds, args.repeats, args.n_iter, args.tune_folds = 10, 3, 50, 5
    if args.features:
        return train_on_features(args)
    settings, store = args.settings, args.store
    from vigil.tasks.web_events.data import load_events_csv
    from vigil.tasks.web_events.train import save_trained, train_model

    path = _events_path(args, settings)
    frame = load_events_csv(path)
    pipeline, info, table = train_model(
        frame,
        **_dbscan_params(args),
        folds=args.folds,
        repeats=args.repeats,
        n_iter=args.n_iter,
        tune_folds=args.tune_folds,
        full=args.full,
        tune=not args.no_tune,
        jobs=args.jobs,
        seed=args.seed,
    )
    entry = save_trained(store, pipeline, info, path)
    out = _out_dir(args, settings)
    if table is not None:
        print(
            f"\nRepeated {args.folds}-fold x {args.repeats} comparison on {len(frame):,} events "
            f"({info['extra']['clustering']['labels']} DBSCAN labels):"
        )
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        (out / "comparison.md").write_text(
            table.to_markdown(index=False, floatfmt=".4f") if _has_tabulate() else table.to_string(index=False)
        )
    print("\nforest:", json.dumps(info["extra"]["forest_params"]), "tuning:", json.dumps(info["extra"]["tuning"]))
    print("metrics:", json.dumps(info["metrics"]))
    print(f"saved web_events v{entry['version']} to {store.root}")
    return 0


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


@commands.command("replay", help="send a CSV to a running service and compare with offline labels")
@click.argument("csv")
@click.option(
    "--url",
    default="http://127.0.0.1:8080/predict",
    help="service URL: /predict or /predict/web-events, or the base URL",
)
@click.option("--batch-size", type=int, default=2000)
@click.option("--timeout", type=float, default=300.0)
@click.option("--limit", type=int, help="send only the first N events")
@with_args
def cmd_replay(args) -> int:
    import requests

    from vigil.tasks.web_events.replay import predict_url, replay

    store = args.store
    try:
        # any HTTP answer will do: the service is there (before the model scores the CSV offline)
        requests.get(predict_url(args.url), timeout=min(args.timeout, 10.0))
        report = replay(
            Path(args.csv), args.url, store, batch_size=args.batch_size, timeout=args.timeout, limit=args.limit
        )
    except requests.RequestException as exc:  # refused, unresolvable, timed out: the user's URL or server
        reason = re.findall(r"\[Errno -?\d+\] ([^'\")]+)|(Read timed out)", str(exc))
        why = next((part for match in reason for part in match if part), type(exc).__name__)
        raise InvalidInput(
            f"cannot reach the service at {args.url}: {why}", "is `vigil serve` running there?"
        ) from None
    print(json.dumps(report, indent=2))
    return 0 if report["agreement"] == 1.0 else 1
