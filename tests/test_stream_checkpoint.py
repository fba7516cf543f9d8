"""A stream's checkpoint is plain data: written by ``safe_pickle.dumps_data``, read back through the
exact allow-list of ``safe_pickle.loads_data``, each part rebuilt by its own ``from_state``. A results
file holding anything else (a pickle of classes, as releases before this one wrote, or one whose
``__reduce__`` runs a command) runs no code: the consumer logs it and starts its model state afresh,
resuming from the offsets the results file recorded."""

from __future__ import annotations

import json
import logging
import os
import pickle

import numpy as np
import pytest

from vigil.artifacts import ArtifactStore
from vigil.drift import RetrainPolicy, adwin_from_state
from vigil.plain import InvalidState
from vigil.streaming.results import ResultsStore
from vigil.tasks.dns_exfil.domains import DomainDetector
from vigil.tasks.dns_exfil.generate import QueryGenerator, stream_phases
from vigil.tasks.dns_exfil.stream import DnsWindowProcessor

RUN, CONSUMER = "servers|dns|group", "main"


class RunsCommand:
    """What an attacker would plant: unpickling it runs a shell command that leaves a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def windows(dns_default_store):
    """Three windows of 1,000 query events (base traffic, then a drift), as the processor parses them."""
    base, drift = stream_phases(1)[:2]
    generator = QueryGenerator(seed=5)
    probe = DnsWindowProcessor(dns_default_store, dns_default_store.load("dns_exfil"), "probe")
    events = []
    for phase in (base, drift):
        names, labels = generator.queries(phase, 1500)
        events += [{"query": name, "label": int(label)} for name, label in zip(names, labels)]
    rows = [probe.parse(json.dumps({**event, "time": i * 0.1}).encode()) for i, event in enumerate(events)]
    return [rows[i : i + 1000] for i in range(0, 3000, 1000)]


def _processor(store: ArtifactStore) -> DnsWindowProcessor:
    return DnsWindowProcessor(store, store.load("dns_exfil"), "c", RetrainPolicy(f1_floor=1.01, min_gap=1))


def _record(results: ResultsStore, window: int, state) -> None:
    record = {"offsets": f"p0:{window * 1000}-{window * 1000 + 999}", "n_messages": 1000}
    results.record_window(RUN, CONSUMER, record, [], {0: (window + 1) * 1000}, state)


def _same_record(a: dict, b: dict) -> bool:
    """Same scores, retrains and reasons; the two processors share one store, so each saves its own
    dynamic versions, and the restored detector's filters start empty (its alerts may come sooner)."""
    differ = ("alerts", "dynamic_version")
    return {k: v for k, v in a.items() if k not in differ} == {k: v for k, v in b.items() if k not in differ}


def test_a_restored_processor_goes_on_as_the_one_that_never_stopped(dns_default_store, windows, tmp_path):
    results = ResultsStore(tmp_path / "results.sqlite")
    running = _processor(dns_default_store)
    running.restore(None)
    _, state = running.process(windows[0])
    _record(results, 0, state)

    resumed = _processor(dns_default_store)
    resumed.restore(results.checkpoint(RUN, CONSUMER))
    assert resumed.dynamic_version == running.dynamic_version
    assert resumed.policy.to_state()["error_history"] == running.policy.to_state()["error_history"]
    assert [len(X) for X, _ in resumed.recent] == [len(X) for X, _ in running.recent]
    assert resumed.domains.to_state()["entries"] == running.domains.to_state()["entries"]
    for window in windows[1:]:
        expected, _ = running.process(window)
        got, _ = resumed.process(window)
        assert _same_record(got, expected)


def test_a_checkpoint_whose_reduce_runs_a_command_is_refused_without_running_it(tmp_path, caplog):
    marker = tmp_path / "pwned"
    results = ResultsStore(tmp_path / "results.sqlite")
    _record(results, 0, {"plain": 1})
    planted = pickle.dumps({"policy": RunsCommand(marker), "recent": [], "dynamic_version": None})
    results.db.execute("UPDATE checkpoints SET state=?", (planted,))
    with caplog.at_level(logging.WARNING):
        assert results.checkpoint(RUN, CONSUMER) is None
    assert not marker.exists()
    assert "checkpoint of consumer 'main' was refused" in caplog.text and "refusing to unpickle" in caplog.text
    assert str(results.path) in caplog.text

    # the consumer then starts as a new stream does, from the offsets recorded next to the checkpoint
    assert results.positions(RUN) == {0: 1000}
    assert not marker.exists()


def test_a_checkpoint_pickled_by_an_older_release_is_refused_and_the_stream_starts_afresh(tmp_path, caplog):
    # what releases before this one wrote: the policy object itself, under the module it lived in then
    policy = RetrainPolicy(f1_floor=0.9)
    policy.observe(np.zeros(1000), f1=0.85)
    old = pickle.dumps({"policy": policy, "recent": [], "dynamic_version": "3", "domains": None}, protocol=2)
    old = old.replace(b"cvigil.drift\n", b"cvigil.streaming.decision\n")
    results = ResultsStore(tmp_path / "results.sqlite")
    _record(results, 0, {"plain": 1})
    results.db.execute("UPDATE checkpoints SET state=?", (old,))
    with caplog.at_level(logging.WARNING):
        assert results.checkpoint(RUN, CONSUMER) is None
    assert "vigil.streaming.decision.RetrainPolicy" in caplog.text
    # the next window overwrites it with a plain-data checkpoint
    _record(results, 1, {"plain": 2})
    assert results.checkpoint(RUN, CONSUMER) == {"plain": 2}


def test_an_altered_checkpoint_is_logged_and_the_processor_starts_afresh(dns_default_store, windows, caplog):
    running = _processor(dns_default_store)
    running.restore(None)
    _, state = running.process(windows[0])
    bad_detector = dict(state["policy"]["detector"], counts=state["policy"]["detector"]["counts"] + 50)
    for altered in (
        {**state, "policy": {**state["policy"], "detector": bad_detector}},
        {**state, "domains": {**state["domains"], "entry_fields": ["domain"]}},
        {**state, "recent": [(np.zeros((3, 2)), np.zeros(3, dtype=int))]},
        {**state, "recent": [(np.zeros((3, 14)),)]},
        {**state, "dynamic_version": "../../etc"},
        {**state, "feature_columns": ["other"]},
    ):
        processor = _processor(dns_default_store)
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            processor.restore(altered)
        assert "checkpoint refused" in caplog.text and "starts afresh" in caplog.text
        assert processor.recent == [] and processor.policy.error_history == []


def test_a_processor_checkpoint_that_is_not_plain_data_is_refused_when_written(tmp_path):
    results = ResultsStore(tmp_path / "results.sqlite")
    with pytest.raises(TypeError, match="must be plain data.*RetrainPolicy"):
        _record(results, 0, {"policy": RetrainPolicy()})
    assert results.windows() == []  # nothing of the window was written


def test_the_adwin_state_is_checked_before_river_sees_it():
    policy = RetrainPolicy()
    policy.observe(np.r_[np.zeros(900), np.ones(100)], f1=0.95)
    detector = policy.to_state()["detector"]
    width = detector["width"]
    for key, value in (
        ("width", width + 1),  # not what the buckets summarise
        ("counts", detector["counts"] * 0 + detector["max_buckets"] + 1),  # a bucket past its capacity
        ("totals", detector["totals"][:, :2]),
        ("clock", 0),
        ("counts", detector["counts"].astype(float)),
    ):
        with pytest.raises(InvalidState):
            adwin_from_state({**detector, key: value})
    restored = adwin_from_state(detector)
    assert restored.width == width and restored._helper.__getstate__() == policy._detector._helper.__getstate__()


def test_the_domain_detector_refuses_a_table_it_did_not_write():
    detector = DomainDetector(capacity=8)
    detector.observe([f"x{i}q9z.example{i % 3}.com" for i in range(20)], [float(i) for i in range(20)])
    state = detector.to_state()
    assert DomainDetector.from_state(state).to_state() == state
    row = state["entries"][0]
    for altered in (
        {**state, "entries": state["entries"] * 10},  # more rows than its capacity
        {**state, "entries": [(*row[:-1], "not an alert")]},
        {**state, "entries": [row[:-1]]},
        {**state, "bloom_bits": 1 << 40},
        {**state, "thresholds": {"fast_min_names": 1}},
    ):
        with pytest.raises(InvalidState):
            DomainDetector.from_state(altered)
