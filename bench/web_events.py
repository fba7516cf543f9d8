"""Events per second through ML-PT's ``POST /predict`` at batch sizes 1, 100 and 10,000, against the
bare ``pipeline.predict`` on already parsed rows (a DataFrame) at the same batch sizes, in the same run.

The two calls of each batch size are timed in turn (bare, served, bare, served ...) for
``--repeat-seconds`` each, and the medians compared, so a load change on a shared machine moves both
sides alike. The last lines are issue 17's two ML-PT targets: the served rate at 10,000 events over
the bare pipeline's (target >= 0.8), and the single-event latency of ``POST /predict`` (target < 5 ms)
next to the bare pipeline's on the same event.

The service path adds JSON parsing of the outer array and of every inner event string, record
validation, and the JSON answer. Request bodies are encoded once before timing (encoding is the
client's work, not the service's). By default it goes through the Flask app in-process (no network);
``--url`` measures a running ``vigil serve`` instead (its model must be the one trained from
``--models-dir``, or the shipped sample when none is given).

    python -m bench.web_events [--repeat-seconds 3] [--url http://127.0.0.1:8080]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

from bench.common import check_target, quiet_request_log
from vigil.artifacts import ArtifactStore
from vigil.config import PROJECT_ROOT, Settings
from vigil.tasks.web_events import train_model
from vigil.tasks.web_events.data import frame_to_request, load_events_csv

BATCH_SIZES = (1, 100, 10_000)


def interleaved_seconds(runs: dict, min_seconds: float, min_calls: int = 5) -> dict:
    """Median seconds per call of each function in ``runs``, calling them in turn until each has had
    ``min_seconds`` (and ``min_calls``); one untimed call each first (caches, lazy imports)."""
    for run in runs.values():
        run()
    times: dict = {name: [] for name in runs}
    while min(map(sum, times.values())) < min_seconds or min(map(len, times.values())) < min_calls:
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat-seconds", type=float, default=2.0, help="time each measurement at least this long")
    parser.add_argument("--models-dir", help="use the web_events model of this store (default: train on the sample)")
    parser.add_argument("--url", help="a running service to measure instead of the in-process app")
    parser.add_argument("--no-breakdown", action="store_true", help="skip the stage-by-stage line at 10,000 events")
    args = parser.parse_args(argv)

    sample = load_events_csv(PROJECT_ROOT / "data" / "web_events" / "events_sample.csv")
    with tempfile.TemporaryDirectory() as scratch:
        models_dir = Path(args.models_dir) if args.models_dir else Path(scratch)
        store = ArtifactStore(models_dir)
        if not store.entries("web_events"):
            pipeline, info, _ = train_model(sample, folds=0, tune=False, progress=False)
            store.save("web_events", pipeline, metrics=info["metrics"])
        pipeline = store.load("web_events").model
        events = pd.concat([sample] * (max(BATCH_SIZES) // len(sample) + 1), ignore_index=True).iloc[: max(BATCH_SIZES)]
        body = frame_to_request(events)

        if args.url:
            import requests

            session = requests.Session()
            endpoint = args.url.rstrip("/") + ("" if args.url.rstrip("/").endswith("/predict") else "/predict")

            def post(batch):
                response = session.post(endpoint, data=batch, timeout=600, headers={"Content-Type": "application/json"})
                assert response.status_code == 200, response.text[:300]

            where = endpoint
        else:
            from vigil.heap import freeze_startup_heap
            from vigil.service import create_app

            quiet_request_log()
            app = create_app(Settings.from_env(models_dir=models_dir), store)
            freeze_startup_heap()  # what gunicorn's post_worker_init does in each worker
            client = app.test_client()

            def post(batch):
                response = client.post("/predict", data=batch, content_type="application/json")
                assert response.status_code == 200, response.get_json()

            where = "in-process Flask app"

        print(f"web_events: {len(sample):,} sample events, model trained on the shipped sample; service = {where}")
        print(f"{'batch':>7} {'pipeline.predict ev/s':>22} {'POST /predict ev/s':>19} {'service / bare':>15}")
        seconds = {}
        for size in BATCH_SIZES:
            frame, batch = events.iloc[:size], json.dumps(body[:size]).encode()
            seconds[size] = interleaved_seconds(
                {
                    "bare": lambda frame=frame: pipeline.predict(frame),
                    "served": lambda batch=batch: post(batch),
                },
                args.repeat_seconds,
            )
            bare, served = size / seconds[size]["bare"], size / seconds[size]["served"]
            print(f"{size:>7,} {bare:>22,.0f} {served:>19,.0f} {served / bare:>15.2f}")
        largest, one = seconds[max(BATCH_SIZES)], seconds[1]
        rate = largest["bare"] / largest["served"]
        check_target(
            f"ML-PT POST /predict, {max(BATCH_SIZES):,} events, vs the bare pipeline",
            f"{rate:.2f}x its rate",
            ">= 0.8x",
            rate >= 0.8,
        )
        check_target(
            "ML-PT POST /predict, one event",
            f"{one['served'] * 1e3:.2f} ms (bare pipeline {one['bare'] * 1e3:.2f} ms)",
            "under 5 ms",
            one["served"] < 0.005,
        )
        if not args.url and not args.no_breakdown:
            print(breakdown(app, pipeline, events, body, args.repeat_seconds))
    return 0


def breakdown(app, pipeline, events: pd.DataFrame, body: list, min_seconds: float) -> str:
    """Where a served request of the largest batch spends its time, stage by stage (medians, timed in turn)."""
    from vigil.service.jsonprovider import COMPACT_SEPARATORS
    from vigil.service.validation import parse_json
    from vigil.tasks.web_events import label_response
    from vigil.tasks.web_events.data import parse_request

    size = max(BATCH_SIZES)
    raw = json.dumps(body[:size]).encode()
    document = parse_json(raw)
    parsed = parse_request(document)
    answer = label_response(pipeline, parsed)
    client = app.test_client()
    stages = interleaved_seconds(
        {
            "served": lambda: client.post("/predict", data=raw, content_type="application/json"),
            "body JSON": lambda: parse_json(raw),  # the service's parse, with its JSON limits
            "records' JSON": lambda: parse_request(document),
            "scoring": lambda: label_response(pipeline, parsed),
            "answer JSON": lambda: app.json.dumps(answer, separators=COMPACT_SEPARATORS),  # as jsonify
            "bare pipeline": lambda: pipeline.predict(events.iloc[:size]),
        },
        min_seconds,
    )
    named = ("body JSON", "records' JSON", "scoring", "answer JSON")
    rest = stages["served"] - sum(stages[name] for name in named)
    return (
        f"served {size:,} events {stages['served'] * 1e3:.0f} ms = "
        + " + ".join(f"{name} {stages[name] * 1e3:.0f}" for name in named)
        + f" + the rest (Flask, reading the body, middleware, metrics) {rest * 1e3:.0f} ms; "
        f"bare pipeline {stages['bare pipeline'] * 1e3:.0f} ms"
    )


if __name__ == "__main__":
    raise SystemExit(main())
