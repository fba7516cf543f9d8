"""One Alectio loop (``POST /one_loop``), as the platform's SDK runs it.

For loop ``L`` of experiment ``E`` of project ``P`` in bucket ``B``:

- reads ``P/meta.json`` (``train_size``; the pool size when absent) and ``P/E/selected_indices_{i}.pkl``
  (or ``.json`` / ``.npy``) for ``i <= L``: their union is the labelled set, everything else below
  ``train_size`` is unlabelled;
- runs ``train`` (resuming from ``ckpt_{L-1}``), ``test`` and ``infer``;
- writes back ``P/E/data_map.pkl`` and ``test_ground_truth.pkl`` (loop 0 only),
  ``insights_{L}.pkl``, ``test_predictions_{L}.pkl``, ``metrics_{L}.pkl``, ``infer_outputs_{L}.pkl``.

The same function runs behind the HTTP endpoint (as a background job) and in the local experiment
runner, so the CLI exercises exactly the platform's code path.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from vigil.active_learning import processes
from vigil.active_learning.storage import (
    BucketStore,
    index_key,
    inside,
    read_indices,
    read_json,
    safe_name,
    write_pickle,
)
from vigil.errors import InvalidInput, UnprocessableInput
from vigil.files import atomic_write
from vigil.safe_pickle import UnsafePickle

REQUIRED_KEYS = ("experiment_id", "project_id", "cur_loop", "user_id", "bucket_name", "type")
OPTIONAL_INT_KEYS = ("n_rec", "n_loop", "train_size")
SUPPORTED_TYPES = ("Classification", "Text Classification")
# The later SDK (``alectio_sdk.sdk.Pipeline``) names the same payload fields differently; each is read
# as the Flask-era key it stands for when that key is absent. ``tenant_id`` also stands for ``user_id``
# and prefixes the experiment's folder in the bucket (``<tenant>/<project>/<experiment>``), and
# ``training_set_size`` replaces meta.json's ``train_size``.
LATER_SDK_KEYS = {
    "current_loop": "cur_loop",
    "task_type": "type",
    "n_rec_per_loop": "n_rec",
    "training_set_size": "train_size",
    "tenant_id": "user_id",
}
LOOP_MESSAGE = "Loop Started - 200 status returned"

Progress = Callable[[str, float], None]


MAX_COUNT = 2**31 - 1  # loops and record counts; more would only make absurd file names


def _non_negative_int(value: Any, field: str) -> int:
    # The SDK does int(payload["cur_loop"]): numeric strings are accepted, but only plain ASCII digits
    # (int() would also take "3\n", " 3" and other scripts' digits).
    if isinstance(value, bool) or isinstance(value, str) and not re.fullmatch(r"[0-9]{1,10}", value):
        value = None
    try:
        number = int(value)
        if isinstance(value, float) and number != value:
            raise ValueError
    except (TypeError, ValueError):
        raise InvalidInput(f"{field} must be a non-negative integer", {"field": field, "value": value}) from None
    if number < 0:
        raise InvalidInput(f"{field} must be a non-negative integer, got {number}", {"field": field, "value": number})
    if number > MAX_COUNT:
        raise InvalidInput(f"{field} must be at most {MAX_COUNT}", {"field": field, "max": MAX_COUNT})
    return number


def validate_payload(payload: Any, require_loop: bool = True) -> dict:
    """The platform's payload, checked: ids safe as path components, ``cur_loop`` >= 0, known type."""
    if not isinstance(payload, dict):
        raise InvalidInput("the body must be a JSON object with the Alectio payload", {"field": "body"})
    payload = {
        **{
            old: payload[new]
            for new, old in LATER_SDK_KEYS.items()
            if new in payload and payload.get(old) in (None, "")
        },
        **payload,
    }
    if isinstance(payload.get("type"), str):  # the later SDK sends "classification", "text_classification"
        payload["type"] = {t.lower().replace(" ", "_"): t for t in SUPPORTED_TYPES}.get(
            payload["type"].lower().replace(" ", "_"), payload["type"]
        )
    keys = REQUIRED_KEYS if require_loop else ("experiment_id", "project_id")
    missing = [key for key in keys if payload.get(key) in (None, "")]
    if missing:
        raise InvalidInput(f"payload key {missing[0]} is missing", {"field": missing[0], "missing": missing})
    clean = dict(payload)
    for key in ("experiment_id", "project_id", "user_id", "bucket_name", "tenant_id"):
        if key in payload and payload[key] is not None:
            clean[key] = safe_name(str(payload[key]) if isinstance(payload[key], int) else payload[key], key)
    if require_loop:
        clean["cur_loop"] = _non_negative_int(payload["cur_loop"], "cur_loop")
        if payload["type"] not in SUPPORTED_TYPES:
            raise UnprocessableInput(
                f"type '{payload['type']}' is not supported; the EMBER model is a binary classifier",
                {"field": "type", "supported": list(SUPPORTED_TYPES)},
            )
    for key in OPTIONAL_INT_KEYS:
        if payload.get(key) is not None:
            clean[key] = _non_negative_int(payload[key], key)
    return clean


def experiment_key(payload: dict) -> str:
    """The experiment's folder in the bucket: ``<project>/<experiment>`` (the Flask-era SDK's layout for a
    dedicated bucket), or ``<tenant>/<project>/<experiment>`` for the later SDK's payloads."""
    prefix = f"{payload['tenant_id']}/" if payload.get("tenant_id") else ""
    return f"{prefix}{payload['project_id']}/{payload['experiment_id']}"


def checkpoint_keys(folder: str, name: str, ext: str) -> list[str]:
    """Where a cloned experiment's checkpoint may sit in the bucket (with or without the extension)."""
    stem = name[: -len(ext)] if name.endswith(ext) else name
    return [f"{folder}/{stem}{ext}", f"{folder}/{stem}"]


def experiment_args(base_args: dict, payload: dict) -> dict:
    """args for one experiment: checkpoints go to EXPT_DIR/<project_id>/<experiment_id>, so two
    experiments served by the same process never overwrite each other's ckpt_{loop}."""
    args = dict(base_args)
    folder = Path(base_args["EXPT_DIR"]) / payload["project_id"] / payload["experiment_id"]
    # A symlinked project or experiment folder must not take checkpoints and job files elsewhere.
    args["EXPT_DIR"] = str(inside(base_args["EXPT_DIR"], folder, "experiment folder"))
    return args


def classification_metrics(predictions, labels, scores=None) -> dict:
    """The metric keys the Alectio platform reads for classification, plus roc_auc when scores exist."""
    # Imported here: scikit-learn takes seconds to import, and every gunicorn worker imports this module.
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    from vigil.metrics import roc_auc

    predictions, labels = np.asarray(predictions).astype(int), np.asarray(labels).astype(int)
    classes = [0, 1]
    matrix = confusion_matrix(labels, predictions, labels=classes)
    precision, recall, f1, _ = precision_recall_fscore_support(labels, predictions, labels=classes, zero_division=0)
    fp = matrix.sum(axis=0) - np.diag(matrix)
    fn = matrix.sum(axis=1) - np.diag(matrix)
    tp = np.diag(matrix)
    tn = matrix.sum() - (fp + fn + tp)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc_per_class = np.nan_to_num(tp / matrix.sum(axis=1))
        disagreement = np.nan_to_num(fp / (fp + tn))
    metrics = {
        "accuracy": float((predictions == labels).mean()) if labels.size else 0.0,
        "f1_score_per_class": {k: float(v) for k, v in enumerate(f1)},
        "f1_score": float(f1.mean()),
        "precision_per_class": {k: float(v) for k, v in enumerate(precision)},
        "precision": float(precision.mean()),
        "recall_per_class": {k: float(v) for k, v in enumerate(recall)},
        "recall": float(recall.mean()),
        "confusion_matrix": matrix.tolist(),
        "acc_per_class": {k: round(float(v), 3) for k, v in enumerate(acc_per_class)},
        "label_disagreement": {k: round(float(v), 3) for k, v in enumerate(disagreement)},
    }
    if scores is not None and np.unique(labels).size == 2:
        metrics["roc_auc"] = roc_auc(labels, scores)
    return metrics


def labelled_indices(store: BucketStore, payload: dict, train_size: int) -> tuple[np.ndarray, int]:
    """Union of ``selected_indices_{i}`` (.json, .npy or .pkl) for ``i <= cur_loop``, checked against
    ``train_size``, and how many repeated indices the union dropped (the platform re-selects records
    across loops; the SDK deduplicates them too). No file may hold more indices than the pool has rows."""
    bucket, folder = payload["bucket_name"], experiment_key(payload)
    chosen: set[int] = set()
    read = 0
    for loop in range(payload["cur_loop"] + 1):
        key = index_key(folder, loop, store, bucket)
        field = f"selected_indices_{loop}.pkl"
        if key is None:
            raise UnprocessableInput(
                f"{folder}/{field} is missing from bucket {bucket}", {"field": field, "cur_loop": payload["cur_loop"]}
            )
        field = key.rsplit("/", 1)[-1]
        try:
            values = read_indices(store, bucket, key, max_items=train_size)
        except (ValueError, UnsafePickle) as exc:  # a malformed or hostile file is the platform's input error
            raise UnprocessableInput(
                f"{key} does not hold a list of integer indices: {exc}", {"field": field}
            ) from None
        bad = values[(values < 0) | (values >= train_size)]
        if bad.size:
            raise UnprocessableInput(
                f"{key} holds index {int(bad[0])}, outside 0..{train_size - 1}", {"field": field, "value": int(bad[0])}
            )
        chosen.update(values.tolist())
        read += values.size
    return np.array(sorted(chosen), dtype=np.int64), read - len(chosen)


def preflight(payload: dict, base_args: dict, store: BucketStore) -> None:
    """Cheap checks worth a synchronous 4xx before a job starts: the bucket files and the checkpoint
    the loop needs exist (their contents are checked by the loop itself)."""
    bucket, folder, loop = payload["bucket_name"], experiment_key(payload), payload["cur_loop"]
    meta_key = f"{folder.rsplit('/', 1)[0]}/meta.json"
    if payload.get("train_size") is None and not store.exists(bucket, meta_key):
        raise UnprocessableInput(f"{meta_key} is missing from bucket {bucket}", {"field": "meta.json"})
    for i in range(loop + 1):
        if index_key(folder, i, store, bucket) is None:
            raise UnprocessableInput(
                f"{folder}/selected_indices_{i}.pkl is missing from bucket {bucket}",
                {"field": f"selected_indices_{i}.pkl", "cur_loop": loop},
            )
    if loop > 0:
        args = experiment_args(base_args, payload)
        name = f"ckpt_{loop - 1}{args['CKPT_EXT']}"
        if not any(store.exists(bucket, key) for key in checkpoint_keys(folder, name, args["CKPT_EXT"])):
            processes.checkpoint_path(args, name, "cur_loop", must_exist=True)


# A checkpoint fetched from the bucket is another party's file: bounded, and loaded through the
# trusted-type check like any checkpoint.
MAX_CHECKPOINT_BYTES = 1 << 30


def fetch_checkpoint(store: BucketStore, bucket: str, folder: str, args: dict, name: str) -> bool:
    """Copy checkpoint ``name`` from the experiment's bucket folder into EXPT_DIR when it is not there
    (an experiment cloned on the platform resumes from a loop another server ran); False if absent."""
    target = processes.checkpoint_path(args, name, "cur_loop", must_exist=False)
    if target.is_file():
        return True
    for key in checkpoint_keys(folder, name, args["CKPT_EXT"]):
        if store.exists(bucket, key):
            atomic_write(target, store.read_bytes(bucket, key, max_bytes=MAX_CHECKPOINT_BYTES))
            return True
    return False


def run_one_loop(payload: dict, base_args: dict, store: BucketStore, progress: Progress | None = None) -> dict:
    """Run train, test and infer for ``payload['cur_loop']`` and write the loop's files to the bucket.

    Returns a summary: the callback body the SDK sends to the platform (the payload without ``type``,
    ``cur_loop`` and ``bucket_name``), the metrics and the labelled / unlabelled counts.
    """
    report = progress or (lambda stage, fraction: None)
    payload = validate_payload(payload)
    loop, bucket, folder = payload["cur_loop"], payload["bucket_name"], experiment_key(payload)
    args = experiment_args(base_args, payload)
    Path(args["EXPT_DIR"]).mkdir(parents=True, exist_ok=True)
    ext = args["CKPT_EXT"]

    report("reading meta.json and selected indices", 0.02)
    pool = processes.pool_size(args)
    if payload.get("train_size") is not None:  # the later SDK's training_set_size
        train_size = payload["train_size"]
    else:
        meta_key = f"{folder.rsplit('/', 1)[0]}/meta.json"
        if not store.exists(bucket, meta_key):
            raise UnprocessableInput(f"{meta_key} is missing from bucket {bucket}", {"field": "meta.json"})
        meta = read_json(store, bucket, meta_key)
        train_size = meta.get("train_size", pool) if isinstance(meta, dict) else pool
    if isinstance(train_size, bool) or not isinstance(train_size, int) or not 0 < train_size <= pool:
        raise UnprocessableInput(
            f"meta.json train_size must be an integer in 1..{pool} (the pool size)",
            {"field": "train_size", "value": train_size},
        )
    labeled, duplicates = labelled_indices(store, payload, train_size)
    if labeled.size == 0:
        raise UnprocessableInput(
            "no labelled records: the selected_indices files are empty", {"field": "selected_indices_0.pkl"}
        )

    resume_from = None
    if loop > 0:
        resume_from = f"ckpt_{loop - 1}{ext}"
        fetch_checkpoint(store, bucket, folder, args, resume_from)
        processes.checkpoint_path(args, resume_from, "cur_loop", must_exist=True)
    else:
        report("writing data_map.pkl", 0.05)
        write_pickle(store, bucket, f"{folder}/data_map.pkl", processes.getdatasetstate(args))
    ckpt_file = f"ckpt_{loop}{ext}"

    report("train", 0.1)
    started = time.monotonic()
    trained = processes.train(args, labeled=labeled.tolist(), resume_from=resume_from, ckpt_file=ckpt_file)
    classes, counts = np.unique(trained["labels"], return_counts=True)
    write_pickle(
        store,
        bucket,
        f"{folder}/insights_{loop}.pkl",
        {
            "train_time": time.monotonic() - started,
            "num_queried_per_class": {int(c): int(n) for c, n in zip(classes, counts)},
        },
    )
    # The checkpoint goes to the bucket too, so a clone of this experiment can resume from it.
    store.write_bytes(
        bucket,
        f"{folder}/{ckpt_file}",
        processes.checkpoint_path(args, ckpt_file, "ckpt_file", must_exist=True).read_bytes(),
    )

    report("test", 0.5)
    result = processes.test(args, ckpt_file=ckpt_file)
    predictions, ground_truth = result["predictions"], result["labels"]
    write_pickle(store, bucket, f"{folder}/test_predictions_{loop}.pkl", predictions)
    if loop == 0:
        write_pickle(store, bucket, f"{folder}/test_ground_truth.pkl", ground_truth)
    metrics = classification_metrics(predictions, ground_truth, result.get("scores"))
    write_pickle(store, bucket, f"{folder}/metrics_{loop}.pkl", metrics)

    report("infer", 0.7)
    unlabeled = np.setdiff1d(np.arange(train_size), labeled, assume_unique=True)
    outputs = processes.infer(args, unlabeled=unlabeled.tolist(), ckpt_file=ckpt_file)["outputs"]
    # The platform maps outputs positionally onto the sorted unlabelled indices (the SDK's remap).
    remapped = {int(index): value for index, value in zip(unlabeled, outputs.values())}
    write_pickle(store, bucket, f"{folder}/infer_outputs_{loop}.pkl", remapped)
    report("done", 1.0)

    callback_body = {k: v for k, v in payload.items() if k not in ("type", "cur_loop", "bucket_name")}
    return {
        "callback_body": callback_body,
        "cur_loop": loop,
        "labelled": int(labeled.size),
        "duplicates_dropped": duplicates,
        "unlabelled": int(unlabeled.size),
        "train_size": train_size,
        "checkpoint": ckpt_file,
        "metrics": {k: metrics[k] for k in ("accuracy", "f1_score", "precision", "recall", "roc_auc") if k in metrics},
    }
