"""Hardening of the prediction routes (issue 11, items 8-10), each test performing the attack:
CPU amplification (cost budget, admission gate, a deadline that stops the work), JSON nested too
deep, integers beyond the float range, and the HTTP contract (405 + Allow, documented content types,
/predict/dns's own route spec)."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from vigil.artifacts import ArtifactStore
from vigil.config import Settings
from vigil.service import create_app
from vigil.tasks import get_task
from vigil.tasks.dns_exfil.features import FEATURE_COLUMNS, QueryFeatureExtractor

from service_support import metric_samples, sum_samples

TASKS = ("iot_anomaly", "dns_exfil", "ember", "web_sessions")
PREDICT_ROUTES = ("/predict/iot-anomaly", "/predict/ember", "/predict/dns", "/predict/web-sessions", "/predict")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("limits")
    settings = Settings.from_env(models_dir=root / "models", work_dir=root / "runs")
    store = ArtifactStore(settings.models_dir)
    for name in TASKS:
        get_task(name).train_default(store, settings)
    return settings.models_dir


def make_app(models: Path, **overrides):
    settings = Settings.from_env(models_dir=models, work_dir=models.parent / "runs",
                                 bucket_root=models.parent / "bucket", **overrides)
    app = create_app(settings, ArtifactStore(models))
    app.config["TESTING"] = True
    return app


@pytest.fixture(scope="module")
def client(models):
    return make_app(models).test_client()


def names(count: int) -> list[str]:
    return [f"host{i}.label{i % 97}.example{i % 13}.com" for i in range(count)]


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    body = response.get_json()
    assert {"error", "detail"} <= set(body), body
    return body


# -- item 9: nesting and big integers are 4xx, never 500 ---------------------------------------------

@pytest.mark.parametrize("path", PREDICT_ROUTES)
@pytest.mark.parametrize("depth", [300, 100_000])
def test_json_nested_too_deep_is_400_on_every_predict_route(client, path, depth):
    for body in ("[" * depth + "]" * depth, '{"queries": ' + "[" * depth + "]" * depth + "}"):
        answer = error_of(client.post(path, data=body, content_type="application/json"), 400)
        assert "nested too deeply" in answer["error"]


def test_integers_beyond_float_range_are_4xx_naming_record_and_field(client):
    huge = 10 ** 400
    iot = [{"class": "moto", "length": 2100, "width": 780}, {"class": "car", "length": huge, "width": 1700}]
    detail = error_of(client.post("/predict/iot-anomaly", data=json.dumps(iot), content_type="application/json"),
                      400)["detail"]
    assert (detail["index"], detail["field"]) == (1, "length")

    vector = [0.0] * 2381
    vector[7] = -huge
    detail = error_of(client.post("/predict/ember", data=json.dumps([[0.0] * 2381, vector]),
                                  content_type="application/json"), 400)["detail"]
    assert (detail["index"], detail["position"]) == (1, 7)

    raw = json.loads((Path(__file__).resolve().parents[1] / "data" / "ember" /
                      "reference_pip_launchers_raw.jsonl").read_text().splitlines()[0])
    raw["general"]["size"] = huge
    detail = error_of(client.post("/predict/ember", data=json.dumps({"vectors": [raw]}),
                                  content_type="application/json"), 400)["detail"]
    assert (detail["index"], detail["field"]) == (0, "size")

    row = dict.fromkeys(FEATURE_COLUMNS, 3)
    for body in ({"rows": [row, {**row, "labels": huge}]}, [row, {**row, "labels": huge}]):
        detail = error_of(client.post("/predict/dns", data=json.dumps(body), content_type="application/json"),
                          400)["detail"]
        assert (detail["index"], detail["field"]) == (1, "labels")


def test_a_float_beyond_float32_is_a_4xx_for_iot(client):
    response = client.post("/predict/iot-anomaly", json=[{"class": "car", "length": 1.7e308, "width": 1700}])
    assert error_of(response, 400)["detail"]["errors"][0]["field"] == "length"


# -- item 10: the HTTP contract ---------------------------------------------------------------------

def test_405_answers_carry_allow(client):
    for method, path, allowed in (("get", "/predict/dns", "POST"), ("delete", "/health", "GET"),
                                  ("put", "/predict/iot-anomaly", "POST"), ("post", "/metrics", "GET")):
        response = getattr(client, method)(path)
        error_of(response, 405)
        assert allowed in {m.strip() for m in response.headers["Allow"].split(",")}, (path, response.headers)


def test_openapi_documents_the_real_content_types(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    assert list(paths["/metrics"]["get"]["responses"]["200"]["content"]) == ["text/plain"]
    assert client.get("/metrics").mimetype == "text/plain"
    for path in ("/ui", "/ui/models", "/ui/tasks", "/ui/tasks/{slug}"):
        assert list(paths[path]["get"]["responses"]["200"]["content"]) == ["text/html"], path
    assert client.get("/ui/tasks/dns").mimetype == "text/html"
    assert list(paths["/ui/web-sessions/random"]["get"]["responses"]["200"]["content"]) == ["application/json"]


def test_alectio_bodies_are_documented(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    required = {"/train": {"labeled", "ckpt_file"}, "/test": {"ckpt_file"}, "/infer": {"unlabeled", "ckpt_file"},
                "/one_loop": {"experiment_id", "project_id", "cur_loop", "user_id", "bucket_name", "type"},
                "/end_exp": {"experiment_id", "project_id"}}
    for path, fields in required.items():
        operation = paths[path]["post"]
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert set(schema["required"]) == fields and fields <= set(schema["properties"]), path
        assert {"401", "409"} <= set(operation["responses"]), path
    assert paths["/jobs/{job_id}"]["get"]["security"] == [{"apiToken": []}]


def test_predict_dns_has_a_route_spec_415_and_413(models, client):
    operation = client.get("/openapi.json").get_json()["paths"]["/predict/dns"]["post"]
    assert set(operation["requestBody"]["content"]) == {"application/json", "text/plain"}
    assert operation["requestBody"]["content"]["application/json"]["schema"]
    for content_type in ("application/octet-stream", "text/html", "application/x-www-form-urlencoded"):
        error_of(client.post("/predict/dns", data=b"www.example.com", content_type=content_type), 415)
    limited = make_app(models, max_rows=3).test_client()
    assert limited.post("/predict/dns", json=names(3)).status_code == 200
    assert error_of(limited.post("/predict/dns", json=names(4)), 413)["detail"]["max_rows"] == 3
    # text/plain (one name per line) and queries + rows together are held to the same limit
    error_of(limited.post("/predict/dns", data="\n".join(names(4)), content_type="text/plain"), 413)
    row = dict.fromkeys(FEATURE_COLUMNS, 3)
    error_of(limited.post("/predict/dns", json={"queries": names(2), "rows": [row, row]}), 413)
