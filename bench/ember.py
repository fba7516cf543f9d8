"""EMBER throughput and latency, each against the plain single-process loop measured in the same run.

    python -m bench.ember [--files 24] [--records 2000] [--requests 30] [--no-server]

1. raw-feature extraction (files/s): ``for f in files: write(json.dumps(raw_features(bytes)))``
   versus ``vigil ember extract``'s code with 1 and 2 processes;
2. vectorization (records/s): ``for line: process_raw_features(json.loads(line))`` versus
   ``vigil ember vectorize``'s code (memmaps, batches) with 1 and 2 processes;
3. ``POST /predict/ember`` latency of a PE body: extract + score in-process versus the Flask test
   client and a real gunicorn (``vigil serve``, 1 worker).

Inputs: pip's distlib launchers plus data/ember/pe (repeated to --files), the synthetic demo records
(vigil.tasks.ember.demo_data) for vectorization. It reads nothing from ../shared.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.common import REPO, quiet_request_log


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def _best_seconds(run, repeats: int) -> float:
    """Fastest of ``repeats`` runs: the machine is shared, the minimum is the least disturbed."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def pe_files(n: int) -> list[Path]:
    import pip

    files = sorted((Path(pip.__file__).parent / "_vendor" / "distlib").glob("*.exe"))
    files += sorted((REPO / "data" / "ember" / "pe").glob("*.exe"))
    return [files[i % len(files)] for i in range(n)]


def bench_extraction(n_files: int, repeats: int = 2) -> None:
    from vigil.tasks.ember.features import FeatureExtractor
    from vigil.tasks.ember.task import extract_files

    files = pe_files(n_files)
    FeatureExtractor(2).raw_features(files[0].read_bytes())  # warm up: LIEF's first parse is slow

    def loop():  # the same work as extract: read, raw features, one JSON line
        out = io.StringIO()
        for path in files:
            out.write(json.dumps(FeatureExtractor(2).raw_features(path.read_bytes())) + "\n")

    baseline = _rate(len(files), _best_seconds(loop, repeats))
    print(f"extraction   baseline loop          {baseline:8.1f} files/s   1.00x   ({len(files)} PE files)")
    for processes in (1, 2):
        seconds = _best_seconds(
            lambda processes=processes: extract_files(
                [str(p) for p in files], io.StringIO(), processes=processes, progress=False
            ),
            repeats,
        )
        rate = _rate(len(files), seconds)
        print(f"extraction   vigil extract -j {processes}      {rate:8.1f} files/s   {rate / baseline:.2f}x")


def bench_vectorization(n_records: int, repeats: int = 2) -> None:
    from vigil.tasks.ember.demo_data import write_demo_data
    from vigil.tasks.ember.features import FeatureExtractor
    from vigil.tasks.ember.vectorize import vectorize_subset

    with tempfile.TemporaryDirectory() as folder:
        train, _ = write_demo_data(folder, n_train=n_records, n_test=2)
        lines = train.read_text().splitlines()
        extractor = FeatureExtractor(2)
        extractor.process_raw_features(json.loads(lines[0]))  # warm up

        def loop():
            for line in lines:
                extractor.process_raw_features(json.loads(line))

        baseline = _rate(len(lines), _best_seconds(loop, repeats))
        print(f"vectorizing  baseline loop          {baseline:8.1f} rec/s     1.00x   ({len(lines)} records)")
        for processes in (1, 2):
            seconds = _best_seconds(
                lambda processes=processes: vectorize_subset(
                    Path(folder) / "X.dat",
                    Path(folder) / "y.dat",
                    [train],
                    feature_version=2,
                    processes=processes,
                    progress=False,
                ),
                repeats,
            )
            rate = _rate(len(lines), seconds)
            print(f"vectorizing  vigil vectorize -j {processes}    {rate:8.1f} rec/s     {rate / baseline:.2f}x")


def _latencies(call, n: int) -> float:
    call()  # warm up
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def bench_predict(n_requests: int, with_server: bool) -> None:
    import requests

    from vigil.artifacts import ArtifactStore
    from vigil.config import Settings
    from vigil.service import create_app
    from vigil.tasks import get_task
    from vigil.tasks.ember.features import FeatureExtractor

    body = (REPO / "data" / "ember" / "pe" / "t32.exe").read_bytes()
    with tempfile.TemporaryDirectory() as folder:
        models = Path(folder) / "models"
        store = ArtifactStore(models)
        get_task("ember").train_default(store, Settings.from_env(models_dir=models))
        model = store.load("ember").model

        def direct():
            model.predict_proba([FeatureExtractor(2).raw_features(body)])

        baseline = _latencies(direct, n_requests)
        print(
            f"predict      baseline in-process    {baseline * 1000:8.2f} ms        1.00x   (t32.exe, {len(body)} bytes)"
        )

        quiet_request_log()
        client = create_app(Settings.from_env(models_dir=models), store).test_client()

        def via_client():
            assert client.post("/predict/ember", data=body, content_type="application/octet-stream").status_code == 200

        latency = _latencies(via_client, n_requests)
        print(f"predict      Flask test client      {latency * 1000:8.2f} ms        {latency / baseline:.2f}x")
        if not with_server:
            return
        sys.path.insert(0, str(REPO / "tests"))
        from conftest import LiveServer  # the same real-gunicorn helper the tests use

        server = LiveServer(models, env={"PYTHONPATH": str(REPO / "src")}, args=["--workers", "1", "--threads", "2"])
        try:
            session = requests.Session()

            def via_gunicorn():
                response = session.post(
                    server.url + "/predict/ember",
                    data=body,
                    headers={"Content-Type": "application/octet-stream"},
                    timeout=60,
                )
                assert response.status_code == 200

            latency = _latencies(via_gunicorn, n_requests)
            print(f"predict      gunicorn over HTTP     {latency * 1000:8.2f} ms        {latency / baseline:.2f}x")
        finally:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.ember", description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=24)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--no-server", action="store_true", help="skip the real-gunicorn latency")
    args = parser.parse_args(argv)
    print(f"bench.ember on {os.cpu_count()} CPU(s); ratios > 1 mean faster (throughput) or slower (latency)")
    bench_extraction(args.files)
    bench_vectorization(args.records)
    bench_predict(args.requests, with_server=not args.no_server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
