"""Alectio: what the platform and its SDKs send and read, replayed against Vigil (compat issue, item 2).

The payloads are the shapes the Flask-era SDK (``alectio_sdk.flask_wrapper.Pipeline.one_loop``) and the
later one (``alectio_sdk.sdk.Pipeline.one_loop``) read; the bucket files are read back the way the
platform does (``pickle.load``), in a numpy 1.x interpreter too.
"""

from __future__ import annotations

import http.server
import json
import pickle
import re
import shlex
import subprocess
import threading
import time
from pathlib import Path

import pytest

from vigil.active_learning import processes
from vigil.active_learning.demo import write_alectio_demo
from vigil.active_learning.pipeline import AlectioPipeline
from vigil.active_learning.storage import LocalBucketStore, write_json, write_pickle
from vigil.active_learning.synthetic import write_synthetic_vectorized
from vigil.config import PROJECT_ROOT, Settings
from vigil.service import create_app

NUMPY1_PYTHON = PROJECT_ROOT / ".venv-numpy1" / "bin" / "python"  # made by scripts/install_test_tools.sh
FLASK_ERA_PAYLOAD = {
    "experiment_id": "e1",
    "project_id": "p1",
    "cur_loop": 0,
    "user_id": "u1",
    "bucket_name": "b1",
    "type": "Classification",
    "n_rec": 50,
    "n_loop": 3,
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_synthetic_vectorized(tmp_path_factory.mktemp("synthetic"), train_rows=400, test_rows=150)


def _args(data_dir, expt: Path) -> dict:
    return processes.normalise_args(
        {"DATA_DIR": str(data_dir), "EXPT_DIR": str(expt), "TRAIN_SIZE": 300, "TEST_SIZE": 100}
    )


def _bucket(root: Path, folder: str = "p1/e1", meta: bool = True) -> LocalBucketStore:
    store = LocalBucketStore(root)
    if meta:
        write_json(
            store, "b1", f"{folder.rsplit('/', 1)[0]}/meta.json", {"0": "Benign", "1": "Malicious", "train_size": 300}
        )
    write_pickle(store, "b1", f"{folder}/selected_indices_0.pkl", list(range(0, 120, 2)))
    return store


def _run(pipeline, payload) -> dict:
    job = pipeline.start_loop(payload, background=False)["job"]
    assert job["status"] == "succeeded", job
    return job


def test_every_bucket_pickle_loads_on_numpy_1(data_dir, tmp_path):
    assert NUMPY1_PYTHON.is_file(), "run `make setup-dev` (scripts/install_test_tools.sh makes .venv-numpy1)"
    store = _bucket(tmp_path / "bucket")
    _run(AlectioPipeline(_args(data_dir, tmp_path / "expt"), store), FLASK_ERA_PAYLOAD)
    folder = tmp_path / "bucket" / "b1" / "p1" / "e1"
    names = sorted(p.name for p in folder.glob("*.pkl") if not p.name.startswith(("selected", "ckpt")))
    assert {
        "data_map.pkl",
        "insights_0.pkl",
        "metrics_0.pkl",
        "test_ground_truth.pkl",
        "test_predictions_0.pkl",
        "infer_outputs_0.pkl",
    } <= set(names)
    script = (
        "import json, pickle, sys, numpy\n"
        "assert numpy.__version__.startswith('1.'), numpy.__version__\n"
        "out = {}\n"
        "for path in sys.argv[1:]:\n"
        "    value = pickle.load(open(path, 'rb'))\n"
        "    out[path.rsplit('/', 1)[1]] = repr(value)[:200]\n"
        "print(json.dumps(out))\n"
    )
    result = subprocess.run(
        [str(NUMPY1_PYTHON), "-c", script, *[str(folder / n) for n in names]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = json.loads(result.stdout)
    assert set(loaded) == set(names)
    here = pickle.loads((folder / "test_predictions_0.pkl").read_bytes())
    assert loaded["test_predictions_0.pkl"] == repr(here)[:200] and isinstance(here, list)


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Recorder.seen.append(
            {"path": self.path, "authorization": self.headers.get("Authorization"), "body": json.loads(body)}
        )
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_end_of_task_call_carries_the_bearer_token(data_dir, tmp_path):
    server = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/sdk/v2/end_of_task"
        pipeline = AlectioPipeline(
            _args(data_dir, tmp_path / "expt"), _bucket(tmp_path / "bucket"), callback_url=url, callback_token="tok-123"
        )
        job = _run(pipeline, FLASK_ERA_PAYLOAD)
    finally:
        server.shutdown()
    assert job["result"]["callback"] == {"url": url, "status_code": 200}
    call = _Recorder.seen[-1]
    assert call["path"] == "/sdk/v2/end_of_task" and call["authorization"] == "Bearer tok-123"
    assert {"experiment_id": "e1", "project_id": "p1", "user_id": "u1"}.items() <= call["body"].items()
    assert not {"type", "cur_loop", "bucket_name"} & set(call["body"])


def test_insights_hold_the_queried_count_per_class(data_dir, tmp_path):
    _run(AlectioPipeline(_args(data_dir, tmp_path / "expt"), _bucket(tmp_path / "bucket")), FLASK_ERA_PAYLOAD)
    insights = pickle.loads((tmp_path / "bucket" / "b1" / "p1" / "e1" / "insights_0.pkl").read_bytes())
    assert set(insights) == {"train_time", "num_queried_per_class"}
    assert sum(insights["num_queried_per_class"].values()) == 60 and set(insights["num_queried_per_class"]) == {0, 1}


def test_the_later_sdks_payload_is_read(data_dir, tmp_path):
    # alectio_sdk.sdk.Pipeline.one_loop's keys; its bucket layout is <tenant>/<project>/<experiment>, no meta.json
    store = _bucket(tmp_path / "bucket", folder="t1/p1/e1", meta=False)
    payload = {
        "tenant_id": "t1",
        "experiment_id": "e1",
        "project_id": "p1",
        "current_loop": 0,
        "bucket_name": "b1",
        "task_type": "classification",
        "dataset_type": "tabular",
        "training_set_size": 300,
        "n_rec_per_loop": 50,
        "n_loop": 3,
        "classes": ["Benign", "Malicious"],
        "num_of_classes": 2,
    }
    job = _run(AlectioPipeline(_args(data_dir, tmp_path / "expt"), store), payload)
    assert job["result"]["labelled"] == 60 and job["result"]["train_size"] == 300
    assert (tmp_path / "bucket" / "b1" / "t1" / "p1" / "e1" / "metrics_0.pkl").is_file()


def test_repeated_selections_are_trained_once_and_reported(data_dir, tmp_path):
    store = _bucket(tmp_path / "bucket")
    pipeline = AlectioPipeline(_args(data_dir, tmp_path / "expt"), store)
    _run(pipeline, FLASK_ERA_PAYLOAD)
    write_pickle(store, "b1", "p1/e1/selected_indices_1.pkl", [0, 2, 4, 201, 203])  # three re-selected
    job = _run(pipeline, {**FLASK_ERA_PAYLOAD, "cur_loop": 1})
    assert job["result"]["labelled"] == 62 and job["result"]["duplicates_dropped"] == 3


def test_a_cloned_experiment_resumes_from_the_buckets_checkpoint(data_dir, tmp_path):
    store = _bucket(tmp_path / "bucket")
    _run(AlectioPipeline(_args(data_dir, tmp_path / "server-a"), store), FLASK_ERA_PAYLOAD)
    assert store.exists("b1", "p1/e1/ckpt_0.pkl")
    write_pickle(store, "b1", "p1/e1/selected_indices_1.pkl", [201, 203, 205])
    # another server, with an empty EXPT_DIR, gets loop 1 of the same experiment
    other = AlectioPipeline(_args(data_dir, tmp_path / "server-b"), store)
    job = _run(other, {**FLASK_ERA_PAYLOAD, "cur_loop": 1})
    assert job["result"]["labelled"] == 63
    assert (tmp_path / "server-b" / "p1" / "e1" / "ckpt_0.pkl").is_file()


def test_end_exp_for_an_experiment_that_never_ran_is_404_and_leaves_the_id_usable(data_dir, tmp_path):
    pipeline = AlectioPipeline(_args(data_dir, tmp_path / "expt"), _bucket(tmp_path / "bucket"))
    with pytest.raises(processes.VigilError) as caught:
        pipeline.end_experiment({"experiment_id": "e1", "project_id": "p1"})
    assert caught.value.status == 404
    _run(pipeline, FLASK_ERA_PAYLOAD)  # not closed by the 404
    assert pipeline.end_experiment({"experiment_id": "e1", "project_id": "p1"})["Message"] == "Experiment complete"


def _quickstart_calls() -> list[tuple[str, dict]]:
    readme = (PROJECT_ROOT / "docs" / "active-learning.md").read_text()  # the quickstart lives there
    block = readme.split("<!-- alectio-quickstart -->", 1)[1].split("<!-- /alectio-quickstart -->", 1)[0]
    calls = []
    for line in block.strip().splitlines():
        words = shlex.split(line)
        url = next(w for w in words if w.startswith("localhost:8080"))
        calls.append((re.sub(r"^localhost:8080", "", url), json.loads(words[words.index("-d") + 1])))
    return calls


def test_the_readme_quickstart_runs_as_written_on_the_demo(tmp_path):
    made = write_alectio_demo(tmp_path / "alectio-demo", n_train=2000, n_test=500)
    assert made["pool_size"] == 2008  # the README's ranges are written for this pool
    settings = Settings(
        models_dir=tmp_path / "models",
        work_dir=tmp_path / "runs",
        alectio_config=made["config"],
        bucket_root=made["bucket_root"],
    )
    client = create_app(settings).test_client()
    calls = _quickstart_calls()
    assert [path for path, _ in calls] == ["/train", "/test", "/infer", "/one_loop", "/end_exp"]
    status_url = None  # the job of /one_loop, waited for before /end_exp
    for path, body in calls:
        if path == "/end_exp":
            job = client.get(status_url).get_json()
            for _ in range(600):
                if job["status"] in ("succeeded", "failed"):
                    break
                time.sleep(0.1)
                job = client.get(status_url).get_json()
            assert job["status"] == "succeeded", job
        answer = client.post(path, json=body)
        assert answer.status_code == 200, (path, answer.get_json())
        if path == "/one_loop":
            assert answer.get_json()["Message"] == "Loop Started - 200 status returned"
            status_url = answer.get_json()["status_url"]
        if path == "/infer":
            assert len(answer.get_json()["outputs"]) == 2008 - 500
