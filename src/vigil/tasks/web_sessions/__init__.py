"""Web-session intruder detection (Kaggle "Catch Me If You Can"): is this browsing session Alice's?

A session is up to 10 consecutive site visits with their times; the model gives the probability
that Alice made it (metric: ROC AUC). ``data`` builds the labelled set from Alice's raw log and the
real Kaggle test sessions, ``features`` holds the feature blocks, ``model`` the training protocol,
``api_input`` the ``/predict/web-sessions`` request parsing.

Commands::

    vigil web-sessions build-dataset --source ../shared/data/web_sessions --output runs/web_sessions/labelled.csv
    vigil web-sessions train --data runs/web_sessions/labelled.csv
    vigil web-sessions learning-curve --data runs/web_sessions/labelled.csv
    vigil web-sessions predict --input test_sessions.csv --output submission.csv   # Kaggle's session_id,target
"""

from __future__ import annotations

import argparse
import json
import random
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from vigil.artifacts import ArtifactStore, LoadedModel, data_fingerprint
from vigil.config import PROJECT_ROOT, Settings
from vigil.errors import InvalidInput
from vigil.tasks.base import PredictInput, Task
from vigil.tasks.web_sessions import api_input, data
from vigil.tasks.web_sessions.features import FEATURE_VERSION

SHIPPED_SAMPLE = PROJECT_ROOT / "data" / "web_sessions"


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
        raise InvalidInput(f"row {bad[0]}: session_id is not an integer", {"row": int(bad[0]), "field": "session_id"})
    twice = np.flatnonzero(pd.Series(ids).duplicated().to_numpy())
    if len(twice):
        raise InvalidInput(
            f"row {twice[0]}: session_id {int(ids[twice[0]])} appears twice",
            {"row": int(twice[0]), "field": "session_id"},
        )
    scores = pipeline.predict_proba(sessions[data.SESSION_COLUMNS])[:, 1]
    return pd.DataFrame({"session_id": ids.astype(np.int64), "target": scores})


class WebSessionsTask(Task):
    name: ClassVar[str] = "web_sessions"
    slug: ClassVar[str] = "web-sessions"
    title: ClassVar[str] = "Web-session intruders: is this browsing session Alice's? (Kaggle Catch Me If You Can)"
    primary_metric: ClassVar[str] = "roc_auc"
    row_cost: ClassVar[float] = 100.0  # µs per session
    ui_template: ClassVar[str | None] = "tasks/web_sessions.html"
    ui_label: ClassVar[str | None] = "Alice sessions"

    # -- CLI ------------------------------------------------------------------------------------
    def add_cli(self, parser: argparse.ArgumentParser) -> None:
        verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

        build = verbs.add_parser(
            "build-dataset", help="labelled sessions from Alice's log (1) and Kaggle's test sessions (0)"
        )
        build.add_argument(
            "--source",
            type=Path,
            help="folder with Alice_log.csv, test_sessions.csv, site_dic.pkl "
            "(default: ../shared/data/web_sessions when present, else the shipped sample)",
        )
        build.add_argument(
            "--output", type=Path, help="CSV to write (default: runs/web_sessions/labelled_sessions.csv)"
        )
        build.set_defaults(handler=self.cmd_build_dataset)

        train = verbs.add_parser("train", help="compare logistic regression, LightGBM and their blend; save the best")
        train.add_argument(
            "--data",
            type=Path,
            help="labelled sessions CSV in Kaggle's train format (default: built from the shipped sample)",
        )
        train.add_argument(
            "--site-dic",
            type=Path,
            help="site_dic.pkl or site_dic.csv.gz, for names in API requests "
            "(default: the one next to --data, else the shipped one)",
        )
        train.add_argument(
            "--model",
            choices=["auto", "logreg", "lightgbm", "blend"],
            default="auto",
            help="auto: the best cross-validated of logreg, lightgbm and their blend",
        )
        train.add_argument("--test-fraction", type=float, default=0.2, help="latest share of sessions held out")
        train.add_argument("--cv-folds", type=int, default=3, help="TimeSeriesSplit folds on the earlier part")
        train.add_argument(
            "--keep-split-model",
            action="store_true",
            help="save the model fitted on the earlier part instead of refitting on everything",
        )
        train.add_argument("--n-jobs", type=int, default=1, help="LightGBM threads (1 on a shared 2-core machine)")
        train.set_defaults(handler=self.cmd_train)

        curve = verbs.add_parser("learning-curve", help="held-out ROC AUC against the amount of training history")
        curve.add_argument("--data", type=Path, help="labelled sessions CSV (default: built from the shipped sample)")
        curve.add_argument("--site-dic", type=Path, help="site_dic.pkl or site_dic.csv.gz (default: as for train)")
        curve.add_argument(
            "--fractions",
            default="0.1,0.2,0.4,0.6,0.8,1.0",
            help="shares of the earlier part to fit on, each the latest sessions before the held-out part",
        )
        curve.add_argument("--models", default="logreg,lightgbm", help="comma-separated: logreg, lightgbm")
        curve.add_argument("--test-fraction", type=float, default=0.2, help="latest share of sessions held out")
        curve.add_argument(
            "--output",
            type=Path,
            help="PNG to write (default: runs/web_sessions/learning_curve.png; the table goes next to it as .csv)",
        )
        curve.add_argument("--n-jobs", type=int, default=1, help="LightGBM threads")
        curve.set_defaults(handler=self.cmd_learning_curve)

        predict = verbs.add_parser(
            "predict", help="score a Kaggle session file, write the submission session_id,target"
        )
        predict.add_argument("--input", type=Path, required=True, help="CSV in Kaggle's session format")
        predict.add_argument("--output", type=Path, default=Path("submission.csv"))
        predict.add_argument("--version", help="model version (default: latest)")
        predict.set_defaults(handler=self.cmd_predict)

    def cmd_build_dataset(self, args: argparse.Namespace) -> int:
        from vigil.cli import settings_and_store

        settings, _ = settings_and_store(args)
        source = args.source or default_source() or SHIPPED_SAMPLE
        labelled, _ = build_from_folder(source)
        output = args.output or settings.work_dir / "web_sessions" / "labelled_sessions.csv"
        output.parent.mkdir(parents=True, exist_ok=True)
        labelled.to_csv(output, index=False)
        alice = labelled[labelled["target"] == 1]
        print(f"read {source}")
        print(
            f"wrote {output}: {len(labelled)} sessions, {len(alice)} Alice (from her log), "
            f"{len(labelled) - len(alice)} others (Kaggle test sessions; ~1% of them may be Alice)"
        )
        print(
            f"Alice's sessions moved by {alice['weeks_shifted'].min()}..{alice['weeks_shifted'].max()} weeks into "
            f"{alice['time1'].min():%Y-%m-%d}..{alice['time1'].max():%Y-%m-%d}; weekday and time of day kept"
        )
        return 0

    def _labelled_from_args(self, args: argparse.Namespace):
        if args.data is None:
            labelled, site_dic = build_from_folder(SHIPPED_SAMPLE)
            return labelled, site_dic, [SHIPPED_SAMPLE / name for name in ("Alice_log.csv", "test_sessions.csv.gz")]
        labelled = data.read_sessions(args.data)
        site_dic = data.read_site_dic(args.site_dic or self._site_dic_near(args.data))
        return labelled, site_dic, [args.data]

    def cmd_train(self, args: argparse.Namespace) -> int:
        from vigil.cli import settings_and_store

        settings, store = settings_and_store(args)
        labelled, site_dic, fingerprint_parts = self._labelled_from_args(args)
        entry, report = self.train_and_save(
            store,
            settings,
            labelled,
            site_dic,
            model=args.model,
            test_fraction=args.test_fraction,
            n_splits=args.cv_folds,
            refit_all=not args.keep_split_model,
            n_jobs=args.n_jobs,
            fingerprint=data_fingerprint(*fingerprint_parts),
            show_progress=True,
        )
        print(
            f"cross-validated ROC AUC (expanding-window time-series CV on the earlier {1 - args.test_fraction:.0%}: "
            f"{args.cv_folds} folds, each validating on the next block of {args.test_fraction:.0%} of it):"
        )
        for name, scores in report.cv_roc_auc.items():
            print(f"  {name:<9} mean {np.mean(scores):.4f}  folds {', '.join(f'{s:.4f}' for s in scores)}")
        holdout = report.holdout
        print(
            f"chose {report.chosen}; held-out (latest {args.test_fraction:.0%}, {report.n_holdout} sessions, "
            f"{holdout['positives']} Alice): ROC AUC {holdout['roc_auc']:.4f}, PR AUC {holdout['pr_auc']:.4f}, "
            f"precision {holdout['precision']:.3f} / recall {holdout['recall']:.3f} at threshold {report.threshold:.3f}"
            f" (the threshold the API and the UI decide with)"
        )
        for name, table in report.importance.items():
            print(
                f"  {name} carried by: "
                + ", ".join(f"{row.feature} ({row.importance:.3g})" for row in table.head(5).itertuples())
            )
        print(
            f"saved {self.name} v{entry['version']}; plots {entry['extra']['plot']}, {entry['extra']['importance_plot']}"
        )
        return 0

    def cmd_learning_curve(self, args: argparse.Namespace) -> int:
        from tqdm import tqdm

        from vigil.cli import settings_and_store
        from vigil.tasks.web_sessions import model

        settings, _ = settings_and_store(args)
        labelled, site_dic, _ = self._labelled_from_args(args)
        fractions = [float(f) for f in args.fractions.split(",") if f.strip()]
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        unknown = sorted(set(models) - {"logreg", "lightgbm"})
        if unknown or not models or not all(0 < f <= 1 for f in fractions):
            raise InvalidInput(
                "--models takes logreg and/or lightgbm, --fractions shares in (0, 1]",
                {"models": models, "fractions": fractions},
            )
        with tqdm(total=len(fractions) * len(models), desc="learning curve", unit="fit") as bar:
            curve = model.learning_curve(
                labelled,
                fractions,
                models,
                test_fraction=args.test_fraction,
                site_dic=site_dic,
                n_jobs=args.n_jobs,
                progress=bar,
            )
        output = args.output or settings.work_dir / "web_sessions" / "learning_curve.png"
        output.parent.mkdir(parents=True, exist_ok=True)
        model.plot_learning_curve(curve, output)
        curve.to_csv(output.with_suffix(".csv"), index=False)
        print(curve.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        print(f"wrote {output} and {output.with_suffix('.csv')}")
        return 0

    def cmd_predict(self, args: argparse.Namespace) -> int:
        from vigil.cli import settings_and_store

        _, store = settings_and_store(args)
        loaded = store.load(self.name, args.version)
        sessions = data.read_sessions(args.input)
        submission = submission_frame(sessions, loaded.model["pipeline"])
        args.output.parent.mkdir(parents=True, exist_ok=True)
        submission.to_csv(args.output, index=False)
        print(
            f"wrote {args.output}: Kaggle submission (session_id,target) for {len(submission)} sessions, "
            f"scored with {self.name} v{loaded.version}"
        )
        return 0

    @staticmethod
    def _site_dic_near(csv_path: Path) -> Path:
        for folder in (Path(csv_path).parent, default_source(), SHIPPED_SAMPLE):
            if folder is None:
                continue
            for name in data.SITE_DIC_NAMES:
                if (folder / name).is_file():
                    return folder / name
        raise InvalidInput("no site dictionary found; pass --site-dic", {"field": "site_dic"})

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
            model.make_bundle(pipeline, site_dic),
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
        bundle = loaded.model
        sessions = api_input.sessions_frame(request.json, bundle["site_ids"], request.max_rows)
        scores = bundle["pipeline"].predict_proba(sessions)[:, 1]
        threshold = loaded.threshold if loaded.threshold is not None else 0.5
        return {
            "success": True,
            "predictions": [round(float(s), 6) for s in scores],
            "is_alice": [bool(s >= threshold) for s in scores],
            "threshold": threshold,
            "model_version": loaded.version,
        }

    def request_schema(self) -> dict:
        session = {
            "type": "object",
            "properties": {
                "sites": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 10,
                    "items": {"type": ["integer", "string"]},
                    "description": "site ids or names, in visit order",
                },
                "times": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 10,
                    "items": {"type": "string", "format": "date-time"},
                },
                **{f"site{i}": {"type": ["integer", "string", "null"]} for i in range(1, 11)},
                **{f"time{i}": {"type": ["string", "null"]} for i in range(1, 11)},
            },
        }
        # anyOf, not oneOf: {"sessions": [...]} also matches the one-session object schema
        return {
            "anyOf": [
                session,
                {"type": "array", "items": session},
                {
                    "type": "object",
                    "properties": {"sessions": {"type": "array", "items": session}},
                    "required": ["sessions"],
                },
            ]
        }

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

    def random_session(self, rng: random.Random | None = None, alice_share: float = 0.5) -> dict[str, Any]:
        """A real session from the shipped sample, site names spelled out; half the time one of Alice's."""
        rng = rng or random.Random()
        want_alice = rng.random() < alice_share
        pool = [s for s in self._sample_sessions if s["label"].startswith("Alice") == want_alice]
        return json.loads(json.dumps(rng.choice(pool)))
