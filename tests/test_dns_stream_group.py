"""Several consumers of one group: one retrain-lease holder publishes dynamic models, the others take
them up (issue 18, item 4). On the real embedded broker with two consumer processes, and step by step
with two processors sharing one artifact store."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vigil.artifacts import ArtifactStore
from vigil.config import Settings
from vigil.drift import RetrainPolicy
from vigil.lease import RetrainLease
from vigil.streaming.broker import EmbeddedBroker
from vigil.streaming.kafka_io import csv_messages, ensure_topic, produce
from vigil.tasks import get_task
from vigil.tasks.dns_exfil import DYNAMIC_TASK, STREAMS_FOLDER
from vigil.tasks.dns_exfil.generate import QueryGenerator, cic_rows, stream_phases
from vigil.tasks.dns_exfil.stream import DnsWindowProcessor

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("dns_group")
    settings = Settings.from_env(models_dir=root / "models", work_dir=root / "runs")
    get_task("dns_exfil").train_default(ArtifactStore(settings.models_dir), settings)
    return settings.models_dir


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    base, drift = stream_phases(1)[:2]
    generator = QueryGenerator(seed=21)
    names, labels = generator.queries(base, 4000)
    more, more_labels = generator.queries(drift, 4000)
    path = tmp_path_factory.mktemp("dns_group_csv") / "stream.csv"
    cic_rows(names + more, np.concatenate([labels, more_labels])).to_csv(path, index=False)
    return path


def _member(models: Path, servers: str, topic: str, results: Path, name: str) -> subprocess.Popen:
    env = dict(os.environ, VIGIL_MODELS_DIR=str(models), PYTHONPATH=str(REPO_ROOT / "src"))
    command = [
        sys.executable, "-m", "vigil", "dns", "stream", "--bootstrap-servers", servers, "--topic", topic,
        "--results", str(results), "--quiet", "--session-timeout-ms", "2000", "--group", "retrainers",
        "--consumer-name", name, "--idle-timeout", "5",
        # every window asks for a retrain (an F1 floor no model reaches), one window apart at least
        "--f1-floor", "1.01", "--min-gap", "1",
    ]  # fmt: skip
    return subprocess.Popen(
        command, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_two_consumers_of_a_group_publish_one_line_of_dynamic_models(models, rows, tmp_path):
    results = tmp_path / "results"
    with EmbeddedBroker() as broker:
        topic = "dns-retrainers"
        ensure_topic(broker.bootstrap_servers, topic, 2)
        members = [_member(models, broker.bootstrap_servers, topic, results, name) for name in ("a", "b")]
        try:

            def both_assigned():
                found = {}
                for name in ("a", "b"):
                    path = models / STREAMS_FOLDER / f"retrainers.{name}.json"
                    if path.exists():
                        found[name] = json.loads(path.read_text()).get("assigned")
                return len(found) == 2 and all(len(p) == 1 for p in found.values())

            deadline = time.monotonic() + 60
            while not both_assigned():
                assert time.monotonic() < deadline, "the two consumers never shared the partitions"
                time.sleep(0.2)
            produce(broker.bootstrap_servers, topic, list(csv_messages(rows)), partitions=2)
            outputs = [m.communicate(timeout=180)[0] for m in members]
            assert all(m.returncode == 0 for m in members), outputs
        finally:
            for member in members:
                if member.poll() is None:
                    member.kill()

    with sqlite3.connect(results / "results.sqlite") as db:
        windows = [
            dict(zip(("consumer", "retrained", "reason", "dynamic_version"), row))
            for row in db.execute("SELECT consumer, retrained, reason, dynamic_version FROM windows")
        ]
    assert len(windows) == 8 and {w["consumer"] for w in windows} == {"a", "b"}
    published = [e for e in ArtifactStore(models).entries(DYNAMIC_TASK) if e["extra"].get("group") == "retrainers"]
    publishers = {e["extra"]["consumer"] for e in published}
    assert len(publishers) == 1  # one owner: no competing dynamic models
    (owner,) = publishers
    owner_name = owner.split(".")[-1]
    follower = [w for w in windows if w["consumer"] != owner_name]
    assert follower and not any(w["retrained"] for w in follower)
    assert any("retrain left to the group's lease holder" in w["reason"] for w in follower)
    assert sum(w["retrained"] for w in windows) == len(published) - 1  # the starting copy, then retrains
    versions = {e["version"] for e in published}
    assert {w["dynamic_version"] for w in windows} - {None} <= versions


def _processor(store, static, name):
    info = {"group": "steps", "topic": "t", "bootstrap_servers": "x"}
    return DnsWindowProcessor(store, static, name, RetrainPolicy(f1_floor=1.01, min_gap=1), stream_info=info)


def test_the_follower_takes_up_what_the_holder_published_and_takes_over_when_it_stops(models, rows):
    store = ArtifactStore(models)
    static = store.load("dns_exfil")
    values = list(csv_messages(rows))[:2000]
    window = [row for row in (p.parse(v) for p in [_processor(store, static, "probe")] for v in values) if row]
    holder, follower = _processor(store, static, "steps.a"), _processor(store, static, "steps.b")
    holder.restore(None)
    follower.restore(None)
    assert holder.dynamic_version is not None and follower.dynamic_version == holder.dynamic_version

    record, _ = holder.process(window[:1000])
    assert record["retrained"] == 1
    record, _ = follower.process(window[1000:])
    assert record["retrained"] == 0 and "retrain left to the group's lease holder steps.a" in record["reason"]
    assert follower.dynamic_version == holder.dynamic_version
    assert "took up dynamic" in record["reason"]

    holder.heartbeat("stopped")  # releases the lease
    record, _ = follower.process(window[:1000])
    assert record["retrained"] == 1 and follower.lease.holder() == "steps.b"
    follower.heartbeat("stopped")


def test_an_expired_lease_is_taken_over_by_exactly_one_consumer(tmp_path):
    first = RetrainLease(tmp_path, "g", "first", ttl_s=0.05)
    assert first.acquire()
    time.sleep(0.1)
    others = [RetrainLease(tmp_path, "g", f"c{i}") for i in range(5)]
    won = [lease.acquire() for lease in others]
    assert won.count(True) == 1 and not first.acquire()
    assert others[won.index(True)].holder() == f"c{won.index(True)}"
