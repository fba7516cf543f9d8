"""Load test: the served model against its bare predict rate, measured in the same run.

Starts ``vigil serve`` (gunicorn, default 2 workers x 2 threads) on a free 127.0.0.1 port and
drives ``POST /predict/<task>`` with wrk (Debian's ``wrk`` package, a second process) at 1, 10
and 50 concurrent connections for a bounded time each, then prints requests/s, p50/p99 latency
and the error count (socket errors + non-2xx) per level, next to the bare rate: the same task's
``Task.predict`` on the same request body called in a loop in this process, single-threaded,
without HTTP. Exits 1 if any level had an error.

    python -m bench.load                         # first registered task, its example request
    python -m bench.load --task iot-anomaly --seconds 10 --levels 1,10,50
    python -m bench.load --models-dir models     # use trained models instead of training defaults
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parents[1]
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open("{body}", "rb"):read("*a")
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bare_rate(task, loaded, body, seconds: float) -> float:
    from vigil.tasks import PredictInput

    predict_input = PredictInput(json=body, body=json.dumps(body).encode(), content_type="application/json")
    task.predict(loaded, predict_input)  # warm
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        task.predict(loaded, predict_input)
        calls += 1
    return calls / (time.perf_counter() - started)


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def parse_wrk(output: str) -> dict:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))
    total = int(re.search(r"(\d+) requests in", output).group(1))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = sum(map(int, socket_errors.groups())) if socket_errors else 0
    errors += int(non_2xx.group(1)) if non_2xx else 0
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "requests": total, "errors": errors}


def wrk(url: str, connections: int, seconds: int, *extra: str) -> dict:
    """One wrk run against ``url`` (``extra``: e.g. ``-s post.lua``), parsed."""
    command = ["wrk", "-t", str(min(connections, 2)), "-c", str(connections), "-d", f"{seconds}s"]
    command += ["--timeout", "30s", "--latency", *extra, url]
    return parse_wrk(subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout)


def run_wrk(url: str, body_file: Path, connections: int, seconds: int, script_dir: Path) -> dict:
    script = script_dir / "post.lua"
    script.write_text(LUA.format(body=body_file))
    return wrk(url, connections, seconds, "-s", str(script))


def run_wrk_get(url: str, connections: int, seconds: int) -> dict:
    return wrk(url, connections, seconds)


class Server:
    def __init__(self, models_dir: Path, workers: int | None, threads: int | None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, VIGIL_MODELS_DIR=str(models_dir))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT / "src"), env.get("PYTHONPATH")]))
        command = [sys.executable, "-m", "vigil", "serve", "--port", str(self.port)]
        command += ["--workers", str(workers)] if workers else []
        command += ["--threads", str(threads)] if threads else []
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.process.stdout), daemon=True).start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("server exited:\n" + "".join(self.lines[-40:]))
            try:
                if requests.get(self.url + "/ready", timeout=2).status_code in (200, 503):
                    return
            except requests.RequestException:
                time.sleep(0.3)
        raise RuntimeError("server did not start in 120 s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", help="task name or slug (default: the first registered task)")
    parser.add_argument(
        "--models-dir", help="use this artifact store (default: train the task's default model in a temp folder)"
    )
    parser.add_argument("--seconds", type=int, default=8, help="duration of each load level (default 8)")
    parser.add_argument("--levels", default="1,10,50", help="concurrent connections, comma-separated (default 1,10,50)")
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: VIGIL_WORKERS or 2)")
    parser.add_argument("--threads", type=int, help="threads per worker (default: VIGIL_THREADS or 2)")
    args = parser.parse_args(argv)

    from vigil.artifacts import ArtifactStore
    from vigil.config import Settings
    from vigil.tasks import all_tasks, get_task

    if shutil.which("wrk") is None:
        print("bench.load: wrk is not installed (Debian: apt-get install wrk); nothing measured")
        return 0
    tasks = [get_task(args.task)] if args.task else all_tasks()
    if not tasks:
        print("bench.load: no task is registered; nothing to measure")
        return 0
    task = tasks[0]
    scratch = Path(tempfile.mkdtemp(prefix="vigil-load-"))
    try:
        if args.models_dir:
            models_dir = Path(args.models_dir)
        else:
            models_dir = scratch / "models"
            print(f"training {task.slug}'s default model in {models_dir} ...", flush=True)
            task.train_default(
                ArtifactStore(models_dir), Settings.from_env(models_dir=models_dir, work_dir=scratch / "runs")
            )
        store = ArtifactStore(models_dir, model_key=Settings.from_env().model_key)
        loaded = store.load(task.name)
        body = task.example_request()
        rows = len(body) if isinstance(body, list) else 1
        body_file = scratch / "body.json"
        body_file.write_text(json.dumps(body))

        bare = bare_rate(task, loaded, body, seconds=min(5, args.seconds))
        server = Server(models_dir, args.workers, args.threads)
        try:
            url = f"{server.url}/predict/{task.slug}"
            check = requests.post(url, json=body, timeout=30)
            if check.status_code != 200:
                print(f"bench.load: {url} answered {check.status_code}: {check.text[:300]}")
                return 1
            runtime = requests.get(server.url + "/admin/runtime", timeout=30).json()
            print(
                f"task {task.slug} v{loaded.version}, request of {rows} row(s), {os.cpu_count()} cores, "
                f"gunicorn {runtime['workers']} workers x {runtime['threads']} threads, wrk on 127.0.0.1, "
                f"{args.seconds} s per level"
            )
            print(f"bare Task.predict in-process, 1 thread: {bare:,.0f} requests/s (baseline)")
            failed = False
            http = run_wrk_get(server.url + "/v2/health/live", 10, args.seconds)
            print(
                f"HTTP ceiling, GET /v2/health/live at 10 clients: {http['rps']:,.0f} requests/s, "
                f"p50 {http['p50_ms']:.2f} ms (the service's own per-request cost)"
            )
            print(
                f"{'clients':>8} {'requests/s':>11} {'x bare':>7} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} {'errors':>7}"
            )
            for level in (int(x) for x in args.levels.split(",")):
                result = run_wrk(url, body_file, level, args.seconds, scratch)
                failed |= result["errors"] > 0
                print(
                    f"{level:>8} {result['rps']:>11,.0f} {result['rps'] / bare:>7.2f} {result['p50_ms']:>8.2f} "
                    f"{result['p99_ms']:>8.2f} {result['requests']:>9,} {result['errors']:>7}",
                    flush=True,
                )
        finally:
            server.stop()
        if failed:
            print("bench.load: errors at some level (see the errors column)")
            return 1
        return 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
