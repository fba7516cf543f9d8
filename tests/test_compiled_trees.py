"""vigil.boosting.CompiledTrees: LightGBM's own probabilities, bit for bit, from a compiled walk of
its trees, on models with every kind of missing-value split, on float32 and float64 rows, at and
next to every threshold, at LightGBM's zero threshold, with NaN and infinities; and refused (the
Booster serves) where it would not be LightGBM's answer."""

from __future__ import annotations

import logging
import pickle

import lightgbm as lgb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil import boosting
from vigil.boosting import CompiledTrees, UnsupportedModel, checked_trees, positive_probability
from vigil.errors import UnprocessableInput

ZERO = float(np.float32(1e-35))  # LightGBM's kZeroThreshold


def training_rows(seed: int = 0, rows: int = 2000, features: int = 6):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, features))
    X[rng.random(X.shape) < 0.15] = 0.0
    X[rng.random(X.shape) < 0.05] = np.nan
    y = (np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 1]) ** 2 > 0.4).astype(int)
    return X, y


def fitted(params: dict, seed: int = 0) -> lgb.LGBMClassifier:
    X, y = training_rows(seed)
    return lgb.LGBMClassifier(n_estimators=40, num_leaves=15, verbose=-1, random_state=seed, **params).fit(X, y)


MISSING_KINDS = {"missing NaN": {}, "missing Zero": {"zero_as_missing": True}, "missing None": {"use_missing": False}}


@pytest.mark.parametrize("params", MISSING_KINDS.values(), ids=MISSING_KINDS.keys())
def test_probabilities_are_the_boosters_own_bits(params):
    model = fitted(params)
    booster = model.booster_
    scorers = {dtype: CompiledTrees(booster, dtype) for dtype in (np.float64, np.float32)}
    X, _ = training_rows(seed=1)
    probes = scorers[np.float64].probe_rows()
    edges = np.array([[value] * X.shape[1] for value in (0.0, ZERO, -ZERO, 5e-36, np.nan, np.inf, -np.inf, 1e300)])
    for rows in (X, probes, edges):
        for dtype, trees in scorers.items():
            with np.errstate(over="ignore"):
                typed = rows.astype(dtype)
            assert np.array_equal(trees.predict(typed), booster.predict(typed)), dtype
    # a float64 scorer reads float32 rows as doubles, as LightGBM does; a float32 one takes float32 only
    assert np.array_equal(scorers[np.float64].predict(X.astype(np.float32)), booster.predict(X.astype(np.float32)))
    with pytest.raises(ValueError, match="float32 rows"):
        scorers[np.float32].predict(X)
    # the saved and reloaded Booster (what an artifact holds) gives the same trees
    again = CompiledTrees(pickle.loads(pickle.dumps(booster)))
    assert np.array_equal(again.predict(probes), booster.predict(probes))
    assert np.array_equal(positive_probability(model, X, compiled=True), model.predict_proba(X)[:, 1])
    X32 = X.astype(np.float32)
    assert np.array_equal(positive_probability(model, X32, compiled=True), model.predict_proba(X32)[:, 1])


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    leaves=st.integers(2, 31),
    params=st.sampled_from(list(MISSING_KINDS.values())),
    float32=st.booleans(),
)
def test_random_models_and_rows_score_alike(seed, leaves, params, float32):
    X, y = training_rows(seed, rows=400, features=4)
    booster = lgb.LGBMClassifier(n_estimators=8, num_leaves=leaves, min_child_samples=5, verbose=-1, **params)
    booster = booster.fit(X, y).booster_
    trees = CompiledTrees(booster, np.float32 if float32 else np.float64)
    rows = np.concatenate([trees.probe_rows(64, seed), training_rows(seed + 1, rows=64, features=4)[0]])
    with np.errstate(over="ignore"):
        rows = rows.astype(np.float32) if float32 else rows
    assert np.array_equal(trees.predict(rows), booster.predict(rows))


def test_a_one_leaf_tree_and_a_sigmoid_other_than_one():
    X, y = training_rows()
    booster = lgb.train({"objective": "binary", "sigmoid": 0.7, "verbose": -1, "num_leaves": 4}, lgb.Dataset(X, y), 5)
    constant = lgb.train({"objective": "binary", "verbose": -1, "min_data_in_leaf": 10_000}, lgb.Dataset(X, y), 3)
    for model in (booster, constant):
        trees = CompiledTrees(model)
        assert np.array_equal(trees.predict(X), model.predict(X))
    assert len(CompiledTrees(constant).feature) == 0  # no split at all: every tree one leaf


def test_many_rows_are_split_over_the_threads_with_the_same_answers(monkeypatch):
    model = fitted({})
    X, _ = training_rows(seed=2, rows=5000)
    monkeypatch.setattr(boosting, "process_threads", lambda: 3)  # vigil.parallel's pool of 3 workers
    assert np.array_equal(CompiledTrees(model.booster_).predict(X), model.booster_.predict(X))


@pytest.mark.parametrize("row", [0, 1300, 4999])  # the first part, the second, the last row
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_checked_pass_refuses_the_first_value_that_is_not_a_finite_float32(monkeypatch, row, bad):
    X, _ = training_rows(seed=2, rows=5000, features=7)  # column 6 is no split's: it is checked too
    X = np.nan_to_num(X).astype(np.float32)
    monkeypatch.setattr(boosting, "process_threads", lambda: 2)
    trees = CompiledTrees(lgb.LGBMClassifier(n_estimators=20, verbose=-1).fit(X, _labels(X)).booster_, np.float32)
    assert np.array_equal(trees.predict(X, check_finite=True), trees.predict(X))
    X[row, 6] = bad
    X[4999, 2] = np.nan  # a later bad value: the first one is named
    first = (row, 6) if row < 4999 else (4999, 2)
    with pytest.raises(UnprocessableInput, match=f"^vector {first[0]}, value {first[1]} is not a finite float32$"):
        trees.predict(X, check_finite=True)


def _labels(X: np.ndarray) -> np.ndarray:
    return (X[:, 0] + X[:, 1] ** 2 > 0.4).astype(int)


def test_rows_of_the_wrong_width_are_an_error():
    trees = CompiledTrees(fitted({}).booster_)
    with pytest.raises(ValueError, match="rows of 6 features"):
        trees.predict(np.zeros((3, 5)))


def unsupported_models():
    X, y = training_rows()
    categorical = X.copy()
    categorical[:, 2] = np.arange(len(X)) % 7  # the label depends on the category, not its order
    data = lgb.Dataset(categorical, np.isin(categorical[:, 2], [1, 4, 5]).astype(int), categorical_feature=[2])
    rf = {"boosting": "rf", "bagging_freq": 1, "bagging_fraction": 0.7}
    clean = np.nan_to_num(X)
    return {
        "categorical split": lgb.train({"objective": "binary", "verbose": -1, "min_data_per_group": 5}, data, 5),
        "linear trees": lgb.train(
            {"objective": "binary", "verbose": -1, "linear_tree": True}, lgb.Dataset(clean, y), 3
        ),
        "averaged output": lgb.train({"objective": "binary", "verbose": -1, **rf}, lgb.Dataset(X, y), 3),
        "regression": lgb.train({"objective": "regression", "verbose": -1}, lgb.Dataset(X, y.astype(float)), 3),
        "three classes": lgb.train(
            {"objective": "multiclass", "num_class": 3, "verbose": -1}, lgb.Dataset(X, y + (X[:, 3] > 1)), 3
        ),
    }


@pytest.mark.parametrize("kind", list(unsupported_models()))
def test_models_the_walk_would_not_score_as_lightgbm_are_refused(kind, caplog):
    booster = unsupported_models()[kind]
    with pytest.raises(UnsupportedModel):
        CompiledTrees(booster)
    with caplog.at_level(logging.INFO, logger="vigil.boosting"):
        assert checked_trees(booster, where=kind) is None
    assert any(kind in r.getMessage() and "the Booster serves" in r.getMessage() for r in caplog.records)


def test_trees_that_disagree_with_the_booster_are_refused_and_the_booster_serves(monkeypatch, caplog):
    model = fitted({})
    build = CompiledTrees.__init__

    def one_leaf_moved(self, booster, dtype=np.float64):
        build(self, booster, dtype)
        self.leaf_value = self.leaf_value.copy()
        self.leaf_value[3] += 1e-3  # a reader bug, a changed file: the check on the probe rows sees it

    monkeypatch.setattr(CompiledTrees, "__init__", one_leaf_moved)
    with caplog.at_level(logging.WARNING, logger="vigil.boosting"):
        assert checked_trees(model.booster_) is None
    assert any("compiled trees refused" in r.getMessage() for r in caplog.records)
    X, _ = training_rows(seed=3)
    assert np.array_equal(positive_probability(model, X, compiled=True), model.booster_.predict(X))  # the Booster's


def test_checked_trees_are_built_once_per_booster_and_row_type():
    booster = fitted({}).booster_
    assert checked_trees(booster) is checked_trees(booster) is not None
    float32 = checked_trees(booster, dtype=np.float32)
    assert float32 is checked_trees(booster, dtype=np.float32) and float32.dtype == np.float32
    assert float32 is not checked_trees(booster)
