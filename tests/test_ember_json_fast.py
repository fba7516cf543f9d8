"""JSON feature vectors read fast (orjson + numpy, vigil.tensors.json_number_rows): the same answers
as the general JSON path, and every body that path would treat differently left to it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vigil.artifacts import ArtifactStore
from vigil.config import Settings
from vigil.service import create_app
from vigil.tasks import get_task
from vigil.tensors import json_number_rows

DATA = Path(__file__).resolve().parents[1] / "data" / "ember"


@pytest.mark.parametrize(
    "body, expected",
    [
        (b"[[1, 2.5], [3, -4e-3]]", [[1.0, 2.5], [3.0, -0.004]]),
        (b'{"vectors": [[1, 2], [3, 4]]}', [[1.0, 2.0], [3.0, 4.0]]),
        (b" \n[[0, 1E2]]\n", [[0.0, 100.0]]),
    ],
)
def test_vector_bodies_become_the_doubles_json_reads(body, expected):
    matrix = json_number_rows(body, 2, key="vectors")
    assert matrix.dtype == np.float64 and matrix.tolist() == expected
    assert matrix.tolist() == np.array(json.loads(body)["vectors"] if b"{" in body else json.loads(body)).tolist()


@pytest.mark.parametrize(
    "body",
    [
        b"[[1, true]]",
        b"[[1, false]]",
        b"[[1, null]]",
        b'[[1, "2"]]',
        b"[[1, NaN]]",
        b"[[1, 1e999]]",
        b"[[1, 2], [3]]",
        b"[[1, [2]]]",
        b"[[1, {}]]",
        b"[[1, 2, 3]]",
        b"[]",
        b"[1, 2]",
        b'{"vectors": [[1, 2]], "more": 1}',
        b'{"other": [[1, 2]]}',
        b"[[1, 2]",
        b"",
        b"{}",
        b"[[1, 2]] x",
    ],
)
def test_anything_else_goes_the_general_way(body):
    assert json_number_rows(body, 2, key="vectors") is None


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ember-json-fast")
    get_task("ember").train_default(ArtifactStore(folder), Settings.from_env(models_dir=folder))
    return folder


def client_for(models: Path, **overrides):
    app = create_app(Settings.from_env(models_dir=models, **overrides), ArtifactStore(models))
    app.config["TESTING"] = True
    return app.test_client()


def test_fast_json_answers_exactly_as_the_general_path(models):
    client = client_for(models)
    rows = np.load(DATA / "reference_pip_launchers_v2.npy").astype(np.float32).tolist()
    fast = client.post("/predict/ember", data=json.dumps({"vectors": rows}), content_type="application/json")
    assert json_number_rows(json.dumps(rows).encode(), 2381) is not None
    # the same vectors with an extra key: the general path (json, schema, per-value checks)
    general_body = json.dumps({"vectors": rows, "note": "x"})
    assert json_number_rows(general_body.encode(), 2381, key="vectors") is None
    general = client.post("/predict/ember", data=general_body, content_type="application/json")
    assert fast.status_code == general.status_code == 200
    assert fast.get_json() == general.get_json()
    assert fast.headers["X-Model-Version"] == general.headers["X-Model-Version"]


def test_vector_bodies_are_never_parsed_by_the_general_path(models, monkeypatch):
    from vigil.service import middleware, predict

    def general(data):
        raise AssertionError("the general JSON path parsed a body of vectors")

    monkeypatch.setattr(middleware, "parse_json", general)
    monkeypatch.setattr(predict, "parse_json", general)
    rows = np.load(DATA / "reference_pip_launchers_v2.npy").tolist()
    response = client_for(models).post("/predict/ember", data=json.dumps(rows), content_type="application/json")
    assert response.status_code == 200 and len(response.get_json()["results"]) == len(rows)


def test_fast_json_keeps_the_row_limit_and_its_message(models):
    client = client_for(models, max_rows=2)
    rows = np.zeros((3, 2381)).tolist()
    response = client.post("/predict/ember", data=json.dumps(rows), content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"] == "too many rows in one request: 3 > 2"


@pytest.mark.parametrize("value", [1e39, -1e39, float(np.finfo(np.float32).max) * (1 + 2**-25)])
def test_fast_json_non_finite_float32_is_named_as_before(models, value):
    """Past the float32 range, also just past it where float32 rounding would give the largest float."""
    client = client_for(models)
    rows = np.zeros((2, 2381)).tolist()
    rows[1][9] = value
    assert json_number_rows(json.dumps(rows).encode(), 2381) is not None
    response = client.post("/predict/ember", data=json.dumps(rows), content_type="application/json")
    assert response.status_code == 422
    assert response.get_json()["error"] == "vector 1, value 9 is not a finite float32"
