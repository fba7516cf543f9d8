"""Active-learning loop cost: scoring the unlabelled pool chunk by chunk from ember's memmaps
(what ``infer`` does) against loading the pool into memory first (the baseline), and one whole
``/one_loop`` (train + test + infer + bucket files) as the pool grows.

Run: ``python -m bench.active_learning [--rows 20000]``. The data are generated vectors in ember's
layout (``vigil.active_learning.synthetic``): ../shared has no vectorized EMBER release, only raw
samples, so nothing of it is read here.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np


def _timed(fn):
    tracemalloc.start()
    started = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result, seconds, peak


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bench.active_learning")
    parser.add_argument("--rows", type=int, default=20000, help="train pool rows (2381 floats each)")
    parser.add_argument("--labelled", type=int, default=500)
    options = parser.parse_args(argv)

    from vigil.active_learning import processes
    from vigil.active_learning.pipeline import AlectioPipeline
    from vigil.active_learning.storage import LocalBucketStore, write_json, write_pickle
    from vigil.active_learning.synthetic import write_synthetic_vectorized

    shared = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ember"
    print(
        f"../shared/data/ember {'has no vectorized X_train.dat' if shared.is_dir() else 'is absent'}: "
        f"using {options.rows} generated rows in ember's layout"
    )
    with tempfile.TemporaryDirectory(prefix="vigil-bench-al-") as folder:
        folder = Path(folder)
        data = write_synthetic_vectorized(folder / "data", train_rows=options.rows, test_rows=2000)
        args = processes.normalise_args(
            {"DATA_DIR": str(data), "EXPT_DIR": str(folder / "expt"), "TRAIN_SIZE": None, "TEST_SIZE": None}
        )
        pool = processes.pool_size(args)
        labelled = list(range(options.labelled))
        processes.train(args, labelled, None, "ckpt_0.pkl")
        unlabelled = np.arange(options.labelled, pool)

        def in_memory():
            # the checkpoint is a skops archive (processes.train), read through the trusted-type check
            model = processes.load_checkpoint(Path(args["EXPT_DIR"]) / "ckpt_0.pkl")
            split, rows = processes.train_pool(args)
            X = np.asarray(split.X[rows[unlabelled]], dtype=np.float32)  # the whole pool at once
            return model.predict_proba(X)

        baseline, base_s, base_peak = _timed(in_memory)
        chunked, chunk_s, chunk_peak = _timed(lambda: processes.infer(args, unlabelled, "ckpt_0.pkl"))
        assert np.allclose([v["softmax"][1] for v in chunked["outputs"].values()], baseline[:, 1])
        print(
            f"infer over {len(unlabelled)} unlabelled rows: in memory {base_s:.2f} s, peak {base_peak / 1e6:.0f} MB "
            f"(baseline); memmap chunks {chunk_s:.2f} s ({chunk_s / base_s:.2f}x time), peak "
            f"{chunk_peak / 1e6:.0f} MB ({chunk_peak / base_peak:.2f}x memory)"
        )

        store = LocalBucketStore(folder / "bucket")
        pipeline = AlectioPipeline(args, store)
        for size in sorted({pool // 4, pool}):
            project = f"p{size}"
            write_json(store, "b", f"{project}/meta.json", {"train_size": size})
            write_pickle(store, "b", f"{project}/e/selected_indices_0.pkl", labelled)
            payload = {
                "experiment_id": "e",
                "project_id": project,
                "cur_loop": 0,
                "user_id": "u",
                "bucket_name": "b",
                "type": "Classification",
            }
            started = time.perf_counter()
            job = pipeline.start_loop(payload, background=False)["job"]
            seconds = time.perf_counter() - started
            print(
                f"one_loop, train_size {size}: {seconds:.2f} s ({job['status']}), "
                f"{seconds / (size / 1000):.3f} s per 1000 pool rows"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
