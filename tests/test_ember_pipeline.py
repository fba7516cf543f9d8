"""`vigil ember extract | vectorize | train | evaluate | classify` end to end on real files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vigil.artifacts import ArtifactStore
from vigil.cli import main
from vigil.tasks.ember import lgbm_params, make_estimator, read_metadata, read_vectorized
from vigil.tasks.ember.demo_data import build_demo_records, write_demo_data

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "ember"


def pip_launchers() -> list[Path]:
    import pip

    return sorted((Path(pip.__file__).parent / "_vendor" / "distlib").glob("*.exe"))


@pytest.fixture(scope="module")
def launcher_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("launchers")
    for path in pip_launchers():
        shutil.copy(path, folder / path.name)
    return folder


def test_extract_then_vectorize_the_pip_launchers(tmp_path, launcher_dir, capsys):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    assert (
        main(
            [
                "ember",
                "extract",
                str(launcher_dir),
                "-o",
                str(data_dir / "test_features.jsonl"),
                "--label",
                "0",
                "-j",
                "2",
                "-q",
            ]
        )
        == 0
    )
    records = [json.loads(line) for line in (data_dir / "test_features.jsonl").read_text().splitlines()]
    assert len(records) == len(pip_launchers()) >= 4
    assert all(r["label"] == 0 and len(r["sha256"]) == 64 and "datadirectories" in r for r in records)
    assert list(records[0])[:4] == ["sha256", "appeared", "label", "avclass"]

    assert main(["ember", "vectorize", str(data_dir), "--feature-version", "2", "-q"]) == 0
    X, y = read_vectorized(data_dir, "test", feature_version=2)
    assert isinstance(X, np.memmap) and X.shape == (len(records), 2381) and X.dtype == np.float32
    assert (y == 0).all() and np.isfinite(X).all()
    # ember's layout: raw float32, row i = line i, no header
    raw = np.fromfile(data_dir / "X_test.dat", dtype=np.float32).reshape(-1, 2381)
    assert np.array_equal(raw, X)
    reference = {
        json.loads(line)["sha256"]: i for i, line in enumerate((DATA / "reference_pip_launchers_raw.jsonl").open())
    }
    expected = np.load(DATA / "reference_pip_launchers_v2.npy")
    for row, record in enumerate(records):
        if record["sha256"] in reference:
            assert np.array_equal(X[row], expected[reference[record["sha256"]]])
    metadata = read_metadata(data_dir)
    assert list(metadata.columns) == ["sha256", "appeared", "label", "avclass", "subset"]
    assert metadata["sha256"].tolist() == [r["sha256"] for r in records]


def test_vectorize_reports_bad_lines_and_keeps_the_rest(tmp_path, capsys):
    lines = (DATA / "train_features_0_head.jsonl").read_text().splitlines()
    broken = json.loads(lines[1])
    del broken["imports"]
    content = [lines[0], "{not json", json.dumps(broken), lines[2], "[1, 2]", lines[3]]
    (tmp_path / "train_features_0.jsonl").write_text("\n".join(content[:3]) + "\n")
    (tmp_path / "train_features_1.jsonl").write_text("\n".join(content[3:]))  # no final newline
    assert main(["ember", "vectorize", str(tmp_path), "-v", "1", "-j", "2", "-q"]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'train_features_0.jsonl'}:2: not valid JSON" in err
    assert f"{tmp_path / 'train_features_0.jsonl'}:3: missing feature block 'imports'" in err
    assert f"{tmp_path / 'train_features_1.jsonl'}:2: a raw record must be a JSON object" in err
    X, y = read_vectorized(tmp_path, "train", feature_version=1)
    reference = np.load(DATA / "reference_head_first5_v1.npy")
    assert X.shape == (6, 2351)
    assert np.array_equal(X[[0, 3, 5]], reference[[0, 2, 3]])  # good lines land on their own rows
    assert y.tolist() == [0, -1, -1, 0, -1, 0] and not X[[1, 2, 4]].any()
    with pytest.raises(ValueError, match="feature-version"):
        read_vectorized(tmp_path, "train", feature_version=2)


def test_parameter_presets():
    assert lgbm_params("ember") == {
        "boosting": "gbdt",
        "objective": "binary",
        "num_iterations": 1000,
        "learning_rate": 0.05,
        "num_leaves": 2048,
        "max_depth": 15,
        "min_data_in_leaf": 50,
        "feature_fraction": 0.5,
    }
    ember = make_estimator("ember").get_params()
    assert (ember["n_estimators"], ember["num_leaves"], ember["min_child_samples"], ember["colsample_bytree"]) == (
        1000,
        2048,
        50,
        0.5,
    )
    assert lgbm_params("alectio") == {}
    assert make_estimator("alectio").get_params()["n_estimators"] == 100  # LGBMClassifier() defaults
    with pytest.raises(ValueError, match="--params"):
        lgbm_params("nonsense")


def test_demo_records_are_labelled_and_deterministic():
    train, test = build_demo_records(n_train=40, n_test=20, seed=3)
    again, _ = build_demo_records(n_train=40, n_test=20, seed=3)
    assert [r["sha256"] for r in train] == [r["sha256"] for r in again]
    labels = [r["label"] for r in train]
    assert labels.count(1) == 20 and labels.count(-1) > 0 and {r["label"] for r in test} == {0, 1}


def test_train_evaluate_classify_on_the_demo_set(tmp_path, capsys, launcher_dir):
    data_dir = tmp_path / "demo"
    write_demo_data(data_dir, n_train=200, n_test=100)
    assert main(["ember", "vectorize", str(data_dir), "-q", "-j", "1"]) == 0
    params = tmp_path / "params.json"
    params.write_text(
        json.dumps({"num_iterations": 30, "num_leaves": 8, "min_data_in_leaf": 10, "force_col_wise": True})
    )
    models = tmp_path / "models"
    assert (
        main(["--models-dir", str(models), "ember", "train", str(data_dir), "--params", str(params), "--n-jobs", "1"])
        == 0
    )
    out = capsys.readouterr().out
    assert "saved ember v1" in out and "roc_auc" in out
    entry = ArtifactStore(models).latest_entry("ember")
    assert entry["feature_version"] == 2 and entry["native_model"].endswith(".txt")
    assert 0 < entry["threshold"] < 1 and entry["metrics"]["n"] == 100
    assert entry["extra"]["params"]["n_estimators"] == 30 and entry["extra"]["metrics_on"] == "test"
    assert (models / entry["native_model"]).read_text().startswith("tree")

    plot = tmp_path / "roc.png"
    assert main(["--models-dir", str(models), "ember", "evaluate", str(data_dir), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{") : out.rindex("}") + 1])["roc_auc"] == pytest.approx(
        entry["metrics"]["roc_auc"]
    )
    assert plot.stat().st_size > 1000

    not_pe = tmp_path / "notes.txt"
    not_pe.write_text("just text")
    exe = sorted(launcher_dir.glob("*.exe"))[0]
    assert main(["--models-dir", str(models), "ember", "classify", str(exe), str(not_pe)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    probability, verdict, path = lines[0].split("\t")[:3]
    assert 0 <= float(probability) <= 1 and verdict in ("benign", "malicious") and path == str(exe)
    assert "not a PE file" in lines[1]


def test_scripts_call_the_same_code(tmp_path):
    shutil.copy(DATA / "train_features_0_head.jsonl", tmp_path / "train_features_0.jsonl")
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "vectorize_features.py"), "-v", "1", "-q", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    X, _ = read_vectorized(tmp_path, "train", feature_version=1)
    assert np.array_equal(X[:5], np.load(DATA / "reference_head_first5_v1.npy"))
