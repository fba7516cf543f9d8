"""DNS task: generated data, the default model, /predict/dns, and the dynamic-model preference."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from vigil.artifacts import ArtifactStore
from vigil.config import Settings
from vigil.service import create_app
from vigil.tasks import get_task
from vigil.tasks.dns_exfil import DYNAMIC_TASK, write_stream_status
from vigil.tasks.dns_exfil.features import CSV_COLUMNS, FEATURE_COLUMNS
from vigil.tasks.dns_exfil.generate import generate
from vigil.tasks.dns_exfil.model import feature_columns


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("dns_task")
    settings = Settings.from_env(models_dir=root / "models", work_dir=root / "runs")
    store = ArtifactStore(settings.models_dir)
    entry = get_task("dns_exfil").train_default(store, settings)
    return settings, store, entry


@pytest.fixture
def dns_client(trained):
    settings, store, _ = trained
    app = create_app(settings, store)
    app.config["TESTING"] = True
    return app.test_client()


def test_generate_is_seeded_and_has_the_cic_columns(tmp_path):
    first = generate(tmp_path / "a", static_rows=600, windows_per_phase=1, seed=3)
    generate(tmp_path / "b", static_rows=600, windows_per_phase=1, seed=3)
    for name in ("static_dataset.csv", "stream_dataset.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    stream = pd.read_csv(tmp_path / "a" / "stream_dataset.csv")
    assert list(stream.columns) == CSV_COLUMNS and len(stream) == 4000
    assert [p["first_window"] for p in first["phases"]] == [0, 1, 2, 3]
    assert (stream["FQDN_count"] <= 253).all() and (stream["labels_max"] <= 63).all()
    # drift phase A changes the encoding: base64-url brings upper-case letters into attack names
    attacks = stream[stream["Target Attack"] == 1]
    assert (
        attacks.iloc[:400]["upper"].sum() == 0
        and attacks[(attacks.index >= 1000) & (attacks.index < 2000)]["upper"].sum() > 0
    )


def test_default_model_is_saved_with_metrics(trained):
    _, store, entry = trained
    assert entry["task"] == "dns_exfil" and entry["metrics"]["f1"] > 0.9
    assert feature_columns(store.load("dns_exfil").model) == FEATURE_COLUMNS


def test_predict_names_and_rows(dns_client):
    tunnel = "mzxw6ytboi3tmnzyhe2dqojqgeztgnbvgy3tqobzge4dmnzxgq4ds.mrqgeztgnbvgy3tq.0.1f3a.tunnel-relay.net"
    response = dns_client.post("/predict/dns", json={"queries": ["www.wikipedia.org", tunnel]})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["model"]["task"] == "dns_exfil_query"  # the real-traffic model is the default for names
    benign, attack = body["results"]
    assert benign["decision"] == "benign" and attack["decision"] == "exfiltration"
    assert 0 <= benign["probability"] < 0.5 <= attack["probability"] <= 1

    row = dict(zip(FEATURE_COLUMNS, [27, 10, 0, 10, 11, 2.57, 6, 6, 7, 3.67, "2", "192", 14, 1]))
    rows = dns_client.post("/predict/dns", json={"rows": [row]}).get_json()
    assert rows["results"][0]["index"] == 0 and "query" not in rows["results"][0]
    assert rows["model"]["task"] == "dns_exfil"  # CIC feature rows: the CIC model

    text = dns_client.post("/predict/dns", data="www.bbc.co.uk\n" + tunnel + "\n", content_type="text/plain")
    assert [r["query"] for r in text.get_json()["results"]] == ["www.bbc.co.uk", tunnel]


def test_served_feature_rows_score_as_the_pipeline_does(dns_client, trained):
    # the service's models are long-lived: their LightGBM trees are compiled, with the same numbers
    import pandas as pd

    from vigil.tasks.dns_exfil.generate import STATIC_PHASE, QueryGenerator, cic_rows

    _, store, _ = trained
    names, labels = QueryGenerator(seed=5).queries(STATIC_PHASE, 40)
    frame = cic_rows(names, labels)[FEATURE_COLUMNS]
    from vigil import boosting

    boosting._checked.clear()  # rebuilt on demand: only what this request compiles is left
    answer = dns_client.post("/predict/dns", json={"rows": frame.to_dict(orient="records")}).get_json()
    expected = store.load("dns_exfil").model.predict_proba(pd.DataFrame(frame, columns=FEATURE_COLUMNS))[:, 1]
    assert [r["probability"] for r in answer["results"]] == [round(float(p), 6) for p in expected]
    assert any(built.get("<f8") is not None for built in boosting._checked.values())  # compiled trees scored them


def test_bad_items_are_named_and_good_ones_kept(dns_client):
    response = dns_client.post("/predict/dns", json=["www.example.com", "a..b", {"FQDN_count": 3}, 7])
    assert response.status_code == 200
    body = response.get_json()
    assert [r["index"] for r in body["results"]] == [0]
    errors = {e["index"]: e for e in body["errors"]}
    assert set(errors) == {1, 2, 3}
    assert errors[1]["field"] == "query" and errors[2]["field"] == "subdomain_length"

    only_bad = dns_client.post("/predict/dns", json={"queries": ["x" * 300]})
    assert only_bad.status_code == 400 and "error" in only_bad.get_json()
    not_json = dns_client.post("/predict/dns", data="{broken", content_type="application/json")
    assert not_json.status_code == 400


def test_service_prefers_the_dynamic_model_of_a_live_stream(trained, dns_client):
    _, store, _ = trained
    static = store.load("dns_exfil").model
    store.save(DYNAMIC_TASK, static, threshold=0.5, extra={"kind": "dynamic"})

    def ask():
        return dns_client.post("/predict/dns?model=cic", json={"queries": ["www.wikipedia.org"]}).get_json()["model"]

    assert ask()["task"] == "dns_exfil"  # a dynamic model alone is not enough: no stream runs
    write_stream_status(store, "vigil-dns.main", "running", dynamic_version="1")
    try:
        assert ask() == {"task": DYNAMIC_TASK, "version": "1", "kind": "dynamic"}
        assert dns_client.get("/dns/streams").get_json()["live"][0]["consumer_id"] == "vigil-dns.main"
    finally:
        write_stream_status(store, "vigil-dns.main", "stopped")
    assert ask()["task"] == "dns_exfil"


def test_demo_runs_the_whole_story(tmp_path, capsys):
    from vigil.cli import main

    code = main(
        [
            "--models-dir",
            str(tmp_path / "models"),
            "dns",
            "demo",
            "--out",
            str(tmp_path / "demo"),
            "--static-rows",
            "1500",
            "--windows-per-phase",
            "1",
            "--idle-timeout",
            "2",
            "--session-timeout-ms",
            "2000",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    demo = tmp_path / "demo"
    for name in ("class_balance.png", "distributions.png", "skew.png", "comparison.png", "report.md"):
        assert (demo / "train" / name).stat().st_size > 1000, name
    report = (demo / "train" / "report.md").read_text()
    assert "mutual_info_k8" in report and "tree_importance" in report and "random_forest" in report
    summary = json.loads((demo / "stream" / "summary.json").read_text())
    assert summary["windows"] == 4 and summary["this_consumer"]["left_in_partial_window"] == 0
    assert f"plot:    {demo / 'stream' / 'windows.png'}" in printed
    store = ArtifactStore(tmp_path / "models")
    assert store.latest_entry("dns_exfil") and store.latest_entry(DYNAMIC_TASK)


def test_mixed_request_names_to_the_query_model_rows_to_the_cic_model(dns_client):
    row = dict(zip(FEATURE_COLUMNS, [27, 10, 0, 10, 11, 2.57, 6, 6, 7, 3.67, "2", "192", 14, 1]))
    body = dns_client.post(
        "/predict/dns", json={"queries": ["www.wikipedia.org"], "rows": [row, {**row, "sld": []}]}
    ).get_json()
    assert body["model"]["task"] == "dns_exfil_query" and body["rows_model"]["task"] == "dns_exfil"
    name, scored_row = body["results"]
    assert name["index"] == 0 and "model" not in name and name["decision"] == "benign"
    assert scored_row["index"] == 1 and scored_row["model"] == "dns_exfil" and "query" not in scored_row
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(2, "sld")]


def test_dask_training_of_both_lightgbm_trainers_on_a_two_worker_local_cluster(tmp_path):
    """Issue 18: the per-query model (`evaluate-real`) and the CIC candidates (`dns train`) train their
    LightGBM on a real 2-worker LocalCluster; the saved artifact is the one-machine kind and scores
    like the one-machine model (within LightGBM's documented distributed differences: ranks, not bytes)."""
    import numpy as np
    from lightgbm import LGBMClassifier
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    from vigil.dask_training import DaskFitter
    from vigil.tasks.dns_exfil.benign import TEST_SOURCES, load_benign
    from vigil.tasks.dns_exfil.capture import load_captures
    from vigil.tasks.dns_exfil.features import QUERY_COLUMNS
    from vigil.tasks.dns_exfil.model import compare_candidates, read_cic_csv
    from vigil.tasks.dns_exfil.query_model import QUERY_TASK, featurize, rehome, train_query_model

    stores = {"single": ArtifactStore(tmp_path / "single"), "dask": ArtifactStore(tmp_path / "dask")}
    entries = {
        name: train_query_model(store, **({"dask": "local:2"} if name == "dask" else {}))
        for name, store in stores.items()
    }
    training = entries["dask"]["extra"]["training"]
    assert training["mode"] == "dask" and training["workers"] == 2 and training["dask_fits"] == 1
    assert entries["dask"]["metrics"]["benign_test_fpr"] <= entries["single"]["metrics"]["benign_test_fpr"] + 0.005

    captures = rehome(load_captures(), "held-out", seed=1)
    benign = load_benign()
    names = pd.concat([captures[captures.data_bearing == 1].qname, benign[benign.source.isin(TEST_SOURCES)].name])
    tunnel = int((captures.data_bearing == 1).sum())
    y = np.r_[np.ones(tunnel, int), np.zeros(len(names) - tunnel, int)]
    X = featurize(names)
    scores = {}
    for name, store in stores.items():
        bundle = store.load(QUERY_TASK).model
        classifier = bundle[-1]
        assert type(classifier) is LGBMClassifier and "client" not in classifier.get_params()
        # as on one machine: the DataFrame's column names, and the weights it was given
        assert list(classifier.feature_names_in_) == list(QUERY_COLUMNS)
        assert classifier.get_params()["class_weight"] == "balanced"
        scores[name] = classifier.predict_proba(X)[:, 1]
    auc = {name: roc_auc_score(y, s) for name, s in scores.items()}
    assert abs(auc["dask"] - auc["single"]) <= 0.01, auc
    # Most names score ~1e-7, where ranks reshuffle on any change of bins; the decisions are what counts.
    agreement = np.mean((scores["dask"] >= 0.5) == (scores["single"] >= 0.5))
    assert agreement >= 0.99, agreement
    assert spearmanr(scores["dask"][y == 1], scores["single"][y == 1]).statistic >= 0.5

    # `dns train`: the LightGBM candidates go to the cluster, the selector is fitted here on all rows
    generate(tmp_path / "cic", static_rows=3_000, windows_per_phase=1, seed=3)
    X_cic, y_cic = read_cic_csv(tmp_path / "cic" / "static_dataset.csv")
    half = len(y_cic) // 2
    grid = dict(selections=("mutual_info_k8",), algorithms=("lightgbm",))
    single = compare_candidates(X_cic[:half], y_cic[:half], X_cic[half:], y_cic[half:], **grid)[0]
    with DaskFitter("local:2") as fitter:
        dask = compare_candidates(X_cic[:half], y_cic[:half], X_cic[half:], y_cic[half:], fit=fitter.fit, **grid)[0]
        assert fitter.summary()["dask_fits"] == 1
    assert dask.features == single.features  # the same selector, fitted on this machine
    assert type(dask.pipeline[-1]) is LGBMClassifier
    assert abs(dask.metrics["roc_auc"] - single.metrics["roc_auc"]) <= 0.02


def test_dns_train_cli_with_dask_runs_the_lightgbm_candidates_on_the_cluster(tmp_path):
    """`vigil dns train CSV --dask local:2`: the three LightGBM candidates (and the refit, when one of
    them wins) train on a 2-worker LocalCluster, the random forests here; the manifest says so and
    the held-out scores of the LightGBM candidates are those of one machine within LightGBM's
    documented distributed differences."""
    from sklearn.model_selection import train_test_split

    from vigil.cli import main
    from vigil.tasks.dns_exfil.model import compare_candidates, read_cic_csv

    generate(tmp_path / "cic", static_rows=3_000, windows_per_phase=1, seed=3)
    csv = tmp_path / "cic" / "static_dataset.csv"
    out = tmp_path / "report"
    code = main(
        ["--models-dir", str(tmp_path / "models"), "dns", "train", str(csv), "--out", str(out), "--dask", "local:2"]
    )
    assert code == 0
    entry = ArtifactStore(tmp_path / "models").latest_entry("dns_exfil")
    training = entry["extra"]["training"]
    lightgbm_won = entry["extra"]["algorithm"] == "lightgbm"
    assert training["mode"] == "dask" and training["workers"] == 2
    assert training["dask_fits"] == 3 + lightgbm_won
    # the same split as the CLI (seed 0, stratified), the LightGBM candidates on this machine
    X, y = read_cic_csv(csv)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    single = {
        r.selection: r.metrics["roc_auc"]
        for r in compare_candidates(X_train, y_train, X_test, y_test, algorithms=("lightgbm",))
    }
    table = pd.read_csv(out / "comparison.csv")
    dask = table[table.algorithm == "lightgbm"].set_index("selection")["roc_auc"].to_dict()
    assert set(dask) == set(single)
    assert all(abs(dask[s] - single[s]) <= 0.02 for s in single), (dask, single)
    loaded = ArtifactStore(tmp_path / "models").load("dns_exfil")
    assert type(loaded.model[-1]).__name__ == {True: "LGBMClassifier", False: "RandomForestClassifier"}[lightgbm_won]


@pytest.mark.parametrize("verb", [["dns", "train"], ["dns", "evaluate-real", "--no-save"]])
def test_a_bad_dask_address_is_refused_before_any_work(tmp_path, verb, capsys):
    from vigil.cli import main

    code = main(["--models-dir", str(tmp_path / "models"), *verb, "--dask", "scheduler:8786"])
    assert code != 0
    assert "--dask must be tcp://HOST:PORT" in capsys.readouterr().err
    assert not (tmp_path / "models").exists()


def test_a_stream_message_is_keyed_by_the_registered_domain_of_its_query():
    task = get_task("dns_exfil")
    assert task.message_key(b'{"query": "a1b2.T.Example.co.uk.", "label": 1}') == b"example.co.uk"
    assert task.message_key(b"{'query': 'x.y.example.com'}") == b"example.com"  # a Python str(dict)
    # no key, so no partition is forced: CIC rows, names that cannot be on the wire, anything unreadable
    for value in (b'{"FQDN_count": 27, "label": 0}', b'{"query": "a..b.com"}', b'{"query": 5}', b"\xff\xfe", b""):
        assert task.message_key(value) is None
