"""Reasons for DNS verdicts (issue 12, item 5) and the per-domain view of /predict/dns (item 4).

Query reasons are the model's own TreeSHAP contributions (additive: they and the expected value sum
to the raw score); domain reasons are the detector's counters.
"""

from __future__ import annotations

import numpy as np
import pytest

from vigil.artifacts import ArtifactStore
from vigil.config import Settings
from vigil.service import create_app
from vigil.tasks import get_task
from vigil.tasks.dns_exfil import QUERY_TASK, TASK_NAME, write_stream_status
from vigil.tasks.dns_exfil.benign import load_benign
from vigil.tasks.dns_exfil.capture import load_captures
from vigil.tasks.dns_exfil.domains import DomainDetector
from vigil.tasks.dns_exfil.explain import contributions, explain
from vigil.tasks.dns_exfil.features import QUERY_COLUMNS, QueryFeatureExtractor
from vigil.tasks.dns_exfil.model import cic_frame_to_features
from vigil.tasks.dns_exfil.query_model import featurize


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("dns_explain")
    settings = Settings.from_env(models_dir=root / "models", work_dir=root / "runs")
    store = ArtifactStore(settings.models_dir)
    get_task("dns_exfil").train_default(store, settings)
    return settings, store


@pytest.fixture
def client(trained):
    app = create_app(*trained)
    app.config["TESTING"] = True
    return app.test_client()


@pytest.fixture(scope="module")
def tunnel_names():
    captures = load_captures()
    rows = captures[(captures.tool == "iodine") & (captures.data_bearing == 1)].head(60)
    return [q.replace("tun.vigil-test.net", "bad-relay.net") for q in rows.qname]


def test_contributions_and_the_expected_value_add_up_to_the_raw_score(trained, tunnel_names):
    _, store = trained
    names = tunnel_names[:20] + load_benign().name.head(20).tolist()
    for key, frame in (
        (QUERY_TASK, featurize(names)),
        (TASK_NAME, cic_frame_to_features(featurize(names))),
    ):
        bundle = store.load(key).model
        contrib, expected, raw = contributions(bundle, frame)
        assert contrib.shape == frame.shape
        np.testing.assert_allclose(contrib.sum(axis=1) + expected, raw, rtol=1e-6, atol=1e-6)
        p = 1 / (1 + np.exp(-raw))
        model = bundle
        np.testing.assert_allclose(p, model.predict_proba(frame)[:, 1], rtol=1e-6, atol=1e-9)


def test_every_feature_has_words_and_reasons_have_the_shared_shape(trained, tunnel_names):
    _, store = trained
    frame = featurize(tunnel_names[:5])
    (first, *_) = explain(store.load(QUERY_TASK).model, frame, [True] * 5, top=len(QUERY_COLUMNS))
    assert len(first) == len(QUERY_COLUMNS)
    assert {r["feature"] for r in first} and all(set(r) == {"feature", "value", "contribution", "text"} for r in first)
    assert all(r["feature"] not in QUERY_COLUMNS or r["feature"] == "labels" for r in first)  # human names
    contributions_ = [abs(r["contribution"]) for r in first]
    assert contributions_ == sorted(contributions_, reverse=True)


def test_flagged_queries_say_why_in_words(client, tunnel_names):
    body = {"queries": [*tunnel_names[:5], "www.wikipedia.org"]}
    answer = client.post("/predict/dns", json=body).get_json()
    flagged = [r for r in answer["results"] if r["is_exfiltration"]]
    assert flagged
    for result in flagged:
        assert 1 <= len(result["reasons"]) <= 3
        assert all(r["contribution"] > 0 and r["text"] for r in result["reasons"])
    benign = answer["results"][-1]
    assert not benign["is_exfiltration"] and "reasons" not in benign
    assert "domains" not in answer  # six names are no traffic to judge a domain on


def test_explain_n_gives_every_query_its_top_n(client):
    answer = client.post("/predict/dns?explain=4", json={"queries": ["www.wikipedia.org", "mail.example.com"]})
    assert answer.status_code == 200
    body = answer.get_json()
    assert body.get("explained", True) is True  # the service's generic ?explain path agrees
    for result in body["results"]:
        assert len(result["reasons"]) == 4
    alone = client.post("/predict/dns?explain", json={"queries": ["www.wikipedia.org"]}).get_json()
    assert len(alone["results"][0]["reasons"]) == 3
    none = client.post("/predict/dns?explain=0", json={"queries": ["www.wikipedia.org"]}).get_json()
    assert "reasons" not in none["results"][0]


@pytest.mark.parametrize("value", ["abc", "-3", "1.5", "21"])
def test_a_bad_explain_is_a_400_naming_the_parameter(client, value):
    answer = client.post(f"/predict/dns?explain={value}", json={"queries": ["www.wikipedia.org"]})
    assert answer.status_code == 400
    assert "explain" in answer.get_json()["error"]


def test_many_names_get_per_domain_verdicts_next_to_the_per_query_ones(client, tunnel_names):
    benign = load_benign().sample(200, random_state=1).name.tolist()
    answer = client.post("/predict/dns", json={"queries": benign + tunnel_names}).get_json()
    assert len(answer["results"]) == len(benign) + len(tunnel_names)
    domains = answer["domains"]
    flagged = [d for d in domains if d["flagged"]]
    assert [d["domain"] for d in flagged] == ["bad-relay.net"]
    texts = [r["text"] for r in flagged[0]["reasons"]]
    assert any("unique subdomains in 60 s" in t for t in texts) and any("kbit" in t for t in texts)
    assert all({"text", "counter", "value"} <= set(r) for r in flagged[0]["reasons"])
    assert all(not d["flagged"] and d["reasons"] == [] for d in domains[1:])


def test_get_dns_domains_lists_what_running_streams_flagged(client, trained, tunnel_names):
    _, store = trained
    assert client.get("/dns/domains").get_json()["domains"] == []
    detector = DomainDetector()
    detector.observe(tunnel_names, [i * 0.1 for i in range(len(tunnel_names))])
    write_stream_status(store, "g.main", "running", flagged_domains=detector.flagged())
    try:
        listed = client.get("/dns/domains").get_json()
        assert [d["domain"] for d in listed["domains"]] == ["bad-relay.net"]
        assert listed["domains"][0]["evidence"]["new_names"] >= 30 and listed["domains"][0]["consumer"] == "g.main"
    finally:
        write_stream_status(store, "g.main", "stopped")
    assert client.get("/dns/domains").get_json()["domains"] == []


def test_feature_extractor_columns_are_all_described():
    from vigil.tasks.dns_exfil.explain import DESCRIPTIONS

    assert set(QueryFeatureExtractor.real().columns) <= set(DESCRIPTIONS)
