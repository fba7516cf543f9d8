"""A whole active-learning experiment run locally, through the platform's own code path.

For each strategy: a fresh experiment in a local bucket, ``meta.json`` and the same random
``selected_indices_0.pkl`` for every strategy; then for each loop :meth:`AlectioPipeline.start_loop`
(what ``POST /one_loop`` runs: validation, experiment lock, job file, train/test/infer, bucket files),
and the strategy reads ``infer_outputs_{loop}.pkl`` and writes ``selected_indices_{loop+1}.pkl``, as
the platform would. The learning curve (ROC AUC and accuracy against the labelled count) comes from the
``metrics_{loop}.pkl`` files the loops wrote.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from vigil.active_learning import processes
from vigil.active_learning.pipeline import AlectioPipeline
from vigil.active_learning.storage import LocalBucketStore, read_pickle, write_json, write_pickle
from vigil.active_learning.strategies import STRATEGIES, select
from vigil.errors import InvalidInput, VigilError

LOCAL_BUCKET = "local"
LOCAL_PROJECT = "vigil-local"
STYLES = ("-", "--", ":", "-.", "-", "--")
MARKERS = ("o", "s", "^", "x", "d", "v")


def run_strategy(
    args: dict,
    bucket_root: Path,
    strategy: str,
    loops: int,
    n_rec: int,
    initial: list[int],
    seed: int = 0,
    progress=None,
) -> list[dict]:
    store = LocalBucketStore(bucket_root)
    pipeline = AlectioPipeline(args, store)
    experiment_id = f"local-{strategy.replace('_', '-')}"
    payload = {
        "experiment_id": experiment_id,
        "project_id": LOCAL_PROJECT,
        "user_id": "local",
        "bucket_name": LOCAL_BUCKET,
        "type": "Classification",
        "n_rec": n_rec,
        "n_loop": loops,
    }
    # A rerun starts clean: the previous run's checkpoints, job lock and bucket files go.
    shutil.rmtree(pipeline.experiment_dir(payload), ignore_errors=True)
    shutil.rmtree(Path(bucket_root) / LOCAL_BUCKET / LOCAL_PROJECT / experiment_id, ignore_errors=True)
    folder = f"{LOCAL_PROJECT}/{experiment_id}"
    write_json(
        store,
        LOCAL_BUCKET,
        f"{LOCAL_PROJECT}/meta.json",
        {"0": "Benign", "1": "Malicious", "train_size": processes.pool_size(args)},
    )
    write_pickle(store, LOCAL_BUCKET, f"{folder}/selected_indices_0.pkl", list(initial))
    rows = []
    for loop in range(loops):
        job = pipeline.start_loop({**payload, "cur_loop": loop}, background=False)["job"]
        if job["status"] != "succeeded":
            raise VigilError(f"{strategy}, loop {loop} failed: {job['error']['reason']}", job["error"].get("detail"))
        metrics = read_pickle(store, LOCAL_BUCKET, f"{folder}/metrics_{loop}.pkl")
        rows.append(
            {
                "strategy": strategy,
                "loop": loop,
                "labelled": job["result"]["labelled"],
                "roc_auc": metrics.get("roc_auc", float("nan")),
                "accuracy": metrics["accuracy"],
                "f1_score": metrics["f1_score"],
            }
        )
        if progress:
            progress(rows[-1])
        if loop + 1 < loops:
            outputs = read_pickle(store, LOCAL_BUCKET, f"{folder}/infer_outputs_{loop}.pkl")
            if not outputs:
                break  # the pool is exhausted
            chosen = select(outputs, n_rec, strategy, seed=seed + loop + 1)
            write_pickle(store, LOCAL_BUCKET, f"{folder}/selected_indices_{loop + 1}.pkl", chosen)
    pipeline.end_experiment(payload)
    return rows


def initial_selection(args: dict, size: int, seed: int) -> list[int]:
    """The loop-0 labelled set, shared by every strategy; redrawn until it holds both classes."""
    split, rows = processes.train_pool(args)
    if size >= len(rows):
        raise InvalidInput(f"--initial {size} must be below the pool size {len(rows)}", {"field": "initial"})
    labels = np.asarray(split.y[rows])
    rng = np.random.default_rng(seed)
    for _ in range(100):
        chosen = np.sort(rng.choice(len(rows), size=size, replace=False))
        if np.unique(labels[chosen]).size == 2:
            return chosen.tolist()
    raise InvalidInput("could not draw an initial set holding both classes; raise --initial", {"field": "initial"})


def run_experiment(
    args: dict,
    bucket_root: Path,
    strategies: list[str],
    loops: int,
    n_rec: int,
    initial: int,
    seed: int = 0,
    progress=None,
) -> pd.DataFrame:
    unknown = [s for s in strategies if s.replace("-", "_") not in STRATEGIES]
    if unknown:
        raise InvalidInput(f"unknown strategy '{unknown[0]}'", {"field": "strategy", "known": list(STRATEGIES)})
    if loops < 1 or n_rec < 1:
        raise InvalidInput("--loops and --n-rec must be at least 1", {"field": "loops" if loops < 1 else "n_rec"})
    start = initial_selection(args, initial, seed)
    rows = []
    for strategy in strategies:
        rows += run_strategy(args, bucket_root, strategy.replace("-", "_"), loops, n_rec, start, seed, progress)
    return pd.DataFrame(rows)


def plot_learning_curve(curve: pd.DataFrame, path: Path, title: str = "") -> Path:
    from vigil.plotting import pyplot, save_figure

    plt = pyplot()

    figure, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for axis, metric, label in ((axes[0], "roc_auc", "ROC AUC"), (axes[1], "accuracy", "accuracy")):
        # With two classes, least confidence, margin and entropy rank records identically, so their
        # lines coincide: distinct dashes and markers keep each one visible.
        for (strategy, rows), style, marker in zip(curve.groupby("strategy", sort=False), STYLES, MARKERS):
            axis.plot(rows["labelled"], rows[metric], linestyle=style, marker=marker, label=strategy, alpha=0.85)
        axis.set_xlabel("labelled records")
        axis.set_ylabel(f"test {label}")
        axis.grid(alpha=0.3)
    axes[0].legend()
    if title:
        figure.suptitle(title)
    return save_figure(figure, path, dpi=110, tight=False)  # constrained_layout does the layout
