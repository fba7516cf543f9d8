"""Web-attack events (ML-PT): wrangling, generator, clustering, training, ML-PT's /predict, replay."""

from __future__ import annotations

import itertools
import json
import math
import re
import subprocess

import numpy as np
import pandas as pd
import pytest

from vigil.artifacts import ArtifactStore
from vigil.cli import main as cli_main
from vigil.config import PROJECT_ROOT, Settings
from vigil.service import create_app
from vigil.tasks.web_events import EXAMPLE_EVENTS, WebEventsTask, label_response, train_model
from vigil.tasks.web_events.clustering import cluster_events, split_attack_good
from vigil.tasks.web_events.data import (
    describe_events,
    event_to_request_record,
    frame_to_request,
    load_events_csv,
    parse_request,
)
from vigil.tasks.web_events.generator import PUBLISHED, generate_events
from vigil.tasks.web_events.wrangling import DATA_DELIMITER, EventWrangler, client_ip_groups, is_valid_user_agent

DATA = PROJECT_ROOT / "data" / "web_events"
SAMPLE = DATA / "events_sample.csv"
README = PROJECT_ROOT / "docs" / "web-events.md"  # the deep dive that holds the curl example


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    return load_events_csv(SAMPLE)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, sample):
    """One model trained on the shipped sample (ML-PT's forest parameters), in its own store."""
    models_dir = tmp_path_factory.mktemp("web_events_models")
    store = ArtifactStore(models_dir)
    pipeline, info, _ = train_model(sample, folds=0, tune=False, progress=False)
    store.save("web_events", pipeline, metrics=info["metrics"], extra=info["extra"])
    return models_dir, store, pipeline


@pytest.fixture(scope="module")
def api(trained, tmp_path_factory):
    models_dir, store, _ = trained
    settings = Settings.from_env(models_dir=models_dir, work_dir=tmp_path_factory.mktemp("runs"))
    app = create_app(settings, store)
    app.config["TESTING"] = True
    return app.test_client()


def record(**overrides) -> dict:
    event = dict(EXAMPLE_EVENTS[1])
    event.update(overrides)
    return event_to_request_record(event)


# -- wrangling ---------------------------------------------------------------------------------------------
def test_wrangling_follows_mlpt_rules():
    raw = pd.DataFrame(
        [
            {
                "CLIENT_IP": "188.138.92.55",
                "CLIENT_USERAGENT": math.nan,
                "REQUEST_SIZE": "abc",
                "RESPONSE_CODE": 700,
                "MATCHED_VARIABLE_SRC": "REQUEST_METHOD" + DATA_DELIMITER + "REQUEST_CONTE",
                "MATCHED_VARIABLE_NAME": None,
                "MATCHED_VARIABLE_VALUE": "POST",
                "EVENT_ID": math.nan,
            },
            {
                "CLIENT_IP": "2a02:6b8::1",
                "CLIENT_USERAGENT": "Mozilla/5.0 (X11) Firefox/45.0",
                "REQUEST_SIZE": -4,
                "RESPONSE_CODE": math.nan,
                "MATCHED_VARIABLE_SRC": "REQUEST_GET_ARGS",
                "MATCHED_VARIABLE_NAME": "REQUEST_GET_ARGS._",
                "MATCHED_VARIABLE_VALUE": 1516288084140,
                "EVENT_ID": "x",
            },
            {
                "CLIENT_IP": "12:ab",
                "CLIENT_USERAGENT": "garbage",
                "REQUEST_SIZE": 166.0,
                "RESPONSE_CODE": "404",
                "MATCHED_VARIABLE_SRC": math.nan,
                "MATCHED_VARIABLE_NAME": "url",
                "MATCHED_VARIABLE_VALUE": math.nan,
                "EVENT_ID": "y",
            },
        ]
    )
    clean = EventWrangler().transform(raw)
    assert clean["CLIENT_IP"].tolist() == [
        "2002:0000:0000:0000:0000:0000:bc8a:5c37",
        "2a02:06b8:0000:0000:0000:0000:0000:0001",
        "0012:00ab:0000:0000:0000:0000:0000:0000",
    ]
    assert clean["REQUEST_SIZE"].tolist() == [-1, -1, 166]
    assert clean["RESPONSE_CODE"].tolist() == [418, 418, 404]
    assert clean["MATCHED_VARIABLE_SRC"].tolist() == [
        "REQUEST_METHOD" + DATA_DELIMITER + "REQUEST_CONTENT_TYPE",
        "REQUEST_GET_ARGS",
        "",
    ]
    assert clean["MATCHED_VARIABLE_NAME"].tolist() == ["", "_JQUERY_NO_CHACHE_", "url"]
    assert clean["IS_USERAGENT_VALID"].tolist() == [False, True, False]
    assert clean["MATCHED_VARIABLE_VALUE"].tolist() == ["POST", "1516288084140", ""]
    assert clean["EVENT_ID"].tolist() == ["", "x", "y"]
    for odd in ("fe80::1%eth0", "", "not an address", "1.2.3.4.5"):
        assert [int(group, 16) for group in client_ip_groups(odd).split(":")] == [0] * 8 or odd == "fe80::1%eth0"
    assert is_valid_user_agent("sqlmap/1.0-dev (http://sqlmap.org)")


# -- data and generator ------------------------------------------------------------------------------------
def test_loader_reads_bare_nan_and_drops_duplicates(tmp_path):
    text = ",".join(EXAMPLE_EVENTS[0]) + "\n" + "188.138.92.55,NaN,166,404,REQUEST_URI,NaN,//tmp/x.php,AVdh\n"
    path = tmp_path / "part_10.csv"
    path.write_text(text + text.splitlines()[1] + "\n")
    frame = load_events_csv(path)
    assert len(frame) == 1
    assert pd.isna(frame.loc[0, "CLIENT_USERAGENT"]) and pd.isna(frame.loc[0, "MATCHED_VARIABLE_NAME"])
    assert load_events_csv(path, drop_duplicates=False).shape == (2, 8)


def test_shipped_sample_has_mlpt_shape(sample):
    table = describe_events(sample)
    assert len(sample) == 2500
    assert table.loc["unique", "MATCHED_VARIABLE_SRC"] == 21
    assert table.loc["unique", "RESPONSE_CODE"] == 60
    assert table.loc["top", "CLIENT_IP"] == "217.175.140.69"
    assert table.loc["missing", "MATCHED_VARIABLE_NAME"] == round(4666 * 2500 / 57833)


def test_generator_fits_published_statistics_at_scale():
    rows = 5000
    frame = generate_events(rows, seed=3)
    scale = rows / PUBLISHED["rows"]
    assert len(frame) == rows + round(12 * scale)
    unique = frame.drop_duplicates()
    assert len(unique) == rows
    table = describe_events(unique)
    for column in ("CLIENT_IP", "MATCHED_VARIABLE_NAME", "EVENT_ID", "REQUEST_SIZE"):
        assert table.loc["unique", column] == round(PUBLISHED["distinct"][column] * scale), column
    for column, missing in PUBLISHED["missing"].items():
        assert table.loc["missing", column] == round(missing * scale), column
    assert table.loc["freq", "MATCHED_VARIABLE_NAME"] == round(11_165 * scale)
    assert generate_events(300, seed=3).equals(generate_events(300, seed=3))


# -- clustering ----------------------------------------------------------------------------------------------
def test_dbscan_reproduces_mlpt_labels_on_their_features():
    """A slice of ML-PT's published features: 16 whole clusters plus noise, at their eps and min_samples."""
    from sklearn.metrics import adjusted_rand_score

    with np.load(DATA / "mlpt_features_slice.npz") as archive:
        X, y = archive["X"], archive["y"]
    result = cluster_events(X, min_samples=18, eps=0.0678)
    assert result.min_samples == 2 * X.shape[1]
    assert adjusted_rand_score(y, result.labels) > 0.99
    assert result.knee.eps is not None and result.knee.knee_index is not None


def test_smallest_clusters_are_attacks():
    sizes = {-1: 50, 0: 1000, 1: 5, 2: 300, 3: 20}
    assert split_attack_good(sizes, attack_clusters=2) == ([1, 3], [0, 2])
    assert split_attack_good(sizes) == ([], [0, 1, 2, 3])  # 4 clusters, all among the 11 largest


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """``vigil ARGV`` in this process (the CLI's own entry point, without a second interpreter start)."""
    capsys.readouterr()
    code = cli_main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cluster_cli_on_features_file(tmp_path, capsys):
    out = tmp_path / "cluster"
    code, stdout, stderr = run_cli(
        capsys,
        "web-events",
        "cluster",
        "--features",
        str(DATA / "mlpt_features_slice.npz"),
        "--compare-labels",
        str(DATA / "mlpt_features_slice.npz"),
        "--eps",
        "0.0678",
        "--out-dir",
        str(out),
    )
    assert code == 0, stderr
    summary = json.loads(stdout[: stdout.rindex("}") + 1])
    assert summary["min_samples"] == 18 and summary["eps"] == 0.0678
    assert summary["compare"]["adjusted_rand_index"] > 0.99
    assert (out / "k_distance.png").stat().st_size > 10_000
    assert np.load(out / "dbscan_labels.npz")["y"].shape == (2942,)


# -- training --------------------------------------------------------------------------------------------------
def test_trained_pipeline_carries_its_featurizer(trained, sample):
    _, store, pipeline = trained
    loaded = store.load("web_events")
    assert [name for name, _ in loaded.model.steps] == ["wrangle", "features", "project", "classifier"]
    assert loaded.model.named_steps["features"].get_feature_names_out().size == 76
    labels = loaded.model.predict(sample)
    assert set(np.unique(labels)) <= set(loaded.model.classes_)
    assert loaded.entry["metrics"]["train_f1_weighted"] > 0.9


def test_train_cli_compares_and_tunes(tmp_path, sample, capsys):
    small = tmp_path / "events.csv"
    sample.iloc[:400].to_csv(small, index=False)
    code, stdout, stderr = run_cli(
        capsys,
        "--models-dir",
        str(tmp_path / "models"),
        "web-events",
        "train",
        "--csv",
        str(small),
        "--folds",
        "2",
        "--repeats",
        "1",
        "--n-iter",
        "2",
        "--tune-folds",
        "2",
        "--out-dir",
        str(tmp_path / "out"),
    )
    assert code == 0, stderr
    assert "random forest" in stdout and "gaussian naive bayes" in stdout
    entry = ArtifactStore(tmp_path / "models").latest_entry("web_events")
    assert 0 < entry["metrics"]["cv_f1_weighted"] <= 1
    assert entry["extra"]["tuning"]["candidates_searched"] >= 3
    assert len(entry["extra"]["comparison"]) == 6


def test_train_cli_on_featurized_matrix(tmp_path, capsys):
    slice_file = str(DATA / "mlpt_features_slice.npz")
    code, stdout, stderr = run_cli(
        capsys,
        "--models-dir",
        str(tmp_path / "models"),
        "web-events",
        "train",
        "--features",
        slice_file,
        "--labels",
        slice_file,
        "--folds",
        "2",
        "--repeats",
        "1",
        "--no-tune",
    )
    assert code == 0, stderr
    assert "2,942 events x 9 features, 17 labels" in stdout
    forest_f1 = float(re.search(r"random forest\s+([0-9.]+)", stdout).group(1))
    assert forest_f1 > 0.95
    assert not (tmp_path / "models" / "manifest.json").exists()


# -- service ----------------------------------------------------------------------------------------------------
def test_predict_answers_mlpt_shape_on_both_routes(api, trained):
    body = WebEventsTask().example_request()
    assert "NaN" in body[0]["data"]
    root = api.post("/predict", json=body)
    assert root.status_code == 200, root.get_json()
    answer = root.get_json()
    assert [list(item) for item in answer] == [["EVENT_ID", "LABEL_PRED"]] * 2
    assert [item["EVENT_ID"] for item in answer] == ["AVdhXFgVq1Ppo9zF5Fxu", "AVdcJmIIq1Ppo9zF2YIp"]
    assert all(isinstance(item["LABEL_PRED"], int) for item in answer)
    assert api.post("/predict/web-events", json=body).get_json() == answer
    offline = label_response(trained[2], pd.DataFrame(EXAMPLE_EVENTS))
    assert answer == offline
    assert api.post("/predict", json=[]).get_json() == []


def test_bad_records_get_400_naming_their_index(api):
    body = [record(), {"data": "{not json"}, record(), {"data": json.dumps({"CLIENT_IP": "1.2.3.4"})}, {"nodata": 1}]
    response = api.post("/predict", json=body)
    assert response.status_code == 400
    error = response.get_json()
    assert "3 of 5 records are invalid" in error["error"]
    records = {item["index"]: item for item in error["detail"]["records"]}
    assert sorted(records) == [1, 3, 4]
    assert "not valid JSON" in records[1]["message"]  # the one per-record shape {"index", "field", "message"}
    assert "REQUEST_SIZE" in records[3]["field"]

    partial = api.post("/predict/web-events?partial=1", json=body)
    assert partial.status_code == 200
    result = partial.get_json()
    assert [p["index"] for p in result["predictions"]] == [0, 2]
    assert [e["index"] for e in result["errors"]] == [1, 3, 4]

    for bad_body in ({"data": "x"}, "text", 5):
        response = api.post("/predict", json=bad_body)
        assert response.status_code == 400 and "JSON array" in response.get_json()["error"]
    assert api.post("/predict", data="[{", content_type="application/json").status_code == 400


def test_odd_values_never_500(api):
    odd = [
        record(REQUEST_SIZE=10**400, RESPONSE_CODE="Infinity"),
        {"data": json.dumps({**EXAMPLE_EVENTS[1], "REQUEST_SIZE": float("inf")})},
        record(CLIENT_IP="fe80::1%eth0", CLIENT_USERAGENT=""),
        record(CLIENT_IP=12345, MATCHED_VARIABLE_VALUE=True, EVENT_ID=7),
        record(MATCHED_VARIABLE_NAME={"nested": 1}),
        {"data": {**EXAMPLE_EVENTS[1], "REQUEST_SIZE": None}},
    ]
    response = api.post("/predict?partial=1", json=odd)
    assert response.status_code == 200, response.get_json()
    result = response.get_json()
    assert [p["index"] for p in result["predictions"]] == [0, 1, 2, 3, 5]
    assert result["predictions"][3]["EVENT_ID"] == "7"
    assert result["errors"] == [
        {
            "index": 4,
            "field": "MATCHED_VARIABLE_NAME",
            "message": "must be a string, a number or NaN, not an object or array",
        }
    ]


def test_one_request_of_60000_events(api, sample):
    events = pd.concat([sample] * 24, ignore_index=True)
    body = frame_to_request(sample) * 24
    assert len(body) == 60_000
    response = api.post("/predict", json=body)
    assert response.status_code == 200
    answer = response.get_json()
    assert len(answer) == 60_000
    assert [item["EVENT_ID"] for item in answer[:2500]] == events["EVENT_ID"].fillna("").iloc[:2500].tolist()
    assert answer[:2500] == answer[2500:5000]


def test_request_parser_keeps_good_records_in_order():
    parsed = parse_request([record(EVENT_ID="a"), {"data": "[]"}, record(EVENT_ID="b")])
    assert parsed.indices == [0, 2]
    assert parsed.events["EVENT_ID"].tolist() == ["a", "b"]
    assert parsed.errors[0]["index"] == 1


# -- the service's scorer: pipeline.predict's labels, less overhead (issue 17) ---------------------------------
def odd_events(sample: pd.DataFrame) -> pd.DataFrame:
    """The sample's events plus every kind of value the wrangler has a rule for."""
    base = EXAMPLE_EVENTS[1]
    odd = [
        {**base, "REQUEST_SIZE": "166", "RESPONSE_CODE": "404"},
        {**base, "REQUEST_SIZE": 166.7, "RESPONSE_CODE": 302.0},
        {**base, "REQUEST_SIZE": -5, "RESPONSE_CODE": 99, "EVENT_ID": 12},
        {**base, "REQUEST_SIZE": 2**60, "RESPONSE_CODE": True, "CLIENT_IP": "fe80::1%eth0"},
        {**base, "REQUEST_SIZE": math.nan, "RESPONSE_CODE": None, "CLIENT_USERAGENT": math.nan},
        {**base, "CLIENT_IP": "not an address", "MATCHED_VARIABLE_SRC": "REQUEST_CONTE", "MATCHED_VARIABLE_NAME": "_"},
        {**base, "MATCHED_VARIABLE_VALUE": "", "CLIENT_USERAGENT": "", "MATCHED_VARIABLE_NAME": math.nan},
        {**base, "MATCHED_VARIABLE_VALUE": "ÀÉÎ ünïcode §§ 東京 union select", "EVENT_ID": math.nan},
    ]
    return pd.concat([sample, pd.DataFrame(odd)], ignore_index=True)


def test_scorer_gives_pipeline_predicts_labels_on_every_path(trained, sample):
    from vigil.tasks.web_events.scoring import EventScorer, scorer_for

    pipeline = trained[2]
    scorer = scorer_for(pipeline)
    assert scorer is scorer_for(pipeline) and scorer.fast and scorer.trees is not None and len(scorer.tfidf) == 4
    events = odd_events(sample)
    expected = pipeline.predict(events)
    np.testing.assert_array_equal(scorer.predict(events), expected)
    # the features themselves are bit for bit the fitted steps' (TF-IDF norms summed term by term)
    wrangle, features, project, _ = (step for _, step in pipeline.steps)
    matrix = features.transform(wrangle.transform(events))
    columns = {c: events[c].tolist() for c in events.columns}
    assert np.array_equal(scorer.features(columns), matrix)
    assert np.array_equal(scorer._projected(matrix), project.transform(matrix))
    # one event at a time, and through the request parser's columns (JSON values, no frame)
    for position in range(len(sample), len(events)):
        np.testing.assert_array_equal(scorer.predict(events.iloc[[position]]), expected[[position]])
    parsed = parse_request(json.loads(json.dumps(frame_to_request(events))))
    assert parsed.indices == list(range(len(events)))
    np.testing.assert_array_equal(scorer.predict(parsed), expected)
    assert label_response(pipeline, parsed) == label_response(pipeline, events)
    # a pipeline of another shape is scored by the pipeline itself
    other = EventScorer(pipeline[1:])
    assert not other.fast


def test_scorer_scaled_per_block_is_the_fitted_projection_bit_for_bit(trained, sample):
    """The served path scales each block's distinct rows and gathers them (no unscaled matrix), with
    the column types the request parser found; the projection is still the fitted steps', bit for bit."""
    from vigil.tasks.web_events.scoring import _distinct, scorer_for
    from vigil.tasks.web_events.wrangling import DistinctWrangled, wrangle_columns

    pipeline = trained[2]
    scorer = scorer_for(pipeline)
    wrangle, features, project, _ = (step for _, step in pipeline.steps)
    events = odd_events(sample)
    expected = project.transform(features.transform(wrangle.transform(events)))
    columns = {c: events[c].tolist() for c in events.columns}
    assert np.array_equal(scorer._projected_columns(columns), expected)
    parsed = parse_request(json.loads(json.dumps(frame_to_request(events))))
    assert parsed.column_types == {c: frozenset(map(type, parsed.columns[c])) for c in parsed.columns}
    assert np.array_equal(scorer._projected_columns(parsed.columns, parsed.column_types), expected)
    # sources and names wrangled once per distinct raw pair: every row's value is wrangle_columns'
    wrangled = DistinctWrangled(parsed.columns, _distinct, parsed.column_types)
    clean = wrangle_columns(parsed.columns)
    for name in ("MATCHED_VARIABLE_SRC", "MATCHED_VARIABLE_NAME"):
        uniques, codes = wrangled.distinct(name)
        assert [uniques[code] for code in codes] == clean[name] == wrangled.values(name)


def test_scorer_scaled_per_block_hands_non_finite_features_to_the_fitted_steps(trained, sample, monkeypatch):
    from vigil.tasks.web_events.scoring import EventScorer

    scorer = EventScorer(trained[2])
    block_rows = scorer._block_rows

    def with_inf(block, wrangled, n_rows):
        rows, codes = block_rows(block, wrangled, n_rows)
        return (np.full_like(rows, np.inf) if block is scorer.blocks[0] else rows), codes

    monkeypatch.setattr(scorer, "_block_rows", with_inf)
    columns = {c: sample[c].tolist()[:3] for c in sample.columns}
    assert scorer._scaled_features(columns) is None
    with pytest.raises(ValueError):
        scorer._projected_columns(columns)


def test_scorer_hands_non_finite_features_to_the_fitted_steps(trained, sample):
    """The fitted scaler, PCA and forest refuse a matrix with inf; the scorer's shortcut must too."""
    from vigil.tasks.web_events.scoring import scorer_for

    scorer = scorer_for(trained[2])
    matrix = scorer.features({c: sample[c].tolist()[:3] for c in sample.columns})
    matrix[1, 0] = np.inf
    with pytest.raises(ValueError):
        scorer._forest_predict(scorer._projected(matrix))


def test_orjson_reads_the_records_as_json_does():
    """orjson parses the events' strings where it reads them as json does; NaN, 1e400, lone
    surrogates and integers past 64 bits (orjson: a float) are json's."""
    texts = [
        json.dumps({**EXAMPLE_EVENTS[1], "EVENT_ID": 2**64 + 1}),
        json.dumps({**EXAMPLE_EVENTS[1], "EVENT_ID": -(2**63) - 1, "REQUEST_SIZE": 1e300}),
        json.dumps(EXAMPLE_EVENTS[0]),  # NaN
        json.dumps({**EXAMPLE_EVENTS[1], "MATCHED_VARIABLE_VALUE": "\ud800"}),
        json.dumps({**EXAMPLE_EVENTS[1], "REQUEST_SIZE": 2**63 - 1}),
        json.dumps(EXAMPLE_EVENTS[1]).replace("431", "1e400"),
    ]
    parsed = parse_request([{"data": text} for text in texts])
    assert parsed.indices == list(range(len(texts)))
    expected = [tuple(json.loads(text)[c] for c in parsed.events.columns) for text in texts]
    for got, want in zip(parsed.rows, expected):
        assert [type(v) for v in got] == [type(v) for v in want]
        assert [v for v in got if v == v] == [v for v in want if v == v]  # NaN aside
    assert parsed.columns["EVENT_ID"][:2] == [2**64 + 1, -(2**63) - 1]


# -- the README's curl example and the replay check against a real gunicorn ------------------------------------------
def readme_curl() -> str:
    text = README.read_text()
    section = text[text.index("<!-- section: web-events -->") : text.index("<!-- /section: web-events -->")]
    match = re.search(r"```bash\n(curl -X 'POST'.*?)```", section, re.S)
    assert match, "docs/web-events.md must hold the curl example"
    return match.group(1)


def test_readme_curl_and_replay_against_live_server(trained, live_server, capsys):
    models_dir, _, _ = trained
    server = live_server(models_dir)
    command = readme_curl().replace("http://127.0.0.1:8080", server.url)
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert isinstance(answer, list), answer
    assert [item["EVENT_ID"] for item in answer] == ["AVdhXFgVq1Ppo9zF5Fxu", "AVdcJmIIq1Ppo9zF2YIp"]

    code, stdout, stderr = run_cli(
        capsys,
        "--models-dir",
        str(models_dir),
        "web-events",
        "replay",
        str(SAMPLE),
        "--url",
        server.url,
        "--batch-size",
        "700",
    )
    assert code == 0, stdout + stderr
    report = json.loads(stdout)
    assert report["agreement"] == 1.0 and report["events"] == 2500 and report["batches"] == 4
    assert report["event_ids_in_order"] is True
    assert "replay" in stderr  # the tqdm progress bar


def test_integer_columns_in_one_numpy_pass_keep_the_per_value_rules():
    from vigil.tasks.web_events.wrangling import (
        MAX_INT,
        REQUEST_SIZE_DEFAULT,
        RESPONSE_CODE_DEFAULT,
        _bounded_ints,
        request_size,
        response_code,
    )

    sizes = [166, 0, -5, MAX_INT, MAX_INT + 1, 2**63 - 1, -(2**63)]
    assert _bounded_ints(sizes, 0, MAX_INT, REQUEST_SIZE_DEFAULT, request_size).tolist() == list(
        map(request_size, sizes)
    )
    beyond = [*sizes, 2**70]  # past int64: value by value
    assert _bounded_ints(beyond, 0, MAX_INT, REQUEST_SIZE_DEFAULT, request_size).tolist() == list(
        map(request_size, beyond)
    )
    codes = [100, 599, 99, 600, 404, -1]
    assert _bounded_ints(codes, 100, 599, RESPONSE_CODE_DEFAULT, response_code).tolist() == list(
        map(response_code, codes)
    )


def test_column_rules_in_c_level_passes_give_the_per_value_rules():
    """The integer and text columns' fast paths (a few odd values among ints or strings) against
    the per-value rules, on random mixes of every kind of value JSON gives."""
    import random

    from vigil.tasks.web_events import wrangling

    odd = [0, 99, 100, 599, 600, -5, 2**53, 2**53 + 1, 2**63, -(2**70), 166.7, 404.0, math.nan, math.inf]
    odd += [True, None, "404", "abc", "", 3.5e20]
    rules = [
        (0, wrangling.MAX_INT, wrangling.REQUEST_SIZE_DEFAULT, wrangling.request_size),
        (100, 599, wrangling.RESPONSE_CODE_DEFAULT, wrangling.response_code),
    ]
    rng = random.Random(7)
    for _ in range(2000):
        values = [rng.choice(odd) if rng.random() < 0.3 else rng.randint(-10, 700) for _ in range(rng.randint(0, 12))]
        for low, high, default, slow in rules:
            per_value = [wrangling._bounded_int(value, low, high, slow) for value in values]
            assert wrangling._bounded_ints(list(values), low, high, default, slow).tolist() == per_value
        texts = [rng.choice(odd) if rng.random() < 0.3 else f"t{rng.randint(0, 9)}" for _ in range(len(values))]
        assert wrangling.texts_of(texts) == [t if type(t) is str else wrangling.to_text(t) for t in texts]


def test_scorer_cuts_ascii_tokens_as_the_vectorizers_regex_does(trained):
    """ASCII texts are tokenized by bytes.translate + split instead of the token regex: the TF-IDF
    rows stay the vectorizers' own, bit for bit, on every ASCII character and on non-ASCII texts."""
    import random

    from vigil.tasks.web_events.scoring import scorer_for

    scorer = scorer_for(trained[2])
    rng = random.Random(17)
    for block in scorer.blocks:
        tfidf = scorer.tfidf.get(id(block))
        if tfidf is None:
            continue
        assert tfidf.utf8_vocabulary is not None
        terms = list(block.vectorizer.vocabulary_)
        pieces = [chr(code) for code in range(128)] + terms + ["_", "__", "a1", "ÀÉ", "東京", "ünï", "ß"]
        texts = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 30))) for _ in range(400)]
        texts += ["", " ", "x", "\x00\x7f", "\u00e9t\u00e9 " + terms[0], terms[0].upper(), "\ud800 " + terms[0]]
        expected = block.vectorizer.transform(texts).toarray()
        assert np.array_equal(tfidf.rows(texts), expected)


def test_scorer_reads_exploded_addresses_as_the_block_does():
    """Exploded addresses' groups are read off their bytes at once; anything else is the block's loop."""
    from vigil.tasks.web_events.features import ClientIpGroups
    from vigil.tasks.web_events.scoring import _ip_group_rows
    from vigil.tasks.web_events.wrangling import client_ip_groups

    addresses = [client_ip_groups(a) for a in ("188.138.92.55", "fe80::1%eth0", "::", "FFFF::1", "not an address")]
    addresses += ["ABCD:ef01:2345:6789:0000:ffff:FfFf:0001"]
    assert np.array_equal(_ip_group_rows(addresses), ClientIpGroups().process_raw_features(addresses))
    for odd in (
        "12345:0:0:0:0:0:0:0",
        "abcd:ef01:2345:6789:0000:ffff:ffff:000g",
        "abcd:ef01:2345:6789:0000:ffff:ffff;0001",
    ):
        assert _ip_group_rows([addresses[0], odd]) is None
    assert _ip_group_rows([]) is None


def test_number_columns_through_float64_keep_the_per_value_rules():
    """Ints and floats (NaN for a missing value) are bounded through one float64 array: the same
    answers as the per-value rule at the edges of the ranges and of float64's exact integers."""
    import random

    from vigil.tasks.web_events import wrangling

    odd = [math.nan, math.inf, -math.inf, -0.0, 0.5, -0.5, 99.9, 100.0, 599.9, 600.0, 166.7, 2.0**53, 2.0**53 + 2]
    odd += [2**53 - 1, 2**53, 2**53 + 1, -(2**53) - 1, 2**63, -(2**64), 1e300, 10**400]
    rng = random.Random(11)
    mixes = [[rng.choice(odd) if rng.random() < 0.4 else rng.randint(-10, 700) for _ in range(12)] for _ in range(3000)]
    bounds = {wrangling.request_size: (0, wrangling.MAX_INT), wrangling.response_code: (100, 599)}
    for (rule, (low, high)), values in itertools.product(bounds.items(), mixes):
        bounded = wrangling._bounded_ints(list(values), low, high, rule(None), rule)
        assert bounded.tolist() == [wrangling._bounded_int(value, low, high, rule) for value in values], values
