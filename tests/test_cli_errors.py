"""A user's mistake ends in one clear line on stderr and a non-zero exit, never a traceback (issue 15).

Each case runs ``python -m vigil`` as a user would, so the interpreter's own traceback printing is
what is checked, with a throw-away store and work folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO_ROOT, free_port


@pytest.fixture
def vigil(tmp_path):
    def run(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH")])),
            VIGIL_WORK_DIR=str(tmp_path / "runs"),
        )
        command = [sys.executable, "-m", "vigil", "--models-dir", str(tmp_path / "models"), *argv]
        return subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=timeout)

    return run


def one_error_line(done: subprocess.CompletedProcess) -> str:
    """The single ``vigil: error: ...`` line a failed command printed; fails on anything else."""
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("vigil: error: "), done.stderr
    return lines[0]


@pytest.fixture
def not_a_csv(tmp_path) -> Path:
    path = tmp_path / "photo.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\xfa" * 40)
    return path


@pytest.mark.parametrize(
    "argv",
    [
        ["web-events", "describe", "{missing}"],
        ["web-events", "train", "--csv", "{missing}"],
        ["dns", "train", "{missing}"],
        ["web-sessions", "train", "--data", "{missing}"],
        ["dns", "produce", "{missing}", "--bootstrap-servers", "127.0.0.1:1"],
    ],
)
def test_a_missing_file_is_one_line(vigil, tmp_path, argv):
    missing = str(tmp_path / "no-such.csv")
    line = one_error_line(vigil(*[a.format(missing=missing) for a in argv]))
    assert "no-such.csv" in line


@pytest.mark.parametrize(
    "argv",
    [
        ["web-events", "describe", "{path}"],
        ["web-events", "cluster", "--csv", "{path}"],
        ["dns", "train", "{path}"],
        ["web-sessions", "train", "--data", "{path}"],
    ],
)
def test_a_file_that_is_not_a_csv_is_one_line(vigil, not_a_csv, argv):
    line = one_error_line(vigil(*[a.format(path=not_a_csv) for a in argv]))
    assert str(not_a_csv) in line and "CSV" in line


def test_a_csv_without_the_columns_is_one_line_naming_them(vigil, tmp_path):
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    assert "lacks the columns" in one_error_line(vigil("dns", "train", str(other)))


def test_replay_against_an_unreachable_server_is_one_line(vigil):
    url = f"http://127.0.0.1:{free_port()}/predict"
    line = one_error_line(
        vigil("web-events", "replay", str(REPO_ROOT / "data/web_events/events_sample.csv"), "--url", url)
    )
    assert f"cannot reach the service at {url}" in line


@pytest.mark.parametrize("verb", ["produce", "stream"])
def test_an_unreachable_kafka_broker_fails_within_the_timeout(vigil, tmp_path, verb):
    csv = tmp_path / "rows.csv"
    csv.write_text("a,b\n1,2\n")
    servers = f"127.0.0.1:{free_port()}"
    argv = ["dns", verb, *([str(csv)] if verb == "produce" else []), "--bootstrap-servers", servers]
    started = time.monotonic()
    line = one_error_line(vigil(*argv, "--broker-timeout", "2", timeout=60))
    assert time.monotonic() - started < 30  # librdkafka alone would retry forever
    assert f"no Kafka broker answered at {servers} within 2 s" in line


def test_an_unknown_grid_key_is_one_line_naming_it(vigil):
    grid = json.dumps({"adaboost": {"max_dept": [2]}})
    line = one_error_line(vigil("iot-anomaly", "tune", "--estimators", "adaboost", "--grid", grid))
    assert "unknown parameter 'max_dept' for AdaBoostClassifier" in line


def test_a_usage_mistake_exits_2_without_a_traceback(vigil):
    done = vigil("web-events", "train", "--folds", "many")
    assert done.returncode == 2 and "Traceback" not in done.stderr and "'many' is not a valid integer" in done.stderr


def test_bootstrap_of_an_unknown_task_is_one_line_naming_the_known_ones(vigil):
    line = one_error_line(vigil("bootstrap", "no-such-task"))
    assert "unknown task(s) no-such-task" in line and "iot-anomaly" in line
