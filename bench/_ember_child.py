"""ember's own extraction and vectorization, timed on request, for ``bench.ember_baseline``.

Runs in ember's virtual environment (LIEF 0.12.3, elastic/ember's ``features.py`` with the two
patches of ``scripts/ember_reference.py``), never in Vigil's, and imports nothing of Vigil. It reads
one JSON request a line from stdin and answers each with one JSON line on stdout:

* ``{"op": "extract", "files": [path, ...], "records": path or null}``: each file read and
  ``json.dumps(raw_features(bytez))``, as ember's ``create_data`` does: ``{"seconds": s}``; the
  records are written to ``records`` (JSON lines) after the clock stops, where one is given;
* ``{"op": "vectorize", "lines": path, "out": path}``: each line of ``lines`` through
  ``process_raw_features(json.loads(line))`` into a float32 matrix, as ember's ``vectorize`` does;
  the matrix is saved to ``out`` (``.npy``) after the clock stops: ``{"seconds": s, "rows": n}``.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np


def load_patched_ember(features_py: str):
    spec = importlib.util.spec_from_file_location(
        "ember_reference", Path(__file__).resolve().parents[1] / "scripts" / "ember_reference.py"
    )
    assert spec is not None and spec.loader is not None
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    return reference.load_ember(Path(features_py))


def serve(features_py: str) -> None:
    # ember prints LIEF's errors with print(): they go to stderr, stdout carries only the answers
    answers, sys.stdout = sys.stdout, sys.stderr
    extractor = load_patched_ember(features_py).PEFeatureExtractor(2)
    for line in sys.stdin:
        request = json.loads(line)
        started = time.perf_counter()
        if request["op"] == "extract":
            records = []
            for path in request["files"]:
                with open(path, "rb") as handle:
                    records.append(json.dumps(extractor.raw_features(handle.read())))
            answer = {"seconds": time.perf_counter() - started}
            if request.get("records"):
                Path(request["records"]).write_text("".join(record + "\n" for record in records))
        else:
            with open(request["lines"], "rb") as handle:
                lines = handle.read().splitlines()
            X = np.zeros((len(lines), extractor.dim), dtype=np.float32)
            for row, text in enumerate(lines):
                X[row] = extractor.process_raw_features(json.loads(text))
            answer = {"seconds": time.perf_counter() - started, "rows": len(lines)}
            np.save(request["out"], X, allow_pickle=False)
        print(json.dumps(answer), file=answers, flush=True)


if __name__ == "__main__":
    serve(sys.argv[1])
