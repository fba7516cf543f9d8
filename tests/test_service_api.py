"""The service's generic machinery through Flask's test client: errors, auth, limits, schemas,
request ids, OpenAPI, /docs and /metrics. A small blueprint defined here stands in for the
blueprints other parts of Vigil add (Alectio's /one_loop...): the machinery must apply to it
without it doing anything but declaring its body schema."""

from __future__ import annotations

import json
import re

import pydantic
import pytest
from flask import Blueprint, jsonify, request

from vigil.errors import UnprocessableInput
from vigil.service import create_app
from vigil.service.api import hoist_definitions, spec
from vigil.service.validation import count_rows, validate_body

from service_support import metric_samples, sum_samples


class LoopRequest(pydantic.BaseModel):
    experiment_id: str
    cur_loop: int = pydantic.Field(ge=0)


def _blueprint_like_other_helpers() -> Blueprint:
    bp = Blueprint("loopdemo", __name__)

    @bp.post("/demo_loop")
    @spec(body=LoopRequest, summary="demo loop", tags=["demo"], auth="api")
    def demo_loop():
        return jsonify({"Message": f"loop {request.get_json()['cur_loop']} started"})

    @bp.post("/rows")
    @spec(
        body={"type": "array", "items": {"type": "object", "required": ["x"], "properties": {"x": {"type": "number"}}}}
    )
    def rows():
        return jsonify({"n": len(request.get_json())})

    return bp


def make_client(settings, store, **overrides):
    from dataclasses import replace

    app = create_app(replace(settings, **overrides), store)
    app.register_blueprint(_blueprint_like_other_helpers())
    app.config["TESTING"] = True
    return app.test_client()


@pytest.fixture
def api(settings, store):
    return make_client(
        settings, store, api_token="s3cret-api", predict_token="s3cret-predict", max_rows=5, max_body_bytes=4096
    )


def assert_json_error(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert response.is_json and set(body) == {"error", "detail"}, body
    return body


def test_tokens_guard_training_admin_and_predict_routes(api):
    auth = {"Authorization": "Bearer s3cret-api"}
    for path in ("/demo_loop", "/one_loop", "/admin/reload", "/train", "/end_exp"):
        body = assert_json_error(api.post(path, json={"experiment_id": "e", "cur_loop": 0}), 401)
        assert "VIGIL_API_TOKEN" in body["detail"]
    response = api.post(
        "/demo_loop", json={"experiment_id": "e", "cur_loop": 0}, headers={"Authorization": "Bearer wrong"}
    )
    assert_json_error(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    # the predict token does not open training routes, nor the reverse
    assert_json_error(api.post("/admin/reload", headers={"Authorization": "Bearer s3cret-predict"}), 401)
    assert_json_error(api.post("/predict/anything", json=[], headers=auth), 401)
    assert api.post("/demo_loop", json={"experiment_id": "e", "cur_loop": 2}, headers=auth).get_json() == {
        "Message": "loop 2 started"
    }
    assert api.post("/admin/reload", headers=auth).status_code == 200
    # a job's state is behind the token too (GET), like the routes that start jobs
    assert_json_error(api.get("/jobs/" + "a" * 32), 401)
    assert_json_error(api.get("/jobs/" + "a" * 32, headers=auth), 404)
    # with the right predict token, an unknown task is a 404, not a 401
    response = api.post("/predict/nope", json=[], headers={"Authorization": "Bearer s3cret-predict"})
    assert_json_error(response, 404)
    # open routes stay open (/ready may be 503 here: no model is trained in this test)
    for path in ("/health", "/ready", "/v2/health/ready", "/v2/health/live", "/models", "/openapi.json", "/metrics"):
        assert api.get(path).status_code in (200, 503), path


def test_no_tokens_configured_means_open(client):
    assert client.post("/admin/reload").status_code == 200


def test_declared_schema_is_enforced_with_record_and_field(api):
    auth = {"Authorization": "Bearer s3cret-api"}
    body = assert_json_error(api.post("/demo_loop", json={"experiment_id": "e", "cur_loop": -1}, headers=auth), 422)
    assert body["detail"][0]["field"] == "cur_loop"
    body = assert_json_error(api.post("/demo_loop", json={"cur_loop": 1}, headers=auth), 422)
    assert body["detail"][0]["field"] == "experiment_id"
    body = assert_json_error(api.post("/rows", json=[{"x": 1}, {"x": "two"}, {}]), 422)
    assert [(d["index"], d["field"]) for d in body["detail"]] == [(1, "x"), (2, "x")]


def test_malformed_bodies_get_400_413_415(api):
    auth = {"Authorization": "Bearer s3cret-api"}
    body = assert_json_error(
        api.post("/demo_loop", data=b"{not json", content_type="application/json", headers=auth), 400
    )
    assert "not valid JSON" in body["error"]
    assert_json_error(api.post("/demo_loop", data=b"", content_type="application/json", headers=auth), 400)
    assert_json_error(api.post("/demo_loop", data=b"<html>", content_type="text/html", headers=auth), 415)
    assert_json_error(api.post("/demo_loop", data=b"\xff\xfe{", content_type="application/json", headers=auth), 400)
    assert_json_error(api.post("/demo_loop", data=b"[" * 100_000, content_type="application/json", headers=auth), 413)
    body = assert_json_error(api.post("/rows", json=[{"x": i} for i in range(6)]), 413)
    assert body["detail"]["max_rows"] == 5 and body["detail"]["rows"] == 6
    body = assert_json_error(api.post("/rows", data=b"[" + b" " * 5000 + b"]", content_type="application/json"), 413)
    assert body["detail"]["max_body_bytes"] == 4096


def test_deeply_nested_json_is_a_400_not_a_crash(settings, store):
    client = make_client(settings, store, max_body_bytes=10_000_000)
    body = assert_json_error(
        client.post("/rows", data=b"[" * 200_000 + b"]" * 200_000, content_type="application/json"), 400
    )
    assert "deeply" in body["error"]


def test_kserve_v2_shapes(client):
    assert client.get("/v2/health/live").get_json() == {"live": True}
    assert set(client.get("/v2/health/ready").get_json()) == {"ready"}
    assert client.get("/v2").get_json()["name"] == "vigil"
    assert_json_error(client.get("/v2/models/nope/ready"), 404)


def test_not_found_and_method_not_allowed_are_json(client):
    assert_json_error(client.get("/no/such/route"), 404)
    assert "POST" in assert_json_error_response(client.get("/admin/reload"), 405).headers["Allow"]
    assert "GET" in assert_json_error_response(client.delete("/health"), 405).headers["Allow"]
    assert_json_error(client.get("/models/nope"), 404)


def assert_json_error_response(response, status):
    assert_json_error(response, status)
    return response


def test_request_id_is_honoured_or_generated(client):
    assert client.get("/health", headers={"X-Request-ID": "trace-42.a"}).headers["X-Request-ID"] == "trace-42.a"
    generated = client.get("/health").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    injected = client.get("/health", headers={"X-Request-ID": 'x" y <script>'}).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", injected)


def test_request_log_is_one_json_line_with_request_id(client, caplog):
    from vigil.jsonlog import JsonFormatter

    formatter = JsonFormatter()
    with caplog.at_level("INFO", logger="vigil"):
        client.get("/health", headers={"X-Request-ID": "log-me-1"})
    lines = [json.loads(formatter.format(record)) for record in caplog.records]
    entry = next(line for line in lines if line.get("request_id") == "log-me-1")
    assert entry["path"] == "/health" and entry["status"] == 200 and entry["duration_ms"] >= 0


def test_openapi_documents_every_route_with_schemas_and_security(api):
    document = api.get("/openapi.json").get_json()
    assert document["openapi"].startswith("3.1")
    paths = document["paths"]
    for path in (
        "/health",
        "/ready",
        "/v2/health/live",
        "/v2/health/ready",
        "/models",
        "/models/{task_name}",
        "/admin/reload",
        "/metrics",
        "/demo_loop",
    ):
        assert path in paths, path
    loop = paths["/demo_loop"]["post"]
    assert loop["security"] == [{"apiToken": []}]
    schema = loop["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["required"]) == {"experiment_id", "cur_loop"} and schema["properties"]["cur_loop"]["minimum"] == 0
    for status in ("400", "401", "404", "405", "413", "415", "422"):
        assert (
            loop["responses"][status]["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/Error"
        )
    # every local reference resolves inside the document
    text = json.dumps(document)
    for ref in set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', text)):
        assert ref in document["components"]["schemas"], ref


def test_hoisted_pydantic_definitions_resolve():
    class Inner(pydantic.BaseModel):
        value: float

    class Outer(pydantic.BaseModel):
        items: list[Inner]

    schema, components = hoist_definitions(Outer.model_json_schema(), "op_")
    assert schema["properties"]["items"]["items"]["$ref"] == "#/components/schemas/op_Inner"
    assert "op_Inner" in components and "$defs" not in schema


def test_docs_page_is_self_contained(client):
    response = client.get("/docs")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "openapi.json" in page
    assert not re.search(r"(src|href)=\"https?://", page), "the docs page must not load anything from the network"


def test_metrics_count_requests_per_endpoint(client):
    for _ in range(3):
        client.get("/v2/health/live")
    client.get("/no/such/route")
    samples = metric_samples(client.get("/metrics").get_data(as_text=True))
    assert sum_samples(samples, "vigil_requests_total", endpoint="/v2/health/live", status="200") >= 3
    assert sum_samples(samples, "vigil_request_errors_total", endpoint="<unmatched>", status="404") >= 1
    assert sum_samples(samples, "vigil_request_duration_seconds_count", endpoint="/v2/health/live") >= 3


def test_validation_helpers():
    assert count_rows([1, 2, 3]) == 3 and count_rows({"rows": [1, 2], "meta": "x"}) == 2 and count_rows({"a": 1}) == 1
    with pytest.raises(UnprocessableInput) as error:
        validate_body({"type": "object", "additionalProperties": False, "properties": {"a": {}}}, {"a": 1, "b": 2})
    assert error.value.detail[0]["field"] == "b"
