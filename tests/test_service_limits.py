"""Hardening of the prediction routes (issue 11, items 8-10), each test performing the attack:
CPU amplification (cost budget, admission gate, a deadline that stops the work), JSON nested too
deep, integers beyond the float range, and the HTTP contract (405 + Allow, documented content types,
/predict/dns's own route spec)."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
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
    settings = Settings.from_env(
        models_dir=models, work_dir=models.parent / "runs", bucket_root=models.parent / "bucket", **overrides
    )
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
    huge = 10**400
    iot = [{"class": "moto", "length": 2100, "width": 780}, {"class": "car", "length": huge, "width": 1700}]
    detail = error_of(client.post("/predict/iot-anomaly", data=json.dumps(iot), content_type="application/json"), 400)[
        "detail"
    ]
    assert (detail["index"], detail["field"]) == (1, "length")

    vector = [0.0] * 2381
    vector[7] = -huge
    detail = error_of(
        client.post("/predict/ember", data=json.dumps([[0.0] * 2381, vector]), content_type="application/json"), 400
    )["detail"]
    assert (detail["index"], detail["position"]) == (1, 7)

    raw = json.loads(
        (Path(__file__).resolve().parents[1] / "data" / "ember" / "reference_pip_launchers_raw.jsonl")
        .read_text()
        .splitlines()[0]
    )
    raw["general"]["size"] = huge
    detail = error_of(
        client.post("/predict/ember", data=json.dumps({"vectors": [raw]}), content_type="application/json"), 400
    )["detail"]
    assert (detail["index"], detail["field"]) == (0, "size")

    row = dict.fromkeys(FEATURE_COLUMNS, 3)
    for body in ({"rows": [row, {**row, "labels": huge}]}, [row, {**row, "labels": huge}]):
        detail = error_of(client.post("/predict/dns", data=json.dumps(body), content_type="application/json"), 400)[
            "detail"
        ]
        assert (detail["index"], detail["field"]) == (1, "labels")


def test_a_float_beyond_float32_is_a_4xx_for_iot(client):
    response = client.post("/predict/iot-anomaly", json=[{"class": "car", "length": 1.7e308, "width": 1700}])
    assert error_of(response, 400)["detail"]["errors"][0]["field"] == "length"


# -- item 10: the HTTP contract ---------------------------------------------------------------------


def test_405_answers_carry_allow(client):
    for method, path, allowed in (
        ("get", "/predict/dns", "POST"),
        ("delete", "/health", "GET"),
        ("put", "/predict/iot-anomaly", "POST"),
        ("post", "/metrics", "GET"),
    ):
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
    assert list(paths["/ui/{slug}/random"]["get"]["responses"]["200"]["content"]) == ["application/json"]
    assert "Retry-After" in paths["/predict/dns"]["post"]["responses"]["503"]["headers"]


def test_alectio_bodies_are_documented(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    required = {
        "/train": {"labeled", "ckpt_file"},
        "/test": {"ckpt_file"},
        "/infer": {"unlabeled", "ckpt_file"},
        "/one_loop": {"experiment_id", "project_id", "cur_loop", "user_id", "bucket_name", "type"},
        "/end_exp": {"experiment_id", "project_id"},
    }
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


# -- item 8: CPU amplification ---------------------------------------------------------------------


def test_a_request_over_the_cost_budget_is_413_before_any_work(client, monkeypatch):
    featurized = []
    original = QueryFeatureExtractor.features
    monkeypatch.setattr(QueryFeatureExtractor, "features", lambda self, q: featurized.append(q) or original(self, q))
    attack = {"queries": names(100_000)}  # the reported attack: 100,000 names, about 5 MB here
    answer = error_of(client.post("/predict/dns", json=attack), 413)
    assert "VIGIL_PREDICT_COST_BUDGET_S" in answer["error"]
    detail = answer["detail"]
    assert detail["rows"] == 100_000 and detail["row_cost_us"] == get_task("dns").row_cost
    assert detail["max_rows"] == int(10 * 1e6 // get_task("dns").row_cost)  # the default budget, 10 s
    assert featurized == []
    assert client.post("/predict/dns", json={"queries": names(50)}).status_code == 200


def test_the_cost_budget_scales_with_the_task_row_cost(models):
    client = make_app(models, predict_cost_budget_s=0.001).test_client()  # 1 ms of estimated CPU
    iot = get_task("iot-anomaly")
    assert client.post("/predict/iot-anomaly", json=iot.example_request()).status_code == 200  # 2 x 20 us
    detail = error_of(client.post("/predict/iot-anomaly", json=iot.example_request() * 50), 413)["detail"]
    assert detail["max_rows"] == 50 and detail["predict_cost_budget_s"] == 0.001
    # a spec-less route with its own error shape gets the same limit
    response = client.post("/predict/web-sessions", json=[get_task("web-sessions").example_request()] * 11)
    assert response.status_code == 413 and response.get_json()["success"] is False


def test_more_concurrent_work_than_the_gate_admits_gets_503_retry_after_and_health_answers(models, monkeypatch):
    app = make_app(models, predict_concurrency=1, predict_queue=1, predict_queue_wait_s=0.2)
    task = get_task("iot-anomaly")
    started, release = threading.Event(), threading.Event()
    real_predict = type(task).predict

    def slow_predict(self, loaded, request):
        started.set()
        release.wait(30)
        return real_predict(self, loaded, request)

    monkeypatch.setattr(type(task), "predict", slow_predict)

    def post():
        return app.test_client().post("/predict/iot-anomaly", json=task.example_request())

    with ThreadPoolExecutor(max_workers=6) as pool:
        first = pool.submit(post)
        assert started.wait(30)
        others = [pool.submit(post) for _ in range(5)]
        refused = [future.result(timeout=30) for future in others]  # all answered while the first runs
        assert app.test_client().get("/health").status_code == 200
        assert not first.done()
        release.set()
        assert first.result(timeout=30).status_code == 200
    for response in refused:
        answer = error_of(response, 503)
        assert "busy" in answer["error"] and int(response.headers["Retry-After"]) >= 1
    from vigil.service.predict import admission_gate

    with app.app_context():
        assert admission_gate().busy == 0
    assert post().status_code == 200  # the slot came back


def test_a_timed_out_prediction_stops_its_work(models, monkeypatch):
    app = make_app(models, predict_timeout_s=0.1, predict_cost_budget_s=0)
    client = app.test_client()
    featurized = []
    original = QueryFeatureExtractor.features
    monkeypatch.setattr(QueryFeatureExtractor, "features", lambda self, q: featurized.append(q) or original(self, q))
    before = sum_samples(
        metric_samples(client.get("/metrics").get_data(as_text=True)),
        "vigil_prediction_timeouts_total",
        task="dns_exfil",
        outcome="stopped",
    )
    total = 50_000  # about 3 s of work here: far past the limit on any machine
    answer = error_of(client.post("/predict/dns", json={"queries": names(total)}), 503)
    assert "longer than" in answer["error"]
    from vigil.service.predict import admission_gate

    with app.app_context():
        gate = admission_gate()
        for _ in range(600):  # the work gives its slot back once it has stopped
            if gate.busy == 0:
                break
            time.sleep(0.05)
        assert gate.busy == 0
    done = len(featurized)
    assert 0 < done < total and done % 256 == 0, done  # it stopped between two chunks
    time.sleep(0.3)
    assert len(featurized) == done  # and nothing runs on after the answer
    after = sum_samples(
        metric_samples(client.get("/metrics").get_data(as_text=True)),
        "vigil_prediction_timeouts_total",
        task="dns_exfil",
        outcome="stopped",
    )
    assert after == before + 1


def test_amplification_against_a_live_server(models, live_server):
    """The reported attack on a real gunicorn: 100,000-name requests are refused at once, and more
    concurrent heavy requests than the slots admit get 503 + Retry-After while /health answers."""
    server = live_server(
        models,
        env={
            "VIGIL_WORKERS": "1",
            "VIGIL_THREADS": "4",
            "VIGIL_PREDICT_CONCURRENCY": "1",
            "VIGIL_PREDICT_QUEUE": "1",
            "VIGIL_PREDICT_QUEUE_WAIT_S": "0.5",
            "VIGIL_PREDICT_TIMEOUT_S": "3",
        },
    )
    url = server.url + "/predict/dns"
    assert requests.post(url, json={"queries": names(100_000)}, timeout=60).status_code == 413
    heavy = {"queries": names(40_000)}  # within the budget, about 2.5 s of work here
    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(requests.post, url, json=heavy, timeout=120) for _ in range(6)]
        health = [requests.get(server.url + "/health", timeout=30).status_code for _ in range(3)]
        answers = [future.result() for future in futures]
    assert health == [200, 200, 200]
    statuses = sorted(a.status_code for a in answers)
    assert set(statuses) <= {200, 503} and statuses.count(503) >= 3, statuses
    busy = [a for a in answers if a.status_code == 503 and "busy" in a.json()["error"]]
    assert len(busy) >= 3 and all(int(a.headers["Retry-After"]) >= 1 for a in busy), statuses
    assert requests.get(server.url + "/health", timeout=30).status_code == 200
    for _ in range(100):  # once the stopped work has given its slot back, predictions are served again
        small = requests.post(url, json={"queries": names(5)}, timeout=30)
        if small.status_code == 200:
            break
        time.sleep(0.1)
    assert small.status_code == 200
