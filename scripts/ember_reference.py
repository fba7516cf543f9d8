#!/usr/bin/env python3
"""ember's own raw records and vectors (elastic/ember ``features.py`` + LIEF 0.12.3) for a PE corpus.

Runs in a separate virtual environment, never in Vigil's (LIEF 0.12.3 and 1.0 cannot share one)::

    python3 -m venv runs/ember-ref-venv
    runs/ember-ref-venv/bin/pip install lief==0.12.3 numpy scikit-learn
    # ember's source (AGPL-3.0, not part of this repository): elastic/ember HEAD d97a0b5,
    # ember/features.py copied to runs/ember-src/ember/features.py
    runs/ember-ref-venv/bin/python scripts/ember_reference.py \\
        --ember runs/ember-src/ember/features.py --corpus runs/pe-corpus --out runs/ember-ref

ember's ``features.py`` is loaded from a patched copy made next to it (``features_patched.py``),
with the same two patches as the shipped references (``data/ember/SOURCE.md``) and nothing else:

* numpy's removed ``np.int`` -> ``int`` (ByteEntropyHistogram's output array);
* the entry section name handed to ``FeatureHasher`` as ``list(name)``: what old scikit-learn did
  with ember's bare string (one token per character); modern scikit-learn raises on it.

Writes ``OUT/raw.jsonl`` (ember's raw record per manifest line, plus ``path``), ``OUT/vectors_v2.npy``
(float32, one row per line, same order) and ``OUT/errors.jsonl`` (files ember's code raised on).
Files are read in worker processes, each file in its own task, so a LIEF crash loses one file.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

PATCHES = [
    ("output = np.zeros((16, 16), dtype=np.int)", "output = np.zeros((16, 16), dtype=int)"),
    (
        "FeatureHasher(50, input_type=\"string\").transform([raw_obj['entry']])",
        "FeatureHasher(50, input_type=\"string\").transform([list(raw_obj['entry'])])",
    ),
]

_extractor = None


def load_ember(path: Path):
    source = path.read_text()
    for old, new in PATCHES:
        if source.count(old) != 1:
            raise SystemExit(f"{path}: expected exactly one {old!r} to patch")
        source = source.replace(old, new)
    patched = path.with_name("features_patched.py")
    patched.write_text(source)
    spec = importlib.util.spec_from_file_location("ember_features_patched", patched)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _init(ember_path: str) -> None:
    global _extractor
    import lief

    lief.logging.disable()
    _extractor = load_ember(Path(ember_path)).PEFeatureExtractor(feature_version=2, print_feature_warning=False)


def _one(path: str):
    import contextlib
    import io

    bytez = Path(path).read_bytes()
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # ember prints "lief error: ..."
            raw = _extractor.raw_features(bytez)
            vector = _extractor.process_raw_features(raw)
        # what ember's raw files hold: the record through JSON
        return json.loads(json.dumps(raw)), vector.tolist(), None
    except Exception as exc:  # noqa: BLE001 - reported per file
        return None, None, f"{type(exc).__name__}: {exc}"


def main() -> int:
    import lief
    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ember", type=Path, required=True, help="ember's features.py (unpatched)")
    parser.add_argument("--corpus", type=Path, default=Path("runs/pe-corpus"))
    parser.add_argument("--out", type=Path, default=Path("runs/ember-ref"))
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    manifest = [json.loads(line) for line in (args.corpus / "manifest.jsonl").read_text().splitlines()]
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"LIEF {lief.__version__}, {len(manifest)} files", file=sys.stderr)
    paths = [str(args.corpus / "files" / row["path"]) for row in manifest]
    results: list = [None] * len(paths)
    pending = list(range(len(paths)))
    while pending:  # a crashed worker breaks the pool: the files not done yet go to a new one
        with ProcessPoolExecutor(args.jobs, initializer=_init, initargs=(str(args.ember),)) as pool:
            futures = {i: pool.submit(_one, paths[i]) for i in pending}
            broken = []
            for i, future in futures.items():
                try:
                    results[i] = future.result()
                except BrokenProcessPool:
                    broken.append(i)
        if broken and len(broken) == len(pending):
            for i in broken:  # nothing finished: each alone, to find the crashing file
                with ProcessPoolExecutor(1, initializer=_init, initargs=(str(args.ember),)) as pool:
                    try:
                        results[i] = pool.submit(_one, paths[i]).result()
                    except BrokenProcessPool:
                        results[i] = (None, None, "worker crashed")
            broken = []
        pending = broken
    vectors = np.zeros((len(paths), 2381), dtype=np.float32)
    with (args.out / "raw.jsonl").open("w") as raw_file, (args.out / "errors.jsonl").open("w") as errors:
        for i, (row, (raw, vector, error)) in enumerate(zip(manifest, results)):
            if error:
                errors.write(json.dumps({"path": row["path"], "error": error}) + "\n")
                raw = {"sha256": row["sha256"], "error": error}
            else:
                vectors[i] = vector
            raw_file.write(json.dumps({"path": row["path"], **raw}) + "\n")
    np.save(args.out / "vectors_v2.npy", vectors)
    print(f"{sum(1 for r in results if r[2])} errors -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
