"""ML-PT's clients (compat issue, item 3).

ML-PT's ``src/service/flask_app.py`` answers 415 ``{"error": "Request must be JSON"}`` for a body that is
not JSON and 500 ``{"error": "Failed classifying the provided events!"}`` for any failure; its client
notebook (``06_run_test_client.ipynb``) posts the README's array of ``{"data": "<event JSON>"}``. The exact
error convention is behind ``VIGIL_COMPAT=mlpt``; by default Vigil answers 4xx naming the problem.
"""

from __future__ import annotations

import json

import pytest

from vigil.artifacts import ArtifactStore
from vigil.config import PROJECT_ROOT, Settings
from vigil.service import create_app
from vigil.tasks.web_events import train_model
from vigil.tasks.web_events.data import load_events_csv

MLPT_README_EVENT = {  # the event of ML-PT's README request (NaN as the bare token its client writes)
    "CLIENT_IP": "188.138.92.55",
    "CLIENT_USERAGENT": "NaN",
    "REQUEST_SIZE": 166,
    "RESPONSE_CODE": 404,
    "MATCHED_VARIABLE_SRC": "REQUEST_URI",
    "MATCHED_VARIABLE_NAME": "NaN",
    "MATCHED_VARIABLE_VALUE": "//tmp/20160925122692indo.php.vob",
    "EVENT_ID": "AVdhXFgVq1Ppo9zF5Fxu",
}


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
            "/predict", data=mlpt_body(MLPT_README_EVENT), content_type="application/json"
        )
        assert answer.status_code == 200
        assert [set(r) for r in answer.get_json()] == [{"EVENT_ID", "LABEL_PRED"}]
        assert answer.get_json()[0]["EVENT_ID"] == "AVdhXFgVq1Ppo9zF5Fxu"


@pytest.mark.parametrize(
    "body, content_type, default_status, mlpt_status, mlpt_body_",
    [
        ("EVENT_ID=1", "text/plain", 415, 415, {"error": "Request must be JSON"}),
        ('[{"data": "{not json"}]', "application/json", 400, 500, {"error": "Failed classifying the provided events!"}),
        ('{"data": 3}', "application/json", 400, 500, {"error": "Failed classifying the provided events!"}),
    ],
)
def test_mlpt_errors_are_its_own_with_the_setting(
    web_events_store, tmp_path, body, content_type, default_status, mlpt_status, mlpt_body_
):
    default = _client(web_events_store, tmp_path).post("/predict", data=body, content_type=content_type)
    assert default.status_code == default_status and "error" in default.get_json()
    exact = _client(web_events_store, tmp_path, {"mlpt"}).post("/predict", data=body, content_type=content_type)
    assert exact.status_code == mlpt_status and exact.get_json() == mlpt_body_
    # the setting is ML-PT's route only: /predict/web-events keeps Vigil's answers
    other = _client(web_events_store, tmp_path, {"mlpt"}).post(
        "/predict/web-events", data=body, content_type=content_type
    )
    assert 400 <= other.status_code < 500 and other.get_json() != mlpt_body_
