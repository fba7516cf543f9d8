"""What several benchmarks share: the code of an earlier commit as the baseline, a measurement in a child
process of its own, the best of interleaved rounds with its table, and issue 17's targets checked
against what the run measured. (No ``main``: ``python -m bench`` passes over this module.)"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable

REPO = Path(__file__).resolve().parents[1]


def quiet_request_log() -> None:
    """The service's request log down to warnings: a bench's in-process app answers thousands of
    requests, each one JSON line on stderr otherwise."""
    logging.getLogger("vigil.service").setLevel(logging.WARNING)


@dataclass(frozen=True)
class TargetCheck:
    """One row of issue 17's table as a run measured it: ``measured`` and ``target`` in words."""

    path: str
    measured: str
    target: str
    met: bool


TARGETS_FILE_VARIABLE = "VIGIL_BENCH_TARGETS_FILE"  # set by ``python -m bench`` for each module's process


def check_target(path: str, measured: str, target: str, met: bool) -> None:
    """Print whether this run met issue 17's target for ``path``, and keep it for ``python -m bench``'s
    summary: a JSON line in $VIGIL_BENCH_TARGETS_FILE, where that set it."""
    check = TargetCheck(path, measured, target, bool(met))
    print(f"target, {path}: {measured}; target {target}: {'met' if met else 'NOT met'}", flush=True)
    targets_file = os.environ.get(TARGETS_FILE_VARIABLE)
    if targets_file:
        with open(targets_file, "a", encoding="utf-8") as out:
            out.write(json.dumps(check.__dict__) + "\n")


CLOCK_NAMES = {"wall": "elapsed", "cpu": "thread CPU"}


def check_time_target(path: str, clocks: dict[str, dict[str, float]], run: str, floor: str, limit: float) -> None:
    """:func:`check_target` for ``run``'s time within ``limit`` times ``floor``'s, on each clock of
    :func:`best_of_rounds_by_clock` (two rows: what a user waits, and what the code costs a core)."""
    for clock, name in CLOCK_NAMES.items():
        ratio = clocks[clock][run] / clocks[clock][floor]
        check_target(f"{path}, {name}", f"{ratio:.2f}x its time", f"within {limit:g}x", ratio <= limit)


def read_target_checks(path: Path) -> list[TargetCheck]:
    """The checks a module's process wrote with :func:`check_target` (none if it wrote no file)."""
    if not path.exists():
        return []
    return [TargetCheck(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line]


def print_target_table(checks: list[TargetCheck]) -> None:
    width = max(len(check.path) for check in checks)
    print(f"{'path':<{width}}  {'met':<3}  measured (target)")
    for check in checks:
        print(f"{check.path:<{width}}  {'yes' if check.met else 'NO':<3}  {check.measured} ({check.target})")


def source_at(commit: str, path: str) -> str | None:
    """The text of ``path`` (relative to the repository) at ``commit``; None where git cannot give it
    (a copy without history, a commit it does not have)."""
    shown = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=REPO, capture_output=True, text=True)
    return shown.stdout if shown.returncode == 0 else None


def module_at(commit: str, path: str, folder: Path, name: str) -> ModuleType | None:
    """The module ``path`` as it was at ``commit``, imported as ``name`` from a copy in ``folder``."""
    source = source_at(commit, path)
    if source is None:
        return None
    copy = folder / f"{name}.py"
    copy.write_text(source)
    spec = importlib.util.spec_from_file_location(name, copy)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment for a child Python (plus ``extra``): this checkout's ``src`` and
    the repository itself first on its path, so it imports this code and ``bench``."""
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), str(REPO), env.get("PYTHONPATH")]))
    return env


def run_child(module: str, args: list[str], timeout: float, what: str) -> dict:
    """``python -m <module> --child ARGS`` in a process of its own (so its peak memory is its own), this
    checkout's ``src`` first on its path; the JSON object its last line of output holds."""
    env = child_env()
    command = [sys.executable, "-m", module, "--child", *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def best_of_rounds_by_clock(runs: dict[str, Callable[[], object]], rounds: int) -> dict[str, dict[str, float]]:
    """The fastest of ``rounds`` timings of each run, in seconds, on two clocks at once: ``"wall"``,
    the elapsed time, and ``"cpu"``, the CPU time of the calling thread (user and system). The rounds
    are interleaved, so a busy moment of the shared machine slows every run alike; for runs on one
    thread the CPU time is what the code costs a core, without the time the machine's other jobs took
    the core away (the two agree on a quiet machine)."""
    best: dict[str, dict[str, float]] = {clock: dict.fromkeys(runs, float("inf")) for clock in CLOCK_NAMES}
    for _ in range(rounds):
        for name, run in runs.items():
            started, started_cpu = time.perf_counter(), time.thread_time()
            run()
            best["cpu"][name] = min(best["cpu"][name], time.thread_time() - started_cpu)
            best["wall"][name] = min(best["wall"][name], time.perf_counter() - started)
    return best


def print_best(best: dict[str, float], floor: str, floor_label: str, width: int, amount: float, unit: str, digits: int):
    """``best`` as a table, fastest first: seconds, ``amount`` per second (``unit``, ``digits`` decimals),
    and the time as a multiple of the run named ``floor`` (the column ``x <floor_label>``)."""
    ratio = f"x {floor_label}"
    print(f"{'path':<{width}} {'time':>9} {unit:>8} {ratio:>{len(ratio) + 1}}")
    for name, seconds in sorted(best.items(), key=lambda item: item[1]):
        print(
            f"{name:<{width}} {seconds:7.3f} s {amount / seconds:8.{digits}f} {seconds / best[floor]:{len(ratio)}.2f}x"
        )


def vectorize_run(lines: list[bytes], folder: Path, dim: int, scan: bool = True) -> Callable[[], None]:
    """``vigil ember vectorize``'s own code in this process, as a run: ``lines`` in batches of
    BATCH_LINES through ``vectorize._vectorize_batch`` (orjson, the whole-batch blocks, the rows
    written with pwrite) into ``folder/X.dat`` (float32, (len(lines), dim)) and ``folder/y.dat``.
    ``scan``: with the line scanner, as a run of ``vectorize.SCANNER_MIN_LINES`` lines or more reads
    them (compile it first, or take the best of several rounds: its compilation is not the steady
    state), or without, as smaller runs do."""
    from vigil.tasks.ember import vectorize

    X_path, y_path = folder / "X.dat", folder / "y.dat"
    for path, size in ((X_path, len(lines) * dim * 4), (y_path, len(lines) * 4)):
        with open(path, "wb") as handle:
            handle.truncate(size)
    step = vectorize.BATCH_LINES
    batches = [
        [(row, "bench", row + 1, lines[row]) for row in range(start, min(len(lines), start + step))]
        for start in range(0, len(lines), step)
    ]

    def run() -> None:
        vectorize._worker_init(str(X_path), str(y_path), len(lines), 2, scan)
        try:
            for batch in batches:
                vectorize._vectorize_batch(batch)
        finally:
            vectorize._worker_close()

    return run
