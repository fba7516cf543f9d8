"""Web-session intruder detection: dataset builder, features, training protocol, CLI and API."""

from __future__ import annotations

import copy
import math
import pickle
import re

import numpy as np
import pandas as pd
import pytest

from vigil.artifacts import ArtifactStore
from vigil.cli import main as vigil_main
from vigil.config import Settings
from vigil.errors import InvalidInput
from vigil.service import create_app
from vigil.tasks import PredictInput, get_task
from vigil.tasks.web_sessions import SHIPPED_SAMPLE, build_from_folder, data, submission_frame
from vigil.tasks.web_sessions.features import (
    SessionFeaturizer,
    SessionShape,
    SiteNameTokens,
    SiteNgrams,
    SiteScore,
    StartClock,
    StartHour,
    StartMonth,
    StartWeekday,
    TopSitesShare,
    VisitGaps,
    WeekdayHour,
    default_blocks,
    site_name_parts,
    tree_blocks,
)

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
    times = pd.Series(
        pd.to_datetime(
            ["2014-01-01 10:00:00"] * 12 + ["2014-01-01 10:29:00", "2014-01-01 10:30:01", "2014-01-01 11:05:00"]
        )
    )
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
    assert caught.value.detail == {"index": 2, "field": "site3", "value": "vk.com"}  # row 2 of the file


# -- features: every block's exact values on hand-made sessions ----------------------------------
def hand_made_sessions(*sessions) -> pd.DataFrame:
    """Sessions in Kaggle's layout from (sites, times) pairs; missing visits padded as in the files."""
    rows = []
    for sites, times in sessions:
        row = {}
        for i in range(data.N_SITES):
            row[f"site{i + 1}"] = sites[i] if i < len(sites) else pd.NA
            row[f"time{i + 1}"] = pd.Timestamp(times[i]) if i < len(times) else pd.NaT
        rows.append(row)
    frame = pd.DataFrame(rows, columns=data.SESSION_COLUMNS)
    for column in data.TIME_COLUMNS:
        frame[column] = pd.to_datetime(frame[column])
    return frame


# Tuesday 6 May 2014: sites 5, 7, 5 at 16:30:00, 16:30:30, 16:32:00 (gaps 30 s and 90 s)
TUESDAY = ([5, 7, 5], ["2014-05-06 16:30:00", "2014-05-06 16:30:30", "2014-05-06 16:32:00"])
# Saturday 10 May 2014 23:45: sites 7, 9
SATURDAY = ([7, 9], ["2014-05-10 23:45:00", "2014-05-10 23:45:10"])


def test_site_ngrams_are_sublinear_tfidf_of_the_ordered_site_runs():
    sessions = hand_made_sessions(TUESDAY, SATURDAY)
    block = SiteNgrams(min_df=1).fit(sessions)
    assert block.raw_features(sessions) == ["5 7 5", "7 9"]
    assert sorted(block.vectorizer.vocabulary_) == ["5", "5 7", "5 7 5", "7", "7 5", "7 9", "9"]
    # smooth idf over 2 sessions: ln(3 / (1 + df)) + 1; sublinear tf: 1 + ln(count); then L2 norm
    rare, common = math.log(3 / 2) + 1, 1.0
    weights = {"5": (1 + math.log(2)) * rare, "7": common, "5 7": rare, "7 5": rare, "5 7 5": rare}
    norm = math.sqrt(sum(w * w for w in weights.values()))
    row = block.process_raw_features(block.raw_features(sessions.iloc[:1])).toarray()[0]
    for term, index in block.vectorizer.vocabulary_.items():
        assert row[index] == pytest.approx(weights.get(term, 0.0) / norm, rel=1e-6), term
    assert block.dim == 7 and block.feature_names()[block.vectorizer.vocabulary_["5 7"]] == "sites 5 7"


def test_site_name_parts_of_hosts_ips_and_country_domains():
    assert site_name_parts("mail.google.fr") == ["google.fr", "mail", "google", "fr"]
    assert site_name_parts("www.youtube.com") == ["youtube.com", "youtube", "com"]
    assert site_name_parts("r3---sn-gxo5uxg-jqbe.googlevideo.com") == [
        "googlevideo.com",
        "r3",
        "sn",
        "gxo5uxg",
        "jqbe",
        "googlevideo",
        "com",
    ]
    assert site_name_parts("news.bbc.co.uk") == ["bbc.co.uk", "news", "bbc", "co", "uk"]
    assert site_name_parts("193.164.197.30") == ["193.164.197.x"]
    assert site_name_parts("?New.Site.FR.") == ["site.fr", "new", "site", "fr"]
    assert site_name_parts("localhost") == ["localhost"] and site_name_parts("") == []


def test_site_name_tokens_give_an_unseen_site_its_domain():
    names = {"5": "mail.google.fr", "7": "www.youtube.com", "9": "maps.google.fr"}
    sessions = hand_made_sessions(TUESDAY, SATURDAY)
    block = SiteNameTokens(names, min_df=1).fit(sessions)
    assert block.raw_features(sessions) == [
        "google.fr mail google fr youtube.com youtube com google.fr mail google fr",
        "youtube.com youtube com google.fr maps google fr",
    ]
    # a site id never seen in training, and a name the site dictionary lacks (the API's "?name")
    unseen = hand_made_sessions(([42, "?music.youtube.com"], ["2014-05-07 10:00:00", "2014-05-07 10:00:05"]))
    assert block.raw_features(unseen) == ["youtube.com music youtube com"]
    row = block.process_raw_features(block.raw_features(unseen)).toarray()[0]
    vocabulary = block.vectorizer.vocabulary_
    assert "music" not in vocabulary and row[vocabulary["youtube"]] > 0 and row[vocabulary["google"]] == 0
    # idf: "youtube.com", "youtube", "com" are in both training sessions -> idf 1; equal weights, L2 norm 1
    assert row[vocabulary["youtube"]] == pytest.approx(1 / math.sqrt(3), rel=1e-6)
    # only_rare_below: only sites seen in fewer than 2 training sessions speak (5 and 9; 7 is in both)
    rare = SiteNameTokens(names, only_rare_below=2, min_df=1).fit(sessions)
    assert rare.raw_features(sessions) == [
        "google.fr mail google fr google.fr mail google fr",
        "google.fr maps google fr",
    ]


def test_top_sites_share_counts_visits_and_time_on_alices_favourite_sites():
    sessions = hand_made_sessions(TUESDAY, SATURDAY, ([5, 5, 5, 9], ["2014-05-07 09:00:00"] * 4))
    block = TopSitesShare(n_sites=1).fit(sessions, [1, 0, 1])
    assert block.top_sites_ == ["5"]  # 5 visits to site 5 in Alice's sessions, 1 to site 7, 1 to 9
    raw = block.raw_features(sessions)
    # Tuesday: 2 of 3 visits on site 5; time: 30 s on the first 5 (then 7), 90 s on 7, the last visit unknown
    assert raw.loc[0].tolist() == pytest.approx([2 / 3, 30 / 120])
    assert raw.loc[1].tolist() == [0.0, 0.0]
    # four visits in the same second: no measurable time, so the time share is the visit share
    assert raw.loc[2].tolist() == pytest.approx([3 / 4, 3 / 4])
    assert block.process_raw_features(raw).shape == (3, 2)


def test_visit_gaps_and_session_shape():
    sessions = hand_made_sessions(TUESDAY)
    gaps = VisitGaps().raw_features(sessions)
    assert gaps.iloc[0].tolist() == [30.0, 90.0] + [0.0] * 7
    scaled = VisitGaps().process_raw_features(gaps).toarray()[0]
    assert scaled[:3] == pytest.approx([math.log1p(30) / math.log1p(1800), math.log1p(90) / math.log1p(1800), 0])
    raw = SessionShape().raw_features(sessions).iloc[0].to_dict()
    assert raw == {"duration_s": 120.0, "mean_gap_s": 60.0, "max_gap_s": 90.0, "n_visits": 3, "n_distinct_sites": 2}
    shape = SessionShape().process_raw_features(SessionShape().raw_features(sessions)).toarray()[0]
    assert shape == pytest.approx(
        [
            math.log1p(120) / math.log1p(1800),
            math.log1p(60) / math.log1p(1800),
            math.log1p(90) / math.log1p(1800),
            0.3,
            0.2,
        ]
    )


def test_start_time_blocks_one_hot_and_on_a_circle():
    sessions = hand_made_sessions(TUESDAY, SATURDAY)
    hour = StartHour().process_raw_features(StartHour().raw_features(sessions)).toarray()
    assert hour.shape == (2, 26) and hour[0, 16] == 1 and hour[0, :24].sum() == 1 and hour[1, 23] == 1
    assert hour[0, 24:] == pytest.approx([math.sin(2 * math.pi * 16.5 / 24), math.cos(2 * math.pi * 16.5 / 24)])
    assert hour[1, 24:] == pytest.approx([math.sin(2 * math.pi * 23.75 / 24), math.cos(2 * math.pi * 23.75 / 24)])
    weekday = StartWeekday().process_raw_features(StartWeekday().raw_features(sessions)).toarray()
    assert weekday.shape == (2, 9) and weekday[0, 1] == 1 and weekday[1, 5] == 1 and weekday[:, :7].sum() == 2
    assert weekday[0, 7:] == pytest.approx([math.sin(2 * math.pi / 7), math.cos(2 * math.pi / 7)])
    month = StartMonth().process_raw_features(StartMonth().raw_features(sessions)).toarray()
    assert month.shape == (2, 14) and month[0, 4] == 1 and month[0, :12].sum() == 1  # May
    assert month[0, 12:] == pytest.approx([math.sqrt(3) / 2, -0.5])
    cells = WeekdayHour().process_raw_features(WeekdayHour().raw_features(sessions)).toarray()
    assert cells.shape == (2, 168) and cells[0, 24 * 1 + 16] == 1 and cells[1, 24 * 5 + 23] == 1 and cells.sum() == 2
    clock = StartClock().raw_features(sessions)
    assert clock.to_dict("list") == {"time_of_day_h": [16.5, 23.75], "weekday": [1, 5]}
    assert StartClock().process_raw_features(clock).toarray().tolist() == [[16.5, 1.0], [23.75, 5.0]]


def test_month_is_not_a_default_block():
    assert "start_month" not in {block.name for block in default_blocks()} | {block.name for block in tree_blocks()}


def test_site_score_is_out_of_fold_by_day_on_its_own_training_sessions():
    from sklearn.linear_model import LogisticRegression

    days = ["2014-05-05", "2014-05-06", "2014-05-07"]
    sessions = hand_made_sessions(
        *[([site, 3], [f"{day} 10:00:00", f"{day} 10:00:05"]) for day in days for site in (1, 2, 1, 2)]
    )
    y = np.array([1, 0, 1, 0] * 3)
    block = SiteScore(n_folds=3)
    out_of_fold = block.out_of_fold_features(sessions, y).toarray().ravel()
    matrix = block.featurizer.transform(sessions)
    for day in days:
        this_day = (sessions["time1"].dt.strftime("%Y-%m-%d") == day).to_numpy()
        other_days = LogisticRegression(C=3.0, solver="liblinear", max_iter=1000).fit(matrix[~this_day], y[~this_day])
        assert out_of_fold[this_day] == pytest.approx(other_days.decision_function(matrix[this_day]), rel=1e-5)
    # elsewhere: the regression fitted on every training session
    full = LogisticRegression(C=3.0, solver="liblinear", max_iter=1000).fit(matrix, y)
    assert block.raw_features(sessions) == pytest.approx(full.decision_function(matrix), rel=1e-6)
    assert out_of_fold[0] > 0 > out_of_fold[1]  # site 1 is Alice's


def test_featurizer_is_the_blocks_side_by_side_and_survives_a_copy():
    sessions = hand_made_sessions(TUESDAY, SATURDAY, TUESDAY)
    blocks = [SiteNgrams(min_df=1), StartHour(), VisitGaps()]
    featurizer = SessionFeaturizer(blocks).fit(sessions, [1, 0, 1])
    matrix = featurizer.transform(sessions)
    assert featurizer.feature_dims() == {"site_ngrams": 7, "start_hour": 26, "visit_gaps": 9}
    assert matrix.shape == (3, 42) and len(featurizer.feature_names()) == 42
    assert featurizer.feature_names()[7 + 16] == "hour=16"
    assert list(featurizer.block_of_each_feature()[[0, 7, 33]]) == ["site_ngrams", "start_hour", "visit_gaps"]
    hour = StartHour().process_raw_features(StartHour().raw_features(sessions)).toarray()
    assert (matrix[:, 7:33].toarray() == hour.astype(np.float32)).all()
    # the vocabulary is saved as one array of terms and rebuilt on load (or copy): same matrix
    copied = copy.deepcopy(featurizer)
    assert copied.blocks_[0].vectorizer.vocabulary_ == featurizer.blocks_[0].vectorizer.vocabulary_
    assert (copied.transform(sessions) != matrix).nnz == 0
    assert "vocabulary_terms" in featurizer.blocks_[0].__getstate__()


def test_feature_and_model_docstring_examples_run():
    import doctest

    from vigil.tasks.web_sessions import features, model

    for module in (features, model):
        assert doctest.testmod(module).failed == 0


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
    assert (
        vigil_main(["web-sessions", "build-dataset", "--source", str(SHIPPED_SAMPLE), "--output", str(labelled_csv)])
        == 0
    )
    assert "~1% of them may be Alice" in capsys.readouterr().out
    built = data.read_sessions(labelled_csv)
    assert {"target", "source"} <= set(built.columns) and built["target"].sum() > 300

    # Kaggle-format test file: a slice of the shipped one, without target
    test_csv = tmp_path / "test_sessions.csv"
    data.read_sessions(SHIPPED_SAMPLE / "test_sessions.csv.gz").head(50).to_csv(test_csv, index=False)
    submission = tmp_path / "submission.csv"
    models_dir = str(trained[1].root)
    assert (
        vigil_main(
            [
                "--models-dir",
                models_dir,
                "web-sessions",
                "predict",
                "--input",
                str(test_csv),
                "--output",
                str(submission),
            ]
        )
        == 0
    )
    answer = pd.read_csv(submission)
    assert list(answer.columns) == ["session_id", "target"] and len(answer) == 50
    assert answer["target"].between(0, 1).all()


def test_predict_writes_kaggles_submission_format(tmp_path, trained):
    """Kaggle's format: header session_id,target; one row per test session, in the file's order;
    integer ids, each once; target a probability."""
    sessions = data.read_sessions(SHIPPED_SAMPLE / "test_sessions.csv.gz").sample(300, random_state=3)
    test_csv = tmp_path / "test_sessions.csv"
    sessions.to_csv(test_csv, index=False)
    submission = tmp_path / "out" / "submission.csv"
    assert (
        vigil_main(
            [
                "--models-dir",
                str(trained[1].root),
                "web-sessions",
                "predict",
                "--input",
                str(test_csv),
                "--output",
                str(submission),
            ]
        )
        == 0
    )
    lines = submission.read_text().splitlines()
    assert lines[0] == "session_id,target" and len(lines) == 1 + len(sessions)
    assert all(re.fullmatch(r"\d+,\d(\.\d+)?(e-\d+)?", line) for line in lines[1:]), lines[1:4]
    answer = pd.read_csv(submission)
    assert answer["session_id"].dtype == np.int64 and answer["target"].dtype == np.float64
    assert answer["session_id"].tolist() == sessions["session_id"].tolist() and answer["session_id"].is_unique
    assert answer["target"].between(0, 1).all() and answer["target"].nunique() > 10
    # the same scores as the API gives for the same sessions
    pipeline = trained[1].load("web_sessions").model
    assert answer["target"].to_numpy() == pytest.approx(pipeline.predict_proba(sessions)[:, 1], rel=1e-9, abs=1e-12)
    twice = pd.concat([sessions.head(2), sessions.head(1)])
    with pytest.raises(InvalidInput, match="appears twice"):
        submission_frame(twice, pipeline)


def test_cli_train_on_a_labelled_csv(tmp_path, monkeypatch, capsys):
    frame, _ = build_from_folder(SHIPPED_SAMPLE)
    labelled_csv = tmp_path / "labelled.csv"
    frame.to_csv(labelled_csv, index=False)
    monkeypatch.setenv("VIGIL_WORK_DIR", str(tmp_path / "runs"))
    code = vigil_main(
        [
            "--models-dir",
            str(tmp_path / "models"),
            "web-sessions",
            "train",
            "--data",
            str(labelled_csv),
            "--model",
            "logreg",
            "--cv-folds",
            "2",
            "--keep-split-model",
            "--site-dic",
            str(SHIPPED_SAMPLE / "site_dic.csv.gz"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "held-out" in out and "chose logreg" in out
    assert (tmp_path / "runs" / "web_sessions" / "training_report.png").stat().st_size > 10_000
    entry = ArtifactStore(tmp_path / "models").latest_entry("web_sessions")
    assert entry["metrics"]["model"] == "logreg" and entry["metrics"]["n_holdout"] == round(len(frame) * 0.2)
    assert len(entry["metrics"]["cv_roc_auc_folds"]["logreg"]) == 2
    # a single model is saved as one flat pipeline behind the site dictionary, and explained as such
    loaded = ArtifactStore(tmp_path / "models").load("web_sessions")
    assert [name for name, _ in loaded.model.steps] == ["site_ids", "features", "model"]
    request = PredictInput(json=[TASK.example_request()], content_type="application/json")
    answer = TASK.explain(loaded, request, TASK.predict(loaded, request), top=3)
    assert len(answer["reasons"][0]) == 3 and answer["threshold"] == entry["threshold"]
    probability = answer["predictions"][0]
    assert abs(1 / (1 + math.exp(-answer["raw_scores"][0])) - probability) < 1e-5  # the logit, explained


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
    flat = {
        f"{kind}{i + 1}": value
        for i, (site, time) in enumerate(zip(by_id["sites"], example["times"]))
        for kind, value in (("site", site), ("time", time))
    }
    unknown = {
        "sites": ["never-seen-before.example", "www.google.fr"],
        "times": ["2014-06-02T09:00:00", "2014-06-02T09:00:05+02:00"],
    }
    body = api.post("/predict/web-sessions", json={"sessions": [example, by_id, flat, unknown]}).get_json()
    assert body["success"] is True and len(body["predictions"]) == 4
    # names, ids and the flat Kaggle row are the same session, so the same score
    assert body["predictions"][0] == body["predictions"][1] == body["predictions"][2]
    generic = api.post("/predict/web-sessions", json=[example]).get_json()
    assert generic["predictions"] == body["predictions"][:1]


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"sites": ["vk.com"], "times": ["not a time"]}, "times[0]"),
        ({"sites": ["vk.com", "vk.com"], "times": ["2014-06-02 10:00:00"]}, "times"),
        ({"sites": [], "times": []}, "sites"),
        ({"sites": [True], "times": ["2014-06-02 10:00:00"]}, "sites[0]"),
        ({"sites": ["a.com", "b.com"], "times": ["2014-06-02 10:00:05", "2014-06-02 10:00:00"]}, "times[1]"),
        ({"sites": ["a.com"] * 11, "times": ["2014-06-02 10:00:00"] * 11}, "sites"),
        ({"site1": "a.com", "time1": "2014-06-02 10:00:00", "site3": "b.com", "time3": "2014-06-02 10:00:01"}, "site3"),
        ({"whatever": 1}, "sites"),
    ],
)
def test_malformed_session_gets_success_false_and_400_naming_session_and_field(api, payload, field):
    good = TASK.example_request()
    response = api.post("/predict/web-sessions", json=[good, payload])
    body = response.get_json()
    assert response.status_code == 400
    assert body["success"] is False and body["error"].startswith("session 1")
    assert body["detail"]["index"] == 1 and body["detail"]["field"] == field  # the one per-record shape


def test_non_json_and_wrong_shapes_are_400_in_the_course_shape(api):
    for kwargs in (
        {"data": b"{oops", "content_type": "application/json"},
        {"data": b"site,time", "content_type": "text/csv"},
        {"json": 42},
        {"json": []},
        {"json": {"sessions": "x"}},
    ):
        response = api.post("/predict/web-sessions", **kwargs)
        assert response.status_code == 400, kwargs
        assert response.get_json()["success"] is False and response.get_json()["error"]


def test_too_many_sessions_is_refused(trained):
    settings, store, _ = trained
    app = create_app(Settings.from_env(models_dir=settings.models_dir, max_rows=2), store)
    response = app.test_client().post("/predict/web-sessions", json=[TASK.example_request()] * 3)
    assert response.status_code == 413 and "too many sessions" in response.get_json()["error"]  # one row-limit status


def test_without_a_model_the_answer_is_503_in_the_course_shape(client):
    response = client.post("/predict/web-sessions", json=TASK.example_request())
    assert response.status_code == 503
    assert response.get_json()["success"] is False and "web_sessions" in response.get_json()["error"]


def test_ui_pages_render_for_every_task(api):
    for path in (
        "/ui",
        "/ui/models",
        "/ui/tasks",
        "/ui/tasks/web-sessions",
        "/static/web_sessions.js",
        "/static/ui.css",
    ):
        assert api.get(path).status_code == 200, path
    page = api.get("/ui/tasks/web-sessions").get_data(as_text=True)
    assert "www.google.fr" in page  # the example request is prefilled
    session = api.get("/ui/web-sessions/random").get_json()
    assert 1 <= len(session["sites"]) == len(session["times"]) <= 10 and session["label"]
    answer = api.post("/predict/web-sessions", json={k: session[k] for k in ("sites", "times")}).get_json()
    assert answer["success"] is True
    assert api.get("/ui/tasks/no-such-task").status_code == 404


def test_dask_training_on_a_two_worker_local_cluster_saves_the_same_artifact(tmp_path, labelled):
    """Issue 18: `--dask local:2` runs the LightGBM fits of the protocol on a real LocalCluster; the saved
    pipeline is the one-machine kind and scores like the one-machine model (LightGBM documents that
    distributed training is not bit-identical, so ranks and AUC are compared, not bytes)."""
    from lightgbm import LGBMClassifier
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    from vigil.tasks.web_sessions.data import time_split

    frame, site_dic = labelled
    settings = Settings.from_env(models_dir=tmp_path / "models", work_dir=tmp_path / "runs")
    stores = {"single": ArtifactStore(tmp_path / "single"), "dask": ArtifactStore(tmp_path / "dask")}
    entries = {
        name: TASK.train_and_save(
            store,
            settings,
            frame,
            site_dic,
            fingerprint="sample",
            quick=True,
            model="lightgbm",
            **({"dask": "local:2"} if name == "dask" else {}),
        )[0]
        for name, store in stores.items()
    }
    training = entries["dask"]["extra"]["training"]
    assert training["mode"] == "dask" and training["workers"] == 2 and training["address"] == "local:2 (127.0.0.1)"
    assert training["dask_fits"] == 5  # 3 CV folds, the 80% fit, the refit on everything
    assert "training" not in entries["single"]["extra"]

    _, holdout = time_split(frame, 0.2)
    y = holdout["target"].to_numpy()
    scores = {}
    for name, store in stores.items():
        pipeline = store.load("web_sessions").model  # through the artifact store's checks
        assert type(pipeline[-1]) is LGBMClassifier and "client" not in pipeline[-1].get_params()
        scores[name] = pipeline.predict_proba(holdout)[:, 1]
    assert abs(roc_auc_score(y, scores["dask"]) - roc_auc_score(y, scores["single"])) <= 0.03
    assert spearmanr(scores["dask"], scores["single"]).statistic >= 0.9
    assert entries["dask"]["metrics"]["model"] == "lightgbm"
    assert abs(entries["dask"]["metrics"]["roc_auc"] - entries["single"]["metrics"]["roc_auc"]) <= 0.03


def test_a_bad_dask_address_is_refused_before_any_work(tmp_path, capsys):
    code = vigil_main(["--models-dir", str(tmp_path / "models"), "web-sessions", "train", "--dask", "local:0"])
    assert code != 0
    assert "--dask local:N needs 1 <= N <= 256" in capsys.readouterr().err
    assert not (tmp_path / "models").exists()
