import json

import pytest
from sklearn.linear_model import LogisticRegression

from vigil.artifacts import ArtifactStore, data_fingerprint
from vigil.errors import ArtifactIntegrityError, ModelNotAvailable


def _fitted():
    return LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])


def test_save_and_load_roundtrip_records_manifest(tmp_path):
    store = ArtifactStore(tmp_path)
    entry = store.save("demo", _fitted(), metrics={"f1": 0.5}, threshold=0.3, feature_version=2,
                       data_fingerprint=data_fingerprint(b"rows"))
    assert entry["version"] == "1"
    second = store.save("demo", _fitted())
    assert second["version"] == "2"
    loaded = store.load("demo")
    assert loaded.version == "2"
    assert store.load("demo", "1").threshold == 0.3
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    first = manifest["artifacts"][0]
    assert first["metrics"] == {"f1": 0.5}
    assert set(first["library_versions"]) >= {"lightgbm", "scikit-learn", "lief"}
    assert len(first["sha256"]) == 64 and first["created_at"]


def test_tampered_file_is_refused(tmp_path):
    store = ArtifactStore(tmp_path)
    entry = store.save("demo", _fitted())
    path = tmp_path / entry["file"]
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ArtifactIntegrityError, match="does not match"):
        store.load("demo")


def test_file_outside_manifest_is_refused(tmp_path):
    store = ArtifactStore(tmp_path)
    store.save("demo", _fitted())
    stray = tmp_path / "demo" / "stray.joblib"
    stray.write_bytes(b"anything")
    with pytest.raises(ArtifactIntegrityError, match="not listed"):
        store.load_file(stray)


def test_missing_model_says_how_to_train(tmp_path):
    with pytest.raises(ModelNotAvailable, match="no trained model"):
        ArtifactStore(tmp_path).load("ember")


def test_signed_manifest_required_with_key(tmp_path):
    signed = ArtifactStore(tmp_path, model_key="secret")
    signed.save("demo", _fitted())
    assert signed.load("demo").version == "1"
    # An attacker with write access rewrites the manifest to point at a new hash: signature breaks.
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["artifacts"][0]["sha256"] = "0" * 64
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactIntegrityError, match="signature"):
        signed.load("demo")
    with pytest.raises(ArtifactIntegrityError, match="signature"):
        ArtifactStore(tmp_path, model_key="other").read_manifest()
