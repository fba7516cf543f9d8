"""Numeric-matrix input for EMBER: application/x-npy on /predict/ember and the Open Inference
Protocol (KServe V2) /v2/models/ember/infer, JSON tensors and the binary-data extension, with the
requests built byte for byte as tritonclient's HTTP client builds them."""

from __future__ import annotations

import io
import json
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from vigil.artifacts import ArtifactStore
from vigil.config import Settings
from vigil.errors import UnprocessableInput
from vigil.service import create_app
from vigil.tasks.ember.model import booster_of, scores
from vigil.tasks.ember.runtime import TOLERANCE

DATA = Path(__file__).resolve().parents[1] / "data" / "ember"


@pytest.fixture(scope="module")
def served(ember_demo_models):
    store = ArtifactStore(ember_demo_models)
    return ember_demo_models, store, booster_of(store.load("ember").model)


def served_scores(served, vectors: np.ndarray) -> np.ndarray:
    """What the service's model answers (its compiled trees once checked against the Booster, see
    vigil.tasks.ember.runtime: the registry loads it long-lived), itself within TOLERANCE of the bare
    Booster."""
    answer = scores(served[1].load("ember", long_lived=True), vectors)
    assert np.abs(answer - served[2].predict(vectors)).max() <= TOLERANCE
    return answer


def client_for(models: Path, **overrides):
    app = create_app(Settings.from_env(models_dir=models, **overrides), ArtifactStore(models))
    app.config["TESTING"] = True
    return app.test_client()


@pytest.fixture(scope="module")
def client(served):
    return client_for(served[0])


@pytest.fixture(scope="module")
def vectors():
    return np.load(DATA / "reference_pip_launchers_v2.npy").astype(np.float32)


def npy(array: np.ndarray, **kwargs) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, **kwargs)
    return buffer.getvalue()


def probabilities(answer: dict) -> np.ndarray:
    return np.array([result["probability"] for result in answer["results"]])


# -- application/x-npy ------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype, order", [(np.float32, "C"), (np.float64, "C"), (np.float32, "F"), (">f8", "C")])
def test_npy_body_scores_like_the_bare_model(client, served, vectors, dtype, order):
    body = npy(np.asarray(vectors, dtype=dtype, order=order))
    response = client.post("/predict/ember", data=body, content_type="application/x-npy")
    assert response.status_code == 200, response.get_json()
    assert np.allclose(probabilities(response.get_json()), served_scores(served, vectors), rtol=0, atol=1e-12)
    json_answer = client.post("/predict/ember", json=vectors.tolist()).get_json()
    assert probabilities(response.get_json()).tolist() == probabilities(json_answer).tolist()


@pytest.mark.parametrize("serving", ["compiled trees", "ONNX Runtime", "Booster"])
def test_each_scorer_refuses_the_first_bad_value_alike(served, vectors, serving):
    from vigil.tasks.ember import runtime

    loaded = served[1].load("ember", long_lived=serving == "compiled trees")  # one-shot: no compiled trees
    if serving == "Booster":
        loaded.cache["scorer"] = None  # what runtime.scorer_for caches when no scorer passed its check
    expected = {"compiled trees": "CompiledTrees", "ONNX Runtime": "OnnxScorer", "Booster": "NoneType"}[serving]
    assert type(runtime.scorer_for(loaded, served[2])).__name__ == expected
    bad = vectors.copy()
    bad[3, 2000], bad[5, 1] = np.inf, np.nan
    with pytest.raises(UnprocessableInput, match="^vector 3, value 2000 is not a finite float32$"):
        scores(loaded, bad, check_finite=True)
    assert np.abs(scores(loaded, vectors, check_finite=True) - served[2].predict(vectors)).max() <= TOLERANCE


def test_npy_faults_are_4xx_naming_the_fault(client, vectors):
    bad = vectors.copy()
    bad[2, 17] = np.nan
    cases = [
        (npy(bad), 422, {"index": 2, "position": 17}),
        (npy(vectors[:, :100]), 422, None),
        (npy(vectors.astype(np.int32)), 422, None),
        (npy(vectors[0]), 422, None),  # 1-D
        (npy(vectors)[:-3], 400, None),  # truncated data
        (b"not an npy file", 400, None),
    ]
    for body, status, detail in cases:
        response = client.post("/predict/ember", data=body, content_type="application/x-npy")
        assert response.status_code == status, (status, response.get_json())
        if detail:
            answer = response.get_json()
            # a record's fault comes in the one per-record shape {"index", "field", "message"}, plus specifics
            expected = {"field": None, "message": answer["error"], **detail} if "index" in detail else detail
            assert answer["detail"] == expected


def test_npy_object_array_is_refused_and_never_unpickled(client, tmp_path):
    marker = tmp_path / "unpickled"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    body = npy(np.array([[Payload()]], dtype=object), allow_pickle=True)
    response = client.post("/predict/ember", data=body, content_type="application/x-npy")
    assert response.status_code == 422 and "float32" in response.get_json()["error"]
    assert not marker.exists()


def test_npy_rows_over_the_limit_are_413_from_the_header_alone(served):
    header = npy(np.zeros((0, 2381), dtype=np.float32)).replace(b"(0, 2381)", b"(9999999, 2381)")
    response = client_for(served[0], max_rows=100).post("/predict/ember", data=header, content_type="application/x-npy")
    assert response.status_code == 413 and response.get_json()["detail"]["rows"] == 9999999


def test_npy_to_a_task_without_matrix_input_is_415(client, vectors):
    response = client.post("/predict/web-events", data=npy(vectors), content_type="application/x-npy")
    assert response.status_code == 415


# -- JSON vectors, converted and checked with numpy -------------------------------------------------
def test_json_vector_faults_still_name_vector_and_position(client, vectors):
    rows = vectors.tolist()
    rows[3][7] = 1e39  # beyond float32
    response = client.post("/predict/ember", data=json.dumps(rows), content_type="application/json")
    assert response.status_code == 422
    assert response.get_json()["error"] == "vector 3, value 7 is not a finite float32"
    assert response.get_json()["detail"] == {
        "index": 3,
        "field": None,
        "message": response.get_json()["error"],
        "position": 7,
    }
    rows = vectors.tolist()
    rows[1][5] = True  # numpy would read 1.0: the value-by-value path names it
    response = client.post("/predict/ember", data=json.dumps(rows), content_type="application/json")
    assert response.status_code == 400 and response.get_json()["detail"]["position"] == 5


def test_integer_json_vectors_score_like_their_floats(client):
    ints = np.arange(2 * 2381).reshape(2, 2381) % 7
    as_ints = client.post("/predict/ember", data=json.dumps(ints.tolist()), content_type="application/json")
    as_floats = client.post("/predict/ember", json=ints.astype(float).tolist())
    assert as_ints.status_code == 200
    assert probabilities(as_ints.get_json()).tolist() == probabilities(as_floats.get_json()).tolist()


# -- V2, as tritonclient sends it -------------------------------------------------------------------
def triton_request(X: np.ndarray, binary_input: bool, outputs: list[tuple[str, bool]] | None) -> tuple[bytes, dict]:
    """tritonclient.http's request bytes (``_get_inference_request``) for one FP32 input made with
    ``InferInput("input__0", shape, "FP32").set_data_from_numpy(X, binary_data=...)`` and
    ``InferRequestedOutput(name, binary_data=...)`` (no outputs: ``binary_data_output`` true)."""
    tensor = {"name": "input__0", "shape": list(X.shape), "datatype": "FP32"}
    raw = None
    if binary_input:
        raw = X.astype(np.float32).tobytes()
        tensor["parameters"] = {"binary_data_size": len(raw)}
    else:
        tensor["data"] = [float(v) for v in X.flatten()]
    request: dict = {"inputs": [tensor]}
    parameters = {}
    if outputs:
        request["outputs"] = [{"name": name, "parameters": {"binary_data": binary}} for name, binary in outputs]
    else:
        parameters["binary_data_output"] = True
    if parameters:
        request["parameters"] = parameters
    body = json.dumps(request)
    headers = {}
    if raw is not None:
        headers["Inference-Header-Content-Length"] = str(len(body))
        return struct.pack(f"{len(body)}s{len(raw)}s", body.encode(), raw), headers
    return body.encode(), headers


def read_triton_response(response) -> dict[str, np.ndarray]:
    """What tritonclient's InferResult.as_numpy gives for each output."""
    length = response.headers.get("Inference-Header-Content-Length")
    content = response.get_data()
    header = json.loads(content[: int(length)] if length else content)
    offset, arrays = int(length or 0), {}
    types = {"FP64": "<f8", "FP32": "<f4", "BOOL": "?"}
    for output in header["outputs"]:
        if "parameters" in output and "binary_data_size" in output["parameters"]:
            size = output["parameters"]["binary_data_size"]
            arrays[output["name"]] = np.frombuffer(content[offset : offset + size], dtype=types[output["datatype"]])
            offset += size
        else:
            arrays[output["name"]] = np.array(output["data"], dtype=types[output["datatype"]])
        arrays[output["name"]] = arrays[output["name"]].reshape(output["shape"])
    assert header["model_name"] == "ember" and header["model_version"]
    return arrays


@pytest.mark.parametrize("binary_input", [False, True])
@pytest.mark.parametrize("outputs", [None, [("probability", False)], [("probability", True), ("malicious", False)]])
def test_v2_infer_as_tritonclient_sends_it(client, served, vectors, binary_input, outputs):
    body, headers = triton_request(vectors, binary_input, outputs)
    response = client.post("/v2/models/ember/infer", data=body, headers=headers)  # no Content-Type, as tritonclient
    assert response.status_code == 200, response.get_data()[:300]
    arrays = read_triton_response(response)
    assert set(arrays) == ({"probability", "malicious"} if outputs is None else {name for name, _ in outputs})
    assert np.array_equal(arrays["probability"], served_scores(served, vectors))
    binary_wanted = outputs is None or any(binary for _, binary in outputs)
    assert ("Inference-Header-Content-Length" in response.headers) == binary_wanted


def test_v2_json_tensor_as_kserve_sends_it_with_nested_data_and_an_id(client, served, vectors):
    body = {
        "id": "req-1",
        "inputs": [{"name": "input-0", "shape": list(vectors.shape), "datatype": "FP32", "data": vectors.tolist()}],
    }
    response = client.post("/v2/models/ember/infer", json=body)
    answer = response.get_json()
    assert response.status_code == 200 and answer["id"] == "req-1"
    assert answer["outputs"][0] == {
        "name": "probability",
        "shape": [len(vectors)],
        "datatype": "FP64",
        "data": served_scores(served, vectors).tolist(),
    }
    versioned = client.post(f"/v2/models/ember/versions/{answer['model_version']}/infer", json=body)
    assert versioned.status_code == 200
    assert client.post("/v2/models/ember/versions/no-such/infer", json=body).status_code == 404


def test_v2_faults_are_4xx(client, vectors):
    bad = vectors.copy()
    bad[1, 99] = np.inf
    body, headers = triton_request(bad, True, [("probability", False)])
    response = client.post("/v2/models/ember/infer", data=body, headers=headers)
    answer = response.get_json()
    assert response.status_code == 422 and answer["detail"] == {
        "index": 1,
        "field": None,
        "message": answer["error"],
        "position": 99,
    }
    body, headers = triton_request(vectors, True, None)
    assert client.post("/v2/models/ember/infer", data=body[:-4], headers=headers).status_code == 400  # short
    assert (
        client.post("/v2/models/ember/infer", data=body, headers={"Inference-Header-Content-Length": "x"}).status_code
        == 400
    )
    narrow = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
    assert client.post("/v2/models/ember/infer", json=narrow).status_code == 422
    text = {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "BYTES", "data": ["a"]}]}
    assert client.post("/v2/models/ember/infer", json=text).status_code == 422
    wrong_count = {"inputs": [{"name": "x", "shape": [2, 2381], "datatype": "FP32", "data": [0.0] * 2381}]}
    assert client.post("/v2/models/ember/infer", json=wrong_count).status_code == 400
    bools = {"inputs": [{"name": "x", "shape": [1, 2381], "datatype": "FP32", "data": [True] + [0.0] * 2380}]}
    assert client.post("/v2/models/ember/infer", json=bools).status_code == 400
    unknown = {
        "inputs": wrong_count["inputs"][:0] + [{**wrong_count["inputs"][0], "shape": [1, 2381]}],
        "outputs": [{"name": "nope"}],
    }
    assert client.post("/v2/models/ember/infer", json=unknown).status_code == 400
    assert client.post("/v2/models/web-events/infer", json=narrow).status_code == 404
    assert client.post("/v2/models/ember/infer", data=b"{", content_type="application/json").status_code == 400


def test_v2_needs_the_predict_token_and_counts_rows(served, vectors):
    client = client_for(served[0], predict_token="s3cret", max_rows=2)
    body, headers = triton_request(vectors[:2], True, None)
    assert client.post("/v2/models/ember/infer", data=body, headers=headers).status_code == 401
    headers["Authorization"] = "Bearer s3cret"
    assert client.post("/v2/models/ember/infer", data=body, headers=headers).status_code == 200
    body, sized = triton_request(vectors[:3], True, None)
    assert client.post("/v2/models/ember/infer", data=body, headers={**headers, **sized}).status_code == 413


def test_v2_model_metadata_and_readiness(client):
    metadata = client.get("/v2/models/ember").get_json()
    assert metadata["inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": [-1, 2381]}]
    assert {o["name"]: o["datatype"] for o in metadata["outputs"]} == {"probability": "FP64", "malicious": "BOOL"}
    assert client.get("/v2/models/ember/ready").get_json()["ready"] is True
    assert "binary_tensor_data" in client.get("/v2").get_json()["extensions"]


def test_v2_scores_reach_the_prediction_histogram(client, vectors):
    def count() -> float:
        text = client.get("/metrics").get_data(as_text=True)
        return sum(
            float(line.split()[-1])
            for line in text.splitlines()
            if line.startswith("vigil_prediction_score_count") and 'task="ember"' in line
        )

    before = count()
    body, headers = triton_request(vectors, True, None)
    assert client.post("/v2/models/ember/infer", data=body, headers=headers).status_code == 200
    time.sleep(0)
    assert count() - before == len(vectors)
