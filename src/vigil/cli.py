"""``vigil <task> <verb>``, ``vigil serve``, ``vigil bootstrap`` and ``vigil models``."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

from vigil.artifacts import ArtifactStore
from vigil.config import Settings
from vigil.errors import VigilError
from vigil.tasks import all_tasks

# Verbs that live outside a task's package (tasks never import the streaming layer): slug -> modules
# whose add_cli(task_parser) adds sub-commands to that task's parser.
CLI_EXTENSIONS: dict[str, list[str]] = {
    "dns": ["vigil.streaming.dns_cli"],
}


def settings_and_store(args: argparse.Namespace | None = None) -> tuple[Settings, ArtifactStore]:
    overrides = {}
    if args is not None and getattr(args, "models_dir", None):
        overrides["models_dir"] = args.models_dir
    settings = Settings.from_env(**overrides)
    return settings, ArtifactStore.from_settings(settings)


def cmd_bootstrap(args: argparse.Namespace) -> int:
    """Train every task's default model on the shipped samples, unless one exists already."""
    settings, store = settings_and_store(args)
    for task in all_tasks():
        if store.entries(task.name) and not args.force:
            print(f"{task.slug}: model v{store.latest_entry(task.name)['version']} present, skipping")
            continue
        print(f"{task.slug}: training the default model on the shipped sample data ...", flush=True)
        entry = task.train_default(store, settings)
        print(f"{task.slug}: saved v{entry['version']} {json.dumps(entry.get('metrics', {}))[:200]}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    _, store = settings_and_store(args)
    for entry in store.entries():
        metrics = ", ".join(f"{k}={v:.4f}" for k, v in entry.get("metrics", {}).items() if isinstance(v, float))
        print(f"{entry['task']:<14} v{entry['version']:<4} {entry['created_at']}  {metrics}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    settings, _ = settings_and_store(args)
    if args.train_missing:
        cmd_bootstrap(argparse.Namespace(models_dir=args.models_dir, force=False))
    env = dict(os.environ)
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(variable, "1")  # one numeric thread per worker; workers x threads use the cores
    env["VIGIL_MODELS_DIR"] = str(settings.models_dir)
    env["VIGIL_BIND"] = args.bind or f"{args.host or settings.host}:{args.port or settings.port}"
    if args.ui_port:
        # the same app on a second address, like the course's front end on :8181
        ui_host = env["VIGIL_BIND"].rsplit(":", 1)[0] if ":" in env["VIGIL_BIND"] else args.host or settings.host
        env["VIGIL_BIND"] += f",{ui_host}:{args.ui_port}"
        print(f"browser UI on http://{ui_host}:{args.ui_port}/ui", flush=True)
    if args.workers:
        env["VIGIL_WORKERS"] = str(args.workers)
    if args.threads:
        env["VIGIL_THREADS"] = str(args.threads)
    if args.bucket_root:
        env["VIGIL_BUCKET_ROOT"] = str(args.bucket_root)
    command = [sys.executable, "-m", "gunicorn", "-c", "python:vigil.service.gunicorn_conf", "vigil.service:app"]
    print(f"serving on http://{env['VIGIL_BIND'].split(',')[0]}", flush=True)
    # exec, not a child process: signals sent to `vigil serve` then reach gunicorn's master directly,
    # so stopping it never leaves orphaned workers behind.
    os.execve(sys.executable, command, env)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vigil", description="Security machine learning: train, evaluate, serve.")
    parser.add_argument("--models-dir", help="artifact store folder (default: models/, or VIGIL_MODELS_DIR)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve every trained model with gunicorn")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--bind", help="gunicorn bind address, overrides --host/--port")
    serve.add_argument("--workers", type=int)
    serve.add_argument("--threads", type=int)
    serve.add_argument("--bucket-root", help="folder holding the Alectio buckets (default: runs/bucket)")
    serve.add_argument("--ui-port", type=int, help="also serve on this port (the browser UI is at /ui), e.g. 8181")
    serve.add_argument("--train-missing", action="store_true", help="train default models first where none exist")
    serve.set_defaults(handler=cmd_serve)

    bootstrap = commands.add_parser("bootstrap", help="train default models on the shipped sample data")
    bootstrap.add_argument("--force", action="store_true", help="train even where a model exists")
    bootstrap.set_defaults(handler=cmd_bootstrap)

    models = commands.add_parser("models", help="list the artifacts in the model store")
    models.set_defaults(handler=cmd_models)

    for task in all_tasks():
        task_parser = commands.add_parser(task.slug, help=task.title)
        task.add_cli(task_parser)
        for module_name in CLI_EXTENSIONS.get(task.slug, []):
            importlib.import_module(module_name).add_cli(task_parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.parse_args([*(argv or sys.argv[1:]), "--help"])
        return 2
    try:
        return int(handler(args) or 0)
    except VigilError as exc:
        detail = f" ({exc.detail})" if exc.detail else ""
        print(f"vigil: error: {exc.error}{detail}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vigil: interrupted", file=sys.stderr)
        return 130
