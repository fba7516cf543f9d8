"""A Kafka consumer that works in windows of exactly N accepted messages, with manual commits.

How windows are formed: a consumer collects the messages of the partitions assigned to it, in the
order it receives them, until it holds ``window_size`` accepted messages. Messages that cannot be
parsed are *rejected* (recorded with topic, partition, offset and reason, not counted, committed with
the window they fall in; whatever ``parse`` raises is a rejection, never fatal; each is also written to
the results store and counted at once, after the poll that read it, so a stream of nothing but
unreadable messages reports them although no window completes); control messages
(the CSV header of the raw-line format) are skipped. A window therefore spans, per partition, a
contiguous offset range ``[first, last]``; the window is scored, recorded in SQLite (see
:mod:`vigil.streaming.results`), and only then are ``last + 1`` offsets committed to Kafka. The SQLite
transaction runs in a writer thread while the next window is read (one window in flight at most,
finished before a rebalance, a write of rejections or the end), so that its fsync is not waited for.

With two consumers of one group on a two-partition topic, each gets one partition and forms its own
windows from it; window indexes are numbered in the order windows are recorded in the shared results
file. On a rebalance the partial window is dropped (it was never committed) and whoever gets the
partition re-reads it from the committed position, so no message is lost or counted twice. A
consumer killed mid-window likewise restarts from the last committed window boundary.
"""

from __future__ import annotations

import logging
import signal
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from vigil.heap import collector_paused, freeze_startup_heap
from vigil.streaming.kafka_io import consumer_config
from vigil.streaming.results import ResultsStore, dump_checkpoint
from vigil.windows import RejectedMessage, WindowProcessor, safe_name

log = logging.getLogger(__name__)

MAX_REASON = 500  # characters of a rejection's reason that are kept
HEARTBEAT_EVERY_S = 2.0  # between polls, the processor's heartbeat is refreshed this often
# After a window, the heartbeat is refreshed when the last one is this old: at 30+ windows a second a
# heartbeat (a status file, a lease renewal) per window cost 1-2 ms of each; the one at exit stays.
WINDOW_HEARTBEAT_GAP_S = 1.0

__all__ = ["RejectedMessage", "WindowProcessor", "WindowedConsumer", "StreamStats", "safe_name", "parse_offsets"]


@dataclass
class StreamStats:
    """What a run did: windows recorded (and their indexes), messages in them, messages rejected, and
    the accepted messages of the last, incomplete window, left uncommitted."""

    windows: int = 0
    messages: int = 0
    rejected: int = 0
    left_in_partial_window: int = 0
    window_indexes: list = field(default_factory=list)


@dataclass
class _RecordingWindow:
    """A closed window whose results transaction runs in the writer thread (its checkpoint already
    dumped); its offsets go to Kafka once that transaction is committed."""

    written: Future  # the window's index in the results file
    offsets: list  # TopicPartition of each partition's next offset
    record: dict
    messages: int


def run_key_for(bootstrap_servers: str, topic: str, group: str) -> str:
    return f"{bootstrap_servers}|{topic}|{group}"


class WindowedConsumer:
    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        group: str,
        processor: WindowProcessor,
        results: ResultsStore,
        consumer_name: str = "main",
        window_size: int = 1000,
        idle_timeout_s: float | None = None,
        max_windows: int | None = None,
        on_window: Callable[[dict], None] | None = None,
        config_overrides: dict | None = None,
        on_reject: Callable[[dict], None] | None = None,
    ):
        self.bootstrap_servers, self.topic, self.group = bootstrap_servers, topic, group
        self.processor, self.results = processor, results
        self.consumer_name = consumer_name
        self.window_size = window_size
        self.idle_timeout_s = idle_timeout_s
        self.max_windows = max_windows
        self.on_window = on_window
        self.on_reject = on_reject
        self.config_overrides = config_overrides or {}
        self.run_key = run_key_for(bootstrap_servers, topic, group)
        self.stats = StreamStats()
        self.assigned: list[int] = []
        self._stop = False
        self._callback_error: Exception | None = None
        self._last_heartbeat = 0.0  # time.monotonic() of the last heartbeat of the main loop or a window
        self._recording: _RecordingWindow | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._reset_window()

    def _reset_window(self) -> None:
        self.rows: list = []
        self.rejected: list[dict] = []
        self._unreported = 0  # rejections of this window not yet written to the results store
        self.span: dict[int, list[int]] = {}

    def stop(self, *_args) -> None:
        self._stop = True

    # -- rebalance callbacks -----------------------------------------------------------------------
    def _on_assign(self, consumer, partitions) -> None:
        try:
            self._assign(consumer, partitions)
        except Exception as exc:  # librdkafka would swallow it into an opaque SystemError
            self._callback_error = exc
            raise

    def _assign(self, consumer, partitions) -> None:
        self._finish_recording(consumer)
        recorded = self.results.positions(self.run_key)
        committed = {tp.partition: tp.offset for tp in consumer.committed(partitions, timeout=30)}
        for tp in partitions:
            # The results file is written before Kafka's commit: when it is ahead, Kafka missed the
            # commit of a window that is already recorded, and re-reading it would count it twice.
            if tp.partition in recorded and recorded[tp.partition] > committed.get(tp.partition, -1):
                tp.offset = recorded[tp.partition]
        consumer.assign(partitions)
        self.assigned = sorted(tp.partition for tp in partitions)
        self.processor.heartbeat("running", assigned=self.assigned)

    def _on_revoke(self, consumer, partitions) -> None:
        try:
            self._revoke(consumer, partitions)
        except Exception as exc:
            self._callback_error = exc
            raise

    def _revoke(self, consumer, partitions) -> None:
        # Eager rebalancing revokes everything: the window being recorded is finished (results, then
        # Kafka) while the partitions are still ours; the partial window was never committed, so the
        # next owner of each partition re-reads it from the last window boundary.
        self._finish_recording(consumer)
        self._reset_window()
        self.assigned = []
        consumer.unassign()

    # -- main loop ---------------------------------------------------------------------------------
    def run(self) -> StreamStats:
        from confluent_kafka import Consumer, KafkaError

        self.processor.restore(self.results.checkpoint(self.run_key, self.consumer_name))
        freeze_startup_heap()  # the models and modules just loaded: no collection scans them per window
        consumer = Consumer(consumer_config(self.bootstrap_servers, self.group, **self.config_overrides))
        previous_handlers = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                previous_handlers[sig] = signal.signal(sig, self.stop)
            except ValueError:  # not the main thread (e.g. a benchmark's helper thread)
                pass
        consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        self.processor.heartbeat("running", assigned=[])
        last_message_at = time.monotonic()
        self._last_heartbeat = 0.0
        try:
            while not self._stop:
                wanted = max(1, self.window_size - len(self.rows))
                try:
                    messages = consumer.consume(num_messages=min(wanted, 1000), timeout=0.5)
                except SystemError:
                    if self._callback_error is not None:
                        raise self._callback_error from None  # the delivery callback's own error
                    raise
                self._finish_recording(consumer, wait=False)
                now = time.monotonic()
                if now - self._last_heartbeat > HEARTBEAT_EVERY_S:
                    self.processor.heartbeat("running", assigned=self.assigned, windows=self.stats.windows)
                    self._last_heartbeat = now
                if not self.assigned:
                    last_message_at = now  # joining the group is not idleness
                if not messages:
                    if self.idle_timeout_s is not None and now - last_message_at > self.idle_timeout_s:
                        break
                    continue
                last_message_at = now
                with collector_paused():
                    self._handle(consumer, messages, KafkaError._PARTITION_EOF)
        finally:
            try:
                self._finish_recording(consumer)
            finally:
                if self._writer is not None:
                    self._writer.shutdown(wait=True)
                    self._writer = None
                self.stats.left_in_partial_window = len(self.rows)
                self.processor.heartbeat("stopped", assigned=[], windows=self.stats.windows)
                consumer.close()
                for sig, handler in previous_handlers.items():
                    signal.signal(sig, handler)
        return self.stats

    def _handle(self, consumer, messages: list, partition_eof: int) -> None:
        """One consumed batch (up to a window's messages): parsed, and each full window closed.

        The caller pauses the cyclic collector for it: the batch builds thousands of objects that
        reference counting frees (parsed messages, rows, a window's frames), and at the default
        thresholds the collector walked them, and every survivor of earlier windows, about seven
        times a window (a sixth of a window's time, in the stream benchmarks); it runs once after
        the batch instead. After the first window the heap is frozen again: what a
        processor loads when its first window comes (compiled kernels, caches) is start-up too."""
        readable = [message for message in messages if message.error() is None]
        outcomes = iter(self._parsed([message.value() for message in readable]))
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != partition_eof:
                    self.processor.heartbeat("running", assigned=self.assigned, last_error=str(error))
                continue
            self._take(message, next(outcomes))
            if len(self.rows) == self.window_size:
                self._report_rejected()
                first = self.stats.windows == 0 and self._recording is None
                self._close_window(consumer)
                if first:
                    freeze_startup_heap()
                closed = self.stats.windows + (self._recording is not None)
                if self.max_windows is not None and closed >= self.max_windows:
                    self._finish_recording(consumer)
                    self._stop = True
                    break
        self._report_rejected()

    def _report_rejected(self) -> None:
        """Write and count the rejections read since the last report (one transaction per poll)."""
        fresh = self.rejected[len(self.rejected) - self._unreported :] if self._unreported else []
        if not fresh:
            return
        if self._recording is not None:
            self._recording.written.result()  # one transaction at a time on the results file
        self.results.record_rejected(self.run_key, fresh)
        self.stats.rejected += len(fresh)
        self._unreported = 0
        if self.on_reject:
            for rejection in fresh:
                self.on_reject(rejection)

    def _parsed(self, values: list) -> list:
        """Each value's parse: a row, None for a control message, or the exception its parse raised.
        A processor's ``parse_batch`` reads them together; a batch is never more than the current
        window still needs, so no window closes before the last of them is parsed."""
        parse_batch = getattr(self.processor, "parse_batch", None)
        if parse_batch is not None:
            try:
                outcomes = parse_batch(values)
            except Exception:  # a fault of the batch path itself: each message is parsed alone instead
                log.exception("parse_batch failed on %d messages; parsing them one at a time", len(values))
            else:
                if len(outcomes) == len(values):
                    return outcomes
                log.error(
                    "parse_batch gave %d outcomes for %d messages; parsing them one at a time",
                    len(outcomes),
                    len(values),
                )
        outcomes = []
        for value in values:
            try:
                outcomes.append(self.processor.parse(value))
            except Exception as exc:  # a poison message must not stop the stream: every parse failure is recorded
                outcomes.append(exc)
        return outcomes

    def _take(self, message, outcome) -> None:
        """One readable message and its parse (:meth:`_parsed`): a row of the window, a rejection, or
        nothing (a control message); its offset is within the window's span either way."""
        partition, offset = message.partition(), message.offset()
        first_last = self.span.get(partition)
        if first_last is None:
            self.span[partition] = [offset, offset]
        else:
            first_last[1] = offset
        if isinstance(outcome, Exception):
            reason = (
                str(outcome)
                if isinstance(outcome, RejectedMessage)
                else f"cannot parse ({type(outcome).__name__}): {outcome}"
            )
            self.rejected.append(
                {
                    "topic": message.topic(),
                    "partition": partition,
                    "offset": offset,
                    "reason": reason[:MAX_REASON],
                    "excerpt": (message.value() or b"")[:120].decode("utf-8", errors="replace"),
                }
            )
            self._unreported += 1
        elif outcome is not None:
            self.rows.append(outcome)

    def _close_window(self, consumer) -> None:
        """Score the window and hand its results transaction to the writer thread, after the window
        before it is finished (recorded, then committed to Kafka): at most one window is in flight,
        and Kafka's offsets never pass what the results file holds."""
        from confluent_kafka import TopicPartition

        started = time.perf_counter()
        record, state = self.processor.process(self.rows)
        offsets = {str(p): span for p, span in sorted(self.span.items())}
        record.update(
            {
                "offsets": _offsets_text(offsets),
                "n_messages": len(self.rows),
                "n_rejected": len(self.rejected),
                "seconds": time.perf_counter() - started,
            }
        )
        next_offsets = {p: span[1] + 1 for p, span in self.span.items()}
        blob = dump_checkpoint(state)  # here: the processor's state may change once the next window is read
        self._finish_recording(consumer)
        if self._writer is None:
            # One window's results transaction (its fsync mostly waits on the disk) runs in this
            # thread while the next window is read; windows are still recorded, then committed, in turn.
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigil-results")
        written = self._writer.submit(
            self.results.write_window, self.run_key, self.consumer_name, record, self.rejected, next_offsets, blob
        )
        topic_offsets = [TopicPartition(self.topic, p, o) for p, o in next_offsets.items()]
        self._recording = _RecordingWindow(written, topic_offsets, record, len(self.rows))
        self._reset_window()

    def _finish_recording(self, consumer, wait: bool = True) -> None:
        """The window being recorded: once its results transaction is committed (at once, or only if
        it is already with ``wait=False``), its offsets are committed to Kafka and it is counted."""
        recording = self._recording
        if recording is None or (not wait and not recording.written.done()):
            return
        self._recording = None
        index = recording.written.result()  # what the transaction raised, if it failed
        self._commit(consumer, recording.offsets)
        self.stats.windows += 1
        self.stats.messages += recording.messages
        self.stats.window_indexes.append(index)
        recording.record["window_index"] = index
        now = time.monotonic()
        if now - self._last_heartbeat >= WINDOW_HEARTBEAT_GAP_S:
            self.processor.heartbeat("running", assigned=self.assigned, windows=self.stats.windows)
            self._last_heartbeat = now
        if self.on_window:
            self.on_window(recording.record)

    def _commit(self, consumer, offsets) -> None:
        consumer.commit(offsets=offsets, asynchronous=False)


def _offsets_text(offsets: dict[str, list[int]]) -> str:
    return ";".join(f"p{p}:{a}-{b}" for p, (a, b) in offsets.items())


def parse_offsets(text: str) -> dict[int, tuple[int, int]]:
    """``"p0:0-999;p1:0-10"`` -> ``{0: (0, 999), 1: (0, 10)}``."""
    spans = {}
    for part in text.split(";"):
        partition, span = part[1:].split(":")
        first, last = span.split("-")
        spans[int(partition)] = (int(first), int(last))
    return spans
