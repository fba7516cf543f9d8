"""The web-sessions task. Web-session intruder detection (Kaggle "Catch Me If You Can"): is this browsing session Alice's?

A session is up to 10 consecutive site visits with their times; the model gives the probability
that Alice made it (metric: ROC AUC). ``data`` builds the labelled set from Alice's raw log and the
real Kaggle test sessions, ``features`` holds the feature blocks, ``model`` the training protocol,
``api_input`` the ``/predict/web-sessions`` request parsing, ``task`` the Task (this module: the
default model, ``/predict/web-sessions``, the browser form's sample sessions), ``cli`` the verbs.

Commands::

    vigil web-sessions build-dataset --source ../shared/data/web_sessions --output runs/web_sessions/labelled.csv
    vigil web-sessions train --data runs/web_sessions/labelled.csv
    vigil web-sessions learning-curve --data runs/web_sessions/labelled.csv
    vigil web-sessions predict --input test_sessions.csv --output submission.csv   # Kaggle's session_id,target
"""

from __future__ import annotations

import json
import random
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from vigil.artifacts import ArtifactStore, LoadedModel, data_fingerprint
from vigil.config import PROJECT_ROOT, SAMPLE_DATA, Settings
from vigil.errors import InvalidInput
from vigil.tasks.base import PredictInput, Task
from vigil.tasks.web_sessions import api_input, data
from vigil.tasks.web_sessions.features import FEATURE_VERSION

SHIPPED_SAMPLE = SAMPLE_DATA / "web_sessions"


def default_source() -> Path | None:
    """The full files in ../shared/data/web_sessions (next to the checkout, or to the working directory)."""
    for base in (Path.cwd(), PROJECT_ROOT):
        candidate = base.parent / "shared" / "data" / "web_sessions"
        if (candidate / "test_sessions.csv").is_file():
            return candidate.resolve()
    return None


def build_from_folder(folder: Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """Labelled set from a folder holding Alice_log.csv, test_sessions.csv[.gz] and site_dic.pkl (or .csv.gz)."""
    folder = Path(folder)
    site_dic = data.read_site_dic(data.find_file(folder, data.SITE_DIC_NAMES))
    alice = data.read_alice_log(data.find_file(folder, data.ALICE_LOG_NAMES))
    others = data.read_sessions(data.find_file(folder, data.TEST_SESSIONS_NAMES))
    return data.build_labelled_set(alice, others, site_dic), site_dic


def submission_frame(sessions: pd.DataFrame, pipeline) -> pd.DataFrame:
    """Kaggle's submission for a session file: ``session_id,target``, one row per session in the
    file's order, target the probability that Alice made the session."""
    ids = pd.to_numeric(sessions["session_id"], errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(np.isnan(ids) | (ids % 1 != 0))
    if len(bad):
        raise InvalidInput(f"row {bad[0]}: session_id is not an integer", {"index": int(bad[0]), "field": "session_id"})
    twice = np.flatnonzero(pd.Series(ids).duplicated().to_numpy())
    if len(twice):
        raise InvalidInput(
            f"row {twice[0]}: session_id {int(ids[twice[0]])} appears twice",
            {"index": int(twice[0]), "field": "session_id"},
        )
    scores = pipeline.predict_proba(sessions[data.SESSION_COLUMNS])[:, 1]
    return pd.DataFrame({"session_id": ids.astype(np.int64), "target": scores})


class WebSessionsTask(Task):
    name: ClassVar[str] = "web_sessions"
    slug: ClassVar[str] = "web-sessions"
    title: ClassVar[str] = "Web-session intruders: is this browsing session Alice's? (Kaggle Catch Me If You Can)"
    row_cost: ClassVar[float] = 100.0  # µs per session
    ui_template: ClassVar[str | None] = "tasks/web_sessions.html"
    ui_label: ClassVar[str | None] = "Alice sessions"
    # tasks/web_sessions/requests.py, for OpenAPI (imported on first use: pydantic)
    request_model: ClassVar[Any] = "vigil.tasks.web_sessions.requests:REQUEST"

    # -- training -------------------------------------------------------------------------------
    def train_and_save(
        self,
        store: ArtifactStore,
        settings: Settings,
        labelled: pd.DataFrame,
        site_dic: dict[str, int],
        *,
        fingerprint: str,
        quick: bool = False,
        **options,
    ):
        from vigil.tasks.web_sessions import model

        pipeline, report = model.train_and_evaluate(labelled, quick=quick, site_dic=site_dic, **options)
        plot_dir = settings.work_dir / "web_sessions"
        plot_dir.mkdir(parents=True, exist_ok=True)
        plot_path, importance_path = plot_dir / "training_report.png", plot_dir / "feature_importance.png"
        model.plot_report(report, plot_path)
        model.plot_importance(report.importance, importance_path)
        top = {
            name: table.head(10)[["feature", "block", "importance"]].to_dict("records")
            for name, table in report.importance.items()
        }
        entry = store.save(
            self.name,
            model.with_site_dictionary(pipeline, site_dic),
            metrics=report.metrics(),
            threshold=report.threshold,
            feature_version=FEATURE_VERSION,
            data_fingerprint=fingerprint,
            extra={
                "plot": str(plot_path),
                "importance_plot": str(importance_path),
                "seconds": report.seconds,
                "feature_dims": model.feature_dims(pipeline),
                "top_features": top,
                **({"training": report.training} if report.training else {}),
            },
        )
        return entry, report

    def train_default(self, store: ArtifactStore, settings: Settings) -> dict:
        labelled, site_dic = build_from_folder(settings.data_dir / "web_sessions")
        fingerprint = data_fingerprint(*sorted((settings.data_dir / "web_sessions").glob("*.csv*")))
        entry, _ = self.train_and_save(
            store, settings, labelled, site_dic, fingerprint=fingerprint, quick=True, n_jobs=1
        )
        return entry

    # -- serving --------------------------------------------------------------------------------
    def predict(self, loaded: LoadedModel, request: PredictInput) -> dict:
        if request.json is None:
            raise InvalidInput("send the session(s) as JSON", {"content_type": request.content_type})
        pipeline = loaded.model
        sessions = api_input.sessions_frame(request.json, pipeline["site_ids"], request.max_rows)
        scores = pipeline.predict_proba(sessions)[:, 1]
        threshold = loaded.decision_threshold()
        return {
            "success": True,
            "predictions": [round(float(s), 6) for s in scores],
            "is_alice": [bool(s >= threshold) for s in scores],
            "threshold": threshold,
            "model_version": loaded.version,
        }

    def explain(self, loaded: LoadedModel, request: PredictInput, result: dict, top: int) -> dict:
        """Per session: reasons, raw score and expected value (tasks/web_sessions/explain.py)."""
        from vigil.tasks.web_sessions.explain import explain_sessions
        from vigil.tasks.web_sessions.model import site_names_of

        pipeline = loaded.model
        sessions = api_input.sessions_frame(request.json, pipeline["site_ids"], request.max_rows)
        result.update(explain_sessions(pipeline, sessions, site_names_of(pipeline["site_ids"]), top))
        return result

    def example_request(self) -> dict:
        # one of Alice's real sessions from the shipped sample (moved into the test period)
        return {
            "sites": [
                "www.google.com",
                "rubicon-match.dotomi.com",
                "www.facebook.com",
                "dtm.footlocker.com",
                "www.google.fr",
                "www.google.fr",
                "www.google.fr",
                "maps.google.com",
                "www.google.fr",
                "cinefac.o2switch.net",
            ],
            "times": [
                "2014-09-01 16:12:12",
                "2014-09-01 16:12:13",
                "2014-09-01 16:12:13",
                "2014-09-01 16:12:14",
                "2014-09-01 16:15:01",
                "2014-09-01 16:19:46",
                "2014-09-01 16:19:54",
                "2014-09-01 16:19:55",
                "2014-09-01 16:19:55",
                "2014-09-01 16:19:55",
            ],
        }

    # -- real sessions for the browser form ----------------------------------------------------
    @cached_property
    def _sample_sessions(self) -> list[dict]:
        labelled, site_dic = build_from_folder(SHIPPED_SAMPLE)
        names = {site_id: name for name, site_id in site_dic.items()}
        sessions = []
        for row in labelled.itertuples(index=False):
            visits = [(getattr(row, s), getattr(row, t)) for s, t in zip(data.SITE_COLUMNS, data.TIME_COLUMNS)]
            visits = [(names.get(int(site), int(site)), time) for site, time in visits if not pd.isna(site)]
            sessions.append(
                {
                    "sites": [site for site, _ in visits],
                    "times": [f"{time:%Y-%m-%d %H:%M:%S}" for _, time in visits],
                    "label": "Alice (her log, moved into the test period)"
                    if row.target == 1
                    else "another user (Kaggle test session)",
                }
            )
        return sessions

    def sample_request(self, rng: random.Random) -> dict[str, Any]:
        """The UI's "a real one" button: a random real session (``Task.sample_request``)."""
        return self.random_session(rng)

    def random_session(self, rng: random.Random | None = None, alice_share: float = 0.5) -> dict[str, Any]:
        """A real session from the shipped sample, site names spelled out; half the time one of Alice's."""
        rng = rng or random.Random()
        want_alice = rng.random() < alice_share
        pool = [s for s in self._sample_sessions if s["label"].startswith("Alice") == want_alice]
        return json.loads(json.dumps(rng.choice(pool)))


__all__ = ["WebSessionsTask", "SHIPPED_SAMPLE", "build_from_folder", "default_source", "submission_frame"]
