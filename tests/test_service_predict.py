"""/predict/<task> and the model registry view through the test client, with a real task's
default model (whichever task is registered; see service_support.first_task)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from vigil.config import Settings
from vigil.service import create_app
from vigil.tasks import all_tasks

from service_support import metric_samples, service_trained, sum_samples  # noqa: F401


@pytest.fixture(scope="module")
def trained(service_trained):
    task, store = service_trained
    settings = Settings.from_env(
        models_dir=store.root, work_dir=store.root.parent / "runs", bucket_root=store.root.parent / "bucket"
    )
    return task, store, settings


def client_for(trained, **overrides):
    task, store, settings = trained
    app = create_app(replace(settings, **overrides), store)
    app.config["TESTING"] = True
    return app.test_client()


def as_rows(example):
    return example if isinstance(example, list) else [example]


def test_prediction_carries_the_model_version(trained):
    task, store, _ = trained
    client = client_for(trained)
    version = store.latest_entry(task.name)["version"]
    response = client.post(f"/predict/{task.slug}", json=task.example_request())
    assert response.status_code == 200, response.get_json()
    assert response.headers["X-Model-Version"] == version
    body = response.get_json()
    if isinstance(body, dict):
        assert body["model_version"] == version


def test_models_view_lists_and_shows_each_model(trained):
    task, store, _ = trained
    client = client_for(trained)
    listed = {m["task"]: m for m in client.get("/models").get_json()["models"]}
    entry = store.latest_entry(task.name)
    assert listed[task.name]["version"] == entry["version"]
    one = client.get(f"/models/{task.name}").get_json()
    for key in ("version", "created_at", "metrics", "feature_version", "threshold"):
        assert key in one and one[key] == entry.get(key)
    assert client.get(f"/models/{task.slug}").get_json()["version"] == entry["version"]


def test_schema_violation_names_record_and_field(trained):
    task, _, _ = trained
    if task.request_schema() is None:
        pytest.skip(f"{task.name} declares no JSON schema")
    rows = as_rows(task.example_request())
    broken = [rows[0], {"unexpected": object.__name__}]
    response = client_for(trained).post(f"/predict/{task.slug}", json=broken)
    # the task's own 4xx when it explains the fault, else the schema's 422; never a 200 or a 5xx
    assert response.status_code in (400, 422), response.get_json()
    body = response.get_json()
    assert set(body) == {"error", "detail"}
    assert '"index": 1' in json.dumps(body["detail"]), body


def test_a_body_the_schema_refuses_goes_to_the_task_and_never_gets_a_5xx(trained, monkeypatch):
    task, _, _ = trained
    monkeypatch.setattr(type(task), "request_schema", lambda self: {"type": "array", "maxItems": 0})
    client = client_for(trained)
    # the task can answer it (its partial or full answer stands)
    assert client.post(f"/predict/{task.slug}", json=task.example_request()).status_code == 200
    # the task cannot (here it crashes): the schema's 422, not a 500
    monkeypatch.setattr(type(task), "predict", lambda self, loaded, request: 1 / 0)
    response = client.post(f"/predict/{task.slug}", json=task.example_request())
    assert response.status_code == 422 and response.get_json()["error"] == "request body does not match the schema"


def test_rows_over_the_limit_are_413(trained):
    task, _, _ = trained
    rows = as_rows(task.example_request())
    client = client_for(trained, max_rows=len(rows) * 2)
    assert client.post(f"/predict/{task.slug}", json=rows * 2).status_code == 200
    response = client.post(f"/predict/{task.slug}", json=rows * 3)
    assert response.status_code == 413
    assert response.get_json()["detail"]["max_rows"] == len(rows) * 2


def test_prediction_over_the_time_limit_is_503_and_the_worker_goes_on(trained):
    task, _, _ = trained
    rows = as_rows(task.example_request())
    client = client_for(trained, predict_timeout_s=1e-6, max_rows=200_000)
    repeats = max(1, 1_000_000 // len(json.dumps(rows)))  # about 1 MB of records
    response = client.post(f"/predict/{task.slug}", json=rows * repeats)
    assert response.status_code == 503
    assert "longer than" in response.get_json()["error"]
    assert client_for(trained).post(f"/predict/{task.slug}", json=rows).status_code == 200


def test_prediction_metrics_rows_and_scores(trained):
    task, store, _ = trained
    client = client_for(trained)
    rows = as_rows(task.example_request())
    client.post(f"/predict/{task.slug}", json=rows * 3)
    version = store.latest_entry(task.name)["version"]
    samples = metric_samples(client.get("/metrics").get_data(as_text=True))
    assert sum_samples(samples, "vigil_prediction_rows_count", task=task.name, model_version=version) >= 1
    assert sum_samples(samples, "vigil_prediction_rows_sum", task=task.name, model_version=version) >= len(rows) * 3
    assert (
        sum_samples(
            samples,
            "vigil_requests_total",
            endpoint="/predict/<task_slug>",
            task=task.name,
            model_version=version,
            status="200",
        )
        >= 1
    )
    from vigil.service.metrics import extract_scores

    response = client.post(f"/predict/{task.slug}", json=rows).get_json()
    if extract_scores(response):  # the task exposes scores: they are in the histogram
        assert sum_samples(
            metric_samples(client.get("/metrics").get_data(as_text=True)),
            "vigil_prediction_score_count",
            task=task.name,
            model_version=version,
        ) >= len(rows)


def test_openapi_lists_every_task_with_its_schema_and_example(trained):
    document = client_for(trained).get("/openapi.json").get_json()
    for task in all_tasks():
        operation = document["paths"][f"/predict/{task.slug}"]["post"]
        assert operation["security"] == [{"predictToken": []}]
        content = operation["requestBody"]["content"]["application/json"]
        if task.request_schema() is not None:
            assert content["schema"]
        if task.example_request() is not None:
            assert content["example"] == task.example_request()


def test_ready_when_every_configured_model_is_loaded(trained):
    task, _, _ = trained
    client = client_for(trained)
    assert client.get(f"/v2/models/{task.name}/ready").get_json() == {"name": task.name, "ready": True}
    body = client.get("/ready").get_json()
    assert task.name in body["models"]
    missing = {t.name for t in all_tasks()} - {task.name}
    assert set(body["missing"]) == missing and body["ready"] == (not missing)


def test_a_blueprint_without_a_spec_still_gets_json_parsing_and_version(trained):
    """Like ML-PT's root /predict: a view that only calls run_prediction()."""
    from flask import Blueprint, jsonify

    from vigil.service.predict import run_prediction

    task, store, settings = trained
    bp = Blueprint("plain", __name__)
    bp.add_url_rule("/plain_predict", "plain", lambda: jsonify(run_prediction(task.slug)), methods=["POST"])
    rows = as_rows(task.example_request())
    app = create_app(replace(settings, max_rows=len(rows)), store)
    app.register_blueprint(bp)
    client = app.test_client()
    response = client.post("/plain_predict", json=rows)
    assert response.status_code == 200 and response.headers["X-Model-Version"]
    assert client.post("/plain_predict", data=b"[{", content_type="application/json").status_code == 400
    too_many = client.post("/plain_predict", json=rows * 2)  # the task applies PredictInput.max_rows itself
    assert 400 <= too_many.status_code < 500 and set(too_many.get_json()) == {"error", "detail"}


def test_a_specific_route_overriding_predict_slug_keeps_the_documented_schema(trained):
    """Like /predict/web-sessions, a spec-less rule that wins over /predict/<task_slug>."""
    from flask import Blueprint, jsonify

    from vigil.service.predict import run_prediction

    task, store, settings = trained
    bp = Blueprint("specific", __name__)
    bp.add_url_rule(
        f"/predict/{task.slug}", "specific", lambda: jsonify({"wrapped": run_prediction(task.slug)}), methods=["POST"]
    )
    app = create_app(settings, store)
    app.register_blueprint(bp)
    client = app.test_client()
    assert "wrapped" in client.post(f"/predict/{task.slug}", json=task.example_request()).get_json()
    operation = client.get("/openapi.json").get_json()["paths"][f"/predict/{task.slug}"]["post"]
    if task.request_schema() is not None:
        assert operation["requestBody"]["content"]["application/json"]["schema"]


def test_a_model_that_fails_its_warm_up_is_not_served(trained, monkeypatch):
    """Hardening item 3: a worker that finds only a version failing warm-up answers 503 with the reason."""
    task, _, _ = trained
    monkeypatch.setattr(task, "example_request", lambda: {"not": "what this task takes"})
    client = client_for(trained)
    ready = client.get("/ready")
    assert ready.status_code == 503 and "warm-up" in ready.get_json()["errors"][task.name]
    monkeypatch.undo()
    refused = client.post(f"/predict/{task.slug}", json=task.example_request())
    assert refused.status_code == 503 and "warm-up" in refused.get_json()["error"]
    assert client.post("/admin/reload").status_code == 200  # the same file, warmed now: served again
    assert client.post(f"/predict/{task.slug}", json=task.example_request()).status_code == 200
