"""EMBER vectorization per core against parsing the lines alone and ember's per-line loop.

    python -m bench.ember_vectorize [--records 8330] [--rounds 3]

Input: the real raw records shipped in data/ember (EMBER2018's first train lines, the pip launchers'
and the Debian PE files' records), repeated to --records lines. All in one process, one core, rounds
interleaved (best round of each):

* ``json.loads alone`` / ``orjson.loads alone``: every line parsed, nothing else, a batch at a time
  with the collector paused, as Vigil's batches parse them (the floor);
* ``ember-style loop (previous Vigil)``: ``process_raw_features(json.loads(line))`` line by line
  with the features.py of commit 7204570 (before this work), loaded from git: one FeatureHasher call
  per block per record, as ember's ``vectorize`` does (ember itself is not installed here);
* ``previous Vigil batches``: the same old module's ``process_raw_features_batch`` on batches of
  json.loads'ed lines; issue 17 measured ember at 1.9x that (5.9 s vs 3.1 s), hence the estimate;
* ``Vigil``: ``vigil ember vectorize``'s own code in one process (``vectorize._vectorize_batch`` on
  batches of BATCH_LINES lines: the line scanner, orjson, the whole-batch blocks, the rows written
  with pwrite), as a run of ``vectorize.CACHED_SCANNER_MIN_LINES`` lines or more reads them once
  the scanner is in the signed kernel cache (:mod:`vigil.kernel_cache`), and one of
  ``vectorize.SCANNER_MIN_LINES`` lines or more before that; its compilation and its load from the cache are timed in fresh processes on their own line;
* ``Vigil, general path``: the same without the line scanner, as smaller runs read them before the
  scanner was ever compiled on the machine.

The vectors of both are checked equal. Figures: time, records/s, and the ratio to ``orjson.loads``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.common import REPO, best_of_rounds_by_clock, check_time_target, module_at, print_best, vectorize_run
from vigil.heap import collector_paused

PREVIOUS = "7204570"
EMBER_OVER_PREVIOUS = 5.9 / 3.1  # issue 17: ember 5.9 s, Vigil's batches 3.1 s on the same 8,330 records


def real_lines() -> list[bytes]:
    lines = []
    for name in ("train_features_0_head.jsonl", "reference_pip_launchers_raw.jsonl", "reference_debian_raw.jsonl"):
        lines += [line for line in (REPO / "data" / "ember" / name).read_bytes().splitlines() if line.strip()]
    return lines


def _parse_run(parse, batches: list[list[bytes]]):
    """Every line parsed as Vigil's batches parse them: a batch at a time, the collector paused,
    each batch's records let go before the next (kept alive, 8,330 parsed records would have the
    collector walk them again and again, and the allocator grow the heap: up to 3x the parse)."""

    def run() -> None:
        with collector_paused():
            for batch in batches:
                [parse(line) for line in batch]

    return run


def load_previous(folder: Path):
    return module_at(PREVIOUS, "src/vigil/tasks/ember/features.py", folder, "features_previous")


def scanner_start(cache: bool) -> float:
    """Seconds a fresh process takes to have the line scanner ready: compiled (the kernel cache off)
    or loaded from the signed kernel cache (vigil.kernel_cache); the imports of numba and of the
    EMBER blocks (which the scanner reads a key list from) not counted: a vectorizer has them anyway."""
    code = (
        "import time, numba, vigil.tasks.ember.features; from vigil.tasks.ember.line_scanner import compile_kernels; "
        "t = time.perf_counter(); compile_kernels(); print(time.perf_counter() - t)"
    )
    environment = dict(os.environ, **({} if cache else {"VIGIL_KERNEL_CACHE_DIR": "off"}))
    done = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.ember_vectorize", description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=8330)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    import orjson

    from vigil.tasks.ember import vectorize
    from vigil.tasks.ember.features import FeatureExtractor
    from vigil.tasks.ember.line_scanner import compile_kernels

    base = real_lines()
    lines = [base[i % len(base)] for i in range(args.records)]
    megabytes = sum(map(len, lines)) / 2**20
    with tempfile.TemporaryDirectory() as folder:
        previous = load_previous(Path(folder))
        X_path = Path(folder) / "X.dat"
        dim = FeatureExtractor(2).dim
        vigil = vectorize_run(lines, Path(folder), dim, scan=True)
        compile_kernels()
        compile_seconds, load_seconds = scanner_start(cache=False), scanner_start(cache=True)
        step = vectorize.BATCH_LINES
        batches = [lines[start : start + step] for start in range(0, len(lines), step)]

        runs = {
            "json.loads alone": _parse_run(json.loads, batches),
            "orjson.loads alone": _parse_run(orjson.loads, batches),
            "Vigil": vigil,
            "Vigil, general path": vectorize_run(lines, Path(folder), dim, scan=False),
        }
        if previous is not None:
            old = previous.FeatureExtractor(2)
            runs["ember-style loop (previous Vigil)"] = lambda: np.vstack(
                [old.process_raw_features(json.loads(line)) for line in lines]
            )
            runs["previous Vigil batches"] = lambda: [
                old.process_raw_features_batch([json.loads(line) for line in batch]) for batch in batches
            ]
        clocks = best_of_rounds_by_clock(runs, args.rounds)
        best, cpu = clocks["wall"], clocks["cpu"]
        X = np.memmap(X_path, dtype=np.float32, mode="r", shape=(len(lines), dim))
        if previous is not None:
            reference = np.vstack([old.process_raw_features(json.loads(line)) for line in base])
            assert np.array_equal(np.asarray(X[: len(base)]), reference), "vectors differ from the previous code"
        del X
    print(
        f"bench.ember_vectorize: {len(lines)} real raw records ({len(base)} distinct), {megabytes:.1f} MB of JSON "
        f"lines, 1 process (pid {os.getpid()}), best of {args.rounds} interleaved rounds"
    )
    print_best(best, "orjson.loads alone", "orjson parse", width=36, amount=len(lines), unit="rec/s", digits=0)
    print(
        f"thread CPU (least of the same rounds): Vigil {cpu['Vigil']:.3f} s, orjson.loads alone "
        f"{cpu['orjson.loads alone']:.3f} s, general path {cpu['Vigil, general path']:.3f} s "
        f"({cpu['Vigil, general path'] / cpu['orjson.loads alone']:.2f}x the parse)"
    )
    print(
        f"line scanner, in a fresh process: compiled in {compile_seconds:.1f} s, loaded from the signed kernel cache "
        f"in {load_seconds:.2f} s; it saves {(best['Vigil, general path'] - best['Vigil']) / len(lines) * 1e6:.1f} us "
        f"a line, so `vigil ember vectorize` uses it from {vectorize.CACHED_SCANNER_MIN_LINES:,} lines once it is in the "
        f"cache, else from {vectorize.SCANNER_MIN_LINES:,}"
    )
    check_time_target(
        f"EMBER vectorization vs orjson's parse (runs of >= {vectorize.CACHED_SCANNER_MIN_LINES:,} lines once the "
        f"scanner is cached, else >= {vectorize.SCANNER_MIN_LINES:,})",
        clocks,
        "Vigil",
        "orjson.loads alone",
        2,
    )
    if previous is not None:
        batched = best["previous Vigil batches"] / best["Vigil"]
        print(
            f"Vigil vs the ember-style loop: {best['ember-style loop (previous Vigil)'] / best['Vigil']:.2f}x faster; "
            f"vs previous Vigil batches {batched:.2f}x; vs ember (previous batches x {EMBER_OVER_PREVIOUS:.2f}, "
            f"issue 17): ~{batched * EMBER_OVER_PREVIOUS:.1f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
