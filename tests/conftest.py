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
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.process.stdout.read()}")
            try:
                if requests.get(self.url + "/health", timeout=1).ok:
                    return
            except requests.RequestException:  # refused while binding, or a read timeout while workers boot
                time.sleep(0.2)
        self.stop()
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
