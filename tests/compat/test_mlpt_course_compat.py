"""ML-PT's and the web-sessions course's clients (compat issue, items 3 and 6).

ML-PT's ``src/service/flask_app.py`` answers 415 ``{"error": "Request must be JSON"}`` for a body that is
not JSON and 500 ``{"error": "Failed classifying the provided events!"}`` for any failure; its client
notebook (``06_run_test_client.ipynb``) posts the README's array of ``{"data": "<event JSON>"}``. The course
project's API answers ``{"success": true, "predictions": p}`` for one session and its front end reads
``success`` from the body of every answer. Both conventions are behind ``VIGIL_COMPAT``; by default Vigil
answers 4xx naming the problem.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from vigil.artifacts import ArtifactStore
from vigil.config import PROJECT_ROOT, Settings
from vigil.service import create_app
from vigil.tasks import get_task
from vigil.tasks.web_events import train_model
from vigil.tasks.web_events.data import load_events_csv

MLPT_README_EVENT = {  # the event of ML-PT's README request (NaN as the bare token its client writes)
    "CLIENT_IP": "188.138.92.55", "CLIENT_USERAGENT": "NaN", "REQUEST_SIZE": 166, "RESPONSE_CODE": 404,
    "MATCHED_VARIABLE_SRC": "REQUEST_URI", "MATCHED_VARIABLE_NAME": "NaN",
    "MATCHED_VARIABLE_VALUE": "//tmp/20160925122692indo.php.vob", "EVENT_ID": "AVdhXFgVq1Ppo9zF5Fxu"}


def mlpt_body(*events: dict) -> str:
    # json.dumps writes float('nan') as the bare token NaN, as ML-PT's client does
    return json.dumps([{"data": json.dumps(e).replace('"NaN"', "NaN")} for e in events])


@pytest.fixture(scope="module")
def web_events_store(tmp_path_factory):
    sample = load_events_csv(PROJECT_ROOT / "data" / "web_events" / "events_sample.csv")
    store = ArtifactStore(tmp_path_factory.mktemp("mlpt-models"))
    pipeline, info, _ = train_model(sample, folds=0, tune=False, progress=False)
    store.save("web_events", pipeline, metrics=info["metrics"], extra=info["extra"])
    return store


def _client(store, tmp_path, compat=frozenset()):
    settings = Settings(models_dir=store.root, work_dir=tmp_path / "runs", compat=frozenset(compat))
    return create_app(settings, store).test_client()


def test_mlpt_readme_request_is_answered_in_its_shape(web_events_store, tmp_path):
    for compat in ((), ("mlpt",)):
        answer = _client(web_events_store, tmp_path, compat).post(
            "/predict", data=mlpt_body(MLPT_README_EVENT), content_type="application/json")
        assert answer.status_code == 200
        assert [set(r) for r in answer.get_json()] == [{"EVENT_ID", "LABEL_PRED"}]
        assert answer.get_json()[0]["EVENT_ID"] == "AVdhXFgVq1Ppo9zF5Fxu"


@pytest.mark.parametrize("body, content_type, default_status, mlpt_status, mlpt_body_", [
    ("EVENT_ID=1", "text/plain", 415, 415, {"error": "Request must be JSON"}),
    ("[{\"data\": \"{not json\"}]", "application/json", 400, 500, {"error": "Failed classifying the provided events!"}),
    ("{\"data\": 3}", "application/json", 400, 500, {"error": "Failed classifying the provided events!"}),
])
def test_mlpt_errors_are_its_own_with_the_setting(web_events_store, tmp_path, body, content_type, default_status,
                                                   mlpt_status, mlpt_body_):
    default = _client(web_events_store, tmp_path).post("/predict", data=body, content_type=content_type)
    assert default.status_code == default_status and "error" in default.get_json()
    exact = _client(web_events_store, tmp_path, {"mlpt"}).post("/predict", data=body, content_type=content_type)
    assert exact.status_code == mlpt_status and exact.get_json() == mlpt_body_
    # the setting is ML-PT's route only: /predict/web-events keeps Vigil's answers
    other = _client(web_events_store, tmp_path, {"mlpt"}).post("/predict/web-events", data=body,
                                                              content_type=content_type)
    assert 400 <= other.status_code < 500 and other.get_json() != mlpt_body_


@pytest.fixture(scope="module")
def sessions_client_factory(web_sessions_trained):
    settings, store, _ = web_sessions_trained

    def make(compat=frozenset()):
        return create_app(replace(settings, compat=frozenset(compat)), store).test_client()
    return make


def test_course_client_gets_a_scalar_for_one_session(sessions_client_factory):
    one = get_task("web-sessions").example_request()
    assert isinstance(one, dict)
    default = sessions_client_factory().post("/predict/web-sessions", json=one).get_json()
    course = sessions_client_factory({"course"}).post("/predict/web-sessions", json=one)
    assert course.status_code == 200 and course.get_json()["success"] is True
    assert isinstance(course.get_json()["predictions"], float)
    assert course.get_json()["predictions"] == default["predictions"][0]
    assert course.get_json()["is_alice"] == default["is_alice"][0]
    many = sessions_client_factory({"course"}).post("/predict/web-sessions", json=[one, one]).get_json()
    assert len(many["predictions"]) == 2  # a list of sessions still gets a list


@pytest.mark.parametrize("send", [
    lambda c: c.post("/predict/web-sessions", json={"sites": []}),
    lambda c: c.post("/predict/web-sessions", data="site1=vk.com", content_type="text/plain"),
])
def test_course_client_reads_errors_from_a_200_body(sessions_client_factory, send):
    default = send(sessions_client_factory())
    assert 400 <= default.status_code < 500 and default.get_json()["success"] is False
    course = send(sessions_client_factory({"course"}))
    assert course.status_code == 200
    body = course.get_json()
    assert body["success"] is False and body["error"] and body["status"] == default.status_code
