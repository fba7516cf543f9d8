"""``vigil web-sessions build-dataset | train | learning-curve | predict`` (a click group, mounted by the root).

Commands::

    vigil web-sessions build-dataset --source ../shared/data/web_sessions --output runs/web_sessions/labelled.csv
    vigil web-sessions train --data runs/web_sessions/labelled.csv
    vigil web-sessions learning-curve --data runs/web_sessions/labelled.csv
    vigil web-sessions predict --input test_sessions.csv --output submission.csv   # Kaggle's session_id,target
"""

from __future__ import annotations

from pathlib import Path

import click

from vigil.context import PATH, dask_option, with_args
from vigil.errors import InvalidInput

test_fraction_option = click.option(
    "--test-fraction", type=float, default=0.2, help="latest share of sessions held out"
)
"""The held-out share of ``train`` and ``learning-curve``: the latest sessions, never fitted on."""


@click.group(
    help="Web-session intruders: is this browsing session Alice's? (Kaggle Catch Me If You Can)",
    no_args_is_help=True,
)
def commands() -> None:
    pass


@commands.command("build-dataset", help="labelled sessions from Alice's log (1) and Kaggle's test sessions (0)")
@click.option(
    "--source",
    type=PATH,
    help="folder with Alice_log.csv, test_sessions.csv, site_dic.pkl "
    "(default: ../shared/data/web_sessions when present, else the shipped sample)",
)
@click.option("--output", type=PATH, help="CSV to write (default: runs/web_sessions/labelled_sessions.csv)")
@with_args
def cmd_build_dataset(args) -> int:
    from vigil.tasks.web_sessions.task import SHIPPED_SAMPLE, build_from_folder, default_source

    settings = args.settings
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


def _labelled_from_args(args):
    from vigil.tasks.web_sessions import data
    from vigil.tasks.web_sessions.task import SHIPPED_SAMPLE, build_from_folder

    if args.data is None:
        labelled, site_dic = build_from_folder(SHIPPED_SAMPLE)
        return labelled, site_dic, [SHIPPED_SAMPLE / name for name in ("Alice_log.csv", "test_sessions.csv.gz")]
    labelled = data.read_sessions(args.data)
    site_dic = data.read_site_dic(args.site_dic or _site_dic_near(args.data))
    return labelled, site_dic, [args.data]


@commands.command("train", help="compare logistic regression, LightGBM and their blend; save the best")
@click.option(
    "--data",
    type=PATH,
    help="labelled sessions CSV in Kaggle's train format (default: built from the shipped sample)",
)
@click.option(
    "--site-dic",
    type=PATH,
    help="site_dic.pkl or site_dic.csv.gz, for names in API requests "
    "(default: the one next to --data, else the shipped one)",
)
@click.option(
    "--model",
    type=click.Choice(["auto", "logreg", "lightgbm", "blend"]),
    default="auto",
    help="auto: the best cross-validated of logreg, lightgbm and their blend",
)
@test_fraction_option
@click.option("--cv-folds", type=int, default=3, help="TimeSeriesSplit folds on the earlier part")
@click.option(
    "--keep-split-model",
    is_flag=True,
    help="save the model fitted on the earlier part instead of refitting on everything",
)
@click.option("--n-jobs", type=int, default=1, help="LightGBM threads (1 on a shared 2-core machine)")
@dask_option("run every LightGBM fit of the protocol on a Dask cluster")
@with_args
def cmd_train(args) -> int:
    import numpy as np

    from vigil.artifacts import data_fingerprint
    from vigil.tasks.web_sessions.task import WebSessionsTask

    task = WebSessionsTask()
    settings, store = args.settings, args.store
    labelled, site_dic, fingerprint_parts = _labelled_from_args(args)
    entry, report = task.train_and_save(
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
        dask=args.dask,
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
    print(f"saved {task.name} v{entry['version']}; plots {entry['extra']['plot']}, {entry['extra']['importance_plot']}")
    return 0


@commands.command("learning-curve", help="held-out ROC AUC against the amount of training history")
@click.option("--data", type=PATH, help="labelled sessions CSV (default: built from the shipped sample)")
@click.option("--site-dic", type=PATH, help="site_dic.pkl or site_dic.csv.gz (default: as for train)")
@click.option(
    "--fractions",
    default="0.1,0.2,0.4,0.6,0.8,1.0",
    help="shares of the earlier part to fit on, each the latest sessions before the held-out part",
)
@click.option("--models", default="logreg,lightgbm", help="comma-separated: logreg, lightgbm")
@test_fraction_option
@click.option(
    "--output",
    type=PATH,
    help="PNG to write (default: runs/web_sessions/learning_curve.png; the table goes next to it as .csv)",
)
@click.option("--n-jobs", type=int, default=1, help="LightGBM threads")
@with_args
def cmd_learning_curve(args) -> int:
    from tqdm import tqdm

    from vigil.tasks.web_sessions import model

    settings = args.settings
    labelled, site_dic, _ = _labelled_from_args(args)
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


@commands.command("predict", help="score a Kaggle session file, write the submission session_id,target")
@click.option("--input", "input", type=PATH, required=True, help="CSV in Kaggle's session format")
@click.option("--output", type=PATH, default=Path("submission.csv"))
@click.option("--version", help="model version (default: latest)")
@with_args
def cmd_predict(args) -> int:
    from vigil.tasks.web_sessions import data
    from vigil.tasks.web_sessions.task import WebSessionsTask, submission_frame

    task = WebSessionsTask()
    store = args.store
    loaded = store.load(task.name, args.version)
    sessions = data.read_sessions(args.input)
    submission = submission_frame(sessions, loaded.model)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    submission.to_csv(args.output, index=False)
    print(
        f"wrote {args.output}: Kaggle submission (session_id,target) for {len(submission)} sessions, "
        f"scored with {task.name} v{loaded.version}"
    )
    return 0


def _site_dic_near(csv_path: Path) -> Path:
    from vigil.tasks.web_sessions import data
    from vigil.tasks.web_sessions.task import SHIPPED_SAMPLE, default_source

    for folder in (Path(csv_path).parent, default_source(), SHIPPED_SAMPLE):
        if folder is None:
            continue
        for name in data.SITE_DIC_NAMES:
            if (folder / name).is_file():
                return folder / name
    raise InvalidInput("no site dictionary found; pass --site-dic", {"field": "site_dic"})
