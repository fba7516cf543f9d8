"""Every verdict explained (issue 15, item 2): ``/predict/<slug>?explain=N`` gives each result its N
strongest reasons in one shape, and for every tree task (and IoT's exact Shapley values, and web
sessions' blend) the contributions add up to the model's raw score within 1e-6."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest

from vigil.artifacts import ArtifactStore
from vigil.config import Settings
from vigil.service import create_app
from vigil.tasks import get_task

DATA = Path(__file__).resolve().parents[1] / "data"
T32 = DATA / "ember" / "pe" / "t32.exe"
REASON_KEYS = {"feature", "value", "contribution", "text"}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("explain")
    settings = Settings.from_env(models_dir=root / "models", work_dir=root / "runs", bucket_root=root / "bucket")
    store = ArtifactStore(settings.models_dir)
    for name in ("iot_anomaly", "ember", "web_events", "web_sessions"):
        get_task(name).train_default(store, settings)
    return settings.models_dir


@pytest.fixture(scope="module")
def client(models):
    settings = Settings.from_env(models_dir=models, work_dir=models.parent / "runs", bucket_root=models.parent / "b")
    app = create_app(settings, ArtifactStore(models))
    app.config["TESTING"] = True
    return app.test_client()


@pytest.fixture(scope="module")
def store(models):
    return ArtifactStore(models)


def loaded(store, task: str):
    return store.load(task, store.latest_entry(task)["version"])


def assert_reasons(reasons: list, top: int) -> None:
    assert 0 < len(reasons) <= top
    for reason in reasons:
        assert set(reason) == REASON_KEYS, reason
        assert isinstance(reason["feature"], str) and reason["feature"] and isinstance(reason["text"], str)
        assert reason["feature"] in reason["text"] or reason["text"].startswith(("nothing in", "component"))
    sizes = [abs(r["contribution"]) for r in reasons]
    assert sizes == sorted(sizes, reverse=True)


# -- ember: LightGBM pred_contrib, named ----------------------------------------------------------
def test_ember_upload_reasons_name_blocks_and_add_up_to_the_log_odds(client, store):
    response = client.post(
        "/predict/ember?explain=5",
        data={"file": (io.BytesIO(T32.read_bytes()), "t32.exe")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200, response.get_json()
    [result] = response.get_json()["results"]
    assert_reasons(result["reasons"], 5)
    # the log-odds and the probability agree, and pred_contrib's columns sum to the log-odds
    assert abs(1 / (1 + math.exp(-result["raw_score"])) - result["probability"]) < 1e-6
    model = loaded(store, "ember").model
    vector = model[0].transform([get_task("ember")._items_from_files({"f": T32.read_bytes()}, 2)[0][1]])
    contributions = model[-1].predict(vector, pred_contrib=True)[0]
    raw = model[-1].predict(vector, raw_score=True)[0]
    assert abs(contributions.sum() - raw) < 1e-6 and abs(raw - result["raw_score"]) < 1e-6
    assert abs(contributions[-1] - result["expected_value"]) < 1e-9
    top = np.argsort(-np.abs(contributions[:-1]), kind="stable")[:5]
    assert [r["contribution"] for r in result["reasons"]] == pytest.approx(contributions[top].tolist(), abs=1e-12)


def test_ember_feature_names_and_hashed_bins_from_the_raw_record():
    from vigil.tasks.ember.explain import _hashed_entries, feature_names
    from vigil.tasks.ember.features import FeatureExtractor

    names = feature_names(2)
    assert len(names) == 2381 and len(feature_names(1)) == 2351 and len(set(names)) == len(names)
    assert names[0] == "byte histogram 0x00" and "general: size" in names and "header: timestamp" in names
    extractor = FeatureExtractor(2)
    raw = extractor.raw_features(T32.read_bytes())
    entries = _hashed_entries(extractor, raw)
    texts = set(entries.values())
    assert any(t.startswith("section .text: entropy") for t in texts), texts
    assert any(t.startswith("imports: kernel32.dll") for t in texts), texts
    # every hashed bin the file filled is named after what it put there (signed hashing may cancel
    # two tokens in one bin to 0, so a named bin can be 0; a filled one is never unnamed)
    from vigil.tasks.ember.features import block_slices

    vector = extractor.process_raw_features(raw)
    slices = block_slices(2)
    hashed = [
        *range(slices["header"].start + 1, slices["header"].start + 51),
        *range(slices["section"].start + 5, slices["section"].stop),
        *range(slices["imports"].start, slices["imports"].stop),
        *range(slices["exports"].start, slices["exports"].stop),
    ]
    filled = {column for column in hashed if vector[column] != 0}
    assert filled and filled <= set(entries), sorted(filled - set(entries))[:10]


def test_ember_vectors_get_reasons_too(client):
    response = client.post("/predict/ember?explain=2", json=[[0.0] * 2381, [1.0] * 2381])
    assert response.status_code == 200
    for result in response.get_json()["results"]:
        assert_reasons(result["reasons"], 2)
        assert abs(1 / (1 + math.exp(-result["raw_score"])) - result["probability"]) < 1e-6


# -- web events: forest decision paths, attack clusters -------------------------------------------
def test_web_events_forest_contributions_add_up_and_attack_clusters_are_named(client, store):
    from vigil.tasks.web_events import WebEventsTask
    from vigil.tasks.web_events.data import load_events_csv
    from vigil.tasks.web_events.explain import component_contributions

    model = loaded(store, "web_events")
    events = load_events_csv(DATA / model.entry["extra"]["data"]).head(300)
    explained = component_contributions(model.model, events)
    total = explained["base"] + explained["contributions"].sum(axis=1)
    assert np.abs(total - explained["probability"]).max() < 1e-6
    assert (explained["clusters"] == model.model.predict(events)).all()

    body = WebEventsTask().example_request()
    attack = set(model.entry["extra"]["attack_clusters"])
    for path in ("/predict/web-events?explain=3", "/predict?explain=3"):
        answers = client.post(path, json=body).get_json()
        for answer in answers:
            assert answer["attack"] == (answer["LABEL_PRED"] in attack)
            assert_reasons(answer["reasons"], 3)
            assert 0 <= answer["expected_value"] <= 1 and 0 < answer["probability"] <= 1
    partial = client.post("/predict/web-events?explain=1&partial=1", json=[body[0], {"bad": 1}, body[1]]).get_json()
    assert [p["index"] for p in partial["predictions"]] == [0, 2]
    assert all(len(p["reasons"]) == 1 for p in partial["predictions"])
    assert client.post("/predict", json=body).get_json() == [  # without ?explain: ML-PT's own answer
        {"EVENT_ID": a["EVENT_ID"], "LABEL_PRED": a["LABEL_PRED"]} for a in answers
    ]


def test_forest_contributions_are_additive_for_any_forest():
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier, RandomForestRegressor

    from vigil.explain import forest_contributions

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6))
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int) + (X[:, 3] > 1)
    for model in (RandomForestClassifier(20, random_state=0), ExtraTreesClassifier(10, max_depth=4, random_state=0)):
        model.fit(X, y)
        base, contributions = forest_contributions(model, X)
        predicted = model.predict_proba(X).max(axis=1)
        assert np.abs(base + contributions.sum(axis=1) - predicted).max() < 1e-6
    regressor = RandomForestRegressor(10, random_state=0).fit(X, X[:, 0] * 3)
    base, contributions = forest_contributions(regressor, X, classes=np.zeros(len(X), dtype=int))
    assert np.abs(base + contributions.sum(axis=1) - regressor.predict(X)).max() < 1e-6


# -- IoT: exact Shapley values of class, length and width -------------------------------------------
def test_iot_contributions_add_up_to_the_odd_probability(client):
    readings = [
        {"class": "car", "length": 4600, "width": 1750},
        {"class": "human", "length": 4200, "width": 300},
        {"class": "moto", "length": 10, "width": 5000},
    ]
    answers = client.post("/predict/iot-anomaly?explain=3", json=readings).get_json()
    for answer in answers:
        assert_reasons(answer["reasons"], 3)
        assert {r["feature"] for r in answer["reasons"]} <= {"class", "length", "width"}
        total = answer["expected_value"] + sum(r["contribution"] for r in answer["reasons"])
        assert abs(total - answer["score"]) < 1e-6 and abs(answer["score"] - answer["probability"]) < 1e-6
    assert "reasons" not in client.post("/predict/iot-anomaly", json=readings).get_json()[0]


@pytest.mark.parametrize("estimator", ["svc", "mlp", "forest"])
def test_iot_explanations_work_for_every_estimator(models, tmp_path, estimator):
    import pandas as pd

    from vigil.tasks.iot_anomaly.detector import make_estimator
    from vigil.tasks.iot_anomaly.explain import explain_rows
    from vigil.tasks.iot_anomaly.plots import odd_scores

    detector = get_task("iot_anomaly").detector(Settings.from_env(models_dir=tmp_path, data_dir=DATA))
    _, _, model = detector.classify(make_estimator(estimator))  # fitted, not saved (an MLP is no artifact)
    entry: dict = {"extra": {}}  # an older manifest: no typical objects, the scaler's mean sizes stand in
    rows = [{"class": "human", "length": 4200.0, "width": 300.0}, {"class": "car", "length": 4600.0, "width": 1750.0}]
    explained = explain_rows(model, rows, list(detector.classes), entry, 3, odd_scores)

    scores = odd_scores(model, pd.DataFrame(rows))
    for item, score in zip(explained, scores):
        total = item["expected_value"] + sum(r["contribution"] for r in item["reasons"])
        assert abs(total - score) < 1e-9 and abs(item["score"] - score) < 1e-9


# -- web sessions: the blend's probability, each member's logit -----------------------------------
def test_web_sessions_contributions_add_up_for_the_blend_and_each_member(client, store):
    from vigil.tasks.web_sessions import api_input
    from vigil.tasks.web_sessions.explain import explain_sessions, member_contributions

    task = get_task("web_sessions")
    response = client.post("/predict/web-sessions?explain=3", json=[task.example_request()] * 2)
    body = response.get_json()
    assert response.status_code == 200 and len(body["reasons"]) == 2
    for reasons in body["reasons"]:
        assert_reasons(reasons, 3)
    bundle = loaded(store, "web_sessions").model
    sessions = api_input.sessions_frame([task.example_request()], bundle["site_ids"], 10)
    everything = explain_sessions(bundle, sessions, {}, top=10**6)
    total = everything["expected_values"][0] + sum(r["contribution"] for r in everything["reasons"][0])
    probability = bundle.predict_proba(sessions)[0, 1]
    assert abs(total - probability) < 1e-6 and abs(everything["raw_scores"][0] - probability) < 1e-6
    for member in getattr(bundle[-1], "estimators_", [bundle[1:]]):  # the steps after the site dictionary
        part = member_contributions(member, sessions)
        raw = part["base"] + np.asarray(part["contributions"].sum(axis=1)).ravel()
        logit = member.steps[-1][1].predict_proba(member.steps[0][1].transform(sessions))[:, 1]
        assert np.abs(1 / (1 + np.exp(-raw)) - logit).max() < 1e-6


# -- the service's part: parse ?explain, pass it on ------------------------------------------------
def test_explain_parameter_is_checked_and_optional(client, monkeypatch):
    body = get_task("iot_anomaly").example_request()
    for bad in ("abc", "-1", "999", "\u00b2", "1.5"):
        response = client.post(f"/predict/iot-anomaly?explain={bad}", json=body)
        assert response.status_code == 400 and response.get_json()["detail"]["field"] == "explain"
    assert "reasons" not in client.post("/predict/iot-anomaly?explain=0", json=body).get_json()[0]
    assert len(client.post("/predict/iot-anomaly?explain", json=body).get_json()[1]["reasons"]) == 3
    # a task without explanations answers as it is, and says so where its answer is an object
    task = get_task("ember")

    def no_explain(self, loaded, request, result, top):
        raise NotImplementedError

    monkeypatch.setattr(type(task), "explain", no_explain)
    answer = client.post("/predict/ember?explain=2", json=[[0.0] * 2381]).get_json()
    assert answer["explained"] is False and "reasons" not in answer["results"][0]


def test_openapi_documents_the_explain_parameter(client):
    document = client.get("/openapi.json").get_json()
    for path in ("/predict/iot-anomaly", "/predict/ember", "/predict"):
        parameters = document["paths"][path]["post"]["parameters"]
        assert [p["name"] for p in parameters if p["in"] == "query"] == ["explain"], path


def test_explain_leaves_the_v2_protocol_alone(client):
    body = {"inputs": [{"name": "input-0", "shape": [1, 2381], "datatype": "FP32", "data": [0.0] * 2381}]}
    response = client.post("/v2/models/ember/infer?explain=3", json=body)
    assert response.status_code == 200 and [o["name"] for o in response.get_json()["outputs"]] == [
        "probability",
        "malicious",
    ]
