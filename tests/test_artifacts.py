import json
from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression

from vigil.artifacts import ArtifactStore, data_fingerprint
from vigil.errors import ArtifactIntegrityError, ModelNotAvailable


def _fitted():
    return LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])


def test_save_and_load_roundtrip_records_manifest(tmp_path):
    store = ArtifactStore(tmp_path)
    entry = store.save(
        "demo",
        _fitted(),
        metrics={"f1": 0.5},
        threshold=0.3,
        feature_version=2,
        data_fingerprint=data_fingerprint(b"rows"),
    )
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


# ----------------------------------------------------------------------------- attacks on the store


class Payload:
    """A pickle that, if ever unpickled, leaves a marker file: the attacker's code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_a_file_swapped_between_hash_check_and_load_never_runs(tmp_path):
    """The swap race that beat the old store (hash the path, then joblib.load the path again): a thread
    keeps replacing a legacy joblib artifact with an attacker's pickle while the store loads it."""
    import io

    import joblib

    store = ArtifactStore(tmp_path / "models")
    store.save("demo", _fitted())
    good, evil = io.BytesIO(), io.BytesIO()
    joblib.dump(_fitted(), good)
    joblib.dump(Payload(tmp_path / "pwned"), evil)
    legacy = tmp_path / "models" / "demo" / "demo-v2.joblib"
    legacy.write_bytes(good.getvalue())
    manifest = json.loads(store.manifest_path.read_text())
    manifest["artifacts"].append(
        {
            **manifest["artifacts"][0],
            "version": "2",
            "file": "demo/demo-v2.joblib",
            "sha256": __import__("hashlib").sha256(good.getvalue()).hexdigest(),
        }
    )
    store.manifest_path.write_text(json.dumps(manifest))

    outcomes = _load_while_swapping(store, "2", legacy, good.getvalue(), evil.getvalue(), tmp_path)
    assert not (tmp_path / "pwned").exists()
    assert outcomes["loaded"] + outcomes["refused"] == 200


def _load_while_swapping(store, version: str, legacy: Path, good: bytes, evil: bytes, tmp_path: Path) -> dict:
    """Load ``version`` 200 times while a thread keeps replacing its file with ``evil`` and back."""
    import os
    import threading

    stop = threading.Event()

    def swap():
        staged = {name: tmp_path / name for name in ("good", "evil")}
        staged["good"].write_bytes(good)
        staged["evil"].write_bytes(evil)
        while not stop.is_set():
            for name in ("evil", "good"):
                tmp = legacy.with_suffix(".swap")
                tmp.write_bytes(staged[name].read_bytes())
                os.replace(tmp, legacy)

    swapper = threading.Thread(target=swap)
    swapper.start()
    outcomes = {"loaded": 0, "refused": 0}
    try:
        for _ in range(200):
            try:
                loaded = store.load("demo", version)
                assert hasattr(loaded.model, "predict")  # the genuine model, never the payload
                outcomes["loaded"] += 1
            except ArtifactIntegrityError:
                outcomes["refused"] += 1
    finally:
        stop.set()
        swapper.join()
    return outcomes


def test_a_signed_joblib_swapped_between_hash_check_and_load_never_runs(tmp_path):
    """The same race where a .joblib is still loaded (a signed manifest): only the verified bytes are unpickled."""
    import io

    import joblib

    store = ArtifactStore(tmp_path / "models", model_key="secret")
    store.save("demo", _fitted())
    version = _list_legacy_joblib(store, _fitted())
    evil = io.BytesIO()
    joblib.dump(Payload(tmp_path / "pwned"), evil)
    legacy = tmp_path / "models" / "demo" / f"demo-v{version}.joblib"
    outcomes = _load_while_swapping(store, version, legacy, legacy.read_bytes(), evil.getvalue(), tmp_path)
    assert not (tmp_path / "pwned").exists()
    assert outcomes["loaded"] > 0 and outcomes["loaded"] + outcomes["refused"] == 200


def test_new_artifacts_are_skops_and_name_only_trusted_types(tmp_path):
    store = ArtifactStore(tmp_path)
    entry = store.save("demo", _fitted())
    assert entry["file"].endswith(".skops")
    assert store.load("demo").model.predict([[3.0]]).tolist() == [1]


class Untrusted:
    def __init__(self):
        self.value = 1

    def __setstate__(self, state):  # would run on load: it must never be reached
        import pathlib

        pathlib.Path(state["marker"]).touch()


def test_a_skops_file_naming_an_untrusted_type_is_refused_before_it_is_built(tmp_path):
    import hashlib

    import skops.io

    store = ArtifactStore(tmp_path / "models")
    entry = store.save("demo", _fitted())
    hostile = Untrusted()
    hostile.marker = str(tmp_path / "pwned")
    data = skops.io.dumps(hostile)
    (tmp_path / "models" / entry["file"]).write_bytes(data)
    manifest = json.loads(store.manifest_path.read_text())
    manifest["artifacts"][0]["sha256"] = hashlib.sha256(data).hexdigest()  # no key: the hash is forgeable
    store.manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactIntegrityError, match="trusted list") as caught:
        store.load("demo")
    assert caught.value.detail["untrusted_types"] == ["test_artifacts.Untrusted"]
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(ValueError, match="trusted list"):
        store.save("demo", hostile)  # refused at training time too


def test_a_signed_old_manifest_put_back_is_refused(tmp_path):
    state = tmp_path / "state"
    store = ArtifactStore(tmp_path / "models", model_key="secret", state_dir=state)
    store.save("demo", _fitted())
    old_manifest = store.manifest_path.read_bytes()  # validly signed, sequence 1
    store.save("demo", _fitted())
    assert store.load("demo").version == "2" and store.accepted_sequence() == 2
    store.manifest_path.write_bytes(old_manifest)  # the rollback
    with pytest.raises(ArtifactIntegrityError, match="older than 2"):
        store.load("demo")
    # a new process (a worker start) keeps the refusal: the sequence lives outside models/
    with pytest.raises(ArtifactIntegrityError, match="rolled-back"):
        ArtifactStore(tmp_path / "models", model_key="secret", state_dir=state).read_manifest()
    # the sequence is signed: raising it by hand breaks the signature
    document = json.loads(old_manifest)
    document["sequence"] = 99
    store.manifest_path.write_text(json.dumps(document))
    with pytest.raises(ArtifactIntegrityError, match="signature"):
        store.read_manifest()


def test_the_state_file_is_outside_the_models_folder():
    from vigil.config import Settings

    settings = Settings(models_dir=Path("/srv/models"), work_dir=Path("/srv/runs"), model_key="k")
    store = ArtifactStore.from_settings(settings)
    assert store.state_dir == Path("/srv/runs/state") and store.model_key == "k"


# ----------------------------------------------------------------------------- legacy .joblib artifacts


def _list_legacy_joblib(store: ArtifactStore, model) -> str:
    """Add ``model`` as a .joblib version of "demo" the way releases before skops saved it (the
    manifest rewritten by the store, so signed when the store has a key); its version."""
    import hashlib
    import io

    import joblib

    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    with store._locked():
        artifacts = store.read_manifest()
        version = str(len(artifacts) + 1)
        path = store.root / "demo" / f"demo-v{version}.joblib"
        path.write_bytes(buffer.getvalue())
        sha = hashlib.sha256(buffer.getvalue()).hexdigest()
        artifacts.append({**artifacts[0], "version": version, "file": f"demo/{path.name}", "sha256": sha})
        store._write_manifest(artifacts)
    return version


def test_a_joblib_artifact_under_an_unsigned_manifest_is_refused_and_never_unpickled(tmp_path):
    store = ArtifactStore(tmp_path / "models")
    store.save("demo", _fitted())
    version = _list_legacy_joblib(store, Payload(tmp_path / "pwned"))  # its hash matches the manifest
    with pytest.raises(ArtifactIntegrityError, match=r"joblib \(pickle\) format.*not signed") as refused:
        store.load("demo", version)
    assert "vigil bootstrap --force" in refused.value.detail and "VIGIL_MODEL_KEY" in refused.value.detail
    with pytest.raises(ArtifactIntegrityError, match="joblib"):
        store.load_file(tmp_path / "models" / "demo" / f"demo-v{version}.joblib")
    assert not (tmp_path / "pwned").exists()
    assert store.load("demo", "1").version == "1"  # the .skops artifact still loads


def test_a_joblib_artifact_under_a_verified_manifest_signature_loads(tmp_path):
    store = ArtifactStore(tmp_path / "models", model_key="secret")
    store.save("demo", _fitted())
    version = _list_legacy_joblib(store, _fitted())
    loaded = store.load("demo", version)
    assert loaded.version == version and loaded.model.predict([[3.0]]).tolist() == [1]
    # the same files read without the key: the pickle is refused, whatever the hashes say
    with pytest.raises(ArtifactIntegrityError, match="not signed"):
        ArtifactStore(tmp_path / "models").load("demo", version)
