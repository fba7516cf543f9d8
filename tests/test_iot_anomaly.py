"""IoT anomaly detector (ychalier/anomaly): loaders, Detector, tuning files, CLI, /predict/iot-anomaly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeClassifier

from vigil.artifacts import ArtifactStore
from vigil.cli import main as vigil_main
from vigil.config import Settings
from vigil.service import create_app
from vigil.tasks import get_task
from vigil.tasks.iot_anomaly import Detector, OddPointBox, confusion_ratios, load_objects, make_estimator
from vigil.tasks.iot_anomaly.data import read_cars, read_humans, read_motorbikes
from vigil.tasks.iot_anomaly.tuning import SCORE_HEADER

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "iot_anomaly"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector.from_folder(DATA, odd_points=1000, seed=0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One saved default model for the module, and an app serving it."""
    root = tmp_path_factory.mktemp("iot")
    settings = Settings.from_env(models_dir=root / "models", work_dir=root / "runs", data_dir=REPO / "data")
    store = ArtifactStore(settings.models_dir)
    entry = get_task("iot_anomaly").train_default(store, settings)
    app = create_app(settings, store)
    app.config["TESTING"] = True
    return settings, store, entry, app.test_client()


# -- loaders ---------------------------------------------------------------------------------------
def test_body_file_semicolons_decimal_commas_cm_to_mm():
    humans = read_humans(DATA / "body.csv")
    assert len(humans) == 507 and set(humans["class"]) == {"human"}
    # first row of body.csv: shoulder.girth 106,2 cm (width), chest.girth 89,5 cm (length)
    assert humans.loc[0, "width"] == pytest.approx(1062.0) and humans.loc[0, "length"] == pytest.approx(895.0)


def test_bdims_format_reads_the_same_sizes(tmp_path):
    path = tmp_path / "bdims.csv"
    path.write_text("rownames,sho_gi,che_gi,sex\n1,106.2,89.5,1\n2,110.5,97,1\n")
    humans = read_humans(path)
    assert humans[["length", "width"]].to_numpy().tolist() == [[895.0, 1062.0], [970.0, 1105.0]]


def test_italian_motorbike_file_drops_nan_rows_and_the_20m_outlier():
    raw = pd.read_csv(DATA / "db_moto.csv", sep=";")
    assert raw["LUNGHEZZA (mm)"].max() > 10_000  # the outlier is in the shipped file
    motos = read_motorbikes(DATA / "db_moto.csv")
    assert len(motos) == raw.dropna().shape[0] - 1
    assert motos["length"].max() < 10_000 and motos["width"].between(600, 1000).all()


def test_teoalida_motorbikes_with_spaced_thousands(tmp_path):
    path = tmp_path / "moto.csv"
    path.write_text("Make;Overall length (mm);Overall width (mm)\nA;1 990;720\nB;;700\nC;12 000;800\n")
    motos = read_motorbikes(path)
    assert motos[["length", "width"]].to_numpy().tolist() == [[1990.0, 720.0]]


def test_cars_in_inches_and_cqa_millimetres(tmp_path):
    cars = read_cars(DATA / "cars93.csv")
    assert len(cars) == 93
    assert cars.loc[0, "length"] == pytest.approx(177 * 25.4) and cars.loc[0, "width"] == pytest.approx(68 * 25.4)
    cqa = tmp_path / "CQA_Premium.csv"
    cqa.write_text("model_length_mm,model_width_mm\n4500,1800\n4600,3100\n")
    assert read_cars(cqa)[["length", "width"]].to_numpy().tolist() == [[4500.0, 1800.0]]


def test_odd_point_box_is_stated_and_sampled_uniformly():
    objects = load_objects(DATA)
    box = OddPointBox.around(objects)
    assert box.max_length == int(np.ceil(objects["length"].max())) + 1
    assert box.max_width == int(np.ceil(objects["width"].max())) + 1
    odd = box.sample(["human", "moto", "car"], 3000, seed=1)
    assert odd["length"].between(0, box.max_length).all() and odd["width"].between(0, box.max_width).all()
    assert (odd[["length", "width"]] % 1 == 0).all().all()
    counts = odd["class"].value_counts()
    assert set(counts.index) == {"human", "moto", "car"} and counts.min() > 850
    assert odd.equals(box.sample(["human", "moto", "car"], 3000, seed=1))


# -- detector --------------------------------------------------------------------------------------
def test_detector_cleans_and_splits_without_a_shared_row(detector):
    frame = detector.df
    assert not frame[["class", "length", "width"]].isna().any().any()
    assert not frame.duplicated(subset=["class", "length", "width"]).any()
    real = frame[frame["odd"] == 0]
    assert set(detector.classes) == {"human", "moto", "car"}
    assert frame["odd"].sum() == 1000 and len(frame) == 1670
    train = set(map(tuple, detector.xtrain.itertuples(index=False)))
    test = set(map(tuple, detector.xtest.itertuples(index=False)))
    assert not train & test
    assert len(detector.xtrain) + len(detector.xtest) == len(frame)
    # stratified: the odd share is the same in both halves
    assert abs(detector.ytrain.mean() - detector.ytest.mean()) < 0.01
    assert len(real) == 670


def test_confusion_ratios_known_matrix_and_zero_division():
    ratios = confusion_ratios([[90, 10], [5, 45]])
    assert ratios["tpr"] == pytest.approx(0.9) and ratios["fpr"] == pytest.approx(0.1)
    assert ratios["tnr"] == pytest.approx(0.9) and ratios["fnr"] == pytest.approx(0.1)
    assert ratios["ppv"] == pytest.approx(45 / 55) and ratios["f1"] == pytest.approx(90 / 105)
    assert confusion_ratios([[10, 0], [0, 0]])["f1"] == 0.0


def test_classify_returns_matrix_seconds_and_a_pipeline_with_its_scaler(detector):
    matrix, seconds, model = detector.classify(make_estimator("forest", params={"n_estimators": 20}))
    assert matrix.shape == (2, 2) and matrix.sum() == len(detector.xtest) and seconds > 0
    assert isinstance(model, Pipeline) and "features" in model.named_steps
    scaler = model.named_steps["features"].named_transformers_["size"]
    assert scaler.mean_[0] > 100  # fitted on raw millimetres, so raw readings can be served
    assert confusion_ratios(matrix)["f1"] > 0.9
    raw = pd.DataFrame(
        [{"class": "human", "length": 930.0, "width": 1080.0}, {"class": "human", "length": 5000.0, "width": 100.0}]
    )
    assert model.predict(raw).tolist() == [0, 1]


def test_tune_parameters_grid_search_by_f1(detector):
    seen = []
    result = detector.tune_parameters(
        DecisionTreeClassifier(random_state=0), {"max_depth": [1, 8]}, cv=3, on_row=seen.append
    )
    assert len(result.rows) == len(seen) == 2
    assert all(set(row.scores) == set(SCORE_HEADER[1:]) for row in seen)
    scores = {row.params["max_depth"]: row.scores["f1"] for row in seen}
    assert result.best_params == {"max_depth": max(scores, key=scores.get)} == {"max_depth": 8}
    assert result.best_f1 == max(scores.values())
    assert result.best_model.predict(detector.xtest).shape == (len(detector.xtest),)


# -- CLI -------------------------------------------------------------------------------------------
def _env():
    return dict(os.environ, PYTHONPATH=str(REPO / "src"), MPLBACKEND="Agg")


def test_tune_command_writes_the_original_score_files_and_plots(tmp_path, capsys):
    grid = {"svc": {"C": [0.1, 1.0]}, "adaboost": {"n_estimators": [5, 10], "learning_rate": [0.3]}}
    code = vigil_main(
        [
            "--models-dir",
            str(tmp_path / "m"),
            "iot-anomaly",
            "tune",
            "--estimators",
            "svc,adaboost",
            "--grid",
            json.dumps(grid),
            "--cv",
            "3",
            "--out",
            str(tmp_path),
            "--save",
            "--n-jobs",
            "2",
        ]
    )
    assert code == 0
    scores_files = list(tmp_path.glob("params-*.scores.csv"))
    assert len(scores_files) == 1
    stem = scores_files[0].name.removesuffix(".scores.csv")
    lines = scores_files[0].read_text().splitlines()
    assert lines[0] == "id;tpr;fpr;tnr;fnr;ppv;f1;t"
    assert len(lines) == 1 + 4 and sorted(int(line.split(";")[0]) for line in lines[1:]) == [0, 1, 2, 3]
    svc = (tmp_path / f"{stem}.params.LinearSVC.csv").read_text().splitlines()
    ada = (tmp_path / f"{stem}.params.AdaBoostClassifier.csv").read_text().splitlines()
    # every estimator parameter plus the class name, as the original's beautify.py wrote them
    assert (
        svc[0] == "id;C;class_weight;dual;fit_intercept;intercept_scaling;loss;max_iter;multi_class;penalty;"
        "random_state;tol;verbose;estimator"
    )
    ada_header = ada[0].split(";")
    assert {"estimator__max_depth", "base_estimator__max_depth", "learning_rate", "n_estimators"} <= set(ada_header)
    assert all(line.split(";")[ada_header.index("estimator")] == "AdaBoostClassifier" for line in ada[1:])
    ids = sorted(int(line.split(";")[0]) for line in svc[1:] + ada[1:])
    assert ids == [0, 1, 2, 3]
    for parameter in ("C",):
        assert (tmp_path / f"{stem}.LinearSVC.{parameter}.png").read_bytes()[:8] == PNG_MAGIC
    for parameter in ("learning_rate", "n_estimators"):
        assert (tmp_path / f"{stem}.AdaBoostClassifier.{parameter}.png").read_bytes()[:8] == PNG_MAGIC
    assert "saved" in capsys.readouterr().out
    assert ArtifactStore(tmp_path / "m").latest_entry("iot_anomaly")["extra"]["tuned_by"] == stem


def test_grid_keys_in_the_originals_spelling_and_unknown_keys(tmp_path, capsys):
    from vigil.errors import InvalidInput
    from vigil.tasks.iot_anomaly.detector import resolve_grid, resolve_param_name

    ada = make_estimator("adaboost")
    assert resolve_param_name(ada, "max_depth") == "estimator__max_depth"
    assert resolve_param_name(ada, "base_estimator__max_depth") == "estimator__max_depth"  # sklearn < 1.2 name
    assert resolve_grid(ada, {"max_depth": [2, 3], "n_estimators": [5]}) == {
        "estimator__max_depth": [2, 3],
        "n_estimators": [5],
    }
    with pytest.raises(InvalidInput, match="given twice"):
        resolve_grid(ada, {"max_depth": [2], "estimator__max_depth": [3]})
    with pytest.raises(InvalidInput, match="non-empty list"):
        resolve_grid(ada, {"n_estimators": []})

    out = tmp_path / "runs"
    base = [
        "--models-dir",
        str(tmp_path / "m"),
        "iot-anomaly",
        "tune",
        "--estimators",
        "adaboost",
        "--cv",
        "2",
        "--out",
        str(out),
    ]
    assert vigil_main([*base, "--grid", '{"adaboost": {"max_depth": [2], "n_estimators": [5]}}']) == 0
    assert "best cross-validated F1" in capsys.readouterr().err
    for csv_file in out.glob("*.csv"):
        csv_file.unlink()
    # a key the estimator does not have: one line naming it, before anything is fitted or written
    assert vigil_main([*base, "--grid", '{"adaboost": {"max_dept": [2]}}']) == 2
    err = capsys.readouterr().err
    assert "unknown parameter 'max_dept' for AdaBoostClassifier" in err and "Traceback" not in err
    assert not list(out.glob("*.csv"))
    assert vigil_main([*base, "--grid", '{"adaboost": [2, 3]}']) == 2
    assert "must be a JSON object" in capsys.readouterr().err
    assert (
        vigil_main(
            [
                "--models-dir",
                str(tmp_path / "m"),
                "iot-anomaly",
                "train",
                "--estimator",
                "forest",
                "--params",
                '{"trees": 3}',
                "--no-plots",
            ]
        )
        == 2
    )
    assert "unknown parameter 'trees' for RandomForestClassifier" in capsys.readouterr().err


def test_interrupted_tune_keeps_the_rows_already_scored(tmp_path):
    grid = {"forest": {"n_estimators": list(range(5, 400, 5))}}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vigil",
            "iot-anomaly",
            "tune",
            "--estimators",
            "forest",
            "--grid",
            json.dumps(grid),
            "--cv",
            "2",
            "--out",
            str(tmp_path),
        ],
        env=_env(),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        scores = None
        while time.monotonic() < deadline:
            found = list(tmp_path.glob("params-*.scores.csv"))
            if found and len(found[0].read_text().splitlines()) >= 3:
                scores = found[0]
                break
            time.sleep(0.1)
        assert scores is not None, "no rows were scored in 60 s"
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, output
    lines = scores.read_text().splitlines()
    assert lines[0] == "id;tpr;fpr;tnr;fnr;ppv;f1;t"
    assert 3 <= len(lines) < 1 + len(grid["forest"]["n_estimators"])
    assert all(len(line.split(";")) == 8 for line in lines[1:])
    params = scores.with_name(scores.name.replace(".scores.csv", ".params.RandomForestClassifier.csv"))
    assert len(params.read_text().splitlines()) == len(lines)
    assert "interrupted" in output


def test_train_classify_and_boundary_plots(tmp_path, capsys):
    models = str(tmp_path / "m")
    assert vigil_main(["--models-dir", models, "iot-anomaly", "train", "--plots", str(tmp_path / "plots")]) == 0
    out = capsys.readouterr().out
    assert "saved iot_anomaly v1" in out and "F1" in out
    for name in ("dataset", "boundary-human", "boundary-moto", "boundary-car"):
        assert (tmp_path / "plots" / f"{name}.png").read_bytes()[:8] == PNG_MAGIC

    assert vigil_main(["--models-dir", models, "iot-anomaly", "classify", "human", "5000", "100"]) == 0
    assert capsys.readouterr().out.startswith("malicious (probability")
    assert vigil_main(["--models-dir", models, "iot-anomaly", "classify", "human", "930", "1080", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["label"] == "non-malicious" and answer["malicious"] is False and 0 <= answer["probability"] < 0.5

    assert vigil_main(["--models-dir", models, "iot-anomaly", "classify", "plane", "930", "1080"]) == 2
    assert "unknown class 'plane'" in capsys.readouterr().err
    assert vigil_main(["--models-dir", models, "iot-anomaly", "classify", "car", "-5", "1080"]) == 2
    assert "negative" in capsys.readouterr().err

    assert (
        vigil_main(
            [
                "--models-dir",
                models,
                "iot-anomaly",
                "train",
                "--estimator",
                "forest",
                "--params",
                '{"n_estimators": 30}',
                "--no-plots",
            ]
        )
        == 0
    )
    assert "RandomForestClassifier" in capsys.readouterr().out


# -- service ---------------------------------------------------------------------------------------
def test_default_model_is_saved_with_metrics_and_box(trained):
    _, store, entry, _ = trained
    assert entry["task"] == "iot_anomaly" and entry["metrics"]["f1"] > 0.85
    extra = entry["extra"]
    assert extra["classes"] == ["human", "moto", "car"] and extra["estimator"] == "AdaBoostClassifier"
    assert extra["odd_point_box"]["length_mm"][0] == 0 and extra["odd_point_box"]["width_mm"][1] > 1900


def test_predict_answers_each_item(trained):
    client = trained[3]
    response = client.post(
        "/predict/iot-anomaly",
        json=[
            {"class": "human", "length": 930, "width": 1080},
            {"class": "Motorbike", "length": 4500, "width": 100},
        ],
    )
    assert response.status_code == 200, response.get_json()
    first, second = response.get_json()
    assert first["label"] == "non-malicious" and first["malicious"] is False
    assert second["label"] == "malicious" and second["class"] == "moto" and second["probability"] > 0.5


@pytest.mark.parametrize(
    "item, status, field",
    [
        ({"class": "plane", "length": 900, "width": 1000}, 422, "class"),
        ({"class": "car", "length": -1, "width": 1000}, 422, "length"),
        ({"class": "car", "length": 4500, "width": "wide"}, 400, "width"),
        ({"class": "car", "length": 4500}, 400, "width"),
        ({"class": "car", "length": True, "width": 1700}, 400, "length"),
        ("car 4500 1700", 400, "(item)"),
    ],
)
def test_bad_items_get_4xx_naming_the_item_and_keep_good_answers(trained, item, status, field):
    client = trained[3]
    good = {"class": "car", "length": 4600, "width": 1750}
    response = client.post("/predict/iot-anomaly", json=[good, item])
    assert response.status_code == status
    body = response.get_json()
    assert body["error"].startswith(f"item 1, field '{field}'")
    assert body["detail"]["errors"][0]["index"] == 1 and body["detail"]["errors"][0]["field"] == field
    assert [r["index"] for r in body["detail"]["results"]] == [0]


def test_predict_rejects_non_list_bodies(trained):
    client = trained[3]
    response = client.post("/predict/iot-anomaly", json={"rows": 3})
    assert response.status_code == 400 and "item 0" in response.get_json()["error"]
    response = client.post("/predict/iot-anomaly", json=42)
    assert response.status_code == 400 and "JSON list" in response.get_json()["error"]


def test_comparison_table_puts_published_numbers_next_to_ours():
    from vigil.tasks.iot_anomaly.task import comparison_table

    settings = Settings.from_env(data_dir=REPO / "data")
    table = comparison_table(get_task("iot-anomaly"), settings, models=("adaboost", "svc"))
    lines = table.splitlines()
    assert lines[0].startswith("| model | published TPR") and len(lines) == 2 + 4
    assert (
        "| AdaBoost | 0.9354 | 0.0103 | 0.9382 | as published: max_depth=3, n_estimators=46, learning_rate=0.3 |"
        in table
    )
    # the report's tuned LinearSVC (not the defaults), and the published TPR/FPR on every row
    assert (
        "| LinearSVC | 0.9657 | 1.0000 | 0.2515 | as published: penalty=l1, dual=False, multi_class=crammer_singer, "
        "C=100.0, tol=1e-05 |" in table
    )
    assert "| LinearSVC | 0.9657 | 1.0000 | 0.2515 | tuned: C=0.01 |" in table
    assert "–" not in table
    ours_f1 = [float(line.rstrip(" |").rsplit("|", 1)[1]) for line in lines[2:]]
    assert all(0.5 < f1 <= 1 for f1 in ours_f1)


def test_example_request_works_and_row_limit_applies(trained):
    from dataclasses import replace

    settings, store, _, client = trained
    task = get_task("iot-anomaly")
    response = client.post("/predict/iot-anomaly", json=task.example_request())
    assert response.status_code == 200 and [r["label"] for r in response.get_json()] == ["non-malicious", "malicious"]
    limited = create_app(replace(settings, max_rows=2), store).test_client()
    response = limited.post("/predict/iot-anomaly", json=task.example_request() * 2)
    # the service's row limit (VIGIL_MAX_ROWS) answers before the task: 413, as for bodies over the size limit
    assert response.status_code in (413, 422) and "too many" in response.get_json()["error"]


def test_odd_point_on_a_real_object_is_not_added_twice_with_two_labels():
    fresh = Detector(load_objects(DATA))
    real = fresh.df.iloc[0]
    kept = fresh.append_odd_points([[real["class"], real["length"], real["width"]], ["car", 10, 10], ["car", 10, 10]])
    assert kept == 1 and fresh.df["odd"].sum() == 1
    assert not fresh.df.duplicated(subset=["class", "length", "width"]).any()


def test_gunicorn_serves_the_saved_model(trained, live_server):
    import requests

    settings = trained[0]
    server = live_server(settings.models_dir)
    response = requests.post(
        server.url + "/predict/iot-anomaly",
        timeout=30,
        json=[{"class": "car", "length": 4600, "width": 1750}, {"class": "car", "length": 300, "width": 1750}],
    )
    assert response.status_code == 200
    assert [r["label"] for r in response.json()] == ["non-malicious", "malicious"]
    response = requests.post(server.url + "/predict/iot-anomaly", json=[{"class": "car", "length": "x"}], timeout=30)
    assert response.status_code == 400 and response.json()["detail"]["errors"][0]["index"] == 0
