"""A three-loop Alectio experiment through POST /one_loop on a real gunicorn server (2 workers).

Data: the ember task's demo records (synthetic records derived from the real ones shipped in
data/ember/, see vigil.tasks.ember.demo_data), vectorized by the ember task's own vectorizer into
ember's memmaps. 408 labelled train rows (plus 4 labelled -1, skipped), 200 test rows. The platform's side (meta.json, selected_indices_{loop}.pkl) is written by the test, as Alectio would.
"""

from __future__ import annotations

import json
import pickle
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from vigil.active_learning.jobs import ExperimentLock
from vigil.active_learning.strategies import select
from vigil.tasks.ember.demo_data import write_demo_data
from vigil.tasks.ember.vectorize import create_vectorized_features

PAYLOAD = {
    "experiment_id": "exp-1",
    "project_id": "proj-1",
    "user_id": "user-1",
    "bucket_name": "demo-bucket",
    "type": "Classification",
    "n_rec": 40,
    "n_loop": 3,
}
METRIC_KEYS = {
    "accuracy",
    "f1_score_per_class",
    "f1_score",
    "precision_per_class",
    "precision",
    "recall_per_class",
    "recall",
    "confusion_matrix",
    "acc_per_class",
    "label_disagreement",
}


@pytest.fixture
def callback_server():
    """Stands in for the platform's end-of-task URL: records what the loops post."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/end_of_task", received
    server.shutdown()


def wait_for_job(url: str, job_id: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    seen = set()
    while time.monotonic() < deadline:
        job = requests.get(f"{url}/jobs/{job_id}", timeout=10).json()
        seen.add(job["status"])
        if job["status"] not in ("queued", "running"):
            job["seen"] = seen
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s")


def test_three_loops_through_one_loop_on_gunicorn(tmp_path, live_server, callback_server):
    callback_url, callbacks = callback_server
    write_demo_data(tmp_path / "data")
    create_vectorized_features(tmp_path / "data", feature_version=2, processes=1, progress=False)
    config = tmp_path / "config.yaml"  # relative paths: relative to the config file
    config.write_text(
        'DATA_DIR: "data"\nEXPT_DIR: "expt"\nCKPT_EXT: ".pkl"\nTRAIN_SIZE: 400\nTEST_SIZE: 200\nexp_name: "Ember"\n'
    )
    bucket = tmp_path / "bucket"
    folder = bucket / "demo-bucket" / "proj-1" / "exp-1"
    folder.mkdir(parents=True)
    (bucket / "demo-bucket" / "proj-1" / "meta.json").write_text(
        json.dumps({"0": "Benign", "1": "Malicious", "train_size": 400})
    )
    (folder / "selected_indices_0.pkl").write_bytes(pickle.dumps(list(range(0, 400, 8))))  # 50 records
    server = live_server(
        tmp_path / "models",
        env={"VIGIL_ALECTIO_CONFIG": str(config), "VIGIL_ALECTIO_CALLBACK_URL": callback_url},
        args=["--workers", "2", "--bucket-root", str(bucket)],
    )
    expt = tmp_path / "expt" / "proj-1" / "exp-1"

    labelled_counts = []
    for loop in range(3):
        answer = requests.post(f"{server.url}/one_loop", json={**PAYLOAD, "cur_loop": loop}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["Message"] == "Loop Started - 200 status returned"
        job = wait_for_job(server.url, answer.json()["job_id"])
        assert job["status"] == "succeeded", job
        assert job["cur_loop"] == loop and job["progress"] == 1.0
        labelled_counts.append(job["result"]["labelled"])

        # every file the protocol writes for this loop
        assert (expt / f"ckpt_{loop}.pkl").is_file()
        predictions = pickle.loads((folder / f"test_predictions_{loop}.pkl").read_bytes())
        assert len(predictions) == 200
        metrics = pickle.loads((folder / f"metrics_{loop}.pkl").read_bytes())
        assert METRIC_KEYS <= set(metrics) and 0 <= metrics["accuracy"] <= 1
        assert metrics["confusion_matrix"] and sum(map(sum, metrics["confusion_matrix"])) == 200
        assert metrics["accuracy"] == job["result"]["metrics"]["accuracy"]
        assert set(pickle.loads((folder / f"insights_{loop}.pkl").read_bytes())) == {
            "train_time",
            "num_queried_per_class",
        }
        outputs = pickle.loads((folder / f"infer_outputs_{loop}.pkl").read_bytes())
        labelled = set()
        for i in range(loop + 1):
            labelled |= set(pickle.loads((folder / f"selected_indices_{i}.pkl").read_bytes()))
        assert list(outputs) == sorted(set(range(400)) - labelled)  # ascending, labelled ones excluded
        assert len(outputs) + len(labelled) == 400 == job["result"]["train_size"]
        assert all(set(v) == {"softmax", "prediction"} for v in outputs.values())
        if loop == 0:
            truth = pickle.loads((folder / "test_ground_truth.pkl").read_bytes())
            assert len(truth) == 200 and set(truth) == {0, 1}  # a plain list: numpy 1 reads it too
            assert pickle.loads((folder / "data_map.pkl").read_bytes()) == {i: i for i in range(400)}
        # the platform's move: pick the next records from the infer outputs
        (folder / f"selected_indices_{loop + 1}.pkl").write_bytes(pickle.dumps(select(outputs, 40, "margin")))

    assert labelled_counts == [50, 90, 130]
    assert sorted(p.name for p in expt.glob("ckpt_*")) == ["ckpt_0.pkl", "ckpt_1.pkl", "ckpt_2.pkl"]
    assert not (folder / "test_predictions_3.pkl").exists()
    assert (
        callbacks
        == [{"experiment_id": "exp-1", "project_id": "proj-1", "user_id": "user-1", "n_rec": 40, "n_loop": 3}] * 3
    )

    # a loop already running elsewhere (the lock is held by this process, as another worker would) -> 409
    lock = ExperimentLock(expt)
    deadline = time.monotonic() + 5  # the finished job's thread releases the lock just after saving its state
    while not lock.try_acquire():
        assert time.monotonic() < deadline, "the finished loop never released the experiment lock"
        time.sleep(0.02)
    try:
        busy = requests.post(f"{server.url}/one_loop", json={**PAYLOAD, "cur_loop": 3}, timeout=30)
    finally:
        lock.release()
    assert busy.status_code == 409 and busy.json()["detail"]["field"] == "experiment_id"

    # bad input answers 4xx naming the field, on the real server too
    bad = requests.post(f"{server.url}/one_loop", json={**PAYLOAD, "cur_loop": -1}, timeout=30)
    assert bad.status_code == 400 and bad.json()["detail"]["field"] == "cur_loop"
    missing = requests.post(f"{server.url}/one_loop", json={**PAYLOAD, "cur_loop": 5}, timeout=30)
    assert missing.status_code == 422 and missing.json()["detail"]["field"] == "selected_indices_4.pkl"
    (folder / "selected_indices_4.pkl").write_bytes(pickle.dumps([1, 2, 10_000]))  # 10 000 >= train_size
    (folder / "selected_indices_5.pkl").write_bytes(pickle.dumps([]))
    (expt / "ckpt_4.pkl").write_bytes((expt / "ckpt_2.pkl").read_bytes())
    failing = requests.post(f"{server.url}/one_loop", json={**PAYLOAD, "cur_loop": 5}, timeout=30)
    job = wait_for_job(server.url, failing.json()["job_id"])
    assert job["status"] == "failed" and job["error"]["detail"]["field"] == "selected_indices_4.pkl"
    assert "outside" in job["error"]["reason"]

    # /end_exp closes the experiment and the server keeps serving
    ended = requests.post(f"{server.url}/end_exp", json=PAYLOAD, timeout=30)
    assert ended.status_code == 200
    assert ended.json()["checkpoints"] == ["ckpt_0.pkl", "ckpt_1.pkl", "ckpt_2.pkl", "ckpt_4.pkl"]
    assert requests.get(f"{server.url}/health", timeout=10).json() == {"status": "ok"}
    closed = requests.post(f"{server.url}/one_loop", json={**PAYLOAD, "cur_loop": 3}, timeout=30)
    assert closed.status_code == 409 and "ended" in closed.json()["error"]
    assert server.process.poll() is None
