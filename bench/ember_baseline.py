"""Vigil's EMBER extraction and vectorization against ember's own code, measured in the same run.

    python -m bench.ember_baseline [--dir FOLDER_OF_PE_FILES] [--min-mb 16] [--records 8330] [--rounds 5]

ember (elastic/ember ``features.py`` + LIEF 0.12.3) cannot share Vigil's environment (LIEF 1.0), so
it runs in a child process of its own virtual environment (``bench/_ember_child.py``), kept alive
for the whole run, and the rounds alternate: ember's round, then Vigil's, on the same files and
lines, each timed where it runs (no start-up or pipe time in either). Best of --rounds; one process
each, so one core each: the figures are per core.

* extraction: each PE file read and its raw record written as JSON (ember's ``create_data``), the
  files of ``bench.ember_extract`` (--dir, else pip's launchers and data/ember's PE files, repeated
  to --min-mb);
* vectorization: real raw records (ember's own of the distinct files above, written by the child
  in this run, and data/ember's version-2 records), repeated to --records, to a float32 matrix: ember's per-line ``process_raw_features(json.loads(line))``
  against ``vigil ember vectorize``'s batches; the two matrices are checked bit for bit equal.

ember is not part of this repository (AGPL-3.0) and is not needed for anything else; set it up
once, outside git, with ``make ember-baseline`` (a venv under runs/ with lief==0.12.3 and this
project's numpy and scikit-learn, ember's ``features.py`` from a clone of elastic/ember). Without
it this module says so and measures nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import REPO, check_target, vectorize_run

EMBER_PYTHON = REPO / "runs" / "ember-ref-venv" / "bin" / "python"
EMBER_FEATURES = REPO / "runs" / "ember-src" / "ember" / "features.py"


class EmberChild:
    """ember's code in its own venv, answering one timing request at a time."""

    def __init__(self, python: Path, features_py: Path, stderr):
        self.stderr = stderr
        self.process = subprocess.Popen(
            [str(python), str(REPO / "bench" / "_ember_child.py"), str(features_py)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )

    def ask(self, **request) -> dict:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            self.stderr.seek(0)
            tail = self.stderr.read()[-2000:]
            raise RuntimeError(f"ember's child process ended (exit {self.process.wait()}):\n{tail}")
        return json.loads(answer)

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.ember_baseline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", help="a folder of PE files (default: the launchers and data/ember)")
    parser.add_argument("--min-mb", type=float, default=4.0, help="repeat the files up to this many MB")
    parser.add_argument("--records", type=int, default=8330)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ember-python", type=Path, default=EMBER_PYTHON)
    parser.add_argument("--ember-features", type=Path, default=EMBER_FEATURES)
    args = parser.parse_args(argv)
    missing = [str(p) for p in (args.ember_python, args.ember_features) if not p.exists()]
    if missing:
        print(f"bench.ember_baseline: ember is not set up ({', '.join(missing)} missing); run `make ember-baseline`")
        return 0

    from bench.ember_extract import pe_files
    from vigil.tasks.ember.features import FeatureExtractor

    files = pe_files(args.dir, args.min_mb)
    extractor = FeatureExtractor(2)
    with tempfile.TemporaryDirectory() as name, open(Path(name) / "ember.stderr", "w+") as ember_stderr:
        folder = Path(name)
        child = EmberChild(args.ember_python, args.ember_features, ember_stderr)
        try:
            lines, distinct = _records(args, child, folder, files)
            best = _measure(args, child, folder, files, lines, extractor)
        finally:
            child.close()
        vigil_X = np.memmap(folder / "X.dat", dtype=np.float32, mode="r", shape=(len(lines), extractor.dim))
        same = bool(np.array_equal(np.load(folder / "ember_X.npy"), vigil_X))
        del vigil_X
    megabytes = sum(p.stat().st_size for p in files) / 2**20
    print(
        f"bench.ember_baseline: ember (elastic/ember + LIEF 0.12.3, its own venv) and Vigil in the same run, "
        f"1 process each, best of {args.rounds} alternating rounds"
    )
    print(f"{'path':<48} {'ember':>9} {'Vigil':>9} {'Vigil faster':>13}")
    for what, label in (
        ("extract", f"extraction, {len(files)} files ({len(set(files))} distinct), {megabytes:.1f} MB"),
        ("vectorize", f"vectorization, {len(lines)} records ({distinct} distinct)"),
    ):
        ember, vigil = best[f"ember {what}"], best[f"Vigil {what}"]
        print(f"{label:<48} {ember:7.3f} s {vigil:7.3f} s {ember / vigil:12.1f}x")
    for what, times in (("extract", 10), ("vectorize", 8)):
        faster = best[f"ember {what}"] / best[f"Vigil {what}"]
        check_target(
            f"EMBER {what}, 1 process, vs ember itself", f"{faster:.1f}x faster", f">= {times}x", faster >= times
        )
    print(f"vectors bit for bit equal to ember's: {'yes' if same else 'NO'}")
    return 0 if same else 1


def _records(args, child: EmberChild, folder: Path, files: list[Path]) -> tuple[list[bytes], int]:
    """--records raw records and how many are distinct: ember's own records of the distinct files
    (written by the child in this run) and data/ember's real ones that have every version-2 block
    (ember's own code refuses the EMBER2017 head, which lacks ``datadirectories``), repeated."""
    from bench.ember_vectorize import real_lines

    records = folder / "records.jsonl"
    child.ask(op="extract", files=sorted({str(p) for p in files}), records=str(records))
    base = records.read_bytes().splitlines() + [line for line in real_lines() if b'"datadirectories"' in line]
    lines = [base[i % len(base)] for i in range(args.records)]
    (folder / "lines.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    return lines, len(set(base))


def _measure(args, child: EmberChild, folder: Path, files: list[Path], lines: list[bytes], extractor) -> dict:
    """Best seconds of ember's and Vigil's extraction and vectorization, rounds alternating. Vigil's
    matrix is left in folder/X.dat, ember's in folder/ember_X.npy."""

    def vigil_extract() -> None:
        for path in files:
            json.dumps(extractor.raw_features(path.read_bytes()))

    ember_runs = {
        "ember extract": {"op": "extract", "files": [str(p) for p in files]},
        "ember vectorize": {
            "op": "vectorize",
            "lines": str(folder / "lines.jsonl"),
            "out": str(folder / "ember_X.npy"),
        },
    }
    vigil_runs = {"Vigil extract": vigil_extract, "Vigil vectorize": vectorize_run(lines, folder, extractor.dim)}
    vigil_extract()  # warm up: LIEF's first parse, the compiled byte passes
    best = dict.fromkeys([*ember_runs, *vigil_runs], float("inf"))
    for _ in range(args.rounds):
        for (ember, request), (vigil, run) in zip(ember_runs.items(), vigil_runs.items()):
            best[ember] = min(best[ember], child.ask(**request)["seconds"])
            started = time.perf_counter()
            run()
            best[vigil] = min(best[vigil], time.perf_counter() - started)
    return best


if __name__ == "__main__":
    sys.exit(main())
