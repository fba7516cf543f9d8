"""``vigil ember extract | vectorize | train | evaluate | classify | demo-data`` (a click group).

The root mounts it under ``ember`` with :mod:`vigil.active_learning.cli`'s verbs (the registry lists
both). Feature extraction and LightGBM are imported by the verb that uses them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from vigil.context import model_version_option, option_group, with_args
from vigil.errors import InvalidInput
from vigil.tasks.ember.workers import MAX_FILE_BYTES, MEMORY_BYTES

if TYPE_CHECKING:
    import numpy as np


@click.group(help="Malware detection on Windows PE files (EMBER features, LightGBM)", no_args_is_help=True)
def commands() -> None:
    pass


class FeatureVersion(click.ParamType):
    """One of ember's feature versions (:data:`vigil.tasks.ember.features.FEATURE_VERSIONS`)."""

    name = "1|2"

    def convert(self, value, param, ctx):
        from vigil.tasks.ember.features import FEATURE_VERSIONS

        try:
            version = int(value)
        except (TypeError, ValueError):
            version = None
        if version not in FEATURE_VERSIONS:
            self.fail(f"{value!r} is not one of {', '.join(map(str, FEATURE_VERSIONS))}", param, ctx)
        return version


def feature_version_option(function):
    return click.option("-v", "--feature-version", type=FeatureVersion(), default=2, show_default=True)(function)


parallel_options = option_group(
    feature_version_option,
    click.option("-j", "--processes", type=int, help="worker processes (default: 2)"),
    click.option("-q", "--quiet", is_flag=True, help="no progress bar"),
)
"""Flags shared by the verbs that process many files or lines in worker processes."""


def _clear_errors(handler):
    """Missing files and bad data become one-line ``vigil: error: ...`` messages, not tracebacks."""
    import functools

    @functools.wraps(handler)
    def wrapped(args):
        try:
            return handler(args)
        except (FileNotFoundError, ValueError) as exc:
            raise InvalidInput(str(exc)) from None

    return wrapped


@commands.command("extract", help="raw ember features of PE files, one JSON line per file")
@click.argument("paths", nargs=-1, required=True, metavar="FILE_OR_DIR...")
@click.option("-o", "--output", default="-", help="raw.jsonl to write (default: stdout)")
@click.option(
    "--label",
    type=click.Choice([0, 1, -1]),
    default=-1,
    help="label written into every record (1 malicious, 0 benign, -1 unknown)",
)
@click.option(
    "--max-file-mb",
    type=float,
    default=MAX_FILE_BYTES / (1 << 20),
    help=f"skip larger files, with the reason (default: {MAX_FILE_BYTES / (1 << 20):g})",
)
@click.option(
    "--memory-mb",
    type=float,
    default=MEMORY_BYTES / (1 << 20),
    help="address space per extraction process, above its size at start; a file "
    f"that needs more is skipped, with the reason (default: {MEMORY_BYTES / (1 << 20):g})",
)
@click.option(
    "--timeout",
    type=float,
    metavar="SECONDS",
    help="skip a file whose extraction takes longer (default: no limit)",
)
@parallel_options
@with_args
@_clear_errors
def cmd_extract(args) -> int:
    from vigil.tasks.ember.task import extract_files, iter_input_files

    list(iter_input_files(args.paths))  # fail on a missing path before creating the output file
    out = sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8")

    def say(message: str) -> None:
        print(f"vigil: {message}", file=sys.stderr, flush=True)

    try:
        report = extract_files(
            args.paths,
            out,
            label=args.label,
            feature_version=args.feature_version,
            processes=args.processes,
            progress=not args.quiet,
            max_file_bytes=int(args.max_file_mb * (1 << 20)),
            memory_bytes=int(args.memory_mb * (1 << 20)),
            timeout=args.timeout,
            say=say,
        )
    finally:
        if out is not sys.stdout:
            out.close()
    summary = f"wrote {report.written} raw records to {args.output}"
    if report.skipped:
        summary += f"; skipped {len(report.skipped)} of {report.files} files (reasons above)"
    print(summary, file=sys.stderr)
    return 1 if report.skipped else 0


@commands.command("vectorize", help="train_features_*.jsonl + test_features.jsonl -> X/y memmaps")
@click.argument("data_dir", metavar="DATA_DIR")
@parallel_options
@click.option(
    "--restart",
    is_flag=True,
    help="ignore an interrupted run's progress and start afresh (default: continue it)",
)
@with_args
@_clear_errors
def cmd_vectorize(args) -> int:
    from vigil.tasks.ember.features import DIMS
    from vigil.tasks.ember.vectorize import create_vectorized_features

    reports = create_vectorized_features(
        args.data_dir,
        feature_version=args.feature_version,
        processes=args.processes,
        progress=not args.quiet,
        resume=not args.restart,
    )
    status = 0
    for report in reports:
        resumed = f", resumed at row {report.resumed_at}" if report.resumed_at is not None else ""
        print(
            f"{report.subset}: {report.rows} rows -> {report.X_path} ({DIMS[args.feature_version]} floats/row{resumed})"
        )
        for bad in report.bad_lines:
            print(f"vigil: bad line {bad}", file=sys.stderr)
            status = 1
    print(f"metadata -> {Path(args.data_dir) / 'metadata.csv'}")
    return status


@commands.command("train", help="LightGBM on the vectorized labelled rows; saves the model")
@click.argument("data_dir", metavar="DATA_DIR")
@click.option("--params", default="ember", help="ember (default), alectio, or FILE.json")
@feature_version_option
@click.option("--n-estimators", type=int, help="override the number of boosting rounds")
@click.option("--n-jobs", type=int, default=2, help="LightGBM threads (default: 2)")
@click.option(
    "--bounded-memory",
    is_flag=True,
    help="large data sets: train from the memmaps without loading X (LightGBM Sequence), pool capped",
)
@click.option(
    "--histogram-pool-mb",
    type=int,
    metavar="MB",
    help="cap LightGBM's histogram pool (implies --bounded-memory unless --dask; default there: 1024)",
)
@click.option(
    "--binary-dataset",
    metavar="FILE",
    help="save the binned LightGBM Dataset here, reuse it next time (implies --bounded-memory)",
)
@click.option(
    "--dask",
    metavar="ADDRESS",
    help="train on a Dask cluster: tcp://HOST:8786 or local:N (N workers on 127.0.0.1)",
)
@with_args
@_clear_errors
def cmd_train(args) -> int:
    from vigil.tasks.ember.model import train_and_save

    store = args.store
    overrides = {"n_estimators": args.n_estimators} if args.n_estimators else {}
    entry = train_and_save(
        store,
        args.data_dir,
        feature_version=args.feature_version,
        preset=args.params,
        n_jobs=args.n_jobs,
        bounded=args.bounded_memory,
        histogram_pool_mb=args.histogram_pool_mb,
        binary_dataset=args.binary_dataset,
        dask=args.dask,
        progress=True,
        **overrides,
    )
    print(f"saved ember v{entry['version']} ({entry['file']}), threshold at 1% FPR = {entry['threshold']:.6f}")
    if entry["extra"]["metrics_on"] != "test":
        print("note: no labelled test rows of both classes, so metrics and threshold come from the TRAIN rows")
    print(json.dumps(_headline(entry["metrics"]), indent=2))
    return 0


def _saved_model(args):
    """The ember model ``--version`` names (the latest by default) and the feature version it reads."""
    loaded = args.store.load("ember", args.version)
    return loaded, int(loaded.feature_version or 2)


def _headline(report: dict) -> dict:
    return {k: v for k, v in report.items() if not k.startswith("fpr_at")}


@commands.command("evaluate", help="re-score a saved model on DATA_DIR's test rows")
@click.argument("data_dir", metavar="DATA_DIR")
@model_version_option
@click.option("--plot", metavar="PNG", help="also draw the ROC curve to this file")
@with_args
@_clear_errors
def cmd_evaluate(args) -> int:
    import numpy as np

    from vigil.tasks.ember.model import evaluate_classifier
    from vigil.tasks.ember.vectorize import read_vectorized

    loaded, feature_version = _saved_model(args)
    X_test, y_test = read_vectorized(args.data_dir, "test", feature_version)
    report, scores = evaluate_classifier(loaded.model[-1], X_test, y_test)
    print(f"ember v{loaded.version} on {args.data_dir} (test, feature version {feature_version})")
    print(json.dumps(_headline(report), indent=2))
    if args.plot:
        plot_roc(np.asarray(y_test)[np.asarray(y_test) != -1], scores, Path(args.plot), loaded.threshold)
        print(f"ROC curve -> {args.plot}")
    return 0


def plot_roc(y: np.ndarray, scores: np.ndarray, path: Path, threshold: float | None) -> None:
    from vigil.plotting import save_figure

    figure, _ = roc_figure(y, scores, threshold)
    save_figure(figure, path)


def roc_figure(y: np.ndarray, scores: np.ndarray, threshold: float | None):
    """(figure, axis) of the ROC curve, FPR on a symlog axis from 0 to 1 (no negative rates)."""
    from vigil.metrics import roc_points
    from vigil.plotting import pyplot

    plt = pyplot()

    fpr, tpr = roc_points(y, scores)
    figure, axis = plt.subplots(figsize=(5, 4))
    axis.plot(fpr, tpr, label="ROC")
    axis.axvline(0.01, color="grey", linestyle=":", label="1% FPR")
    axis.set_xscale("symlog", linthresh=1e-3)
    # symlog's autoscale pads below 0, which draws ticks at -10^-3 and less: a rate is never negative
    axis.set_xlim(0, 1)
    axis.set_xlabel("false-positive rate")
    axis.set_ylabel("detection rate")
    axis.set_title("EMBER LightGBM" + (f" (threshold {threshold:.3f})" if threshold is not None else ""))
    axis.legend(loc="lower right")
    return figure, axis


@commands.command("classify", help="malware probability of PE files")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@model_version_option
@with_args
@_clear_errors
def cmd_classify(args) -> int:
    from vigil.tasks.ember.model import scores
    from vigil.tasks.ember.task import extraction_pool, is_parsed_pe, iter_input_files
    from vigil.tasks.ember.workers import WorkerFailure, oversized

    loaded, feature_version = _saved_model(args)
    threshold = loaded.decision_threshold()
    status = 0
    for path in iter_input_files(args.files):
        try:
            too_large = oversized(path.stat().st_size, MAX_FILE_BYTES)
            if too_large:
                raise WorkerFailure(too_large)
            raw, note = extraction_pool().run((path.read_bytes(), feature_version))
        except (OSError, WorkerFailure) as exc:
            reason = exc.reason if isinstance(exc, WorkerFailure) else exc.strerror or exc
            print(f"{path}\terror: {reason}", file=sys.stderr)
            status = 1
            continue
        probability = float(scores(loaded, loaded.model[0].transform([raw]))[0])
        verdict = "malicious" if probability >= threshold else "benign"
        if not is_parsed_pe(raw):
            note = f"\t({note})" if note else "\t(not a PE file LIEF can read: byte-level features only)"
        print(f"{probability:.6f}\t{verdict}\t{path}{note or ''}")
    return status


@commands.command("demo-data", help="write the labelled synthetic demo set (ember file names)")
@click.argument("out_dir", metavar="OUT_DIR")
@click.option("--n-train", type=int, default=400)
@click.option("--n-test", type=int, default=200)
@click.option("--seed", type=int, default=0)
@with_args
@_clear_errors
def cmd_demo_data(args) -> int:
    from vigil.tasks.ember.demo_data import write_demo_data

    paths = write_demo_data(args.out_dir, n_train=args.n_train, n_test=args.n_test, seed=args.seed)
    print("wrote " + ", ".join(map(str, paths)) + " (synthetic demo records; see data/ember/SOURCE.md)")
    return 0
