"""Time to first answer of ``make run`` on a fresh clone: train the defaults, start, answer.

Runs what ``make run`` runs after its install step, ``vigil serve --train-missing``, with an empty
models folder on a free 127.0.0.1 port, and reports when each stage was reached: the defaults
trained (the ``serving on`` line), ``/ready`` answering 200, and the first ``POST /predict/<task>``
of every task's example request answered. The baseline, measured in the same run, is a bare
``python -c pass`` start, so the figure reads as "N interpreter starts".

    python -m bench.first_answer
    python -m bench.first_answer --models-dir models    # an already trained store: start-up only
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from bench.load import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]


def interpreter_start_s(runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def wait_for(url: str, started: float, limit_s: float) -> float:
    while time.perf_counter() - started < limit_s:
        try:
            if requests.get(url, timeout=10).status_code == 200:
                return time.perf_counter() - started
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or still warming up
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer 200 within {limit_s:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", help="use this store instead of a fresh, empty one")
    parser.add_argument("--limit-s", type=float, default=600.0)
    args = parser.parse_args(argv)
    baseline = interpreter_start_s()
    with tempfile.TemporaryDirectory(prefix="vigil-first-answer-") as tmp:
        models = Path(args.models_dir) if args.models_dir else Path(tmp) / "models"
        port = free_port()
        env = {
            **os.environ,
            "VIGIL_MODELS_DIR": str(models),
            "VIGIL_WORK_DIR": str(Path(tmp) / "runs"),
            "VIGIL_STATE_DIR": str(Path(tmp) / "state"),
            "VIGIL_PORT": str(port),
            "PYTHONPATH": str(REPO_ROOT / "src"),
        }
        started = time.perf_counter()
        server = subprocess.Popen(
            [sys.executable, "-m", "vigil", "serve", "--train-missing"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            trained_s = None
            assert server.stdout is not None
            for line in server.stdout:
                if line.startswith("serving on"):
                    trained_s = time.perf_counter() - started
                    break
            # keep reading gunicorn's log so a full pipe never blocks the server
            threading.Thread(target=server.stdout.read, daemon=True).start()
            base = f"http://127.0.0.1:{port}"
            ready_s = wait_for(f"{base}/ready", started, args.limit_s)
            from vigil.tasks import all_tasks

            answers = {}
            for task in all_tasks():
                reply = requests.post(f"{base}/predict/{task.slug}", json=task.example_request(), timeout=60)
                answers[task.slug] = (reply.status_code, time.perf_counter() - started)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"baseline: python -c pass {baseline * 1000:.0f} ms (median of 5)")
    if trained_s is not None:
        print(f"defaults trained, gunicorn starting: {trained_s:6.1f} s  ({trained_s / baseline:,.0f}x baseline)")
    print(f"/ready answers 200:                {ready_s:6.1f} s  ({ready_s / baseline:,.0f}x baseline)")
    for slug, (status, at) in answers.items():
        print(f"first /predict/{slug:<14} {status}   {at:6.1f} s")
    return 0 if all(status == 200 for status, _ in answers.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
