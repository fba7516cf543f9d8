"""Gunicorn settings for Vigil (``gunicorn -c python:vigil.service.gunicorn_conf vigil.service:app``).

Defaults fit the 2-core reference machine: 2 workers x 2 threads, and numeric libraries
limited to one thread per worker so workers do not oversubscribe the cores. On a bigger
machine raise VIGIL_WORKERS (about one per core) before threads.
"""

import os

from vigil.config import Settings

_settings = Settings.from_env()

# Set before numpy / LightGBM are imported in the workers.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

# comma-separated: `vigil serve --ui-port` adds the browser UI's address to the API's
bind = os.environ.get("VIGIL_BIND", f"{_settings.host}:{_settings.port}").split(",")
workers = _settings.workers
threads = _settings.threads
worker_class = "gthread"
timeout = int(os.environ.get("VIGIL_WORKER_TIMEOUT", "300"))
graceful_timeout = 30
preload_app = False
accesslog = "-"
errorlog = "-"
