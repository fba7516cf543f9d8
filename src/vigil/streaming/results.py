"""Per-window results in SQLite (the source of truth), exported as CSV, plotted, and summarised.

Any task's windows: the columns are the consumer's (offsets, counts, timing), the static-vs-dynamic
comparison every drift-retraining stream reports (F1, accuracy, ROC AUC of each, the dynamic version,
retrains and why), and the fields a task's processor declares (``window_columns``); what a window
flags goes to the ``alerts`` table (a key, a kind and the task's own detail as JSON).

One transaction per window writes the window's row, its rejected messages (topic, partition, offset,
reason, the value's first bytes), the next offset of every
partition it covered, and the consumer's checkpoint (policy state, recent windows, dynamic model
version: plain data only, written by :func:`vigil.safe_pickle.dumps_data` and read back by
:func:`vigil.safe_pickle.loads_data`, so a results file cannot make a consumer run code; one that is
not plain data, such as a checkpoint pickled by an older Vigil, is logged and the consumer starts its
model state afresh). Only after that commit does the consumer commit the offsets to Kafka; on start it seeks to
the positions recorded here when they are ahead of Kafka's, so a crash between the two commits cannot
count a window twice, and a crash before the first loses nothing (the window was never committed).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import sqlite3
import time
from pathlib import Path
from typing import Any

from vigil.safe_pickle import UnsafePickle, dumps_data, loads_data
from vigil.windows import RETRAIN_FAILED

log = logging.getLogger(__name__)

WINDOW_COLUMNS = [
    "run_key",
    "window_index",
    "consumer",
    "offsets",
    "n_messages",
    "n_rejected",
    "n_attacks",
    "static_f1",
    "static_accuracy",
    "static_roc_auc",
    "dynamic_f1",
    "dynamic_accuracy",
    "dynamic_roc_auc",
    "dynamic_version",
    "retrained",
    "reason",
    "seconds",
    "recorded_at",
    "n_alerts",
]
ALERT_COLUMNS = ["run_key", "window_index", "consumer", "key", "kind", "at", "detail"]
REJECTED_COLUMNS = ["run_key", "topic", "partition", "offset", "reason", "excerpt", "window_index"]

# The most elements any one list, dict or array of a checkpoint may hold when it is read back (a
# recent window's feature matrix: window size x features, 14,000 values at the default 1,000).
CHECKPOINT_MAX_ITEMS = 1 << 24


def dump_checkpoint(state: Any) -> bytes:
    """A processor's checkpoint as bytes; TypeError when it holds more than plain data (numbers,
    strings, bytes, lists, tuples, dicts, sets, numeric numpy arrays), which could not be read back."""
    try:
        return dumps_data(state)
    except UnsafePickle as exc:
        raise TypeError(f"a window processor's checkpoint must be plain data: {exc}") from None


def load_checkpoint(blob: bytes) -> Any:
    """A checkpoint :func:`dump_checkpoint` wrote; :class:`~vigil.safe_pickle.UnsafePickle` for any
    other bytes (a pickle of classes, as older releases wrote, is refused before anything is built)."""
    return loads_data(bytes(blob), max_items=CHECKPOINT_MAX_ITEMS)


SCHEMA = """
CREATE TABLE IF NOT EXISTS windows (
    run_key TEXT NOT NULL, window_index INTEGER NOT NULL, consumer TEXT NOT NULL,
    offsets TEXT NOT NULL, n_messages INTEGER, n_rejected INTEGER, n_attacks INTEGER,
    static_f1 REAL, static_accuracy REAL, static_roc_auc REAL,
    dynamic_f1 REAL, dynamic_accuracy REAL, dynamic_roc_auc REAL,
    dynamic_version TEXT, retrained INTEGER, reason TEXT, seconds REAL, recorded_at REAL,
    PRIMARY KEY (run_key, window_index), UNIQUE (run_key, offsets));
CREATE TABLE IF NOT EXISTS rejected (
    run_key TEXT NOT NULL, partition INTEGER NOT NULL, "offset" INTEGER NOT NULL,
    reason TEXT, excerpt TEXT, window_index INTEGER, topic TEXT,
    PRIMARY KEY (run_key, partition, "offset"));
CREATE TABLE IF NOT EXISTS alerts (
    run_key TEXT NOT NULL, window_index INTEGER NOT NULL, consumer TEXT NOT NULL,
    key TEXT NOT NULL, kind TEXT NOT NULL, at REAL, detail TEXT,
    PRIMARY KEY (run_key, window_index, key, kind));
CREATE TABLE IF NOT EXISTS positions (
    run_key TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (run_key, partition));
CREATE TABLE IF NOT EXISTS checkpoints (
    run_key TEXT NOT NULL, consumer TEXT NOT NULL, state BLOB NOT NULL, updated_at REAL,
    PRIMARY KEY (run_key, consumer));
"""


class ResultsStore:
    """``extra_columns`` (``{name: SQL type}``): window-record fields a task's processor declares
    (its ``window_columns``) beyond :data:`WINDOW_COLUMNS`, stored, read and exported after them."""

    def __init__(self, path: Path, extra_columns: dict[str, str] | None = None):
        self.path = Path(path)
        extra = {name: kind for name, kind in (extra_columns or {}).items() if name not in WINDOW_COLUMNS}
        self.columns = [*WINDOW_COLUMNS, *extra]
        self._extra_columns = extra
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE) so consumers sharing the
        # file serialise their window commits instead of failing on a lock upgrade.
        # check_same_thread=False: the consumer writes a window's transaction in its writer thread,
        # never while it uses the connection itself (it waits for that write first)
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """Results files written before a column existed get it (empty): the rejected table's
        ``topic``, the windows table's ``n_alerts``."""
        wanted = [("rejected", "topic", "TEXT"), ("windows", "n_alerts", "INTEGER")]
        wanted += [("windows", f'"{name}"', kind) for name, kind in self._extra_columns.items()]
        for table, column, kind in wanted:
            columns = {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}
            if column.strip('"') not in columns:
                try:
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
                except sqlite3.OperationalError as exc:  # another consumer of the same file was first
                    if "duplicate column" not in str(exc):
                        raise

    def close(self) -> None:
        self.db.close()

    # -- reads ------------------------------------------------------------------------------------
    def positions(self, run_key: str) -> dict[int, int]:
        rows = self.db.execute("SELECT partition, next_offset FROM positions WHERE run_key=?", (run_key,))
        return {int(p): int(o) for p, o in rows}

    def checkpoint(self, run_key: str, consumer: str):
        """The consumer's last checkpoint, None when it has none or when what the file holds is not
        a plain-data checkpoint (logged: the consumer then starts its model state afresh and resumes
        from the positions recorded here, and its next window overwrites the checkpoint)."""
        row = self.db.execute(
            "SELECT state FROM checkpoints WHERE run_key=? AND consumer=?", (run_key, consumer)
        ).fetchone()
        if row is None:
            return None
        try:
            return load_checkpoint(row[0])
        except UnsafePickle as exc:
            log.warning(
                "%s: the checkpoint of consumer %r was refused (%s); it was written by an older release or "
                "altered, so this consumer's model state starts afresh from the recorded offsets",
                self.path,
                consumer,
                exc,
            )
            return None

    def _select(self, table: str, columns: list[str], run_key: str | None, order: str) -> list[dict]:
        """Rows of ``table`` as dicts (of one run, or every run), in ``order``."""
        query = "SELECT " + ", ".join(f'"{c}"' for c in columns) + f" FROM {table}"
        args: tuple = ()
        if run_key is not None:
            query += " WHERE run_key=?"
            args = (run_key,)
        return [dict(zip(columns, row)) for row in self.db.execute(f"{query} ORDER BY {order}", args)]

    def windows(self, run_key: str | None = None) -> list[dict]:
        return self._select("windows", self.columns, run_key, "window_index")

    def alerts(self, run_key: str | None = None) -> list[dict]:
        """The alerts windows raised (a task's own kind, e.g. a flagged domain), ``detail`` parsed."""
        rows = self._select("alerts", ALERT_COLUMNS, run_key, "window_index, at")
        for row in rows:
            row["detail"] = json.loads(row["detail"]) if row["detail"] else None
        return rows

    def record_rejected(self, run_key: str, rejected: list[dict]) -> None:
        """Rejections recorded as soon as they are read (window index still unknown), so a stream of
        nothing but unreadable messages is reported although no window completes; the window that
        commits them later fills in its index."""
        if not rejected:
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self._insert_rejected(run_key, rejected, None)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def _insert_rejected(self, run_key: str, rejected: list[dict], index: int | None) -> None:
        self.db.executemany(
            'INSERT INTO rejected (run_key, topic, partition, "offset", reason, excerpt, window_index) '
            'VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_key, partition, "offset") DO UPDATE SET '
            "window_index = COALESCE(window_index, excluded.window_index)",
            [
                (run_key, r.get("topic"), r["partition"], r["offset"], r["reason"], r["excerpt"], index)
                for r in rejected
            ],
        )

    def rejected(self, run_key: str | None = None) -> list[dict]:
        return self._select("rejected", REJECTED_COLUMNS, run_key, 'topic, partition, "offset"')

    # -- the per-window transaction --------------------------------------------------------------
    def record_window(
        self, run_key: str, consumer: str, record: dict, rejected: list[dict], next_offsets: dict[int, int], state
    ) -> int:
        """Write one window atomically; returns its index (the next free one of this run).

        ``record["alerts"]`` (optional): ``[{"key", "kind", "at", "detail"}]``, what the window raised,
        written to the ``alerts`` table in the same transaction."""
        return self.write_window(run_key, consumer, record, rejected, next_offsets, dump_checkpoint(state))

    def write_window(
        self, run_key: str, consumer: str, record: dict, rejected: list[dict], next_offsets: dict[int, int], blob: bytes
    ) -> int:
        """:meth:`record_window` of a checkpoint already dumped by :func:`dump_checkpoint` (so that the
        processor's state is read in its own thread, and only this transaction runs in another)."""
        record = dict(record)
        alerts = record.pop("alerts", None) or []
        record["n_alerts"] = len(alerts)
        self.db.execute("BEGIN IMMEDIATE")
        try:
            index = self.db.execute(
                "SELECT COALESCE(MAX(window_index) + 1, 0) FROM windows WHERE run_key=?", (run_key,)
            ).fetchone()[0]
            row = {
                **record,
                "run_key": run_key,
                "window_index": index,
                "consumer": consumer,
                "recorded_at": time.time(),
            }
            self.db.execute(
                "INSERT INTO windows (" + ", ".join(f'"{c}"' for c in self.columns) + ") "
                "VALUES (" + ", ".join("?" for _ in self.columns) + ")",
                [row.get(c) for c in self.columns],
            )
            self._insert_rejected(run_key, rejected, index)
            self.db.executemany(
                "INSERT OR REPLACE INTO alerts (run_key, window_index, consumer, key, kind, at, detail) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (run_key, index, consumer, str(a["key"]), str(a["kind"]), a.get("at"), json.dumps(a.get("detail")))
                    for a in alerts
                ],
            )
            self.db.executemany(
                "INSERT INTO positions (run_key, partition, next_offset) VALUES (?, ?, ?) "
                "ON CONFLICT (run_key, partition) DO UPDATE SET next_offset = MAX(next_offset, excluded.next_offset)",
                [(run_key, p, o) for p, o in next_offsets.items()],
            )
            self.db.execute(
                "INSERT OR REPLACE INTO checkpoints (run_key, consumer, state, updated_at) VALUES (?, ?, ?, ?)",
                (run_key, consumer, blob, time.time()),
            )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return index

    # -- exports ----------------------------------------------------------------------------------
    def export_csv(self, path: Path, run_key: str | None = None) -> Path:
        rows = self.windows(run_key)
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(rows)
        return path

    def export_rejected_csv(self, path: Path, run_key: str | None = None) -> Path:
        """The rejected messages: topic, partition, offset, the window they were committed with, why."""
        columns = ["topic", "partition", "offset", "window_index", "reason", "excerpt"]
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self.rejected(run_key))
        return path


def plot_windows(
    rows: list[dict], path: Path, title: str = "Static vs dynamic model per window", phases: list[dict] | None = None
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r["window_index"] for r in rows]
    fig, axes = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True)
    for ax, metric in zip(axes, ("f1", "accuracy")):
        ax.plot(x, [r[f"static_{metric}"] for r in rows], "-o", ms=3, color="#4c72b0", label=f"static {metric}")
        ax.plot(x, [r[f"dynamic_{metric}"] for r in rows], "-o", ms=3, color="#dd8452", label=f"dynamic {metric}")
        retrains = [r["window_index"] for r in rows if r["retrained"]]
        for i, w in enumerate(retrains):
            ax.axvline(w, color="#c44e52", ls="--", lw=0.9, label="retrained after this window" if i == 0 else None)
        for phase in phases or []:
            ax.axvspan(
                phase["first_window"] - 0.5,
                phase["last_window"] + 0.5,
                alpha=0.06,
                color="grey" if phase["phase"] in ("base",) else "#8172b2",
            )
            if metric == "f1":
                ax.text(phase["first_window"], 1.02, phase["phase"], fontsize=8, transform=ax.get_xaxis_transform())
        ax.set_ylabel(metric)
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=8, loc="lower left")
    axes[-1].set_xlabel("window (1,000 messages each)")
    axes[0].set_title(title, pad=14)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def summarize(rows: list[dict], margin: float = 0.01) -> dict:
    """Did the dynamic model beat the static one, by how much, on which windows?"""
    if not rows:
        return {"windows": 0, "verdict": "no complete window was processed"}

    def mean(key):
        values = [r[key] for r in rows if r[key] is not None and not math.isnan(r[key])]
        return sum(values) / len(values) if values else math.nan

    better = [r["window_index"] for r in rows if r["dynamic_f1"] > r["static_f1"] + margin]
    worse = [r["window_index"] for r in rows if r["dynamic_f1"] < r["static_f1"] - margin]
    summary = {
        "windows": len(rows),
        "retrains": sum(bool(r["retrained"]) for r in rows),
        "retrain_windows": [r["window_index"] for r in rows if r["retrained"]],
        "retrain_failed_windows": [r["window_index"] for r in rows if RETRAIN_FAILED in (r.get("reason") or "")],
        "static_mean_f1": mean("static_f1"),
        "dynamic_mean_f1": mean("dynamic_f1"),
        "static_mean_accuracy": mean("static_accuracy"),
        "dynamic_mean_accuracy": mean("dynamic_accuracy"),
        "dynamic_better_windows": _ranges(better),
        "dynamic_worse_windows": _ranges(worse),
    }
    gain = summary["dynamic_mean_f1"] - summary["static_mean_f1"]
    summary["mean_f1_gain"] = gain
    if len(better) > len(worse) and gain > 0:
        verdict = (
            f"the dynamic model beat the static one: mean F1 {summary['dynamic_mean_f1']:.3f} vs "
            f"{summary['static_mean_f1']:.3f} (+{gain:.3f}); better by more than {margin} F1 on "
            f"{len(better)} of {len(rows)} windows ({summary['dynamic_better_windows']}), worse on {len(worse)}"
        )
    elif not better and not worse:
        verdict = f"the two models were level (within {margin} F1) on every window"
    else:
        verdict = (
            f"the dynamic model did not beat the static one: mean F1 {summary['dynamic_mean_f1']:.3f} vs "
            f"{summary['static_mean_f1']:.3f}; better on {len(better)} windows, worse on {len(worse)}"
        )
    summary["verdict"] = verdict
    return summary


def _ranges(indexes: list[int]) -> str:
    if not indexes:
        return "none"
    spans, start, previous = [], indexes[0], indexes[0]
    for i in indexes[1:]:
        if i != previous + 1:
            spans.append((start, previous))
            start = i
        previous = i
    spans.append((start, previous))
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans)


def write_summary(summary: dict, path: Path, extra: dict | None = None) -> Path:
    path.write_text(json.dumps({**summary, **(extra or {})}, indent=2, default=str))
    return path
