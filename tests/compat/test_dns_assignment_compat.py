"""The DNS assignment (online_learning_kafka): its consumer reads what Vigil generates, and the embedded
broker creates its topics as asked (compat issue, item 4). Its producer's messages are read by the stream
(tests/test_dns_streaming.py)."""

from __future__ import annotations

import pandas as pd


def test_generated_sld_reads_in_the_assignment_consumer(tmp_path):
    # The assignment's consumer replaces every sld holding a letter by 192, then casts to int.
    from vigil.tasks.dns_exfil.generate import generate

    generate(tmp_path, static_rows=3000, windows_per_phase=1, seed=5)
    for name in ("static_dataset.csv", "stream_dataset.csv"):
        frame = pd.read_csv(tmp_path / name, dtype=str)
        cleaned = frame["sld"].replace(r"(([a-z]+)|([A-Z]+|(0-1)))", 192, regex=True)
        cleaned.astype("int")


def test_embedded_broker_creates_topics_with_the_partitions_asked():
    from confluent_kafka.admin import AdminClient

    from vigil.streaming.broker import EmbeddedBroker

    with EmbeddedBroker(topics={"ml-raw-dns": 1, "two": 2}) as broker:
        topics = AdminClient({"bootstrap.servers": broker.bootstrap_servers}).list_topics(timeout=10).topics
        assert len(topics["ml-raw-dns"].partitions) == 1 and len(topics["two"].partitions) == 2
