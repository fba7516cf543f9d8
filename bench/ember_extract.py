"""EMBER raw-feature extraction per core against LIEF's own parse + read and the previous Vigil code.

    python -m bench.ember_extract [--dir FOLDER_OF_PE_FILES] [--rounds 3] [--min-mb 4] [--grow-kb 0]
                                  [--baseline COMMIT]

All in one process, one core, the same files, rounds interleaved (best round of each):

* ``read + LIEF parse``: ``path.read_bytes()`` and ``lief.PE.parse`` (what no extractor can avoid);
* ``previous Vigil``: ``FeatureExtractor(2).raw_features`` + ``json.dumps`` of the features.py of
  commit 7809f26 (before issue 17: regex strings, one entropy bin per distinct window in Python),
  loaded from git; issue 17 measured ember + LIEF 0.12.3 at 3.0x that code's time (20.0 s vs 6.6 s
  on 209 real PE files, 153 MB), so ``previous x 3.0`` stands in for ember, which is not installed;
* ``read + sha256``: reading each file and hashing it, which every raw record includes (a floor
  for any extractor of ember's record, next to LIEF's);
* ``numpy blocks (7204570)``: main before the compiled byte passes (numpy byte-level blocks);
* ``Vigil``: the same with the current code, whose raw records are checked equal to the previous;
* ``Vigil at COMMIT`` (with ``--baseline COMMIT``): features.py and byte_kernels.py of that commit,
  for a before / after of the compiled passes in the same rounds (its records are checked equal too).

Files: the PE files under --dir (recursively), or else pip's distlib launchers and data/ember's real
PE files; the list is repeated until it holds --min-mb. The shipped files are small (2-170 KB, where
per-file costs weigh most); ``--grow-kb 730`` appends the other files' bytes to each as an overlay up to
that size (issue 17's real corpus averages 730 KB a file), still parsed by LIEF as the same PE.
A per-block split of Vigil's time follows, with the part of the section block that is LIEF computing
each section's entropy (LIEF does that when asked, not when it parses).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

from bench.common import REPO, best_of_rounds_by_clock, check_time_target, module_at, print_best

PREVIOUS = "7809f26"  # the merge before issue 17's extraction work
NUMPY_BLOCKS = "7204570"  # main before the compiled (numba) byte passes: the numpy byte-level blocks
EMBER_OVER_PREVIOUS = 20.0 / 6.6  # issue 17's side-by-side measurement (ember+LIEF 0.12.3 / Vigil)


def pe_files(folder: str | None, min_mb: float) -> list[Path]:
    import pip

    if folder:
        files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.read_bytes()[:2] == b"MZ")
    else:
        files = sorted((Path(pip.__file__).parent / "_vendor" / "distlib").glob("*.exe"))
        files += sorted(
            p for p in (REPO / "data" / "ember").rglob("*") if p.is_file() and p.suffix in (".exe", ".dll", ".efi")
        )
    if not files:
        raise SystemExit("no PE files found")
    chosen, size = [], 0
    while size < min_mb * 2**20 or len(chosen) < len(files):
        chosen.append(files[len(chosen) % len(files)])
        size += chosen[-1].stat().st_size
    return chosen


def load_previous(folder: Path, commit: str = PREVIOUS):
    """The features module of ``commit``, or None where git cannot give it."""
    return module_at(commit, "src/vigil/tasks/ember/features.py", folder, f"features_{commit}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.ember_extract", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", help="a folder of PE files (default: the launchers and data/ember)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-mb", type=float, default=4.0, help="repeat the files up to this many MB")
    parser.add_argument("--grow-kb", type=int, default=0, help="append an overlay to each file up to this size")
    parser.add_argument("--baseline", help="also time the features.py and byte_kernels.py of this commit")
    args = parser.parse_args(argv)

    from vigil.tasks.ember import features

    with tempfile.TemporaryDirectory() as folder:
        previous = load_previous(Path(folder))
        numpy_blocks = load_previous(Path(folder), NUMPY_BLOCKS)
        baseline = load_baseline(Path(folder), args.baseline) if args.baseline else None
        files = pe_files(args.dir, args.min_mb)
        if args.grow_kb:
            files = grown(files, args.grow_kb * 1024, Path(folder), args.min_mb)
        return measure(args, features, previous, files, numpy_blocks, baseline)


def load_baseline(folder: Path, commit: str):
    """features.py of ``commit`` calling the byte_kernels.py of the same commit (not the current one)."""
    baseline = load_previous(folder, commit)
    kernels = module_at(commit, "src/vigil/tasks/ember/byte_kernels.py", folder, f"byte_kernels_{commit}")
    if baseline is None or kernels is None:
        raise SystemExit(f"git cannot give the EMBER features of {commit}")
    baseline._byte_kernels = lambda: kernels
    return baseline


def grown(files: list[Path], size: int, folder: Path, min_mb: float) -> list[Path]:
    """Each distinct file with the others' bytes appended (an overlay) up to ``size``, repeated to min_mb."""
    distinct = sorted(set(files))
    pool = b"".join(p.read_bytes() for p in distinct)
    out = []
    for i, path in enumerate(distinct):
        bytez = path.read_bytes()
        start = (i * 7919) % len(pool)
        overlay = (pool[start:] + pool) * (1 + size // len(pool))
        target = folder / f"grown-{i}-{path.name}"
        target.write_bytes((bytez + overlay)[: max(size, len(bytez))])
        out.append(target)
    return pe_files(str(folder), min_mb)


def measure(args, features, previous, files: list[Path], numpy_blocks=None, baseline=None) -> int:
    total_mb = sum(p.stat().st_size for p in files) / 2**20
    current = features.FeatureExtractor(2)
    old = previous.FeatureExtractor(2) if previous else None
    current.raw_features(files[0].read_bytes())  # warm up (LIEF's first parse, numpy's tables)
    if old is not None:
        for path in sorted(set(files)):
            assert old.raw_features(path.read_bytes()) == current.raw_features(path.read_bytes()), path

    def parse_and_read():
        for path in files:
            features.parse_pe(path.read_bytes())

    def extract(extractor):
        def run():
            for path in files:
                json.dumps(extractor.raw_features(path.read_bytes()))

        return run

    def read_and_hash():
        for path in files:
            hashlib.sha256(path.read_bytes()).hexdigest()

    runs = {
        "read + LIEF parse": parse_and_read,
        "read + sha256 (in every record)": read_and_hash,
        "Vigil": extract(current),
    }
    if old is not None:
        runs["previous Vigil"] = extract(old)
    if numpy_blocks is not None:
        runs["numpy blocks (7204570)"] = extract(numpy_blocks.FeatureExtractor(2))
    before = baseline.FeatureExtractor(2) if baseline is not None else None
    if before is not None:
        for path in sorted(set(files)):
            assert before.raw_features(path.read_bytes()) == current.raw_features(path.read_bytes()), path
        runs[f"Vigil at {args.baseline}"] = extract(before)
    clocks = best_of_rounds_by_clock(runs, args.rounds)
    best = clocks["wall"]
    vigil = best["Vigil"]
    print(
        f"bench.ember_extract: {len(files)} files ({len(set(files))} distinct), {total_mb:.1f} MB, "
        f"1 process, best of {args.rounds} interleaved rounds"
    )
    print_best(best, "read + LIEF parse", "LIEF parse+read", width=34, amount=total_mb, unit="MB/s", digits=1)
    cpu = clocks["cpu"]
    print(
        f"thread CPU (least of the same rounds): Vigil {cpu['Vigil']:.3f} s, read + LIEF parse "
        f"{cpu['read + LIEF parse']:.3f} s, read + sha256 {cpu['read + sha256 (in every record)']:.3f} s"
    )
    check_time_target("EMBER extraction vs LIEF's parse + read", clocks, "Vigil", "read + LIEF parse", 3)
    if old is not None:
        speedup = best["previous Vigil"] / vigil
        print(
            f"Vigil vs previous Vigil: {speedup:.2f}x faster; vs ember (previous x {EMBER_OVER_PREVIOUS:.2f}, "
            f"issue 17): ~{speedup * EMBER_OVER_PREVIOUS:.1f}x faster"
        )
    if numpy_blocks is not None:
        print(f"Vigil vs the numpy blocks of {NUMPY_BLOCKS}: {best['numpy blocks (7204570)'] / vigil:.2f}x faster")

    binaries = [(p.read_bytes(), None) for p in files]
    binaries = [(b, features.parse_pe(b)) for b, _ in binaries]
    extractors = {"Vigil": current, **({f"Vigil at {args.baseline}": before} if before is not None else {})}
    split: dict[str, dict[str, float]] = {name: {} for name in extractors}
    for block_index in range(len(current.blocks)):  # each block of each extractor, one after the other
        for name, extractor in extractors.items():
            block = extractor.blocks[block_index]
            started = time.perf_counter()
            for bytez, binary in binaries:
                try:
                    block.raw_features(bytez, binary)
                except Exception:
                    block.raw_features(bytez, None)
            split[name][block.name] = time.perf_counter() - started
    for name, seconds_of in split.items():
        print(f"{name} per block (s): " + ", ".join(f"{block} {seconds:.3f}" for block, seconds in seconds_of.items()))
    # LIEF computes a section's entropy when it is asked (a pass over the section's bytes in C++), so
    # that is LIEF's work inside the section block, outside "read + LIEF parse"
    started = time.perf_counter()
    for _, binary in binaries:
        if binary is not None:
            [section.entropy for section in binary.sections]
    print(f"  of which LIEF's own section entropy (in section): {time.perf_counter() - started:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
