"""elastic/ember's API through `from vigil import ember_compat as ember`: its two scripts' flows, its files.

The flows are the calls ember's `scripts/init_ember.py` (vectorize, metadata, train, save model.txt)
and `scripts/classify_binaries.py` (load model.txt, score PE files) make, re-typed here; the expected
outputs are ember's: its file names and layouts, its metadata columns, LightGBM's text model, and
vectors computed by ember's own code (data/ember/reference_*.npy, see data/ember/SOURCE.md).
"""

from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from vigil import ember_compat as ember
from vigil.tasks.ember import FeatureExtractor
from vigil.tasks.ember.demo_data import build_demo_records

DATA = Path(__file__).resolve().parents[2] / "data" / "ember"
PE_FILES = sorted((DATA / "pe").glob("*.exe"))
pytestmark = pytest.mark.filterwarnings("ignore:.*is not a valid:RuntimeWarning")

# init_ember.py's parameters, with fewer and smaller trees (the data is tiny) and one thread.
INIT_EMBER_PARAMS = {
    "boosting": "gbdt",
    "objective": "binary",
    "num_iterations": 1000,
    "learning_rate": 0.05,
    "num_leaves": 2048,
    "max_depth": 15,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.5,
}
SMALL = {"num_iterations": 8, "num_leaves": 8, "min_data_in_leaf": 5, "num_threads": 1, "verbose": -1}


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def launcher_reference() -> tuple[list[dict], np.ndarray]:
    raws = [json.loads(line) for line in (DATA / "reference_pip_launchers_raw.jsonl").read_text().splitlines()]
    return raws, np.load(DATA / "reference_pip_launchers_v2.npy")


@pytest.fixture(scope="module")
def ember2018_dir(tmp_path_factory) -> Path:
    """A v2 data dir in ember's file names: two train files, a test file with the real launcher records."""
    folder = tmp_path_factory.mktemp("ember2018")
    train, test = build_demo_records(n_train=80, n_test=30, seed=1)
    write_jsonl(folder / "train_features_0.jsonl", train[:50])
    write_jsonl(folder / "train_features_1.jsonl", train[50:])
    launchers, _ = launcher_reference()
    write_jsonl(folder / "test_features.jsonl", test + launchers)
    return folder


def lines_of(*paths: Path) -> list[dict]:
    return [json.loads(line) for path in paths for line in path.read_text().splitlines()]


def test_init_ember_then_classify_binaries(ember2018_dir, capsys):
    data_dir = str(ember2018_dir)
    train_records = lines_of(ember2018_dir / "train_features_0.jsonl", ember2018_dir / "train_features_1.jsonl")
    test_records = lines_of(ember2018_dir / "test_features.jsonl")

    # -- init_ember.py: vectorize ---------------------------------------------------------------
    ember.create_vectorized_features(data_dir, 2)
    out = capsys.readouterr().out
    assert "Vectorizing training set" in out and "Vectorizing test set" in out
    assert "WARNING: EMBER feature version 2 were computed using lief version 0.9.0-" in out
    extractor = FeatureExtractor(2)
    for subset, records in (("train", train_records), ("test", test_records)):
        X_path, y_path = ember2018_dir / f"X_{subset}.dat", ember2018_dir / f"y_{subset}.dat"
        assert X_path.stat().st_size == len(records) * 2381 * 4 and y_path.stat().st_size == len(records) * 4
        X = np.fromfile(X_path, dtype=np.float32).reshape(-1, 2381)  # raw float32, no header
        assert np.array_equal(X, np.vstack([extractor.process_raw_features(r) for r in records]))
        assert np.fromfile(y_path, dtype=np.float32).tolist() == [r["label"] for r in records]
    # the launchers' rows are the vectors ember's own code computed for them
    launchers, reference = launcher_reference()
    X_test = np.fromfile(ember2018_dir / "X_test.dat", dtype=np.float32).reshape(-1, 2381)
    assert np.array_equal(X_test[-len(launchers) :], reference)

    # -- init_ember.py -m: metadata -------------------------------------------------------------
    metadf = ember.create_metadata(data_dir)
    assert (ember2018_dir / "train_metadata.csv").read_text().splitlines()[0] == ",sha256,appeared,label,avclass"
    assert (ember2018_dir / "test_metadata.csv").read_text().splitlines()[0] == ",sha256,appeared,label,avclass"
    assert (ember2018_dir / "metadata.csv").read_text().splitlines()[0] == ",sha256,appeared,label,avclass,subset"
    assert list(metadf.columns) == ["sha256", "appeared", "label", "avclass", "subset"]
    assert metadf["sha256"].tolist() == [r["sha256"] for r in train_records + test_records]
    assert metadf["subset"].tolist() == ["train"] * len(train_records) + ["test"] * len(test_records)
    assert metadf["label"].tolist() == [r["label"] for r in train_records + test_records]
    read_back = ember.read_metadata(data_dir)
    assert read_back.index.tolist() == list(range(len(metadf)))
    assert read_back["sha256"].tolist() == metadf["sha256"].tolist()
    assert pd.read_csv(ember2018_dir / "train_metadata.csv", index_col=0).shape == (len(train_records), 4)

    # -- read_vectorized_features: ember's return shapes ------------------------------------------
    X_train, y_train, X_test_mm, y_test = ember.read_vectorized_features(data_dir)
    assert isinstance(X_train, np.memmap) and X_train.shape == (len(train_records), 2381)
    assert X_test_mm.shape == (len(test_records), 2381) and y_test.shape == (len(test_records),)
    X_only, y_only = ember.read_vectorized_features(data_dir, subset="train", feature_version=2)
    assert np.array_equal(X_only, X_train) and np.array_equal(y_only, y_train)
    assert ember.read_vectorized_features(data_dir, subset="validation") is None

    # -- init_ember.py -t: train and save model.txt ---------------------------------------------
    params = {**INIT_EMBER_PARAMS, **SMALL}
    given = dict(params)
    lgbm_model = ember.train_model(data_dir, params, 2)
    assert isinstance(lgbm_model, lgb.Booster) and lgbm_model.num_trees() == 8
    assert params == given  # the caller's dict is left alone
    model_txt = ember2018_dir / "model.txt"
    lgbm_model.save_model(str(model_txt))
    text = model_txt.read_text()
    assert text.startswith("tree\nversion=v4\nnum_class=1\n") and "objective=binary sigmoid:1" in text
    assert "max_feature_idx=2380" in text and "[num_iterations: 8]" in text and "[num_leaves: 8]" in text
    # ember's train_model is lgb.train(params + application=binary) on the rows labelled 0 or 1
    labelled = np.asarray(y_train) != -1
    assert 0 < labelled.sum() < len(train_records)
    same = lgb.train(
        {**params, "application": "binary"}, lgb.Dataset(np.asarray(X_train)[labelled], np.asarray(y_train)[labelled])
    )
    assert same.model_to_string() == lgbm_model.model_to_string()
    capsys.readouterr()

    # -- classify_binaries.py: load model.txt, score PE files ------------------------------------
    loaded = lgb.Booster(model_file=str(model_txt))
    assert np.array_equal(loaded.predict(np.asarray(X_test_mm)), lgbm_model.predict(np.asarray(X_test_mm)))
    by_sha = {r["sha256"]: i for i, r in enumerate(launchers)}
    assert len(PE_FILES) == 2
    for binary_path in PE_FILES:
        file_data = open(binary_path, "rb").read()
        score = ember.predict_sample(loaded, file_data, 2)
        expected = reference[by_sha[hashlib.sha256(file_data).hexdigest()]]  # ember's vector of this file
        assert isinstance(score, float) and score == loaded.predict(expected[None, :])[0]
        assert score == lgbm_model.predict([ember.features.PEFeatureExtractor(2, False).feature_vector(file_data)])[0]


def test_ember2017_feature_version_1_and_metadata_without_avclass(tmp_path, capsys):
    head = (DATA / "train_features_0_head.jsonl").read_text().splitlines()
    (tmp_path / "train_features_0.jsonl").write_text("\n".join(head) + "\n")
    (tmp_path / "test_features.jsonl").write_text("\n".join(head[:3]) + "\n")
    ember.create_vectorized_features(str(tmp_path), feature_version=1)
    X_train, y_train = ember.read_vectorized_features(str(tmp_path), "train", feature_version=1)
    assert X_train.shape == (10, 2351) and (y_train == 0).all()
    assert np.array_equal(X_train[:5], np.load(DATA / "reference_head_first5_v1.npy"))
    metadf = ember.create_metadata(str(tmp_path))
    assert list(metadf.columns) == ["sha256", "appeared", "label", "subset"]  # the 2017 records have no avclass
    assert (tmp_path / "metadata.csv").read_text().splitlines()[0] == ",sha256,appeared,label,subset"
    assert "EMBER feature version 1 were computed using lief version 0.8.3-18d5b75" in capsys.readouterr().out


def test_pe_feature_extractor_is_embers(tmp_path, capsys):
    PE = ember.features.PEFeatureExtractor
    assert list(inspect.signature(PE).parameters.items()) == list(
        inspect.signature(
            lambda feature_version=2, print_feature_warning=True, features_file="": None
        ).parameters.items()
    )
    for method, arguments in (
        ("raw_features", "(bytez)"),
        ("process_raw_features", "(raw_obj)"),
        ("feature_vector", "(bytez)"),
    ):
        assert str(inspect.signature(getattr(PE(2, False), method))) == arguments
    assert str(inspect.signature(ember.features.SectionInfo().raw_features)) == "(bytez, lief_binary)"
    assert str(inspect.signature(ember.features.SectionInfo().process_raw_features)) == "(raw_obj)"
    capsys.readouterr()
    extractor = PE()
    assert "WARNING:   in the feature calculations." in capsys.readouterr().out
    quiet = PE(2, print_feature_warning=False)
    assert capsys.readouterr().out == ""
    assert extractor.dim == 2381 and PE(1, False).dim == 2351
    assert [fe.name for fe in quiet.features] == [
        "histogram",
        "byteentropy",
        "strings",
        "general",
        "header",
        "section",
        "imports",
        "exports",
        "datadirectories",
    ]
    bytez = PE_FILES[0].read_bytes()
    raw = quiet.raw_features(bytez)
    assert list(raw) == ["sha256"] + [fe.name for fe in quiet.features]
    launchers, reference = launcher_reference()
    row = [r["sha256"] for r in launchers].index(raw["sha256"])
    assert np.array_equal(quiet.process_raw_features(raw), reference[row])
    assert np.array_equal(quiet.feature_vector(bytez), reference[row])
    assert np.array_equal(quiet.process_raw_features(launchers[row]), reference[row])
    # ember's per-block API: feature_vector(bytez, lief_binary)
    histogram = ember.features.ByteHistogram()
    assert histogram.dim == 256 and np.array_equal(histogram.feature_vector(bytez, None), reference[row][:256])
    with pytest.raises(Exception):
        PE(3)

    # features_file: ember's {"features": [...]} selection; version 2 appends DataDirectories
    selection = tmp_path / "features.json"
    selection.write_text(json.dumps({"features": ["GeneralFileInfo", "ByteHistogram", "NoSuchBlock"]}))
    picked = PE(2, False, features_file=str(selection))
    assert [fe.name for fe in picked.features] == ["general", "histogram", "datadirectories"]
    assert picked.dim == 10 + 256 + 30
    vector = picked.process_raw_features(launchers[row])
    assert np.array_equal(vector, np.hstack([reference[row][616:626], reference[row][:256], reference[row][-30:]]))
    # vectorize_subset with that extractor writes its narrower rows
    (tmp_path / "raw.jsonl").write_text("".join(json.dumps(r) + "\n" for r in launchers))
    ember.vectorize_subset(tmp_path / "X.dat", tmp_path / "y.dat", [tmp_path / "raw.jsonl"], picked, len(launchers))
    X = np.fromfile(tmp_path / "X.dat", dtype=np.float32).reshape(-1, picked.dim)
    assert np.array_equal(X[row], vector) and (np.fromfile(tmp_path / "y.dat", dtype=np.float32) == -1).all()
    with pytest.raises(ValueError, match="nrows"):
        ember.vectorize_subset(tmp_path / "X.dat", tmp_path / "y.dat", [tmp_path / "raw.jsonl"], picked, 99)


def test_signatures_are_embers():
    expected = {  # ember/__init__.py at elastic/ember d97a0b5
        "raw_feature_iterator": "(file_paths)",
        "vectorize": "(irow, raw_features_string, X_path, y_path, extractor, nrows)",
        "vectorize_unpack": "(args)",
        "vectorize_subset": "(X_path, y_path, raw_feature_paths, extractor, nrows)",
        "create_vectorized_features": "(data_dir, feature_version=2)",
        "read_vectorized_features": "(data_dir, subset=None, feature_version=2)",
        "read_metadata_record": "(raw_features_string)",
        "create_metadata": "(data_dir",
        "read_metadata": "(data_dir)",
        "optimize_model": "(data_dir",
        "train_model": "(data_dir, params={}, feature_version=2)",
        "predict_sample": "(lgbm_model, file_data, feature_version=2)",
    }
    for name, start in expected.items():
        signature = str(inspect.signature(getattr(ember, name)))
        assert signature.startswith(start), (name, signature)
        assert "*" not in signature or signature.startswith(start + ", *"), (name, signature)  # extras keyword-only


def test_raw_lines_metadata_records_and_the_row_writer(tmp_path):
    launchers, reference = launcher_reference()
    path = tmp_path / "raw.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in launchers))
    lines = list(ember.raw_feature_iterator([str(path), str(path)]))
    assert len(lines) == 12 and all(line.endswith("\n") for line in lines)
    assert ember.read_metadata_record(lines[0]) == {
        "sha256": launchers[0]["sha256"],
        "appeared": launchers[0]["appeared"],
        "label": -1,
    }
    extractor = ember.features.PEFeatureExtractor(2, False)
    X_path, y_path = tmp_path / "X.dat", tmp_path / "y.dat"
    np.memmap(X_path, dtype=np.float32, mode="w+", shape=(3, extractor.dim)).flush()
    np.memmap(y_path, dtype=np.float32, mode="w+", shape=3).flush()
    ember.vectorize_unpack((2, lines[4], X_path, y_path, extractor, 3))
    X = np.fromfile(X_path, dtype=np.float32).reshape(3, -1)
    assert np.array_equal(X[2], reference[4]) and not X[:2].any()
    assert np.fromfile(y_path, dtype=np.float32).tolist() == [0, 0, -1]


def test_optimize_model_is_embers_search(ember2018_dir, capsys):
    assert ember.OPTIMIZE_PARAM_GRID == {  # ember's grid, as in its optimize_model()
        "boosting_type": ["gbdt"],
        "objective": ["binary"],
        "num_iterations": [500, 1000],
        "learning_rate": [0.005, 0.05],
        "num_leaves": [512, 1024, 2048],
        "feature_fraction": [0.5, 0.8, 1.0],
        "bagging_fraction": [0.5, 0.8, 1.0],
    }
    if not (ember2018_dir / "X_train.dat").exists():
        ember.create_vectorized_features(str(ember2018_dir), 2)
    grid = {"objective": ["binary"], "num_iterations": [3, 6], "num_leaves": [4], "min_child_samples": [5]}
    best = ember.optimize_model(str(ember2018_dir), param_grid=grid, n_jobs=1, verbose=0)
    assert set(best) == set(grid) and best["num_iterations"] in (3, 6)
    # what init_ember.py --optimize does next: train with the best parameters
    assert isinstance(ember.train_model(str(ember2018_dir), {**best, "num_threads": 1, "verbose": -1}), lgb.Booster)
