"""What every ``vigil`` command shares: one :class:`CliContext` per run, and :func:`with_args`.

The root command makes the context once from its options (``--models-dir``); the settings and the
artifact store are made on first use, so ``vigil --help`` reads no environment and opens no store.
Task packages build their click groups on this module, never on :mod:`vigil.cli`.

A verb decorated with :func:`with_args` gets its parameters as attributes, with the run's context::

    >>> import click
    >>> @click.command()
    ... @click.option("--rows", type=int, default=3)
    ... @with_args
    ... def count(args):
    ...     click.echo(f"{args.rows} rows, models in {args.context.models_dir}")
    >>> count.main(["--rows", "5"], standalone_mode=False)
    5 rows, models in None
    0
"""

from __future__ import annotations

import functools
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import click

from vigil.config import Settings

if TYPE_CHECKING:
    from vigil.artifacts import ArtifactStore


class CliContext:
    """One run's settings (``Settings.from_env`` with the root options) and artifact store."""

    def __init__(self, models_dir: str | Path | None = None) -> None:
        self.models_dir = Path(models_dir) if models_dir else None

    @cached_property
    def settings(self) -> Settings:
        overrides = {"models_dir": self.models_dir} if self.models_dir else {}
        return Settings.from_env(**overrides)

    @cached_property
    def store(self) -> ArtifactStore:
        from vigil.artifacts import ArtifactStore

        return ArtifactStore.from_settings(self.settings)


pass_cli_context = click.make_pass_decorator(CliContext, ensure=True)


class CommandArgs:
    """A verb's parameters by name (``args.csv``; click's tuples as lists) and the run's context."""

    def __init__(self, context: CliContext, params: dict[str, Any]) -> None:
        self.context = context
        for name, value in params.items():
            setattr(self, name, list(value) if isinstance(value, tuple) else value)

    @property
    def settings(self) -> Settings:
        return self.context.settings

    @property
    def store(self) -> ArtifactStore:
        return self.context.store

    @property
    def models_dir(self) -> Path | None:
        return self.context.models_dir


def with_args(function: Callable[[CommandArgs], int | None]) -> Callable[..., int]:
    """Make ``function(args)`` a click callback: the return value is the command's exit code."""

    @functools.wraps(function)
    def callback(**params: Any) -> int:
        context = click.get_current_context().ensure_object(CliContext)
        return int(function(CommandArgs(context, params)) or 0)

    return callback


PATH = click.Path(path_type=Path)
"""The type of a path option or argument: its value arrives as a :class:`pathlib.Path`."""


def option_group(*options: Callable[[Callable], Callable]) -> Callable[[Callable], Callable]:
    """One decorator for several click options that verbs share, shown in ``--help`` in the order given."""

    def decorate(function: Callable) -> Callable:
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


model_version_option = click.option("--version", help="model version (default: latest)")
"""``--version N`` of a verb that loads a saved model (None: the latest)."""


__all__ = [
    "PATH",
    "CliContext",
    "CommandArgs",
    "model_version_option",
    "option_group",
    "pass_cli_context",
    "with_args",
]


def _dask_address(ctx, param, value):
    # checked before any work, so a typo fails at once (vigil.dask_training says what is accepted)
    if value is None:
        return None
    from vigil.dask_training import parse_dask_address

    try:
        parse_dask_address(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def dask_option(what: str):
    """``--dask ADDRESS`` for a train verb whose LightGBM fits can run on Dask (vigil.dask_training)."""
    return click.option(
        "--dask",
        metavar="ADDRESS",
        callback=_dask_address,
        help=f"{what}: tcp://HOST:8786 (a running scheduler) or local:N (N workers on 127.0.0.1)",
    )
