"""EMBER vectorization block by block: each feature block's ``process_raw_features_batch`` now and
at an earlier commit, on the same freshly parsed batches.

    python -m bench.ember_blocks [--base 43aa1d7] [--lines FILE.jsonl] [--records 8330] [--rounds 5]

Lines: ``--lines`` (raw JSON records, one a line), else the real records shipped in data/ember,
repeated to --records. Every batch (``vectorize.BATCH_LINES`` lines) is parsed afresh for each side,
as ``vigil ember vectorize`` parses it, so no side finds its strings' hashes cached by the other or
by an earlier round; the collector is paused, as in ``_vectorize_batch``. The figures are CPU time
of this process (``time.process_time``, less disturbed than wall time by other work on the cores),
the median over --rounds of each block's total over all batches; the sides alternate which goes
first. Each block's matrices are checked bit for bit equal on every batch.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import module_at
from vigil.heap import collector_paused

BASE = "43aa1d7"  # main before branch vecspeed2 (issue 17 item 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.ember_blocks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default=BASE, help="the commit whose features.py is the baseline")
    parser.add_argument("--lines", type=Path, help="a JSON-lines file of raw records (default: data/ember's)")
    parser.add_argument("--records", type=int, default=8330)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    from bench.ember_vectorize import real_lines
    from vigil.tasks.ember.features import FeatureExtractor
    from vigil.tasks.ember.vectorize import BATCH_LINES, load_json_line

    distinct = args.lines.read_bytes().splitlines() if args.lines else real_lines()
    distinct = [line for line in distinct if line.strip()]
    lines = [distinct[i % len(distinct)] for i in range(args.records)]
    with tempfile.TemporaryDirectory() as folder:
        previous = module_at(args.base, "src/vigil/tasks/ember/features.py", Path(folder), "features_base")
    if previous is None:
        print(f"bench.ember_blocks: git cannot give features.py at {args.base}; nothing measured")
        return 0
    sides = {f"at {args.base}": previous.FeatureExtractor(2), "now": FeatureExtractor(2)}
    names = [block.name for block in sides["now"].blocks]
    totals: dict[tuple[str, str], list[float]] = {(side, name): [] for side in sides for name in [*names, "all"]}
    with collector_paused():
        for round_ in range(args.rounds):
            spent = dict.fromkeys(totals, 0.0)
            order = list(sides) if round_ % 2 == 0 else list(sides)[::-1]
            for start in range(0, len(lines), BATCH_LINES):
                matrices: dict[str, list[np.ndarray]] = {}
                for side in order:
                    records = [load_json_line(line) for line in lines[start : start + BATCH_LINES]]
                    matrices[side] = []
                    for block in sides[side].blocks:
                        raws = [record.get(block.name, []) for record in records]
                        started = time.process_time()
                        matrices[side].append(block.process_raw_features_batch(raws))
                        spent[side, block.name] += time.process_time() - started
                    del records
                for name, *pair in zip(names, *matrices.values()):
                    assert all(m.tobytes() == pair[0].tobytes() for m in pair), f"block {name} differs"
            for side in sides:
                spent[side, "all"] = sum(spent[side, name] for name in names)
            for key, seconds in spent.items():
                totals[key].append(seconds)
    before, now = sides
    print(
        f"bench.ember_blocks: {len(lines)} records ({len(distinct)} distinct), batches of {BATCH_LINES}, "
        f"median CPU seconds over {args.rounds} rounds; matrices bit for bit equal"
    )
    print(f"{'block':<18} {before:>12} {now:>9} {'change':>8}")
    for name in [*names, "all"]:
        old, new = statistics.median(totals[before, name]), statistics.median(totals[now, name])
        print(f"{name:<18} {old:10.3f} s {new:7.3f} s {(new / old - 1) * 100 if old else 0:+7.0f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
