"""Web-session intruder detection: dataset builder, features, training protocol, CLI and API."""

from __future__ import annotations

import pickle

import pandas as pd
import pytest

from vigil.artifacts import ArtifactStore
from vigil.cli import main as vigil_main
from vigil.config import Settings
from vigil.errors import InvalidInput
from vigil.service import create_app
from vigil.tasks import get_task
from vigil.tasks.web_sessions import SHIPPED_SAMPLE, build_from_folder, data
from vigil.tasks.web_sessions.features import SessionFeaturizer, SessionShape

TASK = get_task("web-sessions")


@pytest.fixture(scope="module")
def labelled():
    frame, site_dic = build_from_folder(SHIPPED_SAMPLE)
    return frame, site_dic


@pytest.fixture(scope="module")
def trained(web_sessions_trained):
    return web_sessions_trained


@pytest.fixture(scope="module")
def api(trained):
    settings, store, _ = trained
    app = create_app(settings, store)
    app.config["TESTING"] = True
    return app.test_client()


# -- dataset --------------------------------------------------------------------------------------
def test_sessionize_follows_kaggles_rule_of_ten_visits_and_thirty_minutes():
    times = pd.Series(pd.to_datetime(
        ["2014-01-01 10:00:00"] * 12 + ["2014-01-01 10:29:00", "2014-01-01 10:30:01", "2014-01-01 11:05:00"]))
    sites = pd.Series(range(1, 16))
    sessions = data.sessionize(times, sites)
    # 10 visits; then 2 + the 10:29 one (29 min after 10:00); 10:30:01 is > 30 min after 10:00; 11:05 > 30 min after that
    assert sessions[data.SITE_COLUMNS].notna().sum(axis=1).tolist() == [10, 3, 1, 1]
    assert sessions.loc[1, "site3"] == 13 and pd.isna(sessions.loc[1, "time4"])
    spans = (sessions[data.TIME_COLUMNS].max(axis=1) - sessions["time1"]).dt.total_seconds()
    assert spans.max() <= data.MAX_SESSION_SECONDS


def test_alice_is_moved_into_the_others_period_keeping_weekday_and_time_of_day(labelled):
    frame, site_dic = labelled
    alice, others = frame[frame["target"] == 1], frame[frame["target"] == 0]
    assert len(alice) > 300 and len(others) == 4000
    assert others["time1"].min() <= alice["time1"].min() and alice["time1"].max() <= others["time1"].max()
    assert (alice["weeks_shifted"] > 0).all() and (others["weeks_shifted"] == 0).all()

    original = data.log_to_sessions(data.read_alice_log(SHIPPED_SAMPLE / "Alice_log.csv"), site_dic)
    moved = alice.sort_values("session_id")
    assert len(original) == len(moved)
    back = moved["time1"] - pd.to_timedelta(moved["weeks_shifted"] * 7, unit="D")
    assert (back.to_numpy() == original["time1"].to_numpy()).all()
    assert (moved["time1"].dt.day_of_week.to_numpy() == original["time1"].dt.day_of_week.to_numpy()).all()
    assert moved["time1"].is_monotonic_increasing  # the order of Alice's weeks is kept
    # the sessions' own sites are untouched
    assert moved[data.SITE_COLUMNS].reset_index(drop=True).equals(original[data.SITE_COLUMNS])


def test_no_period_feature_separates_alice_from_the_others(labelled):
    """Before the shift the year alone would give the label away; after it, the start date does not."""
    from sklearn.metrics import roc_auc_score

    frame, _ = labelled
    start_day = frame["time1"].astype("datetime64[s]").astype("int64") // 86400
    auc = roc_auc_score(frame["target"], start_day)
    assert 0.3 < auc < 0.7, auc
    unshifted = start_day - frame["weeks_shifted"] * 7
    assert roc_auc_score(frame["target"], unshifted) < 0.05  # what the raw log would have leaked


def test_time_split_holds_out_the_latest_sessions(labelled):
    frame, _ = labelled
    train, holdout = data.time_split(frame, 0.25)
    assert len(holdout) == round(len(frame) * 0.25)
    assert train["time1"].max() <= holdout["time1"].min()
    assert holdout["target"].sum() > 0


def test_site_dic_pickle_may_only_hold_a_plain_dict(tmp_path):
    good = tmp_path / "site_dic.pkl"
    good.write_bytes(pickle.dumps({"vk.com": 7, "www.google.fr": 21}))
    assert data.read_site_dic(good) == {"vk.com": 7, "www.google.fr": 21}
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(pd.Timestamp("2014-01-01")))  # anything needing a class import is refused
    with pytest.raises(pickle.UnpicklingError):
        data.read_site_dic(evil)


def test_a_bad_cell_in_a_session_file_is_named(tmp_path):
    frame = pd.read_csv(SHIPPED_SAMPLE / "test_sessions.csv.gz").head(5)
    frame["site3"] = frame["site3"].astype(object)
    frame.loc[2, "site3"] = "vk.com"
    frame.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InvalidInput) as caught:
        data.read_sessions(tmp_path / "bad.csv")
    assert caught.value.detail == {"row": 2, "field": "site3", "got": "vk.com"}


# -- features -------------------------------------------------------------------------------------
def test_feature_blocks_describe_a_session():
    session = pd.DataFrame([{"site1": 5, "time1": pd.Timestamp("2014-05-06 16:00:00"),
                             "site2": 7, "time2": pd.Timestamp("2014-05-06 16:00:30"),
                             "site3": 5, "time3": pd.Timestamp("2014-05-06 16:02:00")}])
    for i in range(4, 11):
        session[f"site{i}"], session[f"time{i}"] = pd.NA, pd.NaT
    raw = SessionShape().raw_features(session).iloc[0].to_dict()
    assert raw == {"duration_s": 120.0, "mean_gap_s": 60.0, "max_gap_s": 90.0, "n_visits": 3, "n_distinct_sites": 2}
    featurizer = SessionFeaturizer().fit(pd.concat([session] * 3, ignore_index=True))
    matrix = featurizer.transform(session)
    dims = featurizer.feature_dims()
    assert matrix.shape == (1, sum(dims.values()))
    assert dims["start_hour"] == 24 and dims["start_weekday"] == 7
    assert "5 7 5" in featurizer.blocks_[0].vectorizer.vocabulary_  # the ordered 3-gram of sites


# -- training -------------------------------------------------------------------------------------
def test_default_training_compares_both_models_on_time_ordered_folds(trained):
    _, store, entry = trained
    metrics = entry["metrics"]
    assert set(metrics["cv_roc_auc_mean"]) == {"logreg", "lightgbm", "blend"}
    assert metrics["model"] == max(metrics["cv_roc_auc_mean"], key=metrics["cv_roc_auc_mean"].get)
    assert metrics["roc_auc"] > 0.7  # real signal even from the small shipped sample
    assert 0 < entry["threshold"] < 1
    loaded = store.load("web_sessions")
    assert len(loaded.model["site_ids"]) > 1000 and "www.google.fr" in loaded.model["site_ids"]


def test_cli_build_train_predict_roundtrip(tmp_path, trained, capsys):
    labelled_csv = tmp_path / "labelled.csv"
    assert vigil_main(["web-sessions", "build-dataset", "--source", str(SHIPPED_SAMPLE),
                       "--output", str(labelled_csv)]) == 0
    assert "~1% of them may be Alice" in capsys.readouterr().out
    built = data.read_sessions(labelled_csv)
    assert {"target", "source"} <= set(built.columns) and built["target"].sum() > 300

    # Kaggle-format test file: a slice of the shipped one, without target
    test_csv = tmp_path / "test_sessions.csv"
    data.read_sessions(SHIPPED_SAMPLE / "test_sessions.csv.gz").head(50).to_csv(test_csv, index=False)
    submission = tmp_path / "submission.csv"
    models_dir = str(trained[1].root)
    assert vigil_main(["--models-dir", models_dir, "web-sessions", "predict", "--input", str(test_csv),
                       "--output", str(submission)]) == 0
    answer = pd.read_csv(submission)
    assert list(answer.columns) == ["session_id", "target"] and len(answer) == 50
    assert answer["target"].between(0, 1).all()


def test_cli_train_on_a_labelled_csv(tmp_path, monkeypatch, capsys):
    frame, _ = build_from_folder(SHIPPED_SAMPLE)
    labelled_csv = tmp_path / "labelled.csv"
    frame.to_csv(labelled_csv, index=False)
    monkeypatch.setenv("VIGIL_WORK_DIR", str(tmp_path / "runs"))
    code = vigil_main(["--models-dir", str(tmp_path / "models"), "web-sessions", "train", "--data", str(labelled_csv),
                       "--model", "logreg", "--cv-folds", "2", "--keep-split-model",
                       "--site-dic", str(SHIPPED_SAMPLE / "site_dic.csv.gz")])
    out = capsys.readouterr().out
    assert code == 0 and "held-out" in out and "chose logreg" in out
    assert (tmp_path / "runs" / "web_sessions" / "training_report.png").stat().st_size > 10_000
    entry = ArtifactStore(tmp_path / "models").latest_entry("web_sessions")
    assert entry["metrics"]["model"] == "logreg" and entry["metrics"]["n_holdout"] == round(len(frame) * 0.2)
    assert len(entry["metrics"]["cv_roc_auc_folds"]["logreg"]) == 2


# -- API ------------------------------------------------------------------------------------------
def test_predict_one_session_in_the_course_shape(api):
    response = api.post("/predict/web-sessions", json=TASK.example_request())
    body = response.get_json()
    assert response.status_code == 200 and body["success"] is True
    assert len(body["predictions"]) == 1 and 0 <= body["predictions"][0] <= 1
    assert body["is_alice"] == [body["predictions"][0] >= body["threshold"]]


def test_predict_accepts_ids_names_unknown_names_flat_rows_and_lists(api, trained):
    site_ids = trained[1].load("web_sessions").model["site_ids"]
    example = TASK.example_request()
    by_id = {"sites": [site_ids[name] for name in example["sites"]], "times": example["times"]}
    flat = {f"{kind}{i + 1}": value for i, (site, time) in enumerate(zip(by_id["sites"], example["times"]))
            for kind, value in (("site", site), ("time", time))}
    unknown = {"sites": ["never-seen-before.example", "www.google.fr"], "times": ["2014-06-02T09:00:00",
                                                                                   "2014-06-02T09:00:05+02:00"]}
    body = api.post("/predict/web-sessions", json={"sessions": [example, by_id, flat, unknown]}).get_json()
    assert body["success"] is True and len(body["predictions"]) == 4
    # names, ids and the flat Kaggle row are the same session, so the same score
    assert body["predictions"][0] == body["predictions"][1] == body["predictions"][2]
    generic = api.post("/predict/web-sessions", json=[example]).get_json()
    assert generic["predictions"] == body["predictions"][:1]


@pytest.mark.parametrize("payload, field", [
    ({"sites": ["vk.com"], "times": ["not a time"]}, "times[0]"),
    ({"sites": ["vk.com", "vk.com"], "times": ["2014-06-02 10:00:00"]}, "times"),
    ({"sites": [], "times": []}, "sites"),
    ({"sites": [True], "times": ["2014-06-02 10:00:00"]}, "sites[0]"),
    ({"sites": ["a.com", "b.com"], "times": ["2014-06-02 10:00:05", "2014-06-02 10:00:00"]}, "times[1]"),
    ({"sites": ["a.com"] * 11, "times": ["2014-06-02 10:00:00"] * 11}, "sites"),
    ({"site1": "a.com", "time1": "2014-06-02 10:00:00", "site3": "b.com", "time3": "2014-06-02 10:00:01"}, "site3"),
    ({"whatever": 1}, "sites"),
])
def test_malformed_session_gets_success_false_and_400_naming_session_and_field(api, payload, field):
    good = TASK.example_request()
    response = api.post("/predict/web-sessions", json=[good, payload])
    body = response.get_json()
    assert response.status_code == 400
    assert body["success"] is False and body["error"].startswith("session 1")
    assert body["detail"]["session"] == 1 and body["detail"]["field"] == field


def test_non_json_and_wrong_shapes_are_400_in_the_course_shape(api):
    for kwargs in ({"data": b"{oops", "content_type": "application/json"},
                   {"data": b"site,time", "content_type": "text/csv"},
                   {"json": 42}, {"json": []}, {"json": {"sessions": "x"}}):
        response = api.post("/predict/web-sessions", **kwargs)
        assert response.status_code == 400, kwargs
        assert response.get_json()["success"] is False and response.get_json()["error"]


def test_too_many_sessions_is_refused(trained):
    settings, store, _ = trained
    app = create_app(Settings.from_env(models_dir=settings.models_dir, max_rows=2), store)
    response = app.test_client().post("/predict/web-sessions", json=[TASK.example_request()] * 3)
    assert response.status_code == 400 and "too many sessions" in response.get_json()["error"]


def test_without_a_model_the_answer_is_503_in_the_course_shape(client):
    response = client.post("/predict/web-sessions", json=TASK.example_request())
    assert response.status_code == 503
    assert response.get_json()["success"] is False and "web_sessions" in response.get_json()["error"]


def test_ui_pages_render_for_every_task(api):
    for path in ("/ui", "/ui/models", "/ui/tasks", "/ui/tasks/web-sessions", "/static/session.js", "/static/ui.css"):
        assert api.get(path).status_code == 200, path
    page = api.get("/ui/tasks/web-sessions").get_data(as_text=True)
    assert "www.google.fr" in page  # the example request is prefilled
    session = api.get("/ui/web-sessions/random").get_json()
    assert 1 <= len(session["sites"]) == len(session["times"]) <= 10 and session["label"]
    answer = api.post("/predict/web-sessions", json={k: session[k] for k in ("sites", "times")}).get_json()
    assert answer["success"] is True
    assert api.get("/ui/tasks/no-such-task").status_code == 404
