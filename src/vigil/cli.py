"""``vigil``: the click root. ``serve``, ``bootstrap``, ``models``, ``admin``, and one group per task.

The root makes one :class:`~vigil.context.CliContext` (settings, artifact store) per run and mounts,
under each task's slug, the click group ``commands`` of the modules the registry names for it
(:attr:`vigil.tasks.TaskSpec.command_modules`: the task's own ``cli.py``, then extras such as the
DNS stream verbs). Those modules are imported only when their slug is used (or listed by
``vigil --help``) and import nothing heavy themselves, so help answers at once.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from vigil.context import CliContext, pass_cli_context
from vigil.errors import VigilError
from vigil.tasks import TASKS

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 120}


def task_group(slug: str) -> click.Group | None:
    """The commands of the task registered under ``slug``, gathered from its command modules."""
    spec = next((spec for spec in TASKS.values() if spec.slug == slug), None)
    if spec is None:
        return None
    groups = [importlib.import_module(module).commands for module in spec.command_modules]
    own = groups[0]
    return click.Group(
        slug,
        commands={name: command for group in groups for name, command in group.commands.items()},
        help=own.help,
        short_help=own.short_help or own.help,  # the whole title in `vigil --help`
        no_args_is_help=True,
    )


class RootGroup(click.Group):
    """The root's own verbs first, then each registered task's group, imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self.commands, *(spec.slug for spec in TASKS.values())]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self.commands.get(cmd_name) or task_group(cmd_name)


@click.group(
    cls=RootGroup,
    context_settings=CONTEXT_SETTINGS,
    help="Security machine learning: train, evaluate, serve.",
)
@click.option("--models-dir", help="artifact store folder (default: models/, or VIGIL_MODELS_DIR)")
@click.pass_context
def cli(ctx: click.Context, models_dir: str | None) -> None:
    ctx.obj = CliContext(models_dir)


def headline_metrics(metrics: dict, limit: int = 6) -> str:
    """The first ``limit`` scalar metrics as ``name=value`` (whole, never cut mid-value)::

    >>> headline_metrics({"roc_auc": 0.98765, "confusion_matrix": [[1, 2], [3, 4]], "rows": 10})
    'roc_auc=0.9877, rows=10'
    """
    scalars = [(k, v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in scalars[:limit])
    return shown + (f" (+{len(scalars) - limit} more in `vigil models`)" if len(scalars) > limit else "")


def bootstrap_models(context: CliContext, force: bool = False, slugs: tuple[str, ...] = ()) -> int:
    """Train every task's default model (or only those of ``slugs``) on the shipped samples, unless one
    exists already."""
    from vigil.tasks import all_tasks

    settings, store = context.settings, context.store
    tasks = all_tasks()
    unknown = sorted(set(slugs) - {task.slug for task in tasks})
    if unknown:
        raise VigilError(f"unknown task(s) {', '.join(unknown)}; known: {', '.join(t.slug for t in tasks)}")
    for task in tasks:
        if slugs and task.slug not in slugs:
            continue
        if store.entries(task.name) and not force:
            print(f"{task.slug}: model v{store.latest_entry(task.name)['version']} present, skipping")
            continue
        print(f"{task.slug}: training the default model on the shipped sample data ...", flush=True)
        entry = task.train_default(store, settings)
        print(f"{task.slug}: saved v{entry['version']} {headline_metrics(entry.get('metrics', {}))}")
    return 0


@cli.command("serve", help="serve every trained model with gunicorn")
@click.option("--host")
@click.option("--port", type=int)
@click.option("--bind", help="gunicorn bind address, overrides --host/--port")
@click.option("--workers", type=int)
@click.option("--threads", type=int)
@click.option("--bucket-root", help="folder holding the Alectio buckets (default: runs/bucket)")
@click.option("--ui-port", type=int, help="also serve on this port (the browser UI is at /ui), e.g. 8181")
@click.option("--train-missing", is_flag=True, help="train default models first where none exist")
@pass_cli_context
def cmd_serve(context: CliContext, host, port, bind, workers, threads, bucket_root, ui_port, train_missing) -> int:
    settings = context.settings
    if train_missing:
        bootstrap_models(context, force=False)
    env = dict(os.environ)
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(variable, "1")  # one numeric thread per worker; workers x threads use the cores
    env["VIGIL_MODELS_DIR"] = str(settings.models_dir)
    env["VIGIL_BIND"] = bind or f"{host or settings.host}:{port or settings.port}"
    if ui_port:
        # the same app on a second address, like the course's front end on :8181
        ui_host = env["VIGIL_BIND"].rsplit(":", 1)[0] if ":" in env["VIGIL_BIND"] else host or settings.host
        env["VIGIL_BIND"] += f",{ui_host}:{ui_port}"
        print(f"browser UI on http://{ui_host}:{ui_port}/ui", flush=True)
    if workers:
        env["VIGIL_WORKERS"] = str(workers)
    if threads:
        env["VIGIL_THREADS"] = str(threads)
    if bucket_root:
        env["VIGIL_BUCKET_ROOT"] = str(bucket_root)
    command = [sys.executable, "-m", "gunicorn", "-c", "python:vigil.service.gunicorn_conf", "vigil.service:app"]
    print(f"serving on http://{env['VIGIL_BIND'].split(',')[0]}", flush=True)
    # exec, not a child process: signals sent to `vigil serve` then reach gunicorn's master directly,
    # so stopping it never leaves orphaned workers behind.
    os.execve(sys.executable, command, env)


@cli.command("bootstrap", help="train default models on the shipped sample data (every task, or the SLUGs given)")
@click.argument("slugs", nargs=-1, metavar="[SLUG]...")
@click.option("--force", is_flag=True, help="train even where a model exists")
@pass_cli_context
def cmd_bootstrap(context: CliContext, slugs: tuple[str, ...], force: bool) -> int:
    return bootstrap_models(context, force, slugs)


@cli.command("models", help="list the artifacts in the model store")
@pass_cli_context
def cmd_models(context: CliContext) -> int:
    for entry in context.store.entries():
        metrics = ", ".join(f"{k}={v:.4f}" for k, v in entry.get("metrics", {}).items() if isinstance(v, float))
        print(f"{entry['task']:<14} v{entry['version']:<4} {entry['created_at']}  {metrics}")
    return 0


@cli.group("admin", help="Operate running servers (replicas: docs/deployment.md).", no_args_is_help=True)
def cmd_admin() -> None:
    pass


@cmd_admin.command("reload", help="POST /admin/reload to every replica and report each answer")
@click.option("--url", "urls", multiple=True, metavar="URL", help="a replica's base URL; repeat for each")
@click.option("--all-of", "all_of", multiple=True, metavar="HOST:PORT", help="every address HOST resolves to")
@click.option("--token", envvar="VIGIL_API_TOKEN", help="bearer token (default: VIGIL_API_TOKEN)")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="seconds per replica")
def cmd_admin_reload(urls, all_of, token, timeout) -> int:
    from vigil.replicas import addresses_of, reload_replicas

    try:
        targets = [*urls, *(url for host_port in all_of for url in addresses_of(host_port))]
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if not targets:
        raise click.UsageError("name the replicas: --url URL (repeat it) or --all-of HOST:PORT")
    answers = reload_replicas(targets, token=token, timeout=timeout)
    for answer in answers:
        print(answer.line(), flush=True)
    return 0 if all(answer.reloaded for answer in answers) else 1


class StreamGroup(click.Group):
    """``vigil stream <slug> ...``: the ``stream`` verb of each task that has one (imported on use)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [spec.slug for spec in TASKS.values() if self.get_command(ctx, spec.slug) is not None]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        group = task_group(cmd_name)
        return None if group is None else group.commands.get("stream")


@cli.group(
    "stream",
    cls=StreamGroup,
    short_help="consume a task's records from Kafka",
    help="Consume a task's records from Kafka: `vigil stream <slug>` is `vigil <slug> stream`, for the tasks "
    "that have a stream.",
    no_args_is_help=True,
)
def cmd_stream() -> None:
    pass


def main(argv: list[str] | None = None) -> int:
    """Run ``vigil ARGV``; the exit code: 0, a verb's own code, 2 for usage errors and VigilError."""
    try:
        result = cli.main(args=argv, prog_name="vigil", standalone_mode=False)
    except click.ClickException as exc:  # usage errors: the message (and usage) on stderr, exit 2
        exc.show()
        return exc.exit_code
    except VigilError as exc:
        detail = f" ({exc.detail})" if exc.detail else ""
        print(f"vigil: error: {exc.error}{detail}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file or a connection the user named: one line, not a traceback
        print(f"vigil: error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, click.Abort):
        print("vigil: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)
