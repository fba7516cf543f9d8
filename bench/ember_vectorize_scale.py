"""`vigil ember vectorize` memory against records: constant per process, next to the previous driver.

    python -m bench.ember_vectorize_scale [--records 10000,40000] [--processes 2]

Input: the synthetic demo records (``vigil.tasks.ember.demo_data``, 1,000 of them) written over and
over to reach each count, as ``train_features_0.jsonl``. Each run is its own subprocess; peak RSS is
the driver process's ``ru_maxrss`` and the largest worker's (``RUSAGE_CHILDREN``).

* baseline ``previous``: the vectorize driver of commit 60029ba (before issue 18), loaded from git:
  ``Pool.imap_unordered`` over the batches, workers writing through a memory map of X (every page
  written stays in the worker's resident set), one metadata dict per row kept until the end;
* ``resumable``: today's ``create_vectorized_features`` (at most 4 batches per worker in flight,
  metadata streamed to disk, rows written with pwrite, progress file).

Ratios < 1 mean less memory / less time than the baseline at the same record count; ``x parse`` is
each run's time over reading and parsing the same lines with orjson alone (one process).
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

from bench.common import run_child, source_at

PREVIOUS = "60029ba"


def parse_only(data_dir: str) -> dict:
    """Reading the lines and parsing each with orjson, nothing kept: the floor of any vectorizer."""
    import orjson

    rows = 0
    with open(Path(data_dir) / "train_features_0.jsonl", "rb") as handle:
        for line in handle:
            orjson.loads(line)
            rows += 1
    return {"rows": rows}


def child(mode: str, data_dir: str, processes: int) -> None:
    if mode == "parse":
        started = time.perf_counter()
        rows = parse_only(data_dir)["rows"]
        seconds = time.perf_counter() - started
        usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"mode": mode, "seconds": seconds, "rows": rows, "driver_mb": usage, "worker_mb": 0.0}))
        return
    if mode == "previous":
        import importlib.util

        source = Path(data_dir).parent / "vectorize_previous.py"
        spec = importlib.util.spec_from_file_location("vectorize_previous", source)
        module = importlib.util.module_from_spec(spec)
        sys.modules["vectorize_previous"] = module  # the pool pickles its functions by module name
        spec.loader.exec_module(module)
        create = module.create_vectorized_features
    else:
        from vigil.tasks.ember.vectorize import create_vectorized_features as create
    started = time.perf_counter()
    reports = create(data_dir, feature_version=2, processes=processes, progress=False)
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "mode": mode,
                "seconds": seconds,
                "rows": sum(r.rows for r in reports),
                "driver_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            }
        )
    )


def measure(mode: str, data_dir: Path, processes: int) -> dict:
    args = [mode, str(data_dir), "--processes", str(processes)]
    return run_child("bench.ember_vectorize_scale", args, timeout=7200, what=mode)


def write_records(path: Path, count: int, base: list[str]) -> int:
    written = 0
    with open(path, "w", encoding="utf-8") as out:
        while written < count:
            for line in base[: count - written]:
                out.write(line + "\n")
            written = min(count, written + len(base))
    return path.stat().st_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.ember_vectorize_scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", default="10000,40000")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--skip-previous", action="store_true", help="measure only today's driver")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "DATA_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], args.processes)
        return 0

    from vigil.tasks.ember.demo_data import build_demo_records

    train, _ = build_demo_records(n_train=1000, n_test=2, seed=0)
    base = [json.dumps(record) for record in train]
    print(
        f"bench.ember_vectorize_scale on {os.cpu_count()} CPU(s), -j {args.processes}; "
        "peak RSS of the driver and of the largest worker; each run in its own process"
    )
    print(
        f"{'run':<28} {'driver':>9} {'worker':>9} {'time':>9} {'rec/s':>7} {'x driver':>9} {'x worker':>9} "
        f"{'x time':>7}"
    )
    with tempfile.TemporaryDirectory(prefix="vigil-vectorize-scale-", dir=os.environ.get("VIGIL_BENCH_TMP")) as tmp:
        previous = source_at(PREVIOUS, "src/vigil/tasks/ember/vectorize.py")
        if previous is not None:
            (Path(tmp) / "vectorize_previous.py").write_text(previous)
        skip_previous = args.skip_previous or previous is None
        for count in (int(x) for x in args.records.split(",")):
            data_dir = Path(tmp) / f"records{count}"
            data_dir.mkdir()
            size = write_records(data_dir / "train_features_0.jsonl", count, base)
            print(
                f"-- {count:,} records ({size / 2**20:,.0f} MB of JSON lines, X {count * 2381 * 4 / 2**20:,.0f} MB)",
                flush=True,
            )
            parsed = measure("parse", data_dir, 1)
            print(
                f"{'orjson parse alone (floor)':<28} {parsed['driver_mb']:6,.0f} MB {'-':>9} "
                f"{parsed['seconds']:7.1f} s {parsed['rows'] / parsed['seconds']:7.0f}",
                flush=True,
            )
            baseline = None if skip_previous else measure("previous", data_dir, args.processes)
            for result in filter(None, [baseline, measure("resumable", data_dir, args.processes)]):
                ratio = (
                    "    1.00x     1.00x   1.00x"
                    if result is baseline or baseline is None
                    else f"{result['driver_mb'] / baseline['driver_mb']:8.2f}x"
                    + (
                        f"{result['worker_mb'] / baseline['worker_mb']:9.2f}x"
                        if baseline["worker_mb"]
                        else f"{'-':>10}"
                    )
                    + f"{result['seconds'] / baseline['seconds']:7.2f}x"
                )
                label = "previous driver (baseline)" if result is baseline else "resumable, bounded"
                print(
                    f"{label:<28} {result['driver_mb']:6,.0f} MB {result['worker_mb']:6,.0f} MB "
                    f"{result['seconds']:7.1f} s {result['rows'] / result['seconds']:7.0f} {ratio}"
                    f"   {result['seconds'] / parsed['seconds']:5.2f}x parse",
                    flush=True,
                )
            for path in data_dir.iterdir():
                path.unlink()
            data_dir.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
