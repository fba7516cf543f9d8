"""EMBER's scorers: the compiled trees serve (the Booster's own bits); the ONNX Runtime model is
converted and checked at training, stored as hashed sidecars, checked again at load; a scorer that
disagrees with the Booster is refused and the next one (in the end the Booster) answers."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vigil.artifacts import ArtifactStore
from vigil.config import Settings
from vigil.service import create_app
from vigil.tasks import get_task
from vigil.tasks.ember import runtime
from vigil.tasks.ember.model import booster_of, scores

DATA = Path(__file__).resolve().parents[1] / "data" / "ember"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ember-runtime")
    get_task("ember").train_default(ArtifactStore(folder), Settings.from_env(models_dir=folder))
    return folder


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return np.load(DATA / "reference_pip_launchers_v2.npy").astype(np.float32)


def answer(models: Path, vectors: np.ndarray) -> np.ndarray:
    app = create_app(Settings.from_env(models_dir=models), ArtifactStore(models))
    app.config["TESTING"] = True
    response = app.test_client().post("/predict/ember", json=vectors.tolist())
    assert response.status_code == 200, response.get_json()
    return np.array([r["probability"] for r in response.get_json()["results"]])


def perturbed(onnx_bytes: bytes, delta: float) -> bytes:
    """The ONNX model with every leaf weight moved by ``delta`` (a converter bug, a bad file)."""
    import onnx

    model = onnx.load_from_string(onnx_bytes)
    (trees,) = [node for node in model.graph.node if node.op_type == "TreeEnsembleClassifier"]
    (weights,) = [a for a in trees.attribute if a.name == "class_weights"]
    weights.floats[:] = [w + delta for w in weights.floats]
    return model.SerializeToString()


def test_training_converts_checks_and_stores_the_onnx_model(models, vectors):
    store = ArtifactStore(models)
    entry = store.latest_entry("ember")
    report = entry["extra"]["runtime"]
    assert report["used"] is True and report["max_abs_diff"] <= runtime.TOLERANCE
    assert set(entry["sidecars"]) == {runtime.SIDECAR_MODEL, runtime.SIDECAR_ROWS}
    loaded = store.load("ember")
    assert set(loaded.sidecars) == set(entry["sidecars"])
    booster = booster_of(loaded.model)
    onnx = runtime.onnx_scorer(loaded, booster)
    assert isinstance(onnx, runtime.OnnxScorer)
    assert np.abs(onnx.predict(vectors) - booster.predict(vectors)).max() <= runtime.TOLERANCE


def test_the_compiled_trees_serve_with_the_boosters_own_bits(models, vectors):
    from vigil.boosting import CompiledTrees

    loaded = ArtifactStore(models).load("ember", long_lived=True)  # as the service's registry loads it
    booster = booster_of(loaded.model)
    assert isinstance(runtime.scorer_for(loaded, booster), CompiledTrees)
    assert np.array_equal(scores(loaded, vectors), booster.predict(vectors))
    assert np.array_equal(answer(models, vectors), booster.predict(vectors))  # through the service's JSON


def test_a_one_shot_load_is_served_by_onnx_runtime_without_compiling(models, vectors):
    # compiling takes ~1.5 s once a process: worth it for the service, not for `vigil ember predict`
    loaded = ArtifactStore(models).load("ember")
    booster = booster_of(loaded.model)
    assert isinstance(runtime.scorer_for(loaded, booster), runtime.OnnxScorer)
    assert np.abs(scores(loaded, vectors) - booster.predict(vectors)).max() <= runtime.TOLERANCE


@pytest.fixture
def trees_rounded_to_nearest(monkeypatch):
    """Compiled trees whose float32 thresholds are rounded to the nearest float32, not down: some
    float32 values just above a threshold go left. The probe rows, made from the model's
    thresholds, must catch it."""
    from vigil import boosting

    build = boosting.CompiledTrees.__init__

    def rounded_to_nearest(self, booster, dtype=np.float64):
        build(self, booster, dtype)
        self.compared32 = self.compared.astype(np.float32)

    monkeypatch.setattr(boosting.CompiledTrees, "__init__", rounded_to_nearest)


def test_compiled_trees_that_disagree_with_the_booster_are_refused_and_onnx_serves(
    models, vectors, trees_rounded_to_nearest, caplog
):
    loaded = ArtifactStore(models).load("ember", long_lived=True)
    booster = booster_of(loaded.model)
    with caplog.at_level(logging.WARNING, logger="vigil.boosting"):
        assert isinstance(runtime.scorer_for(loaded, booster), runtime.OnnxScorer)
    assert any("compiled trees refused" in r.getMessage() for r in caplog.records)
    assert np.abs(scores(loaded, vectors) - booster.predict(vectors)).max() <= runtime.TOLERANCE


def test_a_perturbed_onnx_model_is_refused_at_load_and_the_booster_answers(models, vectors, tmp_path, caplog):
    good = ArtifactStore(models).load("ember")
    folder = tmp_path / "models"
    store = ArtifactStore(folder)
    sidecars = dict(good.sidecars)
    sidecars[runtime.SIDECAR_MODEL] = perturbed(sidecars[runtime.SIDECAR_MODEL], 1e-3)
    store.save("ember", good.model, threshold=good.threshold, feature_version=2, sidecars=sidecars)
    loaded = store.load("ember")
    booster = booster_of(loaded.model)
    with caplog.at_level(logging.WARNING, logger="vigil.tasks.ember.runtime"):
        assert runtime.onnx_scorer(loaded, booster) is None
    assert any("ONNX Runtime refused" in r.getMessage() and "Booster serves" in r.getMessage() for r in caplog.records)
    assert np.array_equal(scores(loaded, vectors), booster.predict(vectors))


def test_with_both_scorers_refused_the_booster_answers(models, vectors, tmp_path, trees_rounded_to_nearest):
    good = ArtifactStore(models).load("ember")
    store = ArtifactStore(tmp_path / "models")
    sidecars = {**good.sidecars, runtime.SIDECAR_MODEL: perturbed(good.sidecars[runtime.SIDECAR_MODEL], 1e-3)}
    store.save("ember", good.model, threshold=good.threshold, feature_version=2, sidecars=sidecars)
    loaded = store.load("ember", long_lived=True)
    booster = booster_of(loaded.model)
    assert runtime.scorer_for(loaded, booster) is None
    assert np.array_equal(scores(loaded, vectors), booster.predict(vectors))
    assert np.array_equal(answer(tmp_path / "models", vectors), booster.predict(vectors))  # the service too


def test_a_sidecar_changed_on_disk_is_refused_by_its_hash_and_the_booster_answers(models, vectors, tmp_path, caplog):
    good = ArtifactStore(models).load("ember")
    folder = tmp_path / "models"
    store = ArtifactStore(folder)
    entry = store.save("ember", good.model, threshold=good.threshold, feature_version=2, sidecars=good.sidecars)
    onnx_file = folder / entry["sidecars"][runtime.SIDECAR_MODEL]["file"]
    onnx_file.write_bytes(perturbed(onnx_file.read_bytes(), 1e-3))  # written behind the store's back
    with caplog.at_level(logging.ERROR, logger="vigil.artifacts"):
        loaded = store.load("ember")
    assert runtime.SIDECAR_MODEL not in loaded.sidecars and runtime.SIDECAR_ROWS in loaded.sidecars
    assert any("sidecar onnx" in r.getMessage() and "does not match" in r.getMessage() for r in caplog.records)
    booster = booster_of(loaded.model)
    assert runtime.onnx_scorer(loaded, booster) is None
    assert np.array_equal(answer(folder, vectors), booster.predict(vectors))


def test_conversion_outside_the_tolerance_is_refused_at_training(models, vectors, monkeypatch):
    booster = booster_of(ArtifactStore(models).load("ember").model)
    monkeypatch.setattr(runtime, "TOLERANCE", 0.0)  # no float32 model is exact to 0
    sidecars, report = runtime.convert_checked(booster, vectors)
    assert sidecars is None and report["used"] is False and "max |ONNX - Booster|" in report["refused"]
    json.dumps(report)  # goes into the manifest


def test_sidecar_names_are_plain_words(models, tmp_path):
    good = ArtifactStore(models).load("ember")
    with pytest.raises(ValueError, match="plain word"):
        ArtifactStore(tmp_path).save("ember", good.model, sidecars={"../x": b""})


SCORER_THREADS = """
import sys
from vigil.artifacts import ArtifactStore
from vigil.boosting import process_threads
from vigil.tasks.ember import runtime
from vigil.tasks.ember.model import booster_of, scores
loaded = ArtifactStore(sys.argv[1]).load("ember")
scorer = runtime.onnx_scorer(loaded, booster_of(loaded.model))
print(process_threads(), scorer.session.get_session_options().intra_op_num_threads)
"""


@pytest.mark.parametrize("omp_threads", ["1", "2"])
def test_the_scorer_runs_on_the_process_thread_budget_not_the_training_n_jobs(models, omp_threads):
    # the demo model is trained with n_jobs=1; a gunicorn worker (OMP_NUM_THREADS=1) and a process
    # given 2 threads each score on what they were given, as a bare Booster.predict there would
    env = {**os.environ, "OMP_NUM_THREADS": omp_threads}
    done = subprocess.run(
        [sys.executable, "-c", SCORER_THREADS, str(models)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [omp_threads, omp_threads]


def test_positive_probability_is_predict_probas_second_column_for_lightgbm_and_the_rest():
    from lightgbm import LGBMClassifier
    from sklearn.ensemble import RandomForestClassifier

    from vigil.boosting import positive_probability

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6))
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int)
    boosted = LGBMClassifier(n_estimators=30, n_jobs=1, verbose=-1).fit(X, y)
    forest = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
    for classifier in (boosted, forest):
        # the Booster's own output for LightGBM (on the process's threads): the same floats, not close ones
        assert np.array_equal(positive_probability(classifier, X), classifier.predict_proba(X)[:, 1])
    three = LGBMClassifier(n_estimators=5, verbose=-1).fit(X, y + (X[:, 3] > 1))  # three classes
    assert np.array_equal(positive_probability(three, X), three.predict_proba(X)[:, 1])
