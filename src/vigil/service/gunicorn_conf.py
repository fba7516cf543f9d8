"""Gunicorn settings for Vigil (``gunicorn -c python:vigil.service.gunicorn_conf vigil.service:app``).

Defaults fit the 2-core reference machine: 2 workers x 2 threads, and numeric libraries
limited to one thread per worker so workers do not oversubscribe the cores. On a bigger
machine raise VIGIL_WORKERS (about one per core) before threads; see the README's service section.

This module runs in gunicorn's master before any worker forks, and imports nothing heavy
(no numpy, Flask or prometheus_client): the environment set here is what the workers'
numeric libraries see when they load.
"""

import os
import shutil
import tempfile
from pathlib import Path

# Before anything can import numpy / LightGBM / OpenMP: they size their thread pools at load.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from vigil.config import Settings  # noqa: E402  (after the thread variables, on purpose)

_settings = Settings.from_env()

# One scratch folder per server: Prometheus multiprocess files and the reload generation.
# Created fresh at every start so counters of a previous run never leak into this one.
_runtime_dir = Path(tempfile.mkdtemp(prefix="vigil-runtime-"))
(_runtime_dir / "prometheus").mkdir()
os.environ["VIGIL_RUNTIME_DIR"] = str(_runtime_dir)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_runtime_dir / "prometheus")

# gunicorn 23+ opens a control socket, by default in the user's home (~/.gunicorn/gunicorn.ctl):
# one per server, in this server's runtime folder, removed with it (and never shared by two servers).
control_socket = str(_runtime_dir / "gunicorn.ctl")

# comma-separated: `vigil serve --ui-port` adds the browser UI's address to the API's
bind = (_settings.bind or f"{_settings.host}:{_settings.port}").split(",")
workers = _settings.workers
threads = _settings.threads
worker_class = "gthread"
timeout = _settings.worker_timeout_s
graceful_timeout = 30
keepalive = 5
preload_app = False
# The app logs one JSON line per request (with the request id), so gunicorn's access log is off
# and its own error log is JSON too.
accesslog = None
errorlog = "-"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "vigil.jsonlog.JsonFormatter"}},
    "handlers": {
        "error_console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"},
        "console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"},
    },
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["error_console"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": False},
        "vigil": {"level": "INFO", "handlers": ["error_console"], "propagate": False},
    },
}


def post_worker_init(worker):
    # The worker has built the app and loaded its models: out of the collector's way (gc.freeze).
    from vigil.heap import freeze_startup_heap

    freeze_startup_heap()


def child_exit(server, worker):
    # A dead worker's live gauges must not be summed any more.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, str(_runtime_dir / "prometheus"))


def on_exit(server):
    shutil.rmtree(_runtime_dir, ignore_errors=True)
