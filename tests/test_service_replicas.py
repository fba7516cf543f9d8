"""Issue 18 item 5: N replicas (real gunicorn servers) sharing one models folder, each with its own
state folder; `scripts/reload_replicas.sh` and `vigil admin reload` fan /admin/reload out to all of
them and report each answer; a validly signed but older manifest put back is refused by every replica."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from vigil.artifacts import ArtifactStore

from service_support import copy_store, gunicorn_workers, service_trained  # noqa: F401

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "reload_replicas.sh"
KEY = "replica-test-key"
TOKEN = "ops"


def _listing(folder: Path) -> dict:
    """Every file under ``folder`` with its size and modification time: what a replica could change."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def _served_version(server, task) -> str:
    example = task.example_request()
    response = requests.post(f"{server.url}/predict/{task.slug}", json=example, timeout=30)
    assert response.status_code == 200, response.text[:300]
    return response.headers["X-Model-Version"]


def _fan_out(*urls: str, token: str = TOKEN, path: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), "--token", token, "--timeout", "60", *urls],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **({"PATH": path} if path else {})},
    )


def _vigil_admin_reload(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vigil", "admin", "reload", "--token", TOKEN, *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")},
    )


def _path_without_curl(folder: Path) -> str:
    """A PATH holding only what the script needs besides curl: it then posts with Python's urllib,
    as in the vigil image (which has Python, not curl)."""
    folder.mkdir()
    for tool in ("bash", "getent", "awk", "sort", "tr", "grep", "sed", "mktemp", "rm"):
        (folder / tool).symlink_to(shutil.which(tool))
    (folder / "python3").symlink_to(sys.executable)
    return str(folder)


@pytest.fixture
def replicas(service_trained, tmp_path, live_server):  # noqa: F811
    """Two `vigil serve` replicas over one signed models folder; the trainer's store writes to it."""
    task, store = service_trained
    models = tmp_path / "models"
    copy_store(store.root, models)
    trainer = ArtifactStore(models, model_key=KEY, state_dir=tmp_path / "trainer-state")
    trainer._write_manifest(ArtifactStore(models).read_manifest())  # sign what was trained without a key
    servers = [
        live_server(
            models,
            env={
                "VIGIL_API_TOKEN": TOKEN,
                "VIGIL_MODEL_KEY": KEY,
                "VIGIL_STATE_DIR": str(tmp_path / f"state-{name}"),  # rollback protection per replica
                "VIGIL_WORK_DIR": str(tmp_path / f"runs-{name}"),
                "VIGIL_BUCKET_ROOT": str(tmp_path / f"bucket-{name}"),
                "VIGIL_WORKERS": str(workers),
                "VIGIL_THREADS": "2",
            },
        )
        for name, workers in (("a", 2), ("b", 1))
    ]
    return task, trainer, servers


def test_reload_fans_out_to_every_replica_and_each_refuses_a_rolled_back_manifest(replicas, tmp_path):
    task, trainer, servers = replicas
    assert len(gunicorn_workers(servers[0])) == 2 and len(gunicorn_workers(servers[1])) == 1
    first = trainer.latest_entry(task.name)["version"]
    assert {_served_version(server, task) for server in servers} == {first}

    old_manifest = trainer.manifest_path.read_bytes()  # validly signed, with the lower sequence
    loaded = trainer.load(task.name)
    entry = trainer.save(
        task.name,
        loaded.model,
        metrics=loaded.metrics,
        threshold=loaded.threshold,
        feature_version=loaded.feature_version,
        extra=loaded.entry.get("extra"),
    )
    assert entry["version"] != first
    # a save alone changes nothing served: each replica swaps when told to
    assert {_served_version(server, task) for server in servers} == {first}
    before = _listing(trainer.root)

    result = _fan_out(*(server.url for server in servers))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    for line, server in zip(lines, servers):
        assert line.startswith(f"ok      {server.url}/admin/reload  HTTP 200 ")
        assert f'"{task.name}":"{entry["version"]}"' in line.replace(" ", "")
    # every worker of every replica answers with the new version
    for server in servers:
        assert {_served_version(server, task) for _ in range(6)} == {entry["version"]}
    # the replicas read the shared folder and write nothing into it (it can be mounted read-only)
    assert _listing(trainer.root) == before
    assert not any(p.name.startswith("manifest-sequence") for p in trainer.root.rglob("*"))
    for name in ("a", "b"):
        assert any(p.name.startswith("manifest-sequence") for p in (tmp_path / f"state-{name}").iterdir())

    # the same through Python's urllib where there is no curl
    result = _fan_out(*(server.url for server in servers), path=_path_without_curl(tmp_path / "no-curl"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert [line.split()[:4] for line in result.stdout.splitlines()] == [
        ["ok", f"{server.url}/admin/reload", "HTTP", "200"] for server in servers
    ]

    # `vigil admin reload` does the same where vigil is installed: a third version reaches both
    loaded = trainer.load(task.name)
    third = trainer.save(task.name, loaded.model, metrics=loaded.metrics, extra=loaded.entry.get("extra"))
    urls = [arg for server in servers for arg in ("--url", server.url)]
    result = _vigil_admin_reload(*urls)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [line.split()[:4] for line in result.stdout.splitlines()] == [
        ["ok", f"{server.url}/admin/reload", "HTTP", "200"] for server in servers
    ]
    for server in servers:
        assert {_served_version(server, task) for _ in range(6)} == {third["version"]}
    entry = third

    # one replica down, a wrong token: each answer is reported, and the exit status says so
    dead = "http://127.0.0.1:9"  # discard port: nothing listens
    result = _fan_out(servers[0].url, dead)
    assert result.returncode == 1
    ok, failed = result.stdout.splitlines()
    assert ok.startswith("ok      ") and failed.startswith(f"FAILED  {dead}/admin/reload  HTTP unreachable")
    result = _fan_out(*(server.url for server in servers), token="wrong")
    assert result.returncode == 1
    assert all(line.startswith("FAILED") and "HTTP 401" in line for line in result.stdout.splitlines())

    # an older, validly signed manifest put back: every replica refuses it and keeps serving the newest
    trainer.manifest_path.write_bytes(old_manifest)
    result = _fan_out(*(server.url for server in servers))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("FAILED") and "HTTP 200" in line for line in lines)
    assert all("rolled-back manifest" in line for line in lines), lines
    for server in servers:
        assert _served_version(server, task) == entry["version"]
    result = _vigil_admin_reload(*urls)
    assert result.returncode == 1 and all("rolled-back manifest" in line for line in result.stdout.splitlines())
