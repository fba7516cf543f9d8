"""``vigil ember active-learning`` (a whole local experiment and its learning curve) and
``vigil ember alectio-demo``: a click group whose commands the root mounts under the ember task's
group (the registry lists this module for ``ember``).
"""

from __future__ import annotations

from pathlib import Path

import click

from vigil.config import Settings
from vigil.context import PATH, with_args


@click.group(help="active learning on ember vectors", no_args_is_help=True)
def commands() -> None:
    pass


@commands.command(
    "alectio-demo",
    short_help="write a demo data dir, config.yaml and bucket files for the Alectio endpoints",
    help="Writes OUT/data (vectorized demo records), OUT/config.yaml and OUT/bucket (meta.json and "
    "selected_indices_0.pkl of project p1, experiment e1 in bucket 'demo'), then prints how to "
    "serve them. OUT defaults to runs/alectio-demo.",
)
@click.argument("out", type=PATH, required=False, default=Path("runs/alectio-demo"))
@click.option("--train", type=int, default=2000, help="train records (default 2000)")
@click.option("--test", type=int, default=500, help="test records (default 500)")
@click.option("--seed", type=int, default=0)
@with_args
def cmd_alectio_demo(args) -> int:
    from vigil.active_learning.demo import write_alectio_demo

    made = write_alectio_demo(args.out, n_train=args.train, n_test=args.test, seed=args.seed)
    print(
        f"wrote {made['data_dir']} (pool {made['pool_size']} rows, test {made['test_size']} rows), "
        f"{made['config']} and {made['bucket_root']}"
    )
    print(f"serve it: VIGIL_ALECTIO_CONFIG={made['config']} VIGIL_BUCKET_ROOT={made['bucket_root']} vigil serve")
    return 0


@commands.command(
    "active-learning",
    short_help="run a local active-learning experiment and plot its learning curve",
    help="Runs --loops Alectio loops per strategy through the same code as POST /one_loop "
    "(local bucket, job files, checkpoints), then writes learning_curve.csv and .png.",
)
@click.option(
    "--strategy",
    default="all",
    help="least_confidence, margin, entropy, random, a comma-separated list, or all (default)",
)
@click.option("--loops", type=int, default=5, help="loops per strategy (default 5)")
@click.option("--n-rec", type=int, default=100, help="records labelled per loop (default 100)")
@click.option("--initial", type=int, help="records labelled before loop 0 (default: --n-rec)")
@click.option("--config", type=PATH, help="Alectio config.yaml (default: VIGIL_ALECTIO_CONFIG or ./config.yaml)")
@click.option("--data-dir", type=PATH, help="vectorized ember folder (X_train.dat ...), overrides DATA_DIR")
@click.option(
    "--demo",
    is_flag=True,
    help="the ember task's demo set (synthetic records derived from the shipped real ones), "
    "vectorized into OUT/demo-data",
)
@click.option(
    "--synthetic",
    is_flag=True,
    help="generated vectors in ember's layout (not malware data) in OUT/synthetic-data (not with --demo)",
)
@click.option("--out", type=PATH, help="output folder (default: runs/active-learning)")
@click.option("--bucket-root", type=PATH, help="local bucket folder (default: OUT/bucket)")
@click.option("--seed", type=int, default=0)
@click.option("--n-jobs", type=int, default=1, help="LightGBM threads (default 1)")
@with_args
def cmd_active_learning(args) -> int:
    from tqdm import tqdm

    from vigil.active_learning import processes
    from vigil.active_learning.experiment import plot_learning_curve, run_experiment
    from vigil.active_learning.pipeline import default_args
    from vigil.active_learning.strategies import STRATEGIES
    from vigil.active_learning.synthetic import write_synthetic_vectorized

    if args.demo and args.synthetic:
        raise click.UsageError("--demo and --synthetic exclude each other")
    settings = Settings.from_env()
    out = args.out or settings.work_dir / "active-learning"
    config = dict(processes.load_config(args.config) if args.config else default_args(settings))
    if args.demo or args.synthetic or args.data_dir:
        config.update(TRAIN_SIZE=None, TEST_SIZE=None)  # the config's sizes describe its own DATA_DIR
    if args.demo:
        from vigil.tasks.ember.demo_data import write_demo_data
        from vigil.tasks.ember.vectorize import create_vectorized_features

        write_demo_data(out / "demo-data", seed=args.seed)
        create_vectorized_features(out / "demo-data", feature_version=2, processes=1, progress=False)
        config["DATA_DIR"] = str(out / "demo-data")
    elif args.synthetic:
        config["DATA_DIR"] = str(write_synthetic_vectorized(out / "synthetic-data", seed=args.seed))
    elif args.data_dir:
        config["DATA_DIR"] = str(args.data_dir)
    config.update(EXPT_DIR=str(out / "experiments"), N_JOBS=args.n_jobs)
    config = processes.normalise_args(config)
    strategies = (
        list(STRATEGIES) if args.strategy == "all" else [s.strip() for s in args.strategy.split(",") if s.strip()]
    )
    bar = tqdm(total=len(strategies) * args.loops, unit="loop", desc="active learning")

    def progress(row: dict) -> None:
        bar.set_postfix_str(f"{row['strategy']} n={row['labelled']} auc={row['roc_auc']:.3f}")
        bar.update()

    try:
        curve = run_experiment(
            config,
            args.bucket_root or out / "bucket",
            strategies,
            args.loops,
            args.n_rec,
            args.initial or args.n_rec,
            seed=args.seed,
            progress=progress,
        )
    finally:
        bar.close()
    out.mkdir(parents=True, exist_ok=True)
    curve.to_csv(out / "learning_curve.csv", index=False)
    title = f"{Path(config['DATA_DIR']).name}: {args.loops} loops, {args.n_rec} records per loop"
    png = plot_learning_curve(curve, out / "learning_curve.png", title)
    last = curve.groupby("strategy", sort=False).tail(1)
    for row in last.itertuples():
        print(f"{row.strategy:<17} labelled={row.labelled:<6} roc_auc={row.roc_auc:.4f} accuracy={row.accuracy:.4f}")
    print(f"wrote {out / 'learning_curve.csv'} and {png}")
    return 0
