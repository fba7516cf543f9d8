"""EMBER training memory against rows: bounded-memory training from the memmaps vs the naive load.

    python -m bench.ember_scale [--rows 10000,100000] [--naive-max-rows 100000] [--rounds 10]

Every measurement runs in its own subprocess (peak RSS = the child's ``ru_maxrss``: anonymous memory
plus the file pages it mapped, which is what the kernel has to find room for):

1. rows: for each row count, generated ember-shaped rows of 2,381 float32 (``vigil.tasks.ember.synthetic``:
   3/4 zeros, small counts; 1 row in 10 unlabelled), LightGBM with ember's preset but ``num_leaves=256``
   and ``--rounds`` rounds (both modes alike, so the histogram pool is the same small constant):
   * baseline ``naive``: what ``vigil ember train`` does by default and ember does, ``X[rows]`` in RAM
     then ``LGBMClassifier.fit``;
   * ``bounded``: ``vigil ember train --bounded-memory`` (``vigil.tasks.ember.bounded.fit_bounded``).
   Above ``--naive-max-rows`` the naive run is skipped (it would pass this machine's memory budget)
   and the ratio is taken against the least it could need: the labelled X itself in RAM (``X bytes``).
2. pool: ember's preset (2,048 leaves) on the smallest row count, LightGBM's uncapped histogram pool
   (baseline) against ``histogram_pool_size=1024`` MB (the bounded path's default) and 256 MB.

Ratios < 1 mean less memory / less time than the baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from bench.common import run_child

DIM = 2381


def child(mode: str, data_dir: str, rounds: int, leaves: int, pool_mb: float | None) -> None:
    """One measurement, in this (fresh) process; prints one JSON line."""
    import numpy as np

    from vigil.tasks.ember.bounded import fit_bounded
    from vigil.tasks.ember.model import labelled_rows, load_labelled, make_estimator
    from vigil.tasks.ember.vectorize import read_vectorized

    X, y = read_vectorized(data_dir, "train")
    overrides = {"n_estimators": rounds, "num_leaves": leaves, "force_col_wise": True}
    started = time.perf_counter()
    if mode == "naive":
        if pool_mb is not None:
            overrides["histogram_pool_size"] = pool_mb
        X_in, y_in = load_labelled(X, y)
        classifier = make_estimator("ember", n_jobs=2, **overrides).fit(X_in, y_in)
    else:
        classifier, _ = fit_bounded(
            make_estimator("ember", n_jobs=2, **overrides), X, y, labelled_rows(y), histogram_pool_mb=pool_mb
        )
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    trees = classifier.booster_.num_trees()
    print(
        json.dumps(
            {
                "mode": mode,
                "seconds": seconds,
                "peak_mb": peak_kb / 1024,
                "trees": trees,
                "rows": int(len(y)),
                "labelled": int(np.count_nonzero(np.asarray(y) != -1)),
            }
        )
    )


def measure(mode: str, data_dir: Path, rounds: int, leaves: int, pool_mb: float | None = None) -> dict:
    args = [mode, str(data_dir), "--rounds", str(rounds), "--leaves", str(leaves)]
    args += ["--pool-mb", str(pool_mb)] if pool_mb is not None else []
    return run_child("bench.ember_scale", args, timeout=3600, what=f"{mode} on {data_dir}")


def _row(label: str, result: dict, baseline: dict | None, note: str = "") -> str:
    if baseline is None:
        ratios = "   1.00x   1.00x"
    else:
        ratios = f"{result['peak_mb'] / baseline['peak_mb']:8.2f}x{result['seconds'] / baseline['seconds']:7.2f}x"
    return f"{label:<30} {result['peak_mb']:9,.0f} MB {result['seconds']:8.1f} s {ratios}  {note}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.ember_scale", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows", default="10000,100000", help="row counts, comma-separated (README: 10000,100000,400000)"
    )
    parser.add_argument(
        "--naive-max-rows",
        type=int,
        default=100_000,
        help="skip the naive baseline above this many rows (default 100000: memory budget)",
    )
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--leaves", type=int, default=256)
    parser.add_argument("--skip-pool", action="store_true", help="skip the 2,048-leaf histogram-pool section")
    parser.add_argument("--pool-mb", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "DATA_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], args.rounds, args.leaves, args.pool_mb)
        return 0

    from vigil.tasks.ember.synthetic import write_synthetic_vectors

    sizes = [int(x) for x in args.rows.split(",")]
    print(
        f"bench.ember_scale on {os.cpu_count()} CPU(s): generated rows of {DIM} float32, ember preset with "
        f"num_leaves={args.leaves}, {args.rounds} rounds, 2 threads; each run in its own process"
    )
    print(f"{'run':<30} {'peak RSS':>12} {'time':>10} {'x RSS':>8} {'x time':>7}")
    with tempfile.TemporaryDirectory(prefix="vigil-ember-scale-", dir=os.environ.get("VIGIL_BENCH_TMP")) as tmp:
        for rows in sizes:
            data_dir = Path(tmp) / f"rows{rows}"
            write_synthetic_vectors(data_dir, "train", rows=rows, seed=rows)
            labelled = rows - rows // 10
            x_mb = labelled * DIM * 4 / 2**20
            print(
                f"-- {rows:,} rows ({labelled:,} labelled; X on disk {rows * DIM * 4 / 2**20:,.0f} MB, "
                f"labelled X {x_mb:,.0f} MB)",
                flush=True,
            )
            if rows <= args.naive_max_rows:
                baseline = measure("naive", data_dir, args.rounds, args.leaves)
                print(_row("naive load (baseline)", baseline, None), flush=True)
            else:
                baseline = {"peak_mb": x_mb, "seconds": float("nan")}
                print(
                    f"{'naive load: skipped':<30} {'>= ' + format(x_mb, ',.0f'):>9} MB {'':>10}   1.00x"
                    "         (lower bound: the labelled X in RAM)",
                    flush=True,
                )
            bounded = measure("bounded", data_dir, args.rounds, args.leaves, pool_mb=1024)
            note = "" if rows <= args.naive_max_rows else "(RSS ratio against the lower bound)"
            print(_row("bounded memory (memmap)", bounded, baseline, note), flush=True)
            if rows != sizes[0] or args.skip_pool:
                import shutil

                shutil.rmtree(data_dir)
        if not args.skip_pool:
            data_dir = Path(tmp) / f"rows{sizes[0]}"
            print(
                f"-- histogram pool: ember preset (2,048 leaves), {sizes[0]:,} rows, {args.rounds} rounds", flush=True
            )
            baseline = measure("naive", data_dir, args.rounds, 2048)
            print(_row("uncapped pool (baseline)", baseline, None), flush=True)
            for pool in (1024, 256):
                capped = measure("naive", data_dir, args.rounds, 2048, pool_mb=pool)
                print(_row(f"histogram_pool_size={pool} MB", capped, baseline), flush=True)
            bounded = measure("bounded", data_dir, args.rounds, 2048, pool_mb=1024)
            print(_row("bounded memory, pool 1024 MB", bounded, baseline), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
