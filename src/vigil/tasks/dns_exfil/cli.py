"""``vigil dns generate | train | evaluate-real | demo`` (a click group, mounted by the root under ``dns``).

The Kafka verbs (``produce``, ``stream``, ``broker``) are the streaming layer's generic ones
(:mod:`vigil.streaming.cli`), joined to this group by the registry (:data:`vigil.tasks.TASKS`);
``demo`` runs ``stream`` through click (found by name), never by importing it.
"""

from __future__ import annotations

import time

import click

from vigil.context import PATH, dask_option, with_args

DASK_OPTION = dask_option("train the LightGBM models on a Dask cluster")


@click.group(help="DNS exfiltration: is this query name smuggling data out?", no_args_is_help=True)
def commands() -> None:
    pass


@commands.command("generate", help="make static and stream CSVs (CIC columns) from real ingredients")
@click.option("--out", type=PATH, default=None, help="folder (default: runs/dns/data)")
@click.option("--static-rows", type=int, default=30_000)
@click.option(
    "--windows-per-phase", type=int, default=10, help="stream windows (of 1,000 rows) per drift phase; 4 phases"
)
@click.option("--seed", type=int, default=7)
@click.option("--with-query", is_flag=True, help="add the query name as a 17th column")
@with_args
def cmd_generate(args) -> int:
    from vigil.tasks.dns_exfil.generate import generate

    settings = args.settings
    out = args.out or settings.work_dir / "dns" / "data"
    card = generate(
        out,
        static_rows=args.static_rows,
        windows_per_phase=args.windows_per_phase,
        seed=args.seed,
        with_query=args.with_query,
        data_dir=settings.data_dir / "dns_exfil",
        progress=True,
    )
    print(f"static: {out / 'static_dataset.csv'} ({card['static_rows']} rows, {card['static_attacks']} attacks)")
    print(f"stream: {out / 'stream_dataset.csv'} ({card['stream_rows']} rows, {card['stream_attacks']} attacks)")
    for phase in card["phases"]:
        print(
            f"  windows {phase['first_window']:>3}-{phase['last_window']:<3} {phase['phase']:<5} {phase['description']}"
        )
    print(f"drift schedule: {out / 'drift_schedule.json'}")
    return 0


@commands.command(
    "evaluate-real",
    help="leave-one-tool-out evaluation of the per-query model on the "
    "shipped real captures and benign names; then train and save it",
)
@click.option("--no-save", is_flag=True, help="evaluate only")
@DASK_OPTION
@with_args
def cmd_evaluate_real(args) -> int:
    from vigil.dask_training import fitter
    from vigil.tasks.dns_exfil.query_model import format_report, leave_one_tool_out, train_query_model

    store = args.store
    with fitter(args.dask) as trainer:  # one cluster for the folds and the final fit
        print(format_report(leave_one_tool_out(fit_with=trainer.fit if args.dask else None)))
        if not args.no_save:
            entry = train_query_model(store, trainer=trainer)
            print(f"saved {entry['task']} v{entry['version']} (served by POST /predict/dns for query names)")
    return 0


@commands.command(
    "train",
    help="analysis report, feature selection and algorithm comparison; save the better model as the static model",
)
@click.argument("csv", type=PATH, required=False)
@click.option("--out", type=PATH, default=None, help="report folder (default: runs/dns/train)")
@click.option("--max-rows", type=int, default=None)
@click.option("--test-size", type=float, default=0.25)
@click.option("--n-jobs", type=int, default=1)
@DASK_OPTION
@with_args
def cmd_train(args) -> int:
    from vigil.tasks.dns_exfil.report import train_and_report

    settings, store = args.settings, args.store
    csv = args.csv
    if csv is None:
        from vigil.tasks.dns_exfil.generate import generate

        data = settings.work_dir / "dns" / "data"
        if not (data / "static_dataset.csv").exists():
            print(f"no CSV given: generating one in {data}", flush=True)
            generate(data, data_dir=settings.data_dir / "dns_exfil", progress=True)
        csv = data / "static_dataset.csv"
    out = args.out or settings.work_dir / "dns" / "train"
    entry, summary = train_and_report(
        csv, out, store, max_rows=args.max_rows, test_size=args.test_size, n_jobs=args.n_jobs, dask=args.dask
    )
    print(summary)
    print(f"saved {entry['task']} v{entry['version']}; report: {out / 'report.md'}")
    return 0


@commands.command("demo", help="the whole story on the embedded broker: generate, train, stream, plot")
@click.option("--out", type=PATH, help="folder for everything (default: runs/dns/demo)")
@click.option("--windows-per-phase", type=int, default=10)
@click.option("--static-rows", type=int, default=20_000)
@click.option("--seed", type=int, default=7)
@click.option("--idle-timeout", type=float, default=5.0, help="end of stream after this many idle seconds")
@click.option("--session-timeout-ms", type=int, default=6000)
@with_args
def cmd_demo(args) -> int:
    from vigil.tasks.dns_exfil.generate import generate
    from vigil.tasks.dns_exfil.report import train_and_report

    settings, store = args.settings, args.store
    out = args.out or settings.work_dir / "dns" / "demo"
    started = time.monotonic()
    print(f"1/3 generating data from the shipped ingredients into {out / 'data'}", flush=True)
    card = generate(
        out / "data",
        static_rows=args.static_rows,
        windows_per_phase=args.windows_per_phase,
        seed=args.seed,
        data_dir=settings.data_dir / "dns_exfil",
        progress=True,
    )
    for phase in card["phases"]:
        print(
            f"    windows {phase['first_window']:>3}-{phase['last_window']:<3} {phase['phase']:<5} {phase['description']}"
        )
    print("2/3 training the static model (report, feature selection and algorithm comparison)", flush=True)
    entry, summary = train_and_report(out / "data" / "static_dataset.csv", out / "train", store)
    print(summary, flush=True)
    print(f"    saved dns_exfil v{entry['version']}; report {out / 'train' / 'report.md'}")
    print("3/3 streaming through the embedded Kafka broker", flush=True)
    # The stream verb mounted beside this one (vigil.streaming.cli, by the registry), found by name so
    # that this package never imports the streaming layer; on the embedded broker, whatever
    # VIGIL_KAFKA_BOOTSTRAP_SERVERS says.
    ctx = click.get_current_context()
    group = ctx.parent.command if ctx.parent is not None else None
    stream = group.get_command(ctx.parent, "stream") if isinstance(group, click.Group) and ctx.parent else None
    if not isinstance(stream, click.Command):
        raise click.UsageError("`vigil dns demo` needs the stream verb mounted beside it (vigil dns stream)")
    ctx.invoke(
        stream,
        csv=out / "data" / "stream_dataset.csv",
        results=out / "stream",
        group="vigil-dns-demo",
        schedule=out / "data" / "drift_schedule.json",
        idle_timeout=args.idle_timeout,
        session_timeout_ms=args.session_timeout_ms,
        embedded=True,
    )
    print(f"\ndemo finished in {time.monotonic() - started:.0f} s")
    print(f"plot:    {out / 'stream' / 'windows.png'}")
    print(f"summary: {out / 'stream' / 'summary.json'}")
    print(f"report:  {out / 'train' / 'report.md'}")
    return 0
