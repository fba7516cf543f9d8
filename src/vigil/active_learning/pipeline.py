"""What the Alectio endpoints do, independent of Flask: start loops as jobs, close experiments.

Used by the HTTP blueprint (``vigil.service.compat.alectio``) and by the local experiment runner, so both go
through the same validation, locking, job files and loop code.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from vigil.active_learning import processes
from vigil.active_learning.jobs import JobStore, _now, _write_json_atomically
from vigil.active_learning.loop import LOOP_MESSAGE, experiment_args, preflight, run_one_loop, validate_payload
from vigil.active_learning.storage import BucketStore, LocalBucketStore
from vigil.config import RUN_ROOT, Settings
from vigil.errors import VigilError

log = logging.getLogger("vigil.active_learning")


class ExperimentClosed(VigilError):
    status = 409


class ExperimentNotFound(VigilError):
    status = 404


def default_args(settings: Settings) -> dict:
    """args from ``settings.alectio_config`` (config.yaml), or defaults when that file is absent."""
    path = Path(settings.alectio_config)
    if path.is_file():
        return processes.load_config(path)
    return processes.normalise_args(
        {
            "DATA_DIR": str(settings.data_dir / "ember" / "vectorized"),
            "EXPT_DIR": str(settings.work_dir / "alectio"),
            "CKPT_EXT": ".pkl",
            "TRAIN_SIZE": None,
            "TEST_SIZE": None,
            "exp_name": "Ember",
        },
        base_dir=RUN_ROOT,
    )


class AlectioPipeline:
    def __init__(
        self, args: dict, store: BucketStore, callback_url: str | None = None, callback_token: str | None = None
    ):
        self.args = args
        self.store = store
        self.callback_url = callback_url
        self.callback_token = callback_token
        self.jobs = JobStore(Path(args["EXPT_DIR"]) / "jobs")

    @classmethod
    def from_settings(cls, settings: Settings) -> "AlectioPipeline":
        return cls(
            default_args(settings),
            LocalBucketStore(settings.bucket_root),
            settings.alectio_callback_url,
            settings.alectio_token,
        )

    def experiment_dir(self, payload: dict) -> Path:
        return Path(experiment_args(self.args, payload)["EXPT_DIR"])

    def start_loop(self, payload: Any, background: bool = True) -> dict:
        """Validate the payload, then run the loop as a job; answers with the protocol's message."""
        payload = validate_payload(payload)
        folder = self.experiment_dir(payload)
        self.check_open(folder)
        preflight(payload, self.args, self.store)
        description = {
            "kind": "one_loop",
            "project_id": payload["project_id"],
            "experiment_id": payload["experiment_id"],
            "cur_loop": payload["cur_loop"],
        }

        def work(progress) -> dict:
            summary = run_one_loop(payload, self.args, self.store, progress)
            summary["callback"] = self._callback(summary["callback_body"])
            return summary

        job = self.jobs.start(folder, description, work, background=background)
        return {"Message": LOOP_MESSAGE, "job_id": job["job_id"], "status_url": f"/jobs/{job['job_id']}", "job": job}

    @staticmethod
    def check_open(folder: Path) -> None:
        """409 once the experiment in ``folder`` was closed with /end_exp."""
        closed = Path(folder) / "closed.json"
        if closed.is_file():
            raise ExperimentClosed(
                "this experiment was ended with /end_exp",
                {"field": "experiment_id", "closed": json.loads(closed.read_text())},
            )

    def _callback(self, body: dict) -> dict | None:
        """POST the SDK's end-of-task body to the platform's end-of-task endpoint, when a callback URL
        is configured, with ``Authorization: Bearer <VIGIL_ALECTIO_TOKEN>`` as the SDK's API client sends."""
        if not self.callback_url:
            return None
        import requests

        headers = {"Authorization": f"Bearer {self.callback_token}"} if self.callback_token else {}
        try:
            response = requests.post(self.callback_url, json=body, headers=headers, timeout=30)
            return {"url": self.callback_url, "status_code": response.status_code}
        except requests.RequestException as exc:
            log.warning("Alectio callback to %s failed: %s", self.callback_url, exc)
            return {"url": self.callback_url, "error": f"{type(exc).__name__}: {exc}"}

    def end_experiment(self, payload: Any) -> dict:
        """Close the experiment (later loops get 409); the server keeps serving everyone else."""
        payload = validate_payload(payload, require_loop=False)
        folder = self.experiment_dir(payload)
        if not folder.is_dir():  # never ran here: nothing to close, and the id stays usable
            raise ExperimentNotFound(
                "no loop of this experiment ran on this server",
                {"field": "experiment_id", "value": payload["experiment_id"]},
            )
        running = None
        current = self.jobs.running_job(folder)
        if current:
            job = self.jobs.get(current)
            running = current if job["status"] in ("queued", "running") else None
        record = {
            "experiment_id": payload["experiment_id"],
            "project_id": payload["project_id"],
            "closed_at": _now(),
            "running_job": running,
        }
        _write_json_atomically(folder / "closed.json", record)
        checkpoints = sorted(
            (
                p.name
                for p in folder.glob(f"ckpt_*{self.args['CKPT_EXT']}")
                if re.fullmatch(processes.CKPT_LOOP + re.escape(self.args["CKPT_EXT"]), p.name)
            ),
            key=processes.checkpoint_loop,
        )
        return {"Message": "Experiment complete", **record, "checkpoints": checkpoints}
