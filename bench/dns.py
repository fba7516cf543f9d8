"""DNS stream benchmark: events/s from Kafka through parsing, features and scoring, and the retrain cost.

Base of every ratio, measured in the same run on the same rows: the bare static model's
``predict_proba`` on already-built feature rows, one window (1,000 rows) at a time.

- ``kafka rows``: CIC feature rows as JSON through the embedded Tansu broker (or ``--bootstrap-servers``),
  the windowed consumer, both models' scoring, the SQLite record and the offset commit;
- ``kafka queries``: the same with raw query names (``{"query": ...}``), so featurisation is included;
- ``retrain``: one refit of the dynamic model on 3 windows, against scoring one window.

The throughput is taken between the first and the last recorded window, so joining the consumer group
is not counted. Nothing is read from ../shared (the rows are generated from data/dns_exfil).

    python -m bench.dns [--windows 20] [--bootstrap-servers HOST:PORT]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def _consume(servers: str, topic: str, store, static, windows: int) -> tuple[float, int]:
    from vigil.streaming.consumer import WindowedConsumer
    from vigil.streaming.decision import RetrainPolicy
    from vigil.streaming.dns_stream import DnsWindowProcessor
    from vigil.streaming.results import ResultsStore

    stamps: list[float] = []
    folder = Path(tempfile.mkdtemp(prefix="vigil-bench-dns-"))
    # delta tiny and no floor: the consumer never retrains here, so only the steady path is timed.
    policy = RetrainPolicy(delta=1e-12, f1_floor=0.0)
    processor = DnsWindowProcessor(store, static, f"bench-{topic}", policy)
    consumer = WindowedConsumer(
        servers,
        topic,
        f"bench-{topic}",
        processor,
        ResultsStore(folder / "r.sqlite"),
        idle_timeout_s=5,
        max_windows=windows,
        on_window=lambda _record: stamps.append(time.perf_counter()),
    )
    consumer.run()
    if len(stamps) < 2:
        raise RuntimeError(f"only {len(stamps)} windows came back from {topic}")
    return (len(stamps) - 1) * 1000 / (stamps[-1] - stamps[0]), len(stamps)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.dns", description=__doc__.split("\n")[0])
    parser.add_argument("--windows", type=int, default=20)
    parser.add_argument("--bootstrap-servers")
    args = parser.parse_args(argv)

    from vigil.artifacts import ArtifactStore
    from vigil.config import Settings
    from vigil.streaming.broker import EmbeddedBroker
    from vigil.streaming.kafka_io import ensure_topic, produce
    from vigil.tasks import get_task
    from vigil.tasks.dns_exfil.generate import QueryGenerator, cic_rows, stream_phases
    from vigil.tasks.dns_exfil.model import cic_frame_to_features, predict_proba, refit

    work = Path(tempfile.mkdtemp(prefix="vigil-bench-dns-"))
    settings = Settings.from_env(models_dir=work / "models", work_dir=work / "runs")
    store = ArtifactStore(settings.models_dir)
    get_task("dns_exfil").train_default(store, settings)
    static = store.load("dns_exfil")

    n = args.windows * 1000
    names, labels = QueryGenerator(seed=5).queries(stream_phases(1)[0], n)
    frame = cic_rows(names, labels)
    features = cic_frame_to_features(frame)

    started = time.perf_counter()
    for start in range(0, n, 1000):
        predict_proba(static.model, features.iloc[start : start + 1000])
    bare_rate = n / (time.perf_counter() - started)

    row_messages = [json.dumps(record).encode() for record in frame.astype(str).to_dict("records")]
    query_messages = [json.dumps({"query": q, "Target Attack": int(t)}).encode() for q, t in zip(names, labels)]

    broker = None
    servers = args.bootstrap_servers
    if not servers:
        broker = EmbeddedBroker().start()
        servers = broker.bootstrap_servers
    try:
        suffix = int(time.time())
        results = {}
        for label, messages in (("rows", row_messages), ("queries", query_messages)):
            topic = f"bench-dns-{label}-{suffix}"
            ensure_topic(servers, topic, 1)
            produce(servers, topic, messages)
            results[label] = _consume(servers, topic, store, static, args.windows)
    finally:
        if broker is not None:
            broker.stop()

    window_X, window_y = features.iloc[:3000], labels[:3000]
    started = time.perf_counter()
    refit(static.model, window_X, window_y)
    retrain_s = time.perf_counter() - started
    started = time.perf_counter()
    predict_proba(static.model, features.iloc[:1000])
    score_window_s = time.perf_counter() - started

    where = "embedded Tansu" if broker is not None else servers
    print(f"bare model predict_proba (base):       {bare_rate:>10,.0f} rows/s")
    for label in ("rows", "queries"):
        rate, windows = results[label]
        print(
            f"kafka {label:<8} via {where:<14} {rate:>10,.0f} events/s  = {rate / bare_rate:.3f} x base "
            f"({windows} windows; parse, 2 models, SQLite, commit)"
        )
    print(
        f"retrain on 3 windows: {retrain_s * 1000:,.0f} ms = {retrain_s / score_window_s:,.0f} x scoring one window "
        f"({score_window_s * 1000:.1f} ms)"
    )
    return {
        "bare_rows_per_s": bare_rate,
        "kafka_rows_per_s": results["rows"][0],
        "kafka_queries_per_s": results["queries"][0],
        "retrain_s": retrain_s,
        "score_window_s": score_window_s,
    }


if __name__ == "__main__":
    main()
