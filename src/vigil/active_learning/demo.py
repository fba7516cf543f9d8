"""A ready-to-serve Alectio demo on a fresh clone: data, config.yaml and the platform's bucket files.

``vigil ember alectio-demo OUT`` writes::

    OUT/data/        ember's vectorized memmaps of the ember demo records (derived from shipped real ones)
    OUT/config.yaml  the Alectio args (DATA_DIR, EXPT_DIR, ...) pointing at them
    OUT/bucket/demo/p1/meta.json                  {"0": "Benign", "1": "Malicious", "train_size": N}
    OUT/bucket/demo/p1/e1/selected_indices_0.pkl  the loop-0 selection, as the platform writes it

so that ``VIGIL_ALECTIO_CONFIG=OUT/config.yaml VIGIL_BUCKET_ROOT=OUT/bucket vigil serve`` answers the
README's ``/train``, ``/test``, ``/infer`` and ``/one_loop`` examples as written.
"""

from __future__ import annotations

from pathlib import Path

import yaml

DEMO_BUCKET, DEMO_PROJECT, DEMO_EXPERIMENT = "demo", "p1", "e1"


def write_alectio_demo(
    out: Path | str, n_train: int = 2000, n_test: int = 500, initial: int = 200, seed: int = 0
) -> dict:
    """Write the demo folder; returns the paths and the pool size."""
    from vigil.active_learning import processes
    from vigil.active_learning.experiment import initial_selection
    from vigil.active_learning.storage import LocalBucketStore, write_json, write_pickle
    from vigil.files import atomic_write
    from vigil.tasks.ember.demo_data import write_demo_data
    from vigil.tasks.ember.vectorize import create_vectorized_features

    out = Path(out)
    data = out / "data"
    write_demo_data(data, n_train=n_train, n_test=n_test, seed=seed)
    create_vectorized_features(data, feature_version=2, processes=1, progress=False)
    config = {
        "DATA_DIR": "data",
        "EXPT_DIR": "experiments",
        "CKPT_EXT": ".pkl",
        "TRAIN_SIZE": None,
        "TEST_SIZE": None,
        "exp_name": "Ember",
        "PRESET": "alectio",
        "N_JOBS": 1,
    }
    config_path = out / "config.yaml"
    atomic_write(config_path, "# Alectio args for the demo (vigil ember alectio-demo)\n" + yaml.safe_dump(config))
    args = processes.load_config(config_path)
    pool = processes.pool_size(args)
    store = LocalBucketStore(out / "bucket")
    write_json(store, DEMO_BUCKET, f"{DEMO_PROJECT}/meta.json", {"0": "Benign", "1": "Malicious", "train_size": pool})
    write_pickle(
        store,
        DEMO_BUCKET,
        f"{DEMO_PROJECT}/{DEMO_EXPERIMENT}/selected_indices_0.pkl",
        initial_selection(args, min(initial, pool - 1), seed),
    )
    return {
        "config": config_path,
        "bucket_root": out / "bucket",
        "data_dir": data,
        "pool_size": pool,
        "test_size": len(processes.test_set(args)[1]),
    }


__all__ = ["write_alectio_demo"]
