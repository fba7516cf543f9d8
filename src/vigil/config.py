"""Settings, read from environment variables in this one place.

Every knob has a default that works on a fresh clone; the environment variable
named in each field's comment overrides it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Running from a checkout (src/vigil/config.py is this file), or from an installed copy (site-packages).
IN_CHECKOUT = (PROJECT_ROOT / "src" / "vigil" / "config.py").resolve() == Path(__file__).resolve()
# Where the default models/, runs/ and config.yaml live: the checkout, or, installed, the working directory.
RUN_ROOT = PROJECT_ROOT if IN_CHECKOUT else Path.cwd()


def _sample_data() -> Path:
    """The shipped samples: the checkout's data/ when present, else the installed package data
    (``vigil.sample_data``, the same folder mapped in by pyproject.toml)."""
    if IN_CHECKOUT and (PROJECT_ROOT / "data").is_dir():
        return PROJECT_ROOT / "data"
    from importlib.resources import files

    return Path(str(files("vigil") / "sample_data"))


SAMPLE_DATA = _sample_data()


def _env_path(name: str, default: Path) -> Path:
    return Path(os.environ.get(name, default)).expanduser()


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else default


def _env_str(name: str) -> str | None:
    raw = os.environ.get(name)
    return raw if raw else None


@dataclass(frozen=True)
class Settings:
    models_dir: Path = RUN_ROOT / "models"  # VIGIL_MODELS_DIR
    data_dir: Path = SAMPLE_DATA  # VIGIL_DATA_DIR: the shipped samples (checkout's data/ or package data)
    work_dir: Path = RUN_ROOT / "runs"  # VIGIL_WORK_DIR: reports, plots, experiment folders
    bucket_root: Path = RUN_ROOT / "runs" / "bucket"  # VIGIL_BUCKET_ROOT: Alectio bucket as a local folder
    max_body_bytes: int = 64 * 1024 * 1024  # VIGIL_MAX_BODY_BYTES
    max_rows: int = 100_000  # VIGIL_MAX_ROWS per prediction request
    predict_timeout_s: float = 60.0  # VIGIL_PREDICT_TIMEOUT_S: the work stops at its next chunk past it; 0 = none
    # VIGIL_PREDICT_COST_BUDGET_S: estimated CPU seconds one prediction request may cost (rows x the
    # task's row_cost); 413 above; 0 = no limit
    predict_cost_budget_s: float = 10.0
    predict_concurrency: int = 1  # VIGIL_PREDICT_CONCURRENCY: predictions computing at once, per worker
    predict_queue: int = 1  # VIGIL_PREDICT_QUEUE: predictions waiting for a slot, per worker; more: 503
    predict_queue_wait_s: float = 2.0  # VIGIL_PREDICT_QUEUE_WAIT_S: longest wait for a slot; then 503
    api_token: str | None = None  # VIGIL_API_TOKEN: guards training and admin endpoints
    predict_token: str | None = None  # VIGIL_PREDICT_TOKEN: guards /predict
    model_key: str | None = None  # VIGIL_MODEL_KEY: HMAC key the manifest must be signed with
    # VIGIL_STATE_DIR: kept outside models/: the highest signed manifest sequence accepted (refuses
    # rollbacks); default <work_dir>/state
    state_dir: Path | None = None
    # VIGIL_ALECTIO_CALLBACK_URL: the platform's end-of-task endpoint (the SDK posts to
    # <backend>/sdk/v2/end_of_task); VIGIL_ALECTIO_TOKEN: the bearer token sent with it
    alectio_callback_url: str | None = None
    alectio_token: str | None = None
    alectio_config: Path = RUN_ROOT / "config.yaml"  # VIGIL_ALECTIO_CONFIG: Alectio args (DATA_DIR, EXPT_DIR...)
    kafka_bootstrap_servers: str | None = None  # VIGIL_KAFKA_BOOTSTRAP_SERVERS
    host: str = "127.0.0.1"  # VIGIL_HOST
    port: int = 8080  # VIGIL_PORT
    workers: int = 2  # VIGIL_WORKERS
    threads: int = 2  # VIGIL_THREADS
    bind: str | None = None  # VIGIL_BIND: gunicorn address(es), comma-separated; default host:port
    worker_timeout_s: int = 300  # VIGIL_WORKER_TIMEOUT
    # VIGIL_RUNTIME_DIR: scratch folder shared by one server's gunicorn workers (Prometheus
    # multiprocess files, reload generation); gunicorn_conf creates one per server start.
    runtime_dir: Path | None = None
    # VIGIL_COMPAT: comma-separated originals whose client-visible conventions to copy exactly:
    # "mlpt" (POST /predict: ML-PT's 415 / 500 error bodies), "course" (POST /predict/web-sessions:
    # errors as HTTP 200 {"success": false}, a single session's prediction as a number)
    compat: frozenset = frozenset()
    # VIGIL_KERNEL_CACHE_DIR: where compiled numba kernels are kept, signed (vigil.kernel_cache);
    # "off": compiled in each process; default <work_dir>/kernels
    kernel_cache_dir: str | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        settings = cls(
            models_dir=_env_path("VIGIL_MODELS_DIR", cls.models_dir),
            data_dir=_env_path("VIGIL_DATA_DIR", cls.data_dir),
            work_dir=_env_path("VIGIL_WORK_DIR", cls.work_dir),
            bucket_root=_env_path("VIGIL_BUCKET_ROOT", cls.bucket_root),
            max_body_bytes=_env_int("VIGIL_MAX_BODY_BYTES", cls.max_body_bytes),
            max_rows=_env_int("VIGIL_MAX_ROWS", cls.max_rows),
            predict_timeout_s=_env_float("VIGIL_PREDICT_TIMEOUT_S", cls.predict_timeout_s),
            predict_cost_budget_s=_env_float("VIGIL_PREDICT_COST_BUDGET_S", cls.predict_cost_budget_s),
            predict_concurrency=_env_int("VIGIL_PREDICT_CONCURRENCY", cls.predict_concurrency),
            predict_queue=_env_int("VIGIL_PREDICT_QUEUE", cls.predict_queue),
            predict_queue_wait_s=_env_float("VIGIL_PREDICT_QUEUE_WAIT_S", cls.predict_queue_wait_s),
            api_token=_env_str("VIGIL_API_TOKEN"),
            predict_token=_env_str("VIGIL_PREDICT_TOKEN"),
            model_key=_env_str("VIGIL_MODEL_KEY"),
            state_dir=Path(os.environ["VIGIL_STATE_DIR"]).expanduser() if os.environ.get("VIGIL_STATE_DIR") else None,
            alectio_callback_url=_env_str("VIGIL_ALECTIO_CALLBACK_URL"),
            alectio_token=_env_str("VIGIL_ALECTIO_TOKEN"),
            alectio_config=_env_path("VIGIL_ALECTIO_CONFIG", cls.alectio_config),
            kafka_bootstrap_servers=_env_str("VIGIL_KAFKA_BOOTSTRAP_SERVERS"),
            host=os.environ.get("VIGIL_HOST", cls.host),
            port=_env_int("VIGIL_PORT", cls.port),
            workers=_env_int("VIGIL_WORKERS", cls.workers),
            threads=_env_int("VIGIL_THREADS", cls.threads),
            bind=_env_str("VIGIL_BIND"),
            worker_timeout_s=_env_int("VIGIL_WORKER_TIMEOUT", cls.worker_timeout_s),
            runtime_dir=Path(os.environ["VIGIL_RUNTIME_DIR"]) if os.environ.get("VIGIL_RUNTIME_DIR") else None,
            kernel_cache_dir=_env_str("VIGIL_KERNEL_CACHE_DIR"),
            compat=frozenset(
                part.strip().lower() for part in os.environ.get("VIGIL_COMPAT", "").split(",") if part.strip()
            ),
        )
        return replace(settings, **overrides) if overrides else settings

    @property
    def state_path(self) -> Path:
        return self.state_dir if self.state_dir is not None else self.work_dir / "state"

    @property
    def kernel_cache_path(self) -> Path | None:
        """The kernel cache's folder, None where it is off."""
        if self.kernel_cache_dir is None:
            return self.work_dir / "kernels"
        if self.kernel_cache_dir.strip().lower() in ("off", "0", "false", "no", "none"):
            return None
        return Path(self.kernel_cache_dir).expanduser()
