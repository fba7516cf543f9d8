"""CLI start-up: median wall time of ``vigil --help`` and each ``vigil <slug> --help``, against the
bare interpreter start (``python -c pass``) measured in the same run, as seconds and as a ratio.

The target (issue 15) is under 1 s each in a warm venv; the figure lives here, not in a test::

    python -m bench.cli_startup               # 7 runs of each, interleaved
    python -m bench.cli_startup --runs 15
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.common import check_target

REPO_ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 1.0


def commands() -> dict[str, list[str]]:
    """Label -> argv after the interpreter: the baseline, the root help, and each task's help."""
    from vigil.tasks import TASKS

    cases = {"python -c pass (baseline)": ["-c", "pass"], "vigil --help": ["-m", "vigil", "--help"]}
    for spec in TASKS.values():
        cases[f"vigil {spec.slug} --help"] = ["-m", "vigil", spec.slug, "--help"]
    return cases


def wall_time(argv: list[str], env: dict) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, *argv], env=env, cwd=REPO_ROOT, capture_output=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()[-500:]}")
    return elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs of each command (default 7; median reported)")
    args = parser.parse_args(argv)

    src = str(REPO_ROOT / "src")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])))
    cases = commands()
    for command in cases.values():  # warm the file cache and the .pyc files once
        wall_time(command, env)
    times: dict[str, list[float]] = {label: [] for label in cases}
    for _ in range(max(1, args.runs)):  # interleaved, so a busy moment hits every command alike
        for label, command in cases.items():
            times[label].append(wall_time(command, env))
    medians = {label: statistics.median(values) for label, values in times.items()}
    baseline = medians["python -c pass (baseline)"]
    width = max(map(len, medians))
    print(f"median of {args.runs} runs each; target under {TARGET_S:g} s")
    print(f"{'command':<{width}}  {'seconds':>8}  {'x baseline':>10}  {'minus baseline':>14}")
    for label, seconds in medians.items():
        print(f"{label:<{width}}  {seconds:8.3f}  {seconds / baseline:10.1f}  {seconds - baseline:14.3f}")
    slowest = max(seconds for label, seconds in medians.items() if label.startswith("vigil"))
    check_target(
        "CLI start-up, slowest `vigil ... --help`", f"{slowest:.3f} s", f"under {TARGET_S:g} s", slowest < TARGET_S
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
