"""Shared fixtures: a temporary artifact store, a Flask test client, and a real gunicorn server."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from vigil.artifacts import ArtifactStore
from vigil.config import Settings
from vigil.service import create_app

REPO_ROOT = Path(__file__).resolve().parents[1]

# Tests build their settings themselves: a developer's VIGIL_* variables (a predict token, a model key,
# another models folder) must not leak into them, nor into the servers they start.
for _name in [name for name in os.environ if name.startswith("VIGIL_")]:
    del os.environ[_name]


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
        # Own process group, so stop() reaches gunicorn's master and every worker at once.
        self.process = subprocess.Popen(command, env=environment, cwd=REPO_ROOT, start_new_session=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        # Drain the server's output as it comes: a full pipe would block the server's logging.
        self._lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self._lines.extend(self.process.stdout), daemon=True)
        self._reader.start()
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()  # never leave a server behind when start-up fails
            raise

    def _wait_healthy(self, seconds: float = 90) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._reader.join(timeout=5)
                raise RuntimeError(f"server exited early:\n{self.output}")
            try:
                if requests.get(self.url + "/health", timeout=5).ok:
                    return
            except requests.RequestException:  # not listening yet, or workers still importing
                time.sleep(0.2)
        raise RuntimeError(f"server did not become healthy in {seconds:.0f} s:\n{self.output}")

    @property
    def output(self) -> str:
        """Everything the server printed so far."""
        return "".join(self._lines)

    def stop(self) -> str:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=30)
                break
            except subprocess.TimeoutExpired:
                continue
        self._reader.join(timeout=5)
        return self.output


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
