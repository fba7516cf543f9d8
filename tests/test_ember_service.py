"""POST /predict/ember: PE bodies, multipart uploads, feature vectors, bad input, a real gunicorn."""

from __future__ import annotations

import io
import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from vigil.artifacts import ArtifactStore
from vigil.config import Settings
from vigil.service import create_app
from vigil.tasks import get_task

DATA = Path(__file__).resolve().parents[1] / "data" / "ember"
T32 = DATA / "pe" / "t32.exe"


@pytest.fixture(scope="module")
def ember_models(tmp_path_factory) -> Path:
    """The default (demo) model, trained once for this module by the task's own train_default."""
    models = tmp_path_factory.mktemp("ember-models")
    settings = Settings.from_env(models_dir=models)
    started = time.perf_counter()
    entry = get_task("ember").train_default(ArtifactStore(models), settings)
    elapsed = time.perf_counter() - started
    assert entry["task"] == "ember" and entry["feature_version"] == 2 and entry["extra"]["demo"] is True
    assert elapsed < 60, f"train_default took {elapsed:.1f} s"  # generous: the CI machine is shared
    return models


def make_client(models: Path, **overrides):
    settings = Settings.from_env(models_dir=models, **overrides)
    app = create_app(settings, ArtifactStore(models))
    app.config["TESTING"] = True
    return app.test_client()


@pytest.fixture(scope="module")
def ember_client(ember_models):
    return make_client(ember_models)


def test_demo_model_entry(ember_models):
    entry = ArtifactStore(ember_models).latest_entry("ember")
    metrics = entry["metrics"]
    assert entry["threshold"] == metrics["threshold_at_1pct_fpr"]
    assert metrics["fpr_at_1pct_fpr"] <= 0.01 and 0.5 < metrics["roc_auc"] <= 1
    assert {"pr_auc", "detection_rate_at_0.1pct_fpr", "confusion_at_1pct_fpr"} <= set(metrics)
    assert (ember_models / entry["native_model"]).exists()
    assert entry["library_versions"]["lief"] == "1.0.0"


def test_raw_pe_body_is_scored(ember_client, ember_models):
    body = T32.read_bytes()
    response = ember_client.post("/predict/ember", data=body, content_type="application/octet-stream")
    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    assert answer["model_version"] == "1" and answer["feature_version"] == 2 and answer["threshold_fpr"] == 0.01
    [result] = answer["results"]
    assert result["sha256"].startswith("6b4195e6") and result["pe"] is True
    assert 0 <= result["probability"] <= 1
    assert result["malicious"] == (result["probability"] >= answer["threshold"])
    # the same file's ember vector, sent as JSON, gets the same score
    vector = np.load(DATA / "reference_pip_launchers_v2.npy")[0].tolist()
    by_vector = ember_client.post("/predict/ember", json=[vector]).get_json()["results"][0]["probability"]
    assert by_vector == pytest.approx(result["probability"], abs=1e-12)


def test_multipart_upload_of_two_files(ember_client):
    data = {
        "first": (io.BytesIO(T32.read_bytes()), "t32.exe"),
        "second": (io.BytesIO((DATA / "pe" / "w64-arm.exe").read_bytes()), "w64-arm.exe"),
    }
    response = ember_client.post("/predict/ember", data=data, content_type="multipart/form-data")
    assert response.status_code == 200, response.get_json()
    results = response.get_json()["results"]
    assert [r["name"] for r in results] == ["t32.exe", "w64-arm.exe"]  # the uploaded files' own names
    assert [r["field"] for r in results] == ["first", "second"]
    assert results[1]["sha256"].startswith("c5dc9884") and all(r["pe"] for r in results)


def test_feature_vectors_as_json(ember_client, ember_models):
    vectors = np.load(DATA / "reference_pip_launchers_v2.npy")
    response = ember_client.post("/predict/ember", json={"vectors": vectors.tolist()})
    assert response.status_code == 200
    results = response.get_json()["results"]
    model = ArtifactStore(ember_models).load("ember").model
    expected = model[-1].predict_proba(vectors)[:, 1]
    assert [r["index"] for r in results] == list(range(6))
    # the checked compiled trees serve (the Booster's bits; ONNX Runtime within vigil.tasks.ember.runtime.TOLERANCE)
    assert np.allclose([r["probability"] for r in results], expected, rtol=0, atol=1e-6)


def test_raw_records_as_json_score_like_their_vectors(ember_client):
    raws = [json.loads(line) for line in (DATA / "reference_pip_launchers_raw.jsonl").read_text().splitlines()]
    vectors = np.load(DATA / "reference_pip_launchers_v2.npy")
    by_raw = ember_client.post("/predict/ember", json=raws[:2]).get_json()["results"]
    by_vector = ember_client.post("/predict/ember", json=vectors[:2].tolist()).get_json()["results"]
    assert [r["probability"] for r in by_raw] == [r["probability"] for r in by_vector]
    broken = dict(raws[0])
    del broken["section"]
    response = ember_client.post("/predict/ember", json=[raws[0], broken])
    answer = response.get_json()
    assert response.status_code == 422 and answer["detail"]["index"] == 1
    assert "section" in answer["error"] and answer["detail"]["message"] == answer["error"]


def test_a_non_pe_body_is_scored_on_byte_features(ember_client):
    for body in (b"plain text, not a PE" * 10, b'{"looks": "like JSON"}'):
        response = ember_client.post("/predict/ember", data=body, content_type="application/octet-stream")
        assert response.status_code == 200 and response.get_json()["results"][0]["pe"] is False


@pytest.mark.parametrize(
    "body, status, detail",
    [
        ([[0.0] * 2381, [0.0] * 10], 422, {"index": 1, "length": 10, "expected": 2381}),
        ([[0.0] * 2380 + [math.nan]], 422, {"index": 0, "position": 2380}),
        ([[0.0] * 2380 + [math.inf]], 422, {"index": 0, "position": 2380}),
        ([[0.0] * 2380 + ["x"]], 400, {"index": 0, "position": 2380, "value": "'x'"}),
        ([[0.0] * 2380 + [1e39]], 422, {"index": 0, "position": 2380}),
        ([], 400, {"field": "vectors"}),
        ({"vectors": "no"}, 400, {"field": "vectors"}),
        ([[0.0] * 2381, "not a list"], 400, {"index": 1}),
    ],
)
def test_bad_vectors_get_4xx_naming_the_item(ember_client, body, status, detail):
    response = ember_client.post("/predict/ember", data=json.dumps(body), content_type="application/json")
    assert response.status_code == status
    answer = response.get_json()
    # a record's fault always comes in the one per-record shape {"index", "field", "message"}, plus specifics
    expected = {"field": None, "message": answer["error"], **detail} if "index" in detail else detail
    assert answer["error"] and answer["detail"] == expected


def test_empty_body_and_empty_upload_are_400(ember_client):
    response = ember_client.post("/predict/ember", data=b"", content_type="application/octet-stream")
    assert response.status_code == 400 and "empty" in response.get_json()["error"]
    response = ember_client.post(
        "/predict/ember", data={"f": (io.BytesIO(b""), "empty.exe")}, content_type="multipart/form-data"
    )
    assert response.status_code == 400 and response.get_json()["detail"] == {"file": "f"}


def test_body_over_the_size_limit_is_413(ember_models):
    client = make_client(ember_models, max_body_bytes=50_000)
    response = client.post("/predict/ember", data=T32.read_bytes(), content_type="application/octet-stream")
    assert response.status_code == 413 and response.is_json and response.get_json()["error"]


def test_tampered_model_is_refused(ember_models, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(ember_models, models)
    entry = ArtifactStore(models).latest_entry("ember")
    with open(models / entry["file"], "r+b") as handle:
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 0xFF]))
    response = make_client(models).post(
        "/predict/ember", data=T32.read_bytes(), content_type="application/octet-stream"
    )
    assert response.status_code == 503
    assert "does not match its manifest hash" in response.get_json()["error"]


def test_real_gunicorn_scores_an_uploaded_pe_file(ember_models, live_server):
    server = live_server(ember_models, args=["--workers", "1", "--threads", "2"])
    with open(T32, "rb") as handle:
        response = requests.post(server.url + "/predict/ember", files={"file": ("t32.exe", handle)}, timeout=60)
    assert response.status_code == 200, response.text
    [result] = response.json()["results"]
    assert (
        result["name"] == "t32.exe"
        and result["field"] == "file"
        and result["pe"] is True
        and 0 <= result["probability"] <= 1
    )
    response = requests.post(server.url + "/predict/ember", json=[[1.0] * 3], timeout=30)
    assert response.status_code == 422 and response.json()["detail"]["index"] == 0
