"""DNS benchmark: the stream's events/s through Kafka, the per-domain detector's speed, memory and
detection delay, each against a baseline measured in the same run.

Stream (base: the bare static model's ``predict_proba`` on already-built feature rows, one window of
1,000 rows at a time):

- ``kafka rows``: CIC feature rows as JSON through the embedded Tansu broker (or ``--bootstrap-servers``),
  the windowed consumer, both models' scoring, the SQLite record and the offset commit;
- ``kafka queries``: the same with raw query names (``{"query": ...}``): featurisation and the
  per-domain detector included;
- ``retrain``: one refit of the dynamic model on 3 windows, against scoring one window;
- ``CPU per event``: the window processor's parse, features, per-domain detector and ``process`` on a
  window of 1,000, in CPU time of the calling thread (the least of 15 calls), against one model's
  ``predict_proba`` on the same window: what the code costs, whatever the load of the shared cores.

Per-domain detector (:mod:`vigil.tasks.dns_exfil.domains`; base: a plain dict of sets, registered
domain -> set of its subdomains per 60 s window, the detector anyone would write first):

- ``domain events/s``: names through ``DomainDetector.observe`` vs through the dict of sets;
- ``memory``: peak traced memory (tracemalloc) while 10k, 100k, 1M distinct names under 100k
  distinct domains arrive within one 60 s window, detector vs dict of sets;
- ``delay``: queries of each captured tool (moved under its own domain) until its domain is flagged,
  detector vs the dict of sets flagging a domain at N unique subdomains in 60 s, N the smallest
  threshold that flags no domain in the day of real benign names (so both are held to zero false
  alarms on the same benign day).

The throughput is taken between the first and the last recorded window, so joining the consumer group
is not counted; each stream goes through ``--passes`` times (rows and queries alternating), and the
median pass is the figure, the others printed beside it. Nothing is read from ../shared (the rows are
generated from data/dns_exfil).

    python -m bench.dns [--windows 20] [--passes 3] [--bootstrap-servers HOST:PORT] [--max-names 1000000] [--no-kafka]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import tracemalloc
from pathlib import Path

from bench.common import check_target


class DictOfSets:
    """The baseline per-domain detector: every subdomain of every domain in the window, in sets."""

    def __init__(self, threshold: int = 10**9, window_s: float = 60.0):
        self.threshold, self.window_s = threshold, window_s
        self.window = -1
        self.subdomains: dict[str, set[str]] = {}
        self.queries: dict[str, int] = {}
        self.flagged: dict[str, int] = {}

    def observe(self, names, times) -> None:
        from vigil.tasks.dns_exfil.domains import split_name

        for name, at in zip(names, times):
            window = int(at // self.window_s)
            if window != self.window:
                self.window, self.subdomains = window, {}
            domain, sub, _ = split_name(name)
            self.observe_one(domain, sub)

    def observe_one(self, domain: str, sub: str) -> None:
        self.queries[domain] = self.queries.get(domain, 0) + 1
        seen = self.subdomains.setdefault(domain, set())
        seen.add(sub)
        if len(seen) >= self.threshold and domain not in self.flagged:
            self.flagged[domain] = self.queries[domain]


def _traced_peak(feed) -> int:
    tracemalloc.start()
    try:
        feed()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def domain_bench(max_names: int = 1_000_000) -> dict:
    """Speed, memory and detection delay of the per-domain detector against the dict of sets."""
    from vigil.tasks.dns_exfil.benign import load_benign
    from vigil.tasks.dns_exfil.capture import load_captures
    from vigil.tasks.dns_exfil.domains import DomainDetector, Thresholds, benign_day, split_name

    benign = load_benign()
    day_names, day_times = benign_day(list(benign.name), [split_name(n)[0] for n in benign.name], seed=1)
    started = time.perf_counter()
    detector = DomainDetector()
    benign_alerts = detector.observe(day_names, day_times)
    detector_rate = len(day_names) / (time.perf_counter() - started)
    started = time.perf_counter()
    DictOfSets().observe(day_names, day_times)
    base_rate = len(day_names) / (time.perf_counter() - started)
    print(
        f"domain detector on the benign day:     {detector_rate:>10,.0f} names/s = {detector_rate / base_rate:.2f} x dict of sets ({base_rate:,.0f}/s); {len(benign_alerts)} benign domains flagged"
    )
    check_target(
        "DNS per-domain detector, raw names", f"{detector_rate:,.0f} names/s", ">= 30,000/s", detector_rate >= 30_000
    )

    # how close the benign day comes to the rules: its largest counters, and whose
    quiet = DomainDetector(thresholds=Thresholds(fast_min_names=10**9, slow_min_minutes=10**9))
    top_bits, top_minutes = (0.0, ""), (0, "")
    for name, at in zip(day_names, day_times):
        domain, sub, eight_bit = split_name(name)
        quiet.observe_one(domain, sub, float(at), eight_bit)
        entry = quiet.entries[domain]
        top_bits = max(top_bits, (entry.fast_bits, domain))
        top_minutes = max(top_minutes, (entry.slow_minutes, domain))
    rules = Thresholds()
    print(
        f"benign day's largest counters: {top_bits[0]:,.0f} bits in 60 s ({top_bits[1]}; fast rule "
        f"{rules.fast_min_bits:,.0f}), {top_minutes[0]} active minutes in an hour ({top_minutes[1]}; slow rule "
        f"{rules.slow_min_minutes})"
    )

    # the dict-of-sets baseline at its smallest threshold with no alarm on the same benign day
    most = 0
    window, counts = -1, {}
    for name, at in zip(day_names, day_times):
        if int(at // 60) != window:
            window, counts = int(at // 60), {}
        domain, sub, _ = split_name(name)
        counts.setdefault(domain, set()).add(sub)
        most = max(most, len(counts[domain]))
    threshold = most + 1
    captures = load_captures()
    delays = {}
    for tool in sorted(captures.tool.unique()):
        rows = captures[captures.tool == tool].sort_values("time", kind="stable")
        names = [q.replace("tun.vigil-test.net", f"{tool}-relay.com") for q in rows.qname]
        alerts = DomainDetector().observe(names, list(rows.time))
        base = DictOfSets(threshold)
        base.observe(names, list(rows.time))
        ours = alerts[0]["queries"] if alerts else None
        theirs = base.flagged.get(f"{tool}-relay.com")
        delays[tool] = {"queries": len(names), "detector": ours, "dict_of_sets": theirs}
        ratio = f"{ours / theirs:.2f} x" if ours and theirs else "baseline never flags it" if ours else "-"
        print(
            f"delay {tool:<22} {len(names):>5} queries: flagged at query {ours}, dict of sets (>= {threshold} unique/60 s) at {theirs}: {ratio}"
        )

    # low and slow: one 8-character base32 label a minute for 6 hours (simulated times)
    import base64
    import random

    rng = random.Random(3)
    slow = [f"{base64.b32encode(rng.randbytes(5)).decode().lower()}.s.quiet-updates.org" for _ in range(360)]
    slow_times = [minute * 60 + rng.uniform(0, 20) for minute in range(360)]
    alerts = DomainDetector().observe(slow, slow_times)
    base = DictOfSets(threshold)
    base.observe(slow, slow_times)
    ours = alerts[0]["queries"] if alerts else None
    delays["low-and-slow (1 label/min)"] = {
        "queries": 360,
        "detector": ours,
        "dict_of_sets": base.flagged.get("quiet-updates.org"),
    }
    print(
        f"delay low-and-slow, 1 label/min       360 queries: flagged at query {ours} "
        f"({alerts[0]['at'] / 3600:.2f} h) , dict of sets: "
        f"{'never in 6 h' if 'quiet-updates.org' not in base.flagged else base.flagged['quiet-updates.org']}"
    )

    memory = {}
    for n in (10_000, 100_000, 1_000_000):
        if n > max_names:
            break
        pairs = [(f"site{i % 100_000}.com", f"host{i}x{i * 7919 % 100_003}") for i in range(n)]

        def feed_detector(pairs=pairs, n=n):
            d = DomainDetector()
            for i, (domain, sub) in enumerate(pairs):
                d.observe_one(domain, sub, 50.0 * i / n)  # all in one 60 s window: the dict of sets' worst case

        def feed_sets(pairs=pairs):
            b = DictOfSets()
            for domain, sub in pairs:
                b.observe_one(domain, sub)

        ours, theirs = _traced_peak(feed_detector), _traced_peak(feed_sets)
        memory[n] = {"detector_bytes": ours, "dict_of_sets_bytes": theirs}
        print(
            f"memory, {n:>9,} distinct names: detector {ours / 2**20:7.1f} MiB, dict of sets {theirs / 2**20:7.1f} MiB = {ours / theirs:.3f} x"
        )
    return {
        "detector_names_per_s": detector_rate,
        "dict_of_sets_names_per_s": base_rate,
        "delays": delays,
        "memory": memory,
        "baseline_threshold": threshold,
        "benign_alerts": len(benign_alerts),
    }


def _window_stamps(
    servers: str, topic: str, group: str, store, static, consumer: str, stream_info: dict | None = None, **options
) -> list[float]:
    """The stream's window processor as a consumer of ``group`` (never retraining: a tiny delta and
    no floor, so only the steady path is timed) until ``options`` stop it (``max_windows``, the topic
    idle): the monotonic time of each recorded window."""
    from vigil.drift import RetrainPolicy
    from vigil.streaming.consumer import WindowedConsumer
    from vigil.streaming.results import ResultsStore
    from vigil.tasks.dns_exfil.stream import DnsWindowProcessor

    stamps: list[float] = []

    def on_window(_record) -> None:
        stamps.append(time.monotonic())

    processor = DnsWindowProcessor(store, static, consumer, RetrainPolicy(delta=1e-12, f1_floor=0.0), stream_info)
    results = ResultsStore(Path(tempfile.mkdtemp(prefix="vigil-bench-dns-")) / "r.sqlite")
    WindowedConsumer(servers, topic, group, processor, results, on_window=on_window, **options).run()
    return stamps


def _consume(servers: str, topic: str, store, static, windows: int) -> tuple[float, int]:
    stamps = _window_stamps(
        servers, topic, f"bench-{topic}", store, static, f"bench-{topic}", idle_timeout_s=5, max_windows=windows
    )
    if len(stamps) < 2:
        raise RuntimeError(f"only {len(stamps)} windows came back from {topic}")
    return (len(stamps) - 1) * 1000 / (stamps[-1] - stamps[0]), len(stamps)


def _group_member(servers: str, topic: str, group: str, models_dir: str, name: str, out: str) -> None:
    """One consumer of a group, in a process of its own (spawned: the parent's OpenMP threads are not
    forked), over its share of the partitions until the topic goes idle; its window times go to
    ``out`` as JSON. Its heartbeat file (``<group>.<name>``) says when it holds its partitions."""
    from vigil.artifacts import ArtifactStore

    store = ArtifactStore(Path(models_dir))
    stamps = _window_stamps(
        servers,
        topic,
        group,
        store,
        store.load("dns_exfil"),
        f"{group}.{name}",
        idle_timeout_s=4,
        stream_info={"group": group, "topic": topic},
    )
    Path(out).write_text(json.dumps(stamps))


def _group_pass(servers: str, topic: str, models_dir: Path, messages: list[bytes], members: int = 2) -> dict:
    """Query names keyed by registered domain (as ``vigil dns produce`` keys them) through a group of
    ``members`` consumer processes, one partition each: the rate while all of them are working, from
    the last one's first window to the first one's last (their windows in between, counted)."""
    import multiprocessing

    from vigil.streaming.kafka_io import ensure_topic, produce
    from vigil.tasks import get_task
    from vigil.tasks.dns_exfil import STREAMS_FOLDER

    group = f"group-{topic}"
    folder = Path(tempfile.mkdtemp(prefix="vigil-bench-dns-group-"))
    ensure_topic(servers, topic, members)
    context = multiprocessing.get_context("spawn")
    outs = [folder / f"member-{k}.json" for k in range(members)]
    processes = [
        context.Process(target=_group_member, args=(servers, topic, group, str(models_dir), f"m{k}", str(out)))
        for k, out in enumerate(outs)
    ]
    for process in processes:
        process.start()
    statuses = [models_dir / STREAMS_FOLDER / f"{group}.m{k}.json" for k in range(members)]
    deadline = time.monotonic() + 120
    while not all(_holds_one_partition(path) for path in statuses):  # the group settled: then the names come
        if time.monotonic() > deadline or not all(process.is_alive() for process in processes):
            for process in processes:
                process.kill()
            raise RuntimeError(f"the {members} consumers of {topic} did not each get a partition")
        time.sleep(0.2)
    produce(servers, topic, messages, key_of=get_task("dns_exfil").message_key)
    for process in processes:
        process.join(timeout=300)
    stamps = [json.loads(out.read_text()) for out in outs]
    shares = [len(member) * 1000 for member in stamps]
    if any(len(member) < 2 for member in stamps):
        raise RuntimeError(f"a consumer of {topic} recorded fewer than 2 windows: {[len(m) for m in stamps]}")
    start, end = max(member[0] for member in stamps), min(member[-1] for member in stamps)
    inside = sum(start < stamp <= end for member in stamps for stamp in member)
    rate = inside * 1000 / (end - start) if end > start else float("nan")
    return {"rate": rate, "windows": inside, "shares": shares}


def _holds_one_partition(status: Path) -> bool:
    try:
        return len(json.loads(status.read_text()).get("assigned") or []) == 1
    except (OSError, ValueError):
        return False


def _median_pass(runs: list[tuple[float, int]]) -> tuple[float, int]:
    """The median pass by rate (the lower middle one of an even number): on a shared 2-core host one
    pass's rate moves by a third from one minute to the next."""
    return sorted(runs)[(len(runs) - 1) // 2]


def _cpu_per_event(run, events: int, repeats: int = 15) -> float:
    """Microseconds of the calling thread's CPU per event, the least over ``repeats`` calls of ``run``:
    what the code costs, whatever else the shared cores are doing (wall-clock rates move with the
    load). The thread's, not the process's: LightGBM's second OpenMP thread shares each scoring and
    then spins idle for ~10 ms, which the process's CPU time would add to whatever ran next."""
    spent = []
    for _ in range(repeats):
        started = time.thread_time()
        run()
        spent.append(time.thread_time() - started)
    return min(spent) * 1e6 / events


def processor_costs(store, static, names, row_messages, query_messages) -> dict:
    """The DNS window processor's own CPU per event on one window of 1,000, against one model's
    ``predict_proba`` on the same window's rows (the base)."""
    import pandas as pd

    from vigil.drift import RetrainPolicy
    from vigil.tasks.dns_exfil.domains import DomainDetector, split_name
    from vigil.tasks.dns_exfil.fast_features import cic_matrix_and_split
    from vigil.tasks.dns_exfil.features import FEATURE_COLUMNS
    from vigil.tasks.dns_exfil.model import predict_proba
    from vigil.tasks.dns_exfil.stream import DnsWindowProcessor

    processor = DnsWindowProcessor(store, static, "bench-cpu", RetrainPolicy(delta=1e-12, f1_floor=0.0))
    processor.restore(None)
    rows = [processor.parse(m) for m in row_messages[:1000]]
    queries = [processor.parse(m) for m in query_messages[:1000]]
    features = pd.DataFrame([row for row, *_ in rows], columns=FEATURE_COLUMNS, dtype=float)
    split = [split_name(n) for n in names[:1000]]

    def detector():
        domains = DomainDetector()
        for domain, sub, eight_bit in split:
            domains.observe_one(domain, sub, 0.0, eight_bit)

    costs = {
        "predict_proba (base)": lambda: predict_proba(static.model, features),
        "parse a JSON CIC row": lambda: [processor.parse(m) for m in row_messages[:1000]],
        "parse CIC rows, a window": lambda: processor.parse_batch(row_messages[:1000]),  # the consumer's path
        "parse a query message": lambda: [processor.parse(m) for m in query_messages[:1000]],
        "features of the names": lambda: cic_matrix_and_split(names[:1000]),
        "per-domain detector": detector,
        "process a window of rows": lambda: processor.process(rows),
        "process a window of names": lambda: processor.process(queries),
    }
    figures = {label: _cpu_per_event(run, 1000) for label, run in costs.items()}
    base = figures["predict_proba (base)"]
    for label, us in figures.items():
        print(f"CPU per event, {label:<26} {us:7.2f} us = {us / base:5.2f} x base")
    return figures


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.dns", description=__doc__.split("\n")[0])
    parser.add_argument("--windows", type=int, default=20)
    parser.add_argument("--bootstrap-servers")
    parser.add_argument("--max-names", type=int, default=1_000_000, help="largest distinct-name count for memory")
    parser.add_argument("--no-kafka", action="store_true", help="the per-domain detector's figures only")
    parser.add_argument(
        "--group-passes", type=int, default=1, help="passes of query names through a group of 2 consumer processes"
    )
    parser.add_argument(
        "--passes", type=int, default=3, help="passes of each stream through Kafka; the median is the figure"
    )
    args = parser.parse_args(argv)
    domains = domain_bench(args.max_names)
    if args.no_kafka:
        return {"domains": domains}

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
        passes: dict[str, list[tuple[float, int]]] = {"rows": [], "queries": []}
        for number in range(args.passes):  # the kinds alternate, so a slow spell of the host hits both
            for label, messages in (("rows", row_messages), ("queries", query_messages)):
                topic = f"bench-dns-{label}-{suffix}-{number}"
                ensure_topic(servers, topic, 1)
                produce(servers, topic, messages)
                passes[label].append(_consume(servers, topic, store, static, args.windows))
        results = {label: _median_pass(runs) for label, runs in passes.items()}
        group_names, _ = QueryGenerator(seed=6).queries(stream_phases(1)[0], 2 * n)  # fresh names: none seen before
        group_messages = [json.dumps({"query": q}).encode() for q in group_names]
        group_runs = [
            _group_pass(servers, f"bench-dns-group-{suffix}-{number}", settings.models_dir, group_messages)
            for number in range(args.group_passes)
        ]
    finally:
        if broker is not None:
            broker.stop()

    cpu = processor_costs(store, static, names, row_messages, query_messages)
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
        spread = ", ".join(f"{r / 1000:,.1f}k" for r, _ in passes[label])
        print(
            f"kafka {label:<8} via {where:<14} {rate:>10,.0f} events/s  = {rate / bare_rate:.3f} x base "
            f"({windows} windows; parse, 2 models, SQLite, commit; median of {len(passes[label])} passes: {spread})"
        )
    group = sorted(group_runs, key=lambda run: run["rate"])[(len(group_runs) - 1) // 2] if group_runs else None
    if group is not None:
        spread = ", ".join(f"{run['rate'] / 1000:,.1f}k" for run in group_runs)
        print(
            f"kafka queries, group of 2 consumer processes (2 partitions, keyed by domain) {group['rate']:>10,.0f} events/s"
            f" = {group['rate'] / results['queries'][0]:.2f} x one consumer ({group['windows']} windows while both"
            f" worked; names per consumer {', '.join(f'{share:,}' for share in group['shares'])};"
            f" median of {len(group_runs)} passes: {spread})"
        )
    for label, what, floor in (("rows", "CIC feature rows", 50_000), ("queries", "raw query names", 30_000)):
        rate = results[label][0]
        check_target(f"DNS stream through Kafka, {what}", f"{rate:,.0f} events/s", f">= {floor:,}/s", rate >= floor)
    print(
        f"retrain on 3 windows: {retrain_s * 1000:,.0f} ms = {retrain_s / score_window_s:,.0f} x scoring one window "
        f"({score_window_s * 1000:.1f} ms)"
    )
    return {
        "domains": domains,
        "bare_rows_per_s": bare_rate,
        "kafka_rows_per_s": results["rows"][0],
        "kafka_queries_per_s": results["queries"][0],
        "kafka_passes_per_s": {label: [rate for rate, _ in runs] for label, runs in passes.items()},
        "kafka_group_queries_per_s": [run["rate"] for run in group_runs],
        "retrain_s": retrain_s,
        "score_window_s": score_window_s,
        "cpu_us_per_event": cpu,
    }


if __name__ == "__main__":
    main()
