"""The DNS stream's per-domain alerts and its reading of non-JSON messages (issue 12, items 4 and 6),
on the real embedded Kafka broker."""

from __future__ import annotations

import json

import pytest

from vigil.artifacts import ArtifactStore
from vigil.config import Settings
from vigil.drift import RetrainPolicy
from vigil.messages import lenient_message, python_literal_record
from vigil.streaming.broker import EmbeddedBroker
from vigil.streaming.consumer import RejectedMessage, WindowedConsumer
from vigil.streaming.kafka_io import csv_messages, ensure_topic, produce
from vigil.streaming.results import ResultsStore
from vigil.tasks import get_task
from vigil.tasks.dns_exfil import STREAMS_FOLDER
from vigil.tasks.dns_exfil.benign import load_benign
from vigil.tasks.dns_exfil.capture import load_captures
from vigil.tasks.dns_exfil.generate import QueryGenerator, cic_rows, stream_phases
from vigil.tasks.dns_exfil.stream import DnsWindowProcessor

SESSION = {"session.timeout.ms": 2000, "heartbeat.interval.ms": 500}


@pytest.fixture(scope="module")
def broker():
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("dns_domains_stream")
    settings = Settings.from_env(models_dir=root / "models", work_dir=root / "runs")
    get_task("dns_exfil").train_default(ArtifactStore(settings.models_dir), settings)
    return ArtifactStore(settings.models_dir)


@pytest.fixture(scope="module")
def cic_csv(tmp_path_factory):
    names, labels = QueryGenerator(seed=5).queries(stream_phases(1)[0], 300)
    path = tmp_path_factory.mktemp("dns_cic") / "rows.csv"
    cic_rows(names, labels).to_csv(path, index=False)
    return path


def _processor(store, name="main"):
    return DnsWindowProcessor(store, store.load("dns_exfil"), name, RetrainPolicy())


def test_the_stream_records_the_tunnel_domain_as_an_alert_with_its_window(broker, store, tmp_path):
    benign = load_benign().sample(1500, random_state=0).name.tolist()
    captures = load_captures()
    tunnel = captures[captures.tool == "dns2tcp"].head(400)
    start = 1_700_000_000.0
    events = [{"query": n, "time": start + i * 2.0, "label": 0} for i, n in enumerate(benign)]
    middle = start + 1000.0
    events += [
        {"query": q.replace("tun.vigil-test.net", "exfil-relay.net"), "time": middle + t, "label": 1}
        for q, t in zip(tunnel.qname, tunnel.time)
    ]
    events.sort(key=lambda e: e["time"])
    topic = "dns-domains"
    ensure_topic(broker.bootstrap_servers, topic, 1)
    produce(broker.bootstrap_servers, topic, [json.dumps(e).encode() for e in events])

    results = ResultsStore(tmp_path / "results.sqlite")
    processor = _processor(store, "domains.main")
    consumer = WindowedConsumer(
        broker.bootstrap_servers,
        topic,
        "domains",
        processor,
        results,
        window_size=950,
        idle_timeout_s=3,
        config_overrides=SESSION,
    )
    stats = consumer.run()
    assert stats.windows == 2
    alerts = results.alerts(consumer.run_key)
    assert [(a["key"], a["kind"]) for a in alerts] == [("exfil-relay.net", "domain/fast")]
    (alert,) = alerts
    assert alert["window_index"] in {w["window_index"] for w in results.windows(consumer.run_key)}
    assert alert["detail"]["queries"] <= 300 and alert["detail"]["reasons"]
    assert [w["n_alerts"] for w in results.windows(consumer.run_key)].count(1) == 1
    heartbeat = json.loads((store.root / STREAMS_FOLDER / "domains.main.json").read_text())
    assert [d["domain"] for d in heartbeat["flagged_domains"]] == ["exfil-relay.net"]


def test_a_stream_of_unreadable_messages_reports_its_rejections_without_any_window(broker, store, tmp_path):
    topic = "dns-junk-only"
    ensure_topic(broker.bootstrap_servers, topic, 1)
    junk = [b"\x00\xff\xfe binary", b"not json", b"{'query': open('/etc/passwd').read()}", b"[1, 2]"] * 5
    produce(broker.bootstrap_servers, topic, junk)
    results = ResultsStore(tmp_path / "results.sqlite")
    seen = []
    consumer = WindowedConsumer(
        broker.bootstrap_servers,
        topic,
        "junk",
        _processor(store, "junk.main"),
        results,
        idle_timeout_s=3,
        config_overrides=SESSION,
        on_reject=seen.append,
    )
    stats = consumer.run()
    assert stats.windows == 0 and stats.rejected == len(junk) == len(seen)
    rejected = results.rejected(consumer.run_key)
    assert [r["offset"] for r in rejected] == list(range(len(junk)))
    assert all(r["window_index"] is None for r in rejected)
    assert "Call" in rejected[2]["reason"]


def test_raw_csv_bytes_and_python_dicts_are_read_like_json(broker, store, cic_csv, tmp_path):
    """The assignment's producer without its JSON encoding, and a producer that sent str(dict)."""
    lines = cic_csv.read_text().splitlines()
    header, rows = lines[0], lines[1:]
    as_dicts = [dict(zip(header.split(","), row.split(","))) for row in rows[:100]]
    values = [header.encode()] + [r.encode() for r in rows[:200]] + [str(d).encode() for d in as_dicts]
    topic = "dns-not-json"
    ensure_topic(broker.bootstrap_servers, topic, 1)
    produce(broker.bootstrap_servers, topic, values)
    results = ResultsStore(tmp_path / "results.sqlite")
    consumer = WindowedConsumer(
        broker.bootstrap_servers,
        topic,
        "notjson",
        _processor(store, "notjson.main"),
        results,
        window_size=300,
        idle_timeout_s=3,
        config_overrides=SESSION,
    )
    stats = consumer.run()
    assert stats.windows == 1 and stats.rejected == 0
    assert results.windows(consumer.run_key)[0]["n_messages"] == 300
    # the same rows as JSON give the same features
    processor = _processor(store)
    json_rows = [processor.parse(v)[0] for v in list(csv_messages(cic_csv))[:3]]
    processor.parse(header.encode())
    assert [processor.parse(r.encode())[0] for r in rows[:3]] == json_rows
    assert [processor.parse(str(d).encode())[0] for d in as_dicts[:3]] == json_rows


@pytest.mark.parametrize(
    "text, why",
    [
        ("{'query': __import__('os').system('id')}", "Call"),
        ("{'a': [1, 2]}", "List"),
        ("{'a': {'b': 1}}", "Dict"),
        ("{1: 'x'}", "key"),
        ("{'a': -'x'}", "negates"),
        ("{'a': 1e999}", "finite"),
        ("{'a': " + "1" * 5000 + "}", "literal"),
        ("{" + "'a': 1, " * 5000 + "}", "at most"),
        ("{'a': 1", "not JSON"),
    ],
)
def test_python_literals_are_parsed_never_evaluated(text, why):
    with pytest.raises(RejectedMessage, match=why):
        python_literal_record(text)


def test_lenient_reading_keeps_refusing_what_is_no_record():
    for value in (b"not json at all", b"\xff\xfe", b"", b"a,b\nc,d"):
        with pytest.raises(RejectedMessage):
            lenient_message(value)
    assert lenient_message(b"1,2,3") == "1,2,3"
    assert lenient_message(b"{'label': -1, 'x': None, 'ok': True}") == {"label": -1, "x": None, "ok": True}


def test_vigil_dns_stream_records_the_generated_tunnels_domain_alerts(tmp_path, capsys):
    """The CLI end to end on the embedded broker: a generated stream with its query names."""
    from vigil.cli import main
    from vigil.tasks.dns_exfil.generate import BASE_DOMAINS, generate

    generate(tmp_path / "data", static_rows=600, windows_per_phase=1, seed=4, with_query=True)
    models = tmp_path / "models"
    assert main(["--models-dir", str(models), "dns", "train", str(tmp_path / "data" / "static_dataset.csv")]) == 0
    code = main(
        [
            "--models-dir",
            str(models),
            "dns",
            "stream",
            "--csv",
            str(tmp_path / "data" / "stream_dataset.csv"),
            "--results",
            str(tmp_path / "stream"),
            "--idle-timeout",
            "2",
            "--session-timeout-ms",
            "2000",
            "--quiet",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    results = ResultsStore(tmp_path / "stream" / "results.sqlite")
    flagged = {a["key"] for a in results.alerts()}
    assert set(BASE_DOMAINS) <= flagged
    assert " DOMAIN tunnel-relay.net (domain/fast): " in printed
    summary = json.loads((tmp_path / "stream" / "summary.json").read_text())
    assert {a["key"] for a in summary["domain_alerts"]} == flagged
