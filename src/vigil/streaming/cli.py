"""``vigil <slug> produce``, ``vigil <slug> stream`` and ``vigil <slug> broker`` for any task with a stream.

A click group whose commands the root mounts under the group of each task whose registry line
lists this module (:data:`vigil.tasks.TASKS`), so the task package never imports the streaming
layer. The commands take the task from the click context (the slug of the group they run under, or
of ``vigil stream <slug>``), its topic and group names from ``Task.stream_defaults``, and the windows'
scoring from ``Task.window_processor``.

Without ``--bootstrap-servers`` (or ``VIGIL_KAFKA_BOOTSTRAP_SERVERS``) ``stream`` starts the embedded
Tansu broker on 127.0.0.1, produces the CSV into it, consumes it, and stops the broker on exit.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from vigil.context import PATH, option_group, with_args
from vigil.errors import InvalidInput
from vigil.streaming.broker import EmbeddedBroker
from vigil.streaming.kafka_io import BROKER_TIMEOUT_S, check_broker, count_csv_rows, csv_messages, ensure_topic, produce
from vigil.windows import safe_name

if TYPE_CHECKING:
    from vigil.artifacts import ArtifactStore
    from vigil.tasks.base import Task


def stream_slug(ctx: click.Context | None = None) -> str:
    """The slug of the task whose verb runs: ``vigil <slug> stream`` or ``vigil stream <slug>``."""
    from vigil.tasks import TASKS

    slugs = {spec.slug for spec in TASKS.values()}
    ctx = ctx or click.get_current_context()
    while ctx is not None:
        if ctx.info_name in slugs:
            return ctx.info_name
        ctx = ctx.parent
    raise click.UsageError("run this verb under a task: vigil <slug> stream, or vigil stream <slug>")


def stream_task() -> Task:
    from vigil.tasks import get_task

    return get_task(stream_slug())


def stream_default(key: str) -> str:
    """``Task.stream_defaults[key]`` of the running verb's task; ``vigil-<slug>`` when it names none."""
    slug = stream_slug()
    return stream_task().stream_defaults.get(key) or f"vigil-{slug}"


def _default_topic() -> str:
    return stream_default("topic")


def _default_group() -> str:
    return stream_default("group")


class StreamCommand(click.Command):
    """A ``stream`` verb whose help is its task's (``Task.stream_defaults["help"]``) when it names one; a
    task group's listing shows the generic line (shortened alike), so ``vigil <slug> --help`` imports
    no task."""

    def _task_help(self, ctx: click.Context | None = None) -> str | None:
        from vigil.tasks import get_task

        try:
            return get_task(stream_slug(ctx)).stream_defaults.get("help")
        except (RuntimeError, click.UsageError):  # no context, or not under a task
            return None

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        text = self._task_help(ctx)
        if not text:
            return super().format_help_text(ctx, formatter)
        formatter.write_paragraph()
        with formatter.indentation():
            formatter.write_text(text)


@click.group(help="a task's Kafka verbs", no_args_is_help=True)
def commands() -> None:
    pass


stream_options = option_group(
    click.option("--topic", default=_default_topic, help="Kafka topic (default: the task's)"),
    click.option(
        "--bootstrap-servers",
        help="Kafka to read (default: VIGIL_KAFKA_BOOTSTRAP_SERVERS, else an embedded Tansu broker)",
    ),
    click.option("--group", default=_default_group, help="consumer group id (default: the task's)"),
    click.option(
        "--consumer-name",
        default="main",
        help="names this consumer's checkpoint and heartbeat; give each consumer of the group its own",
    ),
    click.option(
        "--results",
        type=PATH,
        help="folder for results.sqlite, windows.csv, rejected.csv, windows.png, summary.json",
    ),
    click.option("--window-size", type=int, default=1000),
    click.option(
        "--idle-timeout",
        type=float,
        default=None,
        help="stop after this many seconds without messages (default: never; 5 with the embedded broker)",
    ),
    click.option("--max-windows", type=int),
    click.option("--f1-floor", type=float, default=0.90),
    click.option("--min-gap", type=int, default=2),
    click.option("--retrain-windows", type=int, default=3),
    click.option(
        "--format",
        type=click.Choice(("json", "raw-lines")),
        default="json",
        help="embedded broker: how to produce",
    ),
    click.option("--partitions", type=int, default=1, help="embedded broker: partitions of the topic"),
    click.option("--schedule", type=PATH, help="drift_schedule.json to shade the phases in the plot"),
    click.option(
        "--session-timeout-ms",
        type=int,
        default=6000,
        help="consumer group session timeout: how long a dead consumer keeps its partitions "
        "(6000 is the smallest a stock Kafka accepts; the embedded broker takes less)",
    ),
    click.option("--quiet", is_flag=True),
)
"""The consumer's flags (``stream``)."""


@commands.command("produce", help="send CSV rows to a Kafka topic")
@click.argument("csv", type=PATH)
@click.option("--topic", default=_default_topic, help="Kafka topic (default: the task's)")
@click.option("--bootstrap-servers", help="Kafka to send to (default: VIGIL_KAFKA_BOOTSTRAP_SERVERS)")
@click.option(
    "--format",
    type=click.Choice(("json", "raw-lines")),
    default="json",
    help="json: one object per row; raw-lines: JSON-encoded raw CSV lines, header first (the assignment's producer)",
)
@click.option("--partitions", type=int, default=1, help="create the topic with this many partitions")
@click.option("--limit", type=int, help="send at most this many rows")
@click.option(
    "--broker-timeout",
    type=float,
    default=BROKER_TIMEOUT_S,
    help=f"give up when no broker answers within this many seconds (default {BROKER_TIMEOUT_S:g})",
)
@with_args
def cmd_produce(args) -> int:
    settings = args.settings
    servers = args.bootstrap_servers or settings.kafka_bootstrap_servers
    if not servers:
        raise InvalidInput(
            "produce needs --bootstrap-servers (or VIGIL_KAFKA_BOOTSTRAP_SERVERS)",
            f"the embedded broker keeps messages in memory only: `vigil {stream_slug()} stream --csv FILE` "
            "starts one, produces the file and consumes it in one go",
        )
    if not args.csv.is_file():
        raise InvalidInput(f"no such CSV: {args.csv}")
    check_broker(servers, args.broker_timeout)
    ensure_topic(servers, args.topic, args.partitions)
    total = count_csv_rows(args.csv)
    sent = produce(
        servers,
        args.topic,
        csv_messages(args.csv, args.format, args.limit),
        progress=True,
        total=min(total, args.limit or total),
        key_of=stream_task().message_key,
    )
    print(f"sent {sent} messages to {args.topic} on {servers}")
    return 0


def run_stream(args, servers: str, store: ArtifactStore, results_dir: Path, idle_timeout: float | None) -> dict:
    # Imported here so that `vigil --help` and the service need not load pandas and scikit-learn.
    from vigil.drift import RetrainPolicy
    from vigil.streaming.consumer import WindowedConsumer
    from vigil.streaming.results import ResultsStore, plot_windows, summarize, write_summary

    task = stream_task()
    consumer_id = safe_name(f"{args.group}.{args.consumer_name}")
    policy = RetrainPolicy(f1_floor=args.f1_floor, min_gap=args.min_gap, retrain_windows=args.retrain_windows)
    info = {"topic": args.topic, "group": args.group, "bootstrap_servers": servers}
    processor = task.window_processor(store, consumer_id, policy, stream_info=info)
    if processor is None:
        raise InvalidInput(f"the {task.slug} task has no stream (its Task.window_processor is None)")
    noun = getattr(processor, "alert_noun", "alert")
    describe_alert = getattr(processor, "describe_alert", lambda a: f"{noun.upper()} {a['key']} ({a['kind']})")
    results_dir.mkdir(parents=True, exist_ok=True)
    results = ResultsStore(results_dir / "results.sqlite", getattr(processor, "window_columns", None))
    csv_path = results_dir / "windows.csv"
    rejected_path = results_dir / "rejected.csv"

    def report(record: dict) -> None:
        results.export_csv(csv_path, consumer.run_key)
        if record["n_rejected"]:
            results.export_rejected_csv(rejected_path, consumer.run_key)
        if not args.quiet:
            flag = f"  RETRAIN ({record['reason']})" if record["retrained"] else ""
            if record.get("retrain_error"):
                flag = f"  RETRAIN FAILED, dynamic v{record['dynamic_version']} kept ({record['retrain_error']})"
            if record["n_rejected"]:
                flag += f"  [{record['n_rejected']} rejected]"
            print(
                f"window {record['window_index']:>4} [{record['offsets']}] static F1 {record['static_f1']:.3f} "
                f"acc {record['static_accuracy']:.3f} | dynamic F1 {record['dynamic_f1']:.3f} "
                f"acc {record['dynamic_accuracy']:.3f}{flag}",
                flush=True,
            )
        for alert in record.get("alerts") or []:  # what the window flagged: always printed, --quiet or not
            print(f"window {record['window_index']:>4} {describe_alert(alert)}", flush=True)

    consumer = WindowedConsumer(
        servers,
        args.topic,
        args.group,
        processor,
        results,
        consumer_name=args.consumer_name,
        window_size=args.window_size,
        idle_timeout_s=idle_timeout,
        max_windows=args.max_windows,
        on_window=report,
        on_reject=None if args.quiet else lambda r: print(f"rejected p{r['partition']}:{r['offset']}: {r['reason']}"),
        config_overrides=_session_overrides(getattr(args, "session_timeout_ms", 6000)),
    )
    stats = consumer.run()
    rows = results.windows(consumer.run_key)
    results.export_csv(csv_path, consumer.run_key)
    results.export_rejected_csv(rejected_path, consumer.run_key)
    phases = None
    schedule = getattr(args, "schedule", None)
    if schedule and Path(schedule).is_file():
        phases = json.loads(Path(schedule).read_text()).get("phases")
    plot = plot_windows(rows, results_dir / "windows.png", phases=phases) if rows else None
    summary = summarize(rows)
    rejected = results.rejected(consumer.run_key)
    alerts = results.alerts(consumer.run_key)
    write_summary(
        summary,
        results_dir / "summary.json",
        {
            "policy": policy.describe(),
            "topic": args.topic,
            "group": args.group,
            "this_consumer": {
                "windows": stats.windows,
                "messages": stats.messages,
                "rejected": stats.rejected,
                "left_in_partial_window": stats.left_in_partial_window,
            },
            "rejected_messages": len(rejected),
            f"{noun}_alerts": alerts,
        },
    )
    results.close()
    print(f"\n{summary['verdict']}")
    if stats.left_in_partial_window:
        print(f"{stats.left_in_partial_window} messages of an incomplete window were left uncommitted")
    if rejected:
        print(f"{len(rejected)} messages rejected (offsets and reasons in {rejected_path})")
    if alerts:
        print(f"{len(alerts)} {noun}s flagged: {', '.join(a['key'] for a in alerts[:10])}")
    if summary.get("retrain_failed_windows"):
        print(f"retrain failed after windows {summary['retrain_failed_windows']}; the dynamic model was kept")
    print(
        f"results: {results_dir / 'results.sqlite'}, {csv_path}, {rejected_path}, {results_dir / 'summary.json'}"
        + (f", plot {plot}" if plot else "")
    )
    return summary


def _session_overrides(session_timeout_ms: int) -> dict:
    return {
        "session.timeout.ms": session_timeout_ms,
        "heartbeat.interval.ms": max(100, min(1000, session_timeout_ms // 4)),
    }


@commands.command(
    "stream",
    cls=StreamCommand,
    help="consume windows of 1,000, score static and dynamic, retrain on drift",
)
@stream_options
@click.option(
    "--csv",
    type=PATH,
    help="embedded broker only: the CSV to produce first (default: the generated stream_dataset.csv)",
)
@click.option(
    "--broker-timeout",
    type=float,
    default=BROKER_TIMEOUT_S,
    help=f"give up when no broker answers within this many seconds (default {BROKER_TIMEOUT_S:g})",
)
@click.option(
    "--embedded",
    is_flag=True,
    hidden=True,
    help="always the embedded broker, whatever VIGIL_KAFKA_BOOTSTRAP_SERVERS says (a task's demo)",
)
@with_args
def cmd_stream(args) -> int:
    settings, store, slug = args.settings, args.store, stream_slug()
    servers = args.bootstrap_servers or (None if args.embedded else settings.kafka_bootstrap_servers)
    results_dir = args.results or settings.work_dir / slug / "stream" / safe_name(f"{args.topic}-{args.group}")
    if servers:
        check_broker(servers, args.broker_timeout)
        run_stream(args, servers, store, results_dir, args.idle_timeout)
        return 0
    csv = args.csv or settings.work_dir / slug / "data" / "stream_dataset.csv"
    if not Path(csv).is_file():
        raise InvalidInput(f"no stream CSV at {csv}", f"run `vigil {slug} generate` first or pass --csv")
    if args.schedule is None and (Path(csv).parent / "drift_schedule.json").is_file():
        args.schedule = Path(csv).parent / "drift_schedule.json"
    with EmbeddedBroker(
        log_path=results_dir.parent / "tansu.log" if results_dir.parent.is_dir() else None,
        topics={args.topic: args.partitions},
    ) as broker:
        print(f"embedded Tansu broker on {broker.bootstrap_servers} (memory only)", flush=True)
        produce(
            broker.bootstrap_servers,
            args.topic,
            csv_messages(csv, args.format),
            progress=not args.quiet,
            total=count_csv_rows(csv),
            key_of=stream_task().message_key,
        )
        run_stream(
            args,
            broker.bootstrap_servers,
            store,
            results_dir,
            args.idle_timeout if args.idle_timeout is not None else 5.0,
        )
    return 0


@commands.command(
    "broker",
    help="run the embedded Kafka broker in the foreground (for the assignment's own producer and consumer), "
    "the topic made first",
)
@click.option("--port", type=int, default=9092)
@click.option("--topic", default=_default_topic, help="Kafka topic (default: the task's)")
@click.option(
    "--partitions",
    type=int,
    default=1,
    help="partitions of the topic, created at start (Tansu would auto-create it with 4)",
)
@with_args
def cmd_broker(args) -> int:
    with EmbeddedBroker(port=args.port, topics={args.topic: args.partitions}) as broker:
        print(
            f"embedded Tansu broker on {broker.bootstrap_servers} (memory only); topic {args.topic} with "
            f"{args.partitions} partition(s). Ctrl-C stops it.",
            flush=True,
        )
        try:
            while broker.process is not None and broker.process.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    return 0
