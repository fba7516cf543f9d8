"""Background jobs whose state lives in files, so every gunicorn worker answers for every job.

A loop can take minutes, so ``/one_loop`` answers at once and the loop runs in a thread of the worker
that took the request. Two things must hold across workers (each is a separate process):

- ``GET /jobs/<id>`` may land on any worker: the job's state is a JSON file under ``<root>/<id>.json``,
  replaced atomically on every update.
- A second loop of the same experiment is refused (409) whichever worker gets it: the running job holds
  an exclusive ``flock`` on the experiment's ``.loop.lock`` from before the job is announced until its
  final state is written. ``flock`` locks belong to open files, so they also exclude a second request
  handled by another thread of the same worker, and the kernel drops them when a process dies.

A job whose file still says queued/running while nobody holds its lock belonged to a worker that died
(killed, restarted); the first reader marks it failed with that reason.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import logging
import os
import re
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Callable

from vigil.errors import InvalidInput, VigilError
from vigil.files import atomic_write

log = logging.getLogger("vigil.active_learning")

JOB_ID = re.compile(r"[0-9a-f]{32}")  # fullmatch: no trailing newline
ACTIVE = ("queued", "running")


class LoopAlreadyRunning(VigilError):
    status = 409


class JobNotFound(VigilError):
    status = 404


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _write_json_atomically(path: Path, value: dict) -> None:
    atomic_write(path, json.dumps(value, indent=1, default=str))


class ExperimentLock:
    """Non-blocking exclusive lock on ``<experiment_dir>/.loop.lock``."""

    def __init__(self, experiment_dir: Path):
        self.path = Path(experiment_dir) / ".loop.lock"
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class JobStore:
    """Jobs as files under ``root``; :meth:`start` runs ``work(progress)`` under the experiment's lock."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _path(self, job_id: str) -> Path:
        if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
            raise InvalidInput(
                "job id must be 32 hexadecimal characters", {"field": "job_id", "value": str(job_id)[:40]}
            )
        return self.root / f"{job_id}.json"

    def _save(self, job: dict) -> None:
        job["updated_at"] = _now()
        _write_json_atomically(self._path(job["job_id"]), job)

    def running_job(self, experiment_dir: Path) -> str | None:
        marker = Path(experiment_dir) / ".current_job"
        return marker.read_text().strip() if marker.is_file() else None

    def start(
        self,
        experiment_dir: Path,
        description: dict,
        work: Callable[[Callable[[str, float], None]], dict],
        background: bool = True,
    ) -> dict:
        """Announce a job and run it (in a daemon thread when ``background``); 409 while one runs."""
        lock = ExperimentLock(experiment_dir)
        if not self._acquire(lock, experiment_dir):
            running = self.running_job(experiment_dir)
            raise LoopAlreadyRunning(
                "a loop of this experiment is already running",
                {"field": "experiment_id", "job_id": running, "status_url": f"/jobs/{running}" if running else None},
            )
        try:
            job = {
                "job_id": uuid.uuid4().hex,
                **description,
                "status": "queued",
                "stage": "queued",
                "progress": 0.0,
                "created_at": _now(),
                "started_at": None,
                "finished_at": None,
                "result": None,
                "error": None,
                "pid": os.getpid(),
                "lock": str(lock.path),
            }
            self._save(job)
            (Path(experiment_dir) / ".current_job").write_text(job["job_id"])
        except BaseException:
            lock.release()
            raise
        if background:
            threading.Thread(
                target=self._run, args=(job, lock, work), name=f"job-{job['job_id'][:8]}", daemon=True
            ).start()
            return dict(job)
        self._run(job, lock, work)
        return self.get(job["job_id"])

    def _acquire(self, lock: ExperimentLock, experiment_dir: Path, grace_s: float = 2.0) -> bool:
        """Take the experiment's lock. A job that already wrote its final state releases the lock a
        moment later (it saves before releasing, see _run), so a client that saw "succeeded" and
        starts the next loop at once waits for that moment instead of getting a spurious 409."""
        deadline = time.monotonic() + grace_s
        while not lock.try_acquire():
            running = self.running_job(experiment_dir)
            try:
                finished = running is not None and self.get(running)["status"] not in ACTIVE
            except VigilError:
                finished = False
            if not finished or time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def _run(self, job: dict, lock: ExperimentLock, work) -> None:
        def progress(stage: str, fraction: float) -> None:
            job.update(stage=stage, progress=round(float(fraction), 3))
            self._save(job)

        try:
            job.update(status="running", started_at=_now())
            self._save(job)
            job["result"] = work(progress)
            job.update(status="succeeded", stage="done", progress=1.0)
        except Exception as exc:  # recorded, never raised: the thread has nobody to raise to
            if not isinstance(exc, VigilError):
                log.error("job %s failed:\n%s", job["job_id"], traceback.format_exc())
            job.update(
                status="failed",
                error={
                    "reason": exc.error if isinstance(exc, VigilError) else f"{type(exc).__name__}: {exc}",
                    "type": type(exc).__name__,
                    "detail": exc.detail if isinstance(exc, VigilError) else None,
                    "stage": job.get("stage"),
                },
            )
        finally:
            job["finished_at"] = _now()
            try:
                self._save(job)
            finally:
                lock.release()

    def get(self, job_id: str) -> dict:
        path = self._path(job_id)
        try:
            job = json.loads(path.read_text())
        except FileNotFoundError:
            raise JobNotFound(f"no job {job_id}", {"field": "job_id", "value": job_id}) from None
        if job["status"] in ACTIVE:
            job = self._fail_if_orphaned(job)
        return job

    def _fail_if_orphaned(self, job: dict) -> dict:
        lock = ExperimentLock(Path(job["lock"]).parent)
        if not lock.try_acquire():
            return job  # its worker is alive and holds the lock
        try:
            # The owner writes its final state before releasing, so a fresh read under the lock is the truth.
            job = json.loads(self._path(job["job_id"]).read_text())
            if job["status"] in ACTIVE:
                job.update(
                    status="failed",
                    finished_at=_now(),
                    error={
                        "reason": "the worker process running this job exited before the loop finished",
                        "type": "WorkerExited",
                        "detail": {"pid": job.get("pid")},
                        "stage": job.get("stage"),
                    },
                )
                self._save(job)
            return job
        finally:
            lock.release()
