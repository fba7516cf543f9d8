"""Small things a user hits (issue 15, item 5) and the service's one-path helpers (issue 14, items 5
and 6): the uploaded file's name, an empty binary body, a truncated PE, the ROC plot's axis, /docs
for people, a favicon, gunicorn's control socket, numpy through the JSON provider, one error shape."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydantic
import pytest
from flask import Blueprint, jsonify

from vigil.artifacts import ArtifactStore
from vigil.config import Settings
from vigil.service import create_app
from vigil.service.api import spec
from vigil.tasks import get_task

DATA = Path(__file__).resolve().parents[1] / "data"
T32 = DATA / "ember" / "pe" / "t32.exe"


@pytest.fixture(scope="module")
def ember_models(tmp_path_factory) -> Path:
    models = tmp_path_factory.mktemp("small-ember")
    get_task("ember").train_default(ArtifactStore(models), Settings.from_env(models_dir=models))
    return models


def make_client(models: Path, **overrides):
    settings = Settings.from_env(models_dir=models, work_dir=models.parent / "runs", **overrides)
    app = create_app(settings, ArtifactStore(models))
    app.config["TESTING"] = True
    return app


def test_uploaded_files_carry_their_own_names_and_several_under_one_field_count(ember_models):
    client = make_client(ember_models).test_client()
    pe = T32.read_bytes()
    response = client.post(
        "/predict/ember",
        data={"files": [(io.BytesIO(pe), "launcher.exe"), (io.BytesIO(pe[:50_000]), "cut.exe")]},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200, response.get_json()
    results = response.get_json()["results"]
    assert [r["filename"] for r in results] == ["launcher.exe", "cut.exe"]
    assert [r["name"] for r in results] == ["launcher.exe", "cut.exe"]
    assert [r["field"] for r in results] == ["files", "files[1]"]


def test_an_empty_binary_body_says_it_is_empty_not_send_json(ember_models):
    client = make_client(ember_models).test_client()
    response = client.post("/predict/ember", data=b"", content_type="application/octet-stream")
    body = response.get_json()
    assert response.status_code == 400 and "empty" in body["error"]
    assert "JSON" not in json.dumps(body["detail"]) and body["detail"]["content_type"] == "application/octet-stream"


def test_a_truncated_pe_is_pe_with_a_note_as_the_docs_say(ember_models):
    client = make_client(ember_models).test_client()
    for cut in (1024, 50_000):
        response = client.post("/predict/ember", data=T32.read_bytes()[:cut], content_type="application/octet-stream")
        [result] = response.get_json()["results"]
        assert result["pe"] is True and result["note"].startswith("truncated"), (cut, result)
    [whole] = client.post("/predict/ember", data=T32.read_bytes(), content_type="application/octet-stream").get_json()[
        "results"
    ]
    assert whole["pe"] is True and "note" not in whole
    [text] = client.post("/predict/ember", data=b"not a PE " * 100, content_type="application/octet-stream").get_json()[
        "results"
    ]
    assert text["pe"] is False
    docs = (Path(__file__).resolve().parents[1] / "docs" / "ember.md").read_text()
    assert "A truncated PE whose headers still parse" in docs and '`"pe": true`' in docs


def test_the_roc_plot_has_no_negative_false_positive_rates(tmp_path):
    from vigil.tasks.ember.cli import plot_roc, roc_figure

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    scores = rng.random(400) + 0.4 * y
    figure, axis = roc_figure(y, scores, 0.5)
    figure.canvas.draw()
    assert axis.get_xlim()[0] == 0 and min(axis.get_xticks()) >= 0
    assert not any(label.get_text().startswith(("-", "\N{MINUS SIGN}")) for label in axis.get_xticklabels())
    plot_roc(y, scores, tmp_path / "roc.png", 0.5)
    assert (tmp_path / "roc.png").stat().st_size > 1000


def test_docs_summaries_and_tags_are_written_for_people(ember_models):
    document = make_client(ember_models).test_client().get("/openapi.json").get_json()
    names = {tag["name"] for tag in document["tags"]}
    assert {"Predictions", "Models", "Health", "Active learning"} <= names
    assert all(tag.get("description") for tag in document["tags"] if tag["name"] in names - {"dns"})
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            summary = operation["summary"]
            assert summary[:1].isupper() and "." not in summary.split(" ")[0], (method, path, summary)
            assert all(tag[:1].isupper() for tag in operation["tags"]), (method, path)
    assert document["paths"]["/predict/ember"]["post"]["summary"] == get_task("ember").title
    # the Alectio routes document their bodies from their request models
    train = document["paths"]["/train"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"labeled", "ckpt_file"} <= set(train["required"])


def test_favicon(ember_models):
    response = make_client(ember_models).test_client().get("/favicon.ico")
    assert response.status_code == 200 and response.mimetype == "image/svg+xml"
    assert response.get_data().startswith(b"<svg")


def test_gunicorns_control_socket_lives_in_the_runtime_folder(tmp_path):
    code = (
        "import os, shutil, vigil.service.gunicorn_conf as c;"
        "print(c.control_socket); print(os.environ['VIGIL_RUNTIME_DIR']); shutil.rmtree(c._runtime_dir)"
    )
    env = {**os.environ, "HOME": str(tmp_path / "home"), "VIGIL_MODELS_DIR": str(tmp_path / "models")}
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    socket, runtime = output.split()
    assert socket == str(Path(runtime) / "gunicorn.ctl") and not socket.startswith(str(tmp_path / "home"))


def test_numpy_values_go_through_the_apps_json_provider(ember_models):
    app = make_client(ember_models)
    bp = Blueprint("numpy_demo", __name__)

    @bp.get("/numpy_demo")
    def numpy_demo():
        return jsonify({"p": np.float32(0.25), "labels": np.arange(3), np.int64(7): {"n": np.int32(2)}})

    app.register_blueprint(bp)
    assert app.test_client().get("/numpy_demo").get_json() == {"p": 0.25, "labels": [0, 1, 2], "7": {"n": 2}}


class Reading(pydantic.BaseModel):
    length: float = pydantic.Field(ge=0)


def test_a_request_model_validates_with_index_field_and_message(ember_models):
    app = make_client(ember_models)
    bp = Blueprint("model_demo", __name__)

    class Body(pydantic.BaseModel):
        readings: list[Reading]

    @bp.post("/model_demo")
    @spec(body=Body, summary="Demo")
    def model_demo():
        return jsonify({"ok": True})

    app.register_blueprint(bp)
    response = app.test_client().post("/model_demo", json={"readings": [{"length": 1}, {"length": -1}, {}]})
    assert response.status_code == 422
    detail = response.get_json()["detail"]
    assert [(d["index"], d["field"]) for d in detail] == [(1, "length"), (2, "length")]
    assert all(d["message"] for d in detail) and detail[1]["message"] == "missing"


def test_union_branch_tags_are_not_taken_for_fields():
    from vigil.records import errors_of

    class Loop(pydantic.BaseModel):
        cur_loop: int | str = pydantic.Field(union_mode="left_to_right")
        sizes: list[int | float]

    body = {"cur_loop": [1], "sizes": [1, "x"]}
    with pytest.raises(pydantic.ValidationError) as caught:
        Loop.model_validate(body)
    fields = {(e["index"], e["field"]) for e in errors_of(caught.value, root=body)}
    assert fields == {(None, "cur_loop"), (1, "sizes")}


def test_per_record_validation_names_index_field_and_message():
    from vigil.records import public, validate_records

    checked = validate_records(Reading, [{"length": 2}, {"length": "x"}, {"length": -3}])
    assert [i for i, _ in checked.valid] == [0]
    assert public(checked.errors) == [
        {
            "index": 1,
            "field": "length",
            "message": "Input should be a valid number, unable to parse string as a number",
        },
        {"index": 2, "field": "length", "message": "Input should be greater than or equal to 0"},
    ]


def test_the_row_limit_is_413_for_every_task_that_counts_its_rows(tmp_path):
    settings = Settings.from_env(models_dir=tmp_path / "models", work_dir=tmp_path / "runs", max_rows=2)
    store = ArtifactStore(settings.models_dir)
    get_task("iot_anomaly").train_default(store, settings)
    from vigil.tasks import PredictInput

    iot = get_task("iot_anomaly")
    loaded = store.load("iot_anomaly", store.latest_entry("iot_anomaly")["version"])
    from vigil.errors import VigilError

    with pytest.raises(VigilError) as caught:
        iot.predict(loaded, PredictInput(json=iot.example_request() * 2, max_rows=2))
    assert caught.value.status == 413 and caught.value.detail["max_rows"] == 2
    client = create_app(settings, store).test_client()
    for path, body in (("/predict/iot-anomaly", iot.example_request() * 2), ("/predict/ember", [[0.0] * 2381] * 3)):
        response = client.post(path, json=body)
        assert response.status_code == 413, (path, response.get_json())
