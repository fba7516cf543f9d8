"""elastic/ember's Python API on Vigil: change ``import ember`` to ``from vigil import ember_compat as ember``.

Same names, signatures and outputs as ``ember/__init__.py`` (elastic/ember d97a0b5), computed by
Vigil's EMBER code (``vigil.tasks.ember``): ``create_vectorized_features``, ``vectorize_subset``,
``vectorize``, ``read_vectorized_features``, ``create_metadata``, ``read_metadata_record``,
``read_metadata``, ``raw_feature_iterator``, ``train_model`` (a ``lightgbm.Booster``, whose
``save_model`` writes ember's ``model.txt``), ``optimize_model``, ``predict_sample`` and
``features.PEFeatureExtractor``. ember's two scripts run through it unchanged but for the import::

    ember.create_vectorized_features(data_dir, 2)                 # scripts/init_ember.py
    ember.create_metadata(data_dir)
    lgbm_model = ember.train_model(data_dir, params, 2)
    lgbm_model.save_model(os.path.join(data_dir, "model.txt"))

    lgbm_model = lightgbm.Booster(model_file="model.txt")        # scripts/classify_binaries.py
    score = ember.predict_sample(lgbm_model, open(path, "rb").read(), 2)

Where Vigil is more lenient than ember (a superset: what runs on ember runs here):

* train files: ember opens all of ``train_features_0.jsonl`` .. ``train_features_5.jsonl`` and fails
  if one is missing; here the ones present are read, in that order (at least one is needed);
* a line that is not JSON or lacks a feature block is reported on stderr (``vigil: bad line
  FILE:LINE: reason``) and gets a zero row with label -1 (so training skips it) instead of ending
  the run; a record without ``label`` gets -1;
* ``vectorize_subset`` runs in 2 worker processes (ember: one per core) and checks that ``nrows`` is
  the number of lines;
* ``train_model`` does not add ``application`` to the caller's ``params`` dict (ember's
  ``params.update`` changed the caller's dict and its own mutable default); the model gets it.

Other differences: ``optimize_model`` builds ``LGBMClassifier(..., verbose=-1)`` where ember passed
``silent=True`` (LightGBM 4 no longer knows ``silent``) and takes keyword-only extras (a smaller
``param_grid``, ``feature_version``, ``n_jobs``); ``raw_features`` does not print ``lief error:``
for files LIEF cannot parse (they get ember's fallback record either way); for feature version 1,
ordinal imports keep LIEF's empty name, as in the EMBER 2017 data (ember's last code writes
``ordinal<N>`` in both versions).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from vigil.ember_compat import features
from vigil.ember_compat.features import PEFeatureExtractor
from vigil.tasks.ember.model import labelled_rows
from vigil.tasks.ember.vectorize import count_lines, iter_raw_lines, read_vectorized, vectorize_record
from vigil.tasks.ember.vectorize import read_metadata as _read_metadata
from vigil.tasks.ember.vectorize import vectorize_subset as _vectorize_subset

__all__ = [
    "features",
    "PEFeatureExtractor",
    "raw_feature_iterator",
    "vectorize",
    "vectorize_unpack",
    "vectorize_subset",
    "create_vectorized_features",
    "read_vectorized_features",
    "read_metadata_record",
    "create_metadata",
    "read_metadata",
    "optimize_model",
    "train_model",
    "predict_sample",
    "OPTIMIZE_PARAM_GRID",
]

METADATA_KEYS = ("sha256", "appeared", "label", "avclass")
# ember's optimize_model() search grid (108 combinations, 3 time-ordered folds).
OPTIMIZE_PARAM_GRID = {
    "boosting_type": ["gbdt"],
    "objective": ["binary"],
    "num_iterations": [500, 1000],
    "learning_rate": [0.005, 0.05],
    "num_leaves": [512, 1024, 2048],
    "feature_fraction": [0.5, 0.8, 1.0],
    "bagging_fraction": [0.5, 0.8, 1.0],
}


def _train_paths(data_dir) -> list[str]:
    """ember's train files that exist, in ember's order (train_features_0 .. 5)."""
    paths = [os.path.join(data_dir, f"train_features_{i}.jsonl") for i in range(6)]
    present = [path for path in paths if os.path.exists(path)]
    if not present:
        raise FileNotFoundError(f"no train_features_0.jsonl .. train_features_5.jsonl in {data_dir}")
    return present


def _test_paths(data_dir) -> list[str]:
    path = os.path.join(data_dir, "test_features.jsonl")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist")
    return [path]


# -- raw records ------------------------------------------------------------------------------
def raw_feature_iterator(file_paths):
    """Each line of the files (with its newline), file after file, as ember yields them."""
    for _, _, line in iter_raw_lines([Path(p) for p in file_paths]):
        yield line


def read_metadata_record(raw_features_string):
    """The metadata fields (sha256, appeared, label, avclass) a raw JSON line has."""
    record = json.loads(raw_features_string)
    return {key: record[key] for key in METADATA_KEYS if key in record}


# -- vectorizing ------------------------------------------------------------------------------
def vectorize(irow, raw_features_string, X_path, y_path, extractor, nrows):
    """Vectorize one raw JSON line into row ``irow`` of the memmaps (ember's per-row worker)."""
    vector, label, _ = vectorize_record(extractor, raw_features_string)
    y = np.memmap(y_path, dtype=np.float32, mode="r+", shape=nrows)
    y[irow] = label
    X = np.memmap(X_path, dtype=np.float32, mode="r+", shape=(nrows, extractor.dim))
    X[irow] = vector
    X.flush()
    y.flush()


def vectorize_unpack(args):
    return vectorize(*args)


def vectorize_subset(X_path, y_path, raw_feature_paths, extractor, nrows):
    """Write X (nrows x extractor.dim) and y (nrows) float32 memmaps; row i = line i of the files."""
    paths = [Path(p) for p in raw_feature_paths]
    lines = count_lines(paths)
    if lines != nrows:
        raise ValueError(f"nrows is {nrows} but {', '.join(map(str, paths))} hold {lines} lines")
    if getattr(extractor, "is_standard", True):
        report, _ = _vectorize_subset(
            Path(X_path),
            Path(y_path),
            paths,
            feature_version=extractor.feature_version,
            subset=Path(X_path).stem.removeprefix("X_"),
        )
        for bad in report.bad_lines:
            print(f"vigil: bad line {bad}", file=sys.stderr)
        return
    # A features_file selection: not the full feature version, so vectorized here, one process.
    if nrows == 0:  # np.memmap cannot map an empty file
        open(X_path, "wb").close()
        open(y_path, "wb").close()
        return
    X = np.memmap(X_path, dtype=np.float32, mode="w+", shape=(nrows, extractor.dim))
    y = np.memmap(y_path, dtype=np.float32, mode="w+", shape=nrows)
    for row, (path, number, line) in enumerate(iter_raw_lines(paths)):
        try:
            X[row], y[row], _ = vectorize_record(extractor, line)
        except ValueError as exc:
            print(f"vigil: bad line {path}:{number}: {exc}", file=sys.stderr)
            X[row], y[row] = 0.0, -1.0
    X.flush()
    y.flush()


def create_vectorized_features(data_dir, feature_version=2):
    """X_train.dat, y_train.dat, X_test.dat, y_test.dat in ``data_dir`` from its raw JSON lines."""
    extractor = PEFeatureExtractor(feature_version)

    for subset, label, paths in (
        ("train", "training", _train_paths(data_dir)),
        ("test", "test", _test_paths(data_dir)),
    ):
        print(f"Vectorizing {label} set")  # ember's own progress lines
        vectorize_subset(
            os.path.join(data_dir, f"X_{subset}.dat"),
            os.path.join(data_dir, f"y_{subset}.dat"),
            paths,
            extractor,
            count_lines([Path(p) for p in paths]),
        )


def read_vectorized_features(data_dir, subset=None, feature_version=2):
    """Read-only memmaps: (X_train, y_train, X_test, y_test) for ``subset=None``, else (X, y);
    ``None`` for a subset other than "train" and "test"."""
    if subset is not None and subset not in ("train", "test"):
        return None
    PEFeatureExtractor(feature_version)  # ember builds one here (its dim; and its LIEF warning)
    if subset is not None:
        return read_vectorized(data_dir, subset, feature_version)
    return (*read_vectorized(data_dir, "train", feature_version), *read_vectorized(data_dir, "test", feature_version))


# -- metadata ---------------------------------------------------------------------------------
def _metadata_records(paths: list[str], processes: int) -> list[dict]:
    lines = raw_feature_iterator(paths)
    if processes <= 1:
        return [read_metadata_record(line) for line in lines]
    with multiprocessing.get_context("fork" if sys.platform != "win32" else "spawn").Pool(processes) as pool:
        return list(pool.imap(read_metadata_record, lines, chunksize=64))


def create_metadata(data_dir, *, processes=None):
    """train_metadata.csv, test_metadata.csv and metadata.csv (with ``subset``); returns the last.

    Columns are the metadata keys the first train record has, in ember's order (sha256, appeared,
    label, avclass: EMBER 2017 has no avclass); the index column is unnamed, as pandas writes it.
    """
    processes = processes or min(2, os.cpu_count() or 1)
    train_records = _metadata_records(_train_paths(data_dir), processes)
    test_records = _metadata_records(_test_paths(data_dir), processes)
    first = (train_records or test_records or [dict.fromkeys(METADATA_KEYS)])[0]
    keys = [key for key in METADATA_KEYS if key in first]

    pd.DataFrame(train_records, columns=keys).to_csv(os.path.join(data_dir, "train_metadata.csv"))
    pd.DataFrame(test_records, columns=keys).to_csv(os.path.join(data_dir, "test_metadata.csv"))
    metadf = pd.DataFrame(
        [{**r, "subset": "train"} for r in train_records] + [{**r, "subset": "test"} for r in test_records],
        columns=[*keys, "subset"],
    )
    metadf.to_csv(os.path.join(data_dir, "metadata.csv"))
    return metadf


def read_metadata(data_dir):
    """metadata.csv as a DataFrame (index from its first column)."""
    return _read_metadata(data_dir)


# -- LightGBM ---------------------------------------------------------------------------------
def _labelled_train(data_dir, feature_version) -> tuple[np.ndarray, np.ndarray]:
    X, y = read_vectorized(data_dir, "train", feature_version)
    rows = labelled_rows(y)  # ember drops the label -1 rows
    return np.asarray(X[rows]), np.asarray(y[rows])


def optimize_model(data_dir, *, param_grid=None, feature_version=2, n_jobs=-1, verbose=3):
    """ember's grid search: best LightGBM parameters by ROC AUC up to 0.5 % FPR over 3 time-ordered
    folds of the labelled train rows (``OPTIMIZE_PARAM_GRID`` unless ``param_grid`` is given).

    As in ember, the scorer is ``make_scorer(roc_auc_score, max_fpr=5e-3)``, which scores the
    predicted labels (not probabilities), and the folds are ``TimeSeriesSplit(n_splits=3)``: train
    rows are in order of ``appeared``.
    """
    import lightgbm
    from sklearn.metrics import make_scorer, roc_auc_score
    from sklearn.model_selection import GridSearchCV, TimeSeriesSplit

    X_train, y_train = _labelled_train(data_dir, feature_version)
    score = make_scorer(roc_auc_score, max_fpr=5e-3)
    model = lightgbm.LGBMClassifier(boosting_type="gbdt", n_jobs=n_jobs, verbose=-1)
    folds = TimeSeriesSplit(n_splits=3).split(X_train)
    grid = GridSearchCV(
        estimator=model,
        cv=folds,
        param_grid=param_grid or OPTIMIZE_PARAM_GRID,
        scoring=score,
        n_jobs=1,
        verbose=verbose,
    )
    grid.fit(X_train, y_train)
    return grid.best_params_


def train_model(data_dir, params={}, feature_version=2):  # noqa: B006 (ember's signature; never mutated)
    """A ``lightgbm.Booster`` trained with ``params`` (plus ``application=binary``) on the labelled
    train rows of ``data_dir``."""
    import lightgbm

    params = {**params, "application": "binary"}
    X_train, y_train = _labelled_train(data_dir, feature_version)
    return lightgbm.train(params, lightgbm.Dataset(X_train, y_train))


def predict_sample(lgbm_model, file_data, feature_version=2):
    """The model's score for one PE file's bytes."""
    extractor = PEFeatureExtractor(feature_version)
    vector = np.array(extractor.feature_vector(file_data), dtype=np.float32)
    return lgbm_model.predict([vector])[0]
