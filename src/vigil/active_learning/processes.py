"""Alectio's four user processes, with the platform's exact contracts, over ember's memmaps.

``args`` is the dict read from config.yaml (:func:`load_config`)::

    DATA_DIR: folder with X_train.dat, y_train.dat, X_test.dat, y_test.dat (ember's layout)
    EXPT_DIR: folder of this experiment's checkpoints ckpt_{loop}{CKPT_EXT}
    CKPT_EXT: ".pkl"
    TRAIN_SIZE: 100000   # the pool: the first TRAIN_SIZE labelled train rows (null: all)
    TEST_SIZE: 25000     # the first TEST_SIZE labelled test rows (null: all)
    exp_name: "Ember"

Indices are positions in the pool: index ``i`` is the ``i``-th train row whose label is not -1
(ember keeps unlabelled rows in its files). Checkpoints hold the fitted classifier,
written atomically, so a crash mid-train never leaves a half-written or clobbered checkpoint.
They are skops archives (see :mod:`vigil.artifacts`), not pickles: loading one runs no code.

Example::

    args = load_config("config.yaml")
    train(args, labeled=list(range(500)), resume_from=None, ckpt_file="ckpt_0.pkl")
    test(args, ckpt_file="ckpt_0.pkl")["predictions"][:5]
    infer(args, unlabeled=range(500, 1000), ckpt_file="ckpt_0.pkl")["outputs"][500]
    {'softmax': [0.93, 0.07], 'prediction': 0}
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import yaml

from vigil.active_learning.data import iter_rows, labelled_rows, open_vectorized_split, take_rows
from vigil.artifacts import dumps_model, loads_model
from vigil.errors import ArtifactIntegrityError, InvalidInput, UnprocessableInput, VigilError
from vigil.files import atomic_write

CONFIG_KEYS = ("DATA_DIR", "EXPT_DIR", "CKPT_EXT", "TRAIN_SIZE", "TEST_SIZE", "exp_name")
SAFE_EXT = re.compile(r"\.[A-Za-z0-9]{1,10}")  # fullmatch
# ckpt_<loop>: ASCII digits only (\d takes any script's digits), and no more than a loop can count
CKPT_LOOP = r"ckpt_([0-9]{1,10})"


class CheckpointNotFound(VigilError):
    status = 404


# --------------------------------------------------------------------------- config


def load_config(path: str | Path, **overrides: Any) -> dict:
    """Read config.yaml; relative DATA_DIR / EXPT_DIR are taken relative to the file's folder."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise UnprocessableInput(f"Alectio config {path} not found", {"field": "config"}) from None
    except yaml.YAMLError as exc:
        raise InvalidInput(f"Alectio config {path} is not valid YAML: {exc}", {"field": "config"}) from None
    if not isinstance(raw, dict):
        raise InvalidInput(f"Alectio config {path} must be a mapping", {"field": "config"})
    raw.update(overrides)
    return normalise_args(raw, base_dir=path.parent)


def normalise_args(raw: dict, base_dir: str | Path = ".") -> dict:
    """Check and complete an args dict (the config's keys are kept, extra keys pass through)."""
    args = dict(raw)
    for key in ("DATA_DIR", "EXPT_DIR"):
        if not args.get(key):
            raise InvalidInput(f"config key {key} is missing", {"field": key})
        folder = Path(str(args[key])).expanduser()
        args[key] = str(folder if folder.is_absolute() else (Path(base_dir) / folder).resolve())
    args.setdefault("CKPT_EXT", ".pkl")
    if not SAFE_EXT.fullmatch(str(args["CKPT_EXT"])):
        raise InvalidInput("CKPT_EXT must look like '.pkl'", {"field": "CKPT_EXT", "value": args["CKPT_EXT"]})
    for key in ("TRAIN_SIZE", "TEST_SIZE"):
        value = args.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise InvalidInput(f"{key} must be a positive integer or null", {"field": key, "value": value})
        args[key] = value
    args.setdefault("exp_name", "Ember")
    return args


# --------------------------------------------------------------------------- names and indices


def checkpoint_path(args: dict, name: Any, field: str, must_exist: bool) -> Path:
    """Path of checkpoint ``name`` in EXPT_DIR; anything but ``ckpt_<loop><CKPT_EXT>`` is refused.

    The SDK's Flask wrapper passes ``ckpt_<loop>`` without the extension; that form is accepted too.
    """
    ext = args["CKPT_EXT"]
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"{field} must be a checkpoint name like 'ckpt_0{ext}'", {"field": field, "value": name})
    if "/" in name or "\\" in name or ".." in name or "\x00" in name:
        raise InvalidInput(
            f"{field}: path components are not allowed in checkpoint names", {"field": field, "value": name}
        )
    if re.fullmatch(CKPT_LOOP, name):
        name += ext
    if not re.fullmatch(CKPT_LOOP + re.escape(ext), name):
        raise InvalidInput(
            f"{field}: unknown checkpoint name '{name}', expected ckpt_<loop>{ext}", {"field": field, "value": name}
        )
    path = Path(args["EXPT_DIR"]) / name
    if must_exist and not path.is_file():
        raise CheckpointNotFound(
            f"{field}: checkpoint '{name}' does not exist in this experiment", {"field": field, "value": name}
        )
    return path


def checkpoint_loop(name: str) -> int:
    return int(re.match(CKPT_LOOP, name).group(1))


def validate_indices(
    indices: Iterable, size: int, field: str, allow_empty: bool = False, drop_duplicates: bool = False
) -> np.ndarray:
    """Indices as a sorted int64 array; out-of-range or non-integer ones are refused, and so are
    duplicated ones unless ``drop_duplicates`` (then they are removed)."""
    if isinstance(indices, range):
        values = np.arange(indices.start, indices.stop, indices.step, dtype=np.int64)
    elif isinstance(indices, np.ndarray) and np.issubdtype(indices.dtype, np.integer):
        values = indices.astype(np.int64).ravel()
    else:
        listed = list(indices) if not isinstance(indices, np.ndarray) else indices.tolist()
        for position, value in enumerate(listed):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise InvalidInput(
                    f"{field}[{position}] must be an integer index",
                    {"field": field, "index": position, "value": repr(value)[:40]},
                )
        values = np.asarray(listed, dtype=np.int64)
    if values.size == 0 and not allow_empty:
        raise InvalidInput(f"{field} is empty", {"field": field})
    bad = np.flatnonzero((values < 0) | (values >= size))
    if bad.size:
        position = int(bad[0])
        raise InvalidInput(
            f"{field}[{position}] = {int(values[position])} is outside 0..{size - 1}",
            {"field": field, "index": position, "value": int(values[position]), "size": size},
        )
    ordered = np.sort(values)
    if drop_duplicates:
        return np.unique(ordered)
    duplicated = ordered[1:][ordered[1:] == ordered[:-1]]
    if duplicated.size:
        repeated = int(duplicated[0])
        raise InvalidInput(
            f"{field}: index {repeated} appears more than once",
            {"field": field, "value": repeated, "index": int(np.flatnonzero(values == repeated)[1])},
        )
    return ordered


# --------------------------------------------------------------------------- data and model


def train_pool(args: dict):
    split = open_vectorized_split(args["DATA_DIR"], "train")
    return split, labelled_rows(split, args.get("TRAIN_SIZE"))


def test_set(args: dict):
    split = open_vectorized_split(args["DATA_DIR"], "test")
    return split, labelled_rows(split, args.get("TEST_SIZE"))


def pool_size(args: dict) -> int:
    return len(train_pool(args)[1])


def make_model(args: dict):
    """A fresh classifier for loop 0: the ember task's LightGBM preset named by the optional config key
    ``PRESET`` (default ``alectio``: ``LGBMClassifier()`` with library defaults, as Alectio's example)."""
    from vigil.tasks.ember import make_estimator

    try:
        return make_estimator(str(args.get("PRESET", "alectio")), n_jobs=int(args.get("N_JOBS", 1)))
    except (ValueError, FileNotFoundError) as exc:
        raise InvalidInput(f"PRESET: {exc}", {"field": "PRESET"}) from None


def _dump_atomically(model: Any, path: Path) -> None:
    atomic_write(path, dumps_model(model))


def load_checkpoint(path: Path):
    """A checkpoint is a skops archive of the classifier: loading it builds only trusted types, so a
    file planted in EXPT_DIR cannot run code (joblib/pickle checkpoints are refused)."""
    try:
        return loads_model(path.read_bytes())
    except ArtifactIntegrityError as exc:
        raise UnprocessableInput(
            f"checkpoint {path.name} refused: {exc.error}", {"field": "ckpt_file", "value": path.name}
        ) from None


def _predict_proba(model, X, rows: np.ndarray) -> np.ndarray:
    proba = np.empty((len(rows), 2), dtype=np.float64)
    for part, block in iter_rows(X, rows):
        proba[part] = model.predict_proba(block)
    return proba


# --------------------------------------------------------------------------- the four processes


def train(args: dict, labeled, resume_from, ckpt_file) -> dict:
    """Fit on the labelled pool indices and save ``ckpt_file``; ``resume_from`` names the previous loop's
    checkpoint, whose hyper-parameters are reused (LightGBM is refitted on the grown labelled set rather
    than boosted further, so the model does not grow with every loop)."""
    target = checkpoint_path(args, ckpt_file, "ckpt_file", must_exist=False)
    previous = None
    if resume_from is not None:
        previous = load_checkpoint(checkpoint_path(args, resume_from, "resume_from", must_exist=True))
    split, rows = train_pool(args)
    # The SDK's caller passes the union of every loop's selection, re-selected records included:
    # they are trained on once, and the answer says how many repeats were dropped.
    given = len(labeled) if hasattr(labeled, "__len__") else None
    unique = validate_indices(labeled, len(rows), "labeled", drop_duplicates=True)
    chosen = rows[unique]
    X = take_rows(split.X, chosen)
    y = np.asarray(split.y[chosen]).astype(np.int64)
    classes = np.unique(y)
    if classes.size < 2:
        raise UnprocessableInput(
            "labeled: the labelled records hold a single class; a classifier needs both",
            {"field": "labeled", "classes": classes.tolist()},
        )
    if previous is not None:
        from sklearn.base import clone

        model = clone(previous)
    else:
        model = make_model(args)
    model.fit(X, y)
    _dump_atomically(model, target)
    return {
        "labels": y,
        "predictions": model.predict(X).astype(np.int64),
        "duplicates_dropped": 0 if given is None else given - int(unique.size),
    }


def test(args: dict, ckpt_file) -> dict:
    """Predict the test set: ``{"predictions", "labels"}`` (plus ``"scores"``, P(malicious), for ROC AUC)."""
    model = load_checkpoint(checkpoint_path(args, ckpt_file, "ckpt_file", must_exist=True))
    split, rows = test_set(args)
    proba = _predict_proba(model, split.X, rows)
    return {
        "predictions": proba.argmax(axis=1).astype(np.int64),
        "labels": np.asarray(split.y[rows]).astype(np.int64),
        "scores": proba[:, 1],
    }


def infer(args: dict, unlabeled, ckpt_file) -> dict:
    """Class probabilities of the unlabelled pool indices, keys in ascending index order."""
    split, rows = train_pool(args)
    indices = validate_indices(unlabeled, len(rows), "unlabeled", allow_empty=True)
    model = load_checkpoint(checkpoint_path(args, ckpt_file, "ckpt_file", must_exist=True))
    proba = _predict_proba(model, split.X, rows[indices])
    outputs = {
        int(index): {"softmax": [float(p[0]), float(p[1])], "prediction": int(p[1] > p[0])}
        for index, p in zip(indices, proba)
    }
    return {"outputs": outputs}


def getdatasetstate(args: dict) -> dict:
    """Index -> record reference; memmap rows have no file names, so each index maps to itself."""
    return {index: index for index in range(pool_size(args))}
