"""Any task with a window processor is streamed by the generic stream verbs (issue 14, item 4).

A toy task in a temporary package (its ``stream.py`` imports ``vigil.windows`` and ``vigil.messages``,
never ``vigil.streaming``) with one registry line listing ``vigil.streaming.cli``: ``vigil toy stream``
and ``vigil stream toy`` run it on the embedded broker, with the task's topic and group names, and the
results store keeps the extra column its processor declares.
"""

from __future__ import annotations

import csv
import json
import textwrap

import pytest

from vigil.cli import main
from vigil.tasks import TASKS, TaskSpec, get_task

TOY_TASK = '''
"""A toy streamed task: is a reading above 5?"""

from vigil.tasks.base import Task


class ToyStreamTask(Task):
    name = "toy_stream"
    slug = "toy-stream"
    title = "Toy readings streamed"
    stream_defaults = {"topic": "toy-readings"}

    def window_processor(self, store, consumer_id, policy=None, stream_info=None):
        from toy_stream.stream import ToyWindows

        return ToyWindows(stream_info or {})
'''

TOY_STREAM = '''
"""The toy's windows: written against vigil.windows and vigil.messages only."""

from vigil.messages import json_message
from vigil.windows import RejectedMessage


class ToyWindows:
    window_columns = {"mean_reading": "REAL"}
    alert_noun = "reading"

    def __init__(self, info):
        self.info, self.seen, self.beats = info, 0, []

    def parse(self, value):
        obj = json_message(value)
        try:
            return float(obj["reading"]), int(obj["odd"])
        except (KeyError, ValueError) as exc:
            raise RejectedMessage(f"toy: {exc}") from None

    def restore(self, checkpoint):
        self.seen = (checkpoint or {}).get("seen", 0)

    def process(self, rows):
        self.seen += len(rows)
        right = sum((reading > 5) == bool(odd) for reading, odd in rows) / len(rows)
        alerts = [{"key": str(int(r)), "kind": "reading/high", "at": 0.0, "detail": {}} for r, _ in rows if r > 9]
        record = {"n_attacks": sum(odd for _, odd in rows), "mean_reading": sum(r for r, _ in rows) / len(rows),
                  "dynamic_version": None, "retrained": 0, "reason": "", "alerts": alerts}
        for prefix in ("static", "dynamic"):
            record.update({f"{prefix}_f1": right, f"{prefix}_accuracy": right, f"{prefix}_roc_auc": right})
        return record, {"seen": self.seen}

    def heartbeat(self, state, **fields):
        self.beats.append(state)
'''


@pytest.fixture
def toy_stream_task(tmp_path, monkeypatch):
    package = tmp_path / "plugins" / "toy_stream"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""The toy streamed task."""\n')
    (package / "task.py").write_text(textwrap.dedent(TOY_TASK))
    (package / "stream.py").write_text(textwrap.dedent(TOY_STREAM))
    (package / "cli.py").write_text(
        'import click\n\n\n@click.group(help="Toy readings streamed", no_args_is_help=True)\ndef commands():\n    pass\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path / "plugins"))
    monkeypatch.setitem(
        TASKS, "toy_stream", TaskSpec("toy_stream.task:ToyStreamTask", "toy-stream", ("vigil.streaming.cli",))
    )
    get_task.cache_clear()
    readings = tmp_path / "readings.csv"
    with open(readings, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["reading", "odd"])
        writer.writerows([[i % 11, int(i % 11 > 5)] for i in range(20)])
    yield readings
    get_task.cache_clear()


def test_a_task_with_a_window_processor_is_streamed_by_the_generic_verbs(toy_stream_task, tmp_path, capsys):
    models, results = tmp_path / "models", tmp_path / "results"
    argv = ["--csv", str(toy_stream_task), "--results", str(results), "--window-size", "5", "--idle-timeout", "2"]
    assert main(["--models-dir", str(models), "toy-stream", "stream", *argv]) == 0
    printed = capsys.readouterr().out
    assert "window    3" in printed and "READING 10 (reading/high)" in printed
    with open(results / "windows.csv", newline="") as handle:
        windows = list(csv.DictReader(handle))
    assert len(windows) == 4 and float(windows[0]["mean_reading"]) == 2.0  # readings 0-4
    summary = json.loads((results / "summary.json").read_text())
    assert summary["windows"] == 4 and summary["topic"] == "toy-readings" and summary["group"] == "vigil-toy-stream"
    assert [a["key"] for a in summary["reading_alerts"]] == ["10"]

    assert main(["stream", "--help"]) == 0
    assert "toy-stream" in capsys.readouterr().out.split("Commands:")[1].split()
    again = ["--csv", str(toy_stream_task), "--results", str(tmp_path / "again"), "--window-size", "10"]
    assert main(["--models-dir", str(models), "stream", "toy-stream", *again, "--idle-timeout", "2", "--quiet"]) == 0
    assert json.loads((tmp_path / "again" / "summary.json").read_text())["windows"] == 2
