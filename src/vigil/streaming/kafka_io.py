"""Topics, the producer, and the consumer settings shared by every Kafka client here."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Callable, Iterable, Iterator

from vigil.errors import VigilError

# The logs of librdkafka's idle-connection closes are noise here: the broker closes idle producers.
_QUIET = {"log.connection.close": False}


def consumer_config(bootstrap_servers: str, group_id: str, **overrides) -> dict:
    """Manual commits, start at the earliest offset of a new group, and a short session.

    ``session.timeout.ms`` = 6 s (the smallest a stock Kafka broker accepts) bounds how long a
    killed consumer keeps its partitions, and Tansu answers a JoinGroup after half of it.
    """
    config = {
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
        "max.poll.interval.ms": 300000,
        **_QUIET,
    }
    config.update(overrides)
    return config


def producer_config(bootstrap_servers: str, **overrides) -> dict:
    """Batched (20 ms), acknowledged by all replicas; a keyed message goes to the partition a Java
    client's default partitioner picks (murmur2), so Vigil and other producers of a topic agree."""
    return {
        "bootstrap.servers": bootstrap_servers,
        "linger.ms": 20,
        "acks": "all",
        "partitioner": "murmur2_random",
        **_QUIET,
        **overrides,
    }


BROKER_TIMEOUT_S = 10.0  # how long `vigil <slug> produce | stream` wait for a broker before giving up


def check_broker(bootstrap_servers: str, timeout_s: float = BROKER_TIMEOUT_S) -> None:
    """Fail within ``timeout_s`` with one clear :class:`~vigil.errors.VigilError` when no broker of
    ``bootstrap_servers`` answers a metadata request (librdkafka itself would retry forever)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0, **_QUIET})  # no retry log lines
    try:
        admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise VigilError(
            f"no Kafka broker answered at {bootstrap_servers} within {timeout_s:g} s ({exc.args[0].str()})",
            "check --bootstrap-servers (or VIGIL_KAFKA_BOOTSTRAP_SERVERS), or raise --broker-timeout",
            status=503,
        ) from None


def ensure_topic(bootstrap_servers: str, topic: str, partitions: int = 1, timeout_s: float = 15.0) -> None:
    """Create ``topic`` with ``partitions`` unless it exists already."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap_servers, **_QUIET})
    if topic in admin.list_topics(timeout=timeout_s).topics:
        return
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    try:
        futures[topic].result(timeout=timeout_s)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise


def csv_messages(path: Path, fmt: str = "json", limit: int | None = None) -> Iterator[bytes]:
    """The rows of a CSV as message values.

    ``json``: one JSON object per row (column -> cell text). ``raw-lines``: the assignment's own format,
    each raw CSV line JSON-encoded as a string, the header line first.
    """
    with open(path, newline="", encoding="utf-8") as handle:
        if fmt == "raw-lines":
            for i, line in enumerate(handle):
                if limit is not None and i > limit:
                    break
                yield json.dumps(line.rstrip("\r\n")).encode()
            return
        reader = csv.DictReader(handle)
        for i, row in enumerate(reader):
            if limit is not None and i >= limit:
                break
            yield json.dumps(row).encode()


def produce(
    bootstrap_servers: str,
    topic: str,
    values: Iterable[bytes],
    partitions: int | None = None,
    progress: bool = False,
    total: int | None = None,
    key_of: Callable[[bytes], bytes | None] | None = None,
) -> int:
    """Send ``values`` to ``topic``. ``key_of(value)``: the message's key, where it has one (Kafka sends
    every message of one key to one partition, so one consumer of a group sees them all); a message
    without one goes round-robin over ``partitions`` when that is set, else where the client puts it."""
    from confluent_kafka import Producer

    producer = Producer(producer_config(bootstrap_servers))
    failures: list[str] = []

    def delivered(err, _msg):
        if err is not None:
            failures.append(str(err))

    iterator = values
    if progress:
        from tqdm import tqdm

        iterator = tqdm(values, total=total, desc=f"producing to {topic}", unit="msg")
    count = 0
    for value in iterator:
        key = key_of(value) if key_of is not None else None
        kwargs: dict = {}
        if key is not None:
            kwargs["key"] = key
        elif partitions:
            kwargs["partition"] = count % partitions
        while True:
            try:
                producer.produce(topic, value=value, on_delivery=delivered, **kwargs)
                break
            except BufferError:  # local queue full: let deliveries drain, then retry
                producer.poll(0.1)
        producer.poll(0)
        count += 1
    remaining = producer.flush(30)
    if remaining or failures:
        raise RuntimeError(f"{remaining} messages undelivered, {len(failures)} failed: {failures[:3]}")
    return count


def count_csv_rows(path: Path) -> int:
    with open(path, "rb") as handle:
        return max(0, sum(1 for _ in handle) - 1)
