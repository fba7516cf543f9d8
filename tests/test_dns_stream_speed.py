"""The stream's fast paths give the numbers of the slow ones (issue 17, item 5): batch features of
plain names equal the feature blocks', the cached selection equals the pipeline, numpy window scores
equal scikit-learn's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vigil.artifacts import ArtifactStore
from vigil.config import Settings
from vigil.tasks import get_task
from vigil.tasks.dns_exfil.benign import load_benign
from vigil.tasks.dns_exfil.capture import load_captures
from vigil.tasks.dns_exfil.fast_features import cic_matrix, plain_labels
from vigil.tasks.dns_exfil.features import FEATURE_COLUMNS, QueryFeatureExtractor
from vigil.tasks.dns_exfil.generate import STATIC_PHASE, QueryGenerator
from vigil.tasks.dns_exfil.model import predict_proba, scores, window_scores


def test_batch_features_of_real_and_generated_names_equal_the_feature_blocks():
    names = (
        load_benign().name.sample(6000, random_state=2).tolist()
        + load_captures().qname.tolist()
        + QueryGenerator(seed=2).queries(STATIC_PHASE, 2000)[0]
        + ["_smb._tcp.local", "co.uk", "a.b.c.d.e.f.g.h.example.com.", " www.example.com ", "localhost"]
    )
    assert sum(plain_labels(n) is not None for n in names) > 0.9 * len(names)
    fast = cic_matrix(names)
    slow = QueryFeatureExtractor().transform(names)
    different = np.flatnonzero((fast != slow).any(axis=1))
    assert different.size == 0, [(names[i], dict(zip(FEATURE_COLUMNS, fast[i] - slow[i]))) for i in different[:3]]


@pytest.fixture(scope="module")
def static(tmp_path_factory):
    root = tmp_path_factory.mktemp("dns_speed")
    settings = Settings.from_env(models_dir=root / "models", work_dir=root / "runs")
    store = ArtifactStore(settings.models_dir)
    get_task("dns_exfil").train_default(store, settings)
    return store.load("dns_exfil").model


def test_the_cached_feature_selection_scores_as_the_pipeline(static):
    names, _ = QueryGenerator(seed=8).queries(STATIC_PHASE, 1500)
    X = pd.DataFrame(cic_matrix(names), columns=FEATURE_COLUMNS)
    expected = static.predict_proba(X)[:, 1]
    assert np.array_equal(predict_proba(static, X), expected)
    assert np.array_equal(predict_proba(static, X), expected)  # cached the second time


def test_window_scores_equal_scikit_learns():
    rng = np.random.default_rng(0)
    for _ in range(30):
        y = rng.integers(0, 2, 1000)
        p = np.round(np.clip(y * 0.3 + rng.random(1000) * 0.8, 0, 1), 2)  # ties on purpose
        ours, theirs = window_scores(y, p, 0.5), scores(y, p, 0.5)
        for key in ("f1", "accuracy", "roc_auc"):
            assert ours[key] == pytest.approx(theirs[key], abs=1e-12)
    one_class = window_scores(np.zeros(10), np.linspace(0, 1, 10))
    assert np.isnan(one_class["roc_auc"]) and one_class["f1"] == 0.0


def test_a_mutual_information_pipeline_saves_and_loads(tmp_path):
    """vigil dns train / demo save whichever candidate wins; the mutual-information one names our
    seeded score function, which the artifact store must accept."""
    from vigil.tasks.dns_exfil.model import make_pipeline

    names, labels = QueryGenerator(seed=6).queries(STATIC_PHASE, 600)
    X = pd.DataFrame(cic_matrix(names), columns=FEATURE_COLUMNS)
    bundle = make_pipeline("mutual_info_k8", "lightgbm").fit(X, labels)
    store = ArtifactStore(tmp_path)
    entry = store.save("dns_exfil", bundle, threshold=0.5)
    loaded = store.load("dns_exfil", entry["version"]).model
    assert np.array_equal(predict_proba(loaded, X), predict_proba(bundle, X))
