"""The retrain rule: ADWIN on the dynamic model's errors or the F1 floor, with a minimum gap."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from vigil.drift import RetrainPolicy
from vigil.safe_pickle import UnsafePickle
from vigil.streaming.results import dump_checkpoint, load_checkpoint, summarize


def _errors(rate: float, rng) -> np.ndarray:
    return (rng.random(1000) < rate).astype(int)


def test_adwin_fires_on_a_rise_in_errors_and_the_gap_holds_the_next_one_back():
    rng = np.random.default_rng(0)
    policy = RetrainPolicy(f1_floor=0.0)  # ADWIN alone
    assert not any(policy.observe(_errors(0.02, rng), f1=0.98).retrain for _ in range(5))
    decision = policy.observe(_errors(0.25, rng), f1=0.98)
    assert decision.retrain and decision.reason.startswith("ADWIN")
    policy.retrained()
    policy.f1_floor = 0.9
    held = policy.observe(_errors(0.40, rng), f1=0.5)
    assert not held.retrain and "min gap" in held.reason
    # an improvement is no reason to retrain
    calm = RetrainPolicy(f1_floor=0.0)
    for _ in range(5):
        calm.observe(_errors(0.30, rng), f1=0.7)
    assert not calm.observe(_errors(0.01, rng), f1=0.99).retrain


def test_f1_floor_and_checkpointing():
    policy = RetrainPolicy(f1_floor=0.9)
    decision = policy.observe(np.zeros(1000), f1=0.85)
    assert decision.retrain and "floor" in decision.reason
    restored = pickle.loads(pickle.dumps(policy))  # the policy travels in the consumer's checkpoint
    assert restored.error_history == policy.error_history


def test_a_checkpoint_that_pickled_the_policy_object_is_refused_under_its_old_module_or_new():
    policy = RetrainPolicy(f1_floor=0.9)
    policy.observe(np.zeros(1000), f1=0.85)
    # what releases before plain-data checkpoints wrote; protocols up to 3 name each class as text
    blob = pickle.dumps({"policy": policy}, protocol=2)
    old = blob.replace(b"cvigil.drift\n", b"cvigil.streaming.decision\n")
    assert old != blob
    for written in (blob, old):
        with pytest.raises(UnsafePickle, match="refusing to unpickle vigil"):
            load_checkpoint(written)
    restored = RetrainPolicy.from_state(load_checkpoint(dump_checkpoint({"policy": policy.to_state()}))["policy"])
    assert restored.error_history == policy.error_history


def test_summary_names_the_windows_where_dynamic_won():
    rows = [
        {
            "window_index": i,
            "static_f1": s,
            "dynamic_f1": d,
            "static_accuracy": s,
            "dynamic_accuracy": d,
            "retrained": int(i == 2),
        }
        for i, (s, d) in enumerate([(0.9, 0.9), (0.9, 0.9), (0.5, 0.5), (0.5, 0.95), (0.4, 0.9)])
    ]
    summary = summarize(rows)
    assert summary["dynamic_better_windows"] == "3-4" and summary["retrain_windows"] == [2]
    assert summary["verdict"].startswith("the dynamic model beat the static one")
