"""Vigil's EMBER extraction against ember's own (elastic/ember + LIEF 0.12.3), file by file, block by block.

    python -m bench.ember_parity [--corpus runs/pe-corpus] [--reference runs/ember-ref] [--jobs 2]
                                 [--details runs/ember-parity/differences.jsonl]

Inputs, built outside git (see README, "EMBER parity"):

* ``--corpus``: ``scripts/build_debian_pe_corpus.py``'s folder (``manifest.jsonl`` + ``files/``);
* ``--reference``: ``scripts/ember_reference.py``'s folder (``raw.jsonl``: ember's raw records,
  ``vectors_v2.npy``: ember's version-2 vectors, rows in manifest order).

Vigil's raw records come from ``FeatureExtractor(2).raw_features`` (what ``vigil ember extract``
runs in its children) and go through JSON as extract writes them; vectors from
``process_raw_features``. For each block it prints how many files have the same raw block (JSON
equal) and the same vector slice (bit for bit), then the files identical in every block. Each
differing file goes to ``--details`` with its blocks and the differing raw keys.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_extractor = None


def _init() -> None:
    global _extractor
    import warnings

    from vigil.tasks.ember import FeatureExtractor

    warnings.filterwarnings("ignore", category=RuntimeWarning)
    _extractor = FeatureExtractor(2)


def _raw(path: str) -> dict:
    return json.loads(json.dumps(_extractor.raw_features(Path(path).read_bytes())))


def _differing_keys(ours, theirs, prefix: str = "") -> list[str]:
    """Where two JSON values differ, as short paths (``sections[3].name``, ``[12]``)."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return [
            k
            for key in sorted(set(ours) | set(theirs), key=str)
            for k in _differing_keys(ours.get(key), theirs.get(key), f"{prefix}.{key}" if prefix else key)
        ]
    if isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs) and ours != theirs:
        if all(not isinstance(x, (dict, list)) for x in ours + theirs):
            return [prefix or "[]"]
        return [k for i, (a, b) in enumerate(zip(ours, theirs)) for k in _differing_keys(a, b, f"{prefix}[{i}]")]
    return [] if ours == theirs else [prefix or "value"]


def compare(manifest: list[dict], files: Path, reference_raw: list[dict], reference_vectors, jobs: int = 2):
    """(per-block counts, per-file differences)."""
    import numpy as np

    from vigil.tasks.ember import FeatureExtractor, block_slices

    paths = [str(files / row["path"]) for row in manifest]
    with ProcessPoolExecutor(max(1, jobs), initializer=_init) as pool:
        ours = list(pool.map(_raw, paths, chunksize=8))
    vectors = FeatureExtractor(2).process_raw_features_batch(ours)
    slices = block_slices(2)
    counts = {name: {"raw": 0, "vector": 0} for name in slices}
    counts["all"] = {"raw": 0, "vector": 0}
    differences = []
    for row, mine, theirs, vector, reference in zip(manifest, ours, reference_raw, vectors, reference_vectors):
        raw_diff, vector_diff = [], []
        for name, where in slices.items():
            same_raw = name in theirs and mine[name] == theirs[name]
            same_vector = "error" not in theirs and np.array_equal(vector[where], reference[where])
            counts[name]["raw"] += same_raw
            counts[name]["vector"] += same_vector
            if not same_raw:
                raw_diff.append(name)
            if not same_vector:
                vector_diff.append(name)
        counts["all"]["raw"] += not raw_diff
        counts["all"]["vector"] += not vector_diff
        if raw_diff or vector_diff:
            differences.append(
                {
                    "path": row["path"],
                    "package": row["package"],
                    "sha256": row["sha256"],
                    "raw_blocks": raw_diff,
                    "vector_blocks": vector_diff,
                    "raw_keys": {name: _differing_keys(mine[name], theirs.get(name))[:20] for name in raw_diff},
                }
            )
    return counts, differences


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=REPO / "runs" / "pe-corpus")
    parser.add_argument("--reference", type=Path, default=REPO / "runs" / "ember-ref")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--details", type=Path, default=REPO / "runs" / "ember-parity" / "differences.jsonl")
    parser.add_argument("--only", type=Path, help="a --details file: compare only the files listed in it")
    args = parser.parse_args(argv)
    manifest_path, raw_path = args.corpus / "manifest.jsonl", args.reference / "raw.jsonl"
    if not manifest_path.exists() or not raw_path.exists():
        print(
            f"no corpus or reference ({manifest_path}, {raw_path}): build them with "
            "scripts/build_debian_pe_corpus.py and scripts/ember_reference.py (README, EMBER parity)"
        )
        return 0
    manifest = [json.loads(line) for line in manifest_path.read_text().splitlines()]
    reference_raw = [json.loads(line) for line in raw_path.read_text().splitlines()]
    if [r["path"] for r in reference_raw] != [m["path"] for m in manifest]:
        print("the reference was made from another manifest: rebuild it")
        return 1
    reference_vectors = np.load(args.reference / "vectors_v2.npy")
    if args.only:
        wanted = {json.loads(line)["path"] for line in args.only.read_text().splitlines()}
        keep = [i for i, m in enumerate(manifest) if m["path"] in wanted]
        manifest, reference_raw = [manifest[i] for i in keep], [reference_raw[i] for i in keep]
        reference_vectors = reference_vectors[keep]
    counts, differences = compare(manifest, args.corpus / "files", reference_raw, reference_vectors, args.jobs)
    total = len(manifest)
    print(
        f"{total} PE files ({len({m['sha256'] for m in manifest})} distinct), "
        f"{len({m['package'] for m in manifest})} Debian packages; "
        f"{sum('error' in r for r in reference_raw)} that ember's code raised on"
    )
    print(f"{'block':<16}{'raw identical':>20}{'vector identical':>22}")
    for name, count in counts.items():
        print(
            f"{name:<16}{count['raw']:>12} {100 * count['raw'] / total:6.2f} %"
            f"{count['vector']:>14} {100 * count['vector'] / total:6.2f} %"
        )
    args.details.parent.mkdir(parents=True, exist_ok=True)
    with args.details.open("w") as handle:
        for row in differences:
            handle.write(json.dumps(row) + "\n")
    print(f"{len(differences)} differing files -> {args.details}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
