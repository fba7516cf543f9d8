"""Shared fixtures: a temporary artifact store, a Flask test client, and a real gunicorn server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from vigil.artifacts import ArtifactStore
from vigil.config import Settings
from vigil.service import create_app

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings.from_env(models_dir=tmp_path / "models", work_dir=tmp_path / "runs", bucket_root=tmp_path / "bucket")


@pytest.fixture
def store(settings) -> ArtifactStore:
    return ArtifactStore(settings.models_dir)


@pytest.fixture
def client(settings, store):
    app = create_app(settings, store)
    app.config["TESTING"] = True
    return app.test_client()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """``vigil serve`` (gunicorn) in a subprocess on a free loopback port."""

    def __init__(self, models_dir: Path, env: dict | None = None, args: list[str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environment = dict(os.environ, VIGIL_MODELS_DIR=str(models_dir), **(env or {}))
        command = [sys.executable, "-m", "vigil", "serve", "--port", str(self.port), *(args or [])]
        self.process = subprocess.Popen(command, env=environment, cwd=REPO_ROOT,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()  # never leave a server behind when start-up fails
            raise

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.process.stdout.read()}")
            try:
                if requests.get(self.url + "/health", timeout=1).ok:
                    return
            except (requests.ConnectionError, requests.Timeout):  # a worker still booting may hold the request
                time.sleep(0.2)
        raise RuntimeError("server did not become healthy in 60 s")

    def stop(self) -> str:
        self.process.terminate()
        try:
            output, _ = self.process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
        return output or ""


@pytest.fixture
def live_server():
    """Factory: ``live_server(models_dir, env=..., args=...)`` -> running :class:`LiveServer`."""
    servers = []

    def start(models_dir: Path, **kwargs) -> LiveServer:
        server = LiveServer(models_dir, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def web_sessions_trained(tmp_path_factory):
    """The web-sessions default model trained once per run on the shipped sample, as `vigil bootstrap` does:
    (settings, store, manifest entry). Shared by the API and the browser tests."""
    from vigil.tasks import get_task

    root = tmp_path_factory.mktemp("web_sessions")
    trained_settings = Settings.from_env(models_dir=root / "models", work_dir=root / "runs")
    trained_store = ArtifactStore(trained_settings.models_dir)
    entry = get_task("web-sessions").train_default(trained_store, trained_settings)
    return trained_settings, trained_store, entry
