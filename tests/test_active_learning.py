"""Active learning: Alectio processes, payload checks, jobs, strategies, local experiment runner.

The data set is generated (vigil.active_learning.synthetic) in ember's vectorized layout: 2381-float
rows, not malware. The loop machinery is what is under test here, not the malware model.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import numpy as np
import pytest

from vigil.active_learning import processes
from vigil.active_learning.jobs import ExperimentLock, JobStore, LoopAlreadyRunning
from vigil.active_learning.loop import classification_metrics, validate_payload
from vigil.active_learning.pipeline import AlectioPipeline
from vigil.active_learning.storage import LocalBucketStore, write_json, write_pickle
from vigil.active_learning.strategies import select
from vigil.active_learning.synthetic import write_synthetic_vectorized
from vigil.errors import InvalidInput, UnprocessableInput, VigilError
from vigil.service import create_app


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_synthetic_vectorized(tmp_path_factory.mktemp("synthetic"), train_rows=600, test_rows=300)


@pytest.fixture
def args(data_dir, tmp_path) -> dict:
    return processes.normalise_args(
        {
            "DATA_DIR": str(data_dir),
            "EXPT_DIR": str(tmp_path / "expt"),
            "CKPT_EXT": ".pkl",
            "TRAIN_SIZE": 500,
            "TEST_SIZE": 200,
            "exp_name": "t",
        }
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- processes


def test_processes_follow_the_alectio_contracts(args):
    state = processes.getdatasetstate(args)
    assert state == {i: i for i in range(500)}  # TRAIN_SIZE labelled rows; -1 rows are skipped

    result = processes.train(args, labeled=list(range(100)), resume_from=None, ckpt_file="ckpt_0.pkl")
    assert set(result) >= {"labels"} and len(result["labels"]) == 100
    model = processes.load_checkpoint(Path(args["EXPT_DIR"]) / "ckpt_0.pkl")
    assert hasattr(model, "predict_proba")

    tested = processes.test(args, ckpt_file="ckpt_0.pkl")
    assert len(tested["predictions"]) == len(tested["labels"]) == 200
    assert set(np.unique(tested["labels"])) == {0, 1}

    unlabeled = [450, 120, 300]
    outputs = processes.infer(args, unlabeled=unlabeled, ckpt_file="ckpt_0.pkl")["outputs"]
    assert list(outputs) == [120, 300, 450]  # ascending: the platform maps them positionally
    for value in outputs.values():
        assert set(value) == {"softmax", "prediction"}
        assert abs(sum(value["softmax"]) - 1) < 1e-6 and value["prediction"] in (0, 1)

    # resume_from reuses the previous checkpoint's parameters; both checkpoints stay on disk
    processes.train(args, labeled=list(range(150)), resume_from="ckpt_0.pkl", ckpt_file="ckpt_1.pkl")
    assert sorted(p.name for p in Path(args["EXPT_DIR"]).glob("ckpt_*")) == ["ckpt_0.pkl", "ckpt_1.pkl"]


def test_infer_indices_address_the_labelled_pool_not_raw_rows(args, data_dir):
    y = np.fromfile(data_dir / "y_train.dat", dtype=np.float32)
    pool_rows = np.flatnonzero(y != -1)[:500]
    assert len(pool_rows) == 500 and pool_rows[-1] > 499  # some -1 rows come before index 500
    processes.train(args, labeled=list(range(200)), resume_from=None, ckpt_file="ckpt_0.pkl")
    model = processes.load_checkpoint(Path(args["EXPT_DIR"]) / "ckpt_0.pkl")
    X = np.fromfile(data_dir / "X_train.dat", dtype=np.float32).reshape(len(y), -1)
    expected = model.predict_proba(X[pool_rows[[499]]])[0]
    got = processes.infer(args, unlabeled=[499], ckpt_file="ckpt_0.pkl")["outputs"][499]["softmax"]
    assert np.allclose(got, expected)


@pytest.mark.parametrize(
    "name",
    [
        "../ckpt_0.pkl",
        "/etc/passwd",
        "ckpt_0.pkl/../../x",
        "model.pkl",
        "ckpt_x.pkl",
        "ckpt_0.joblib",
        "",
        3,
        "ckpt_" + "1" * 400 + ".pkl",
        "ckpt_" + "9" * 400,
        "ckpt_\u0663.pkl",
        "ckpt_0.pkl\n",
        "ckpt_0\n",
    ],
)
def test_bad_checkpoint_names_are_refused(args, name):
    with pytest.raises(InvalidInput) as caught:
        processes.train(args, labeled=list(range(50)), resume_from=None, ckpt_file=name)
    assert caught.value.detail["field"] == "ckpt_file"


def test_missing_checkpoints_are_404(args):
    with pytest.raises(VigilError) as caught:
        processes.test(args, ckpt_file="ckpt_7.pkl")
    assert caught.value.status == 404 and caught.value.detail["field"] == "ckpt_file"
    with pytest.raises(VigilError) as caught:
        processes.train(args, labeled=list(range(50)), resume_from="ckpt_3.pkl", ckpt_file="ckpt_4.pkl")
    assert caught.value.status == 404 and caught.value.detail["field"] == "resume_from"


@pytest.mark.parametrize(
    "labeled, message",
    [([0, 500], "outside"), ([-1, 4], "outside"), ([1, "2"], "integer"), ([1, 2.5], "integer"), ([], "empty")],
)
def test_bad_index_lists_name_the_field(args, labeled, message):
    with pytest.raises(InvalidInput) as caught:
        processes.train(args, labeled=labeled, resume_from=None, ckpt_file="ckpt_0.pkl")
    assert message in caught.value.error and caught.value.detail["field"] == "labeled"


def test_repeated_labelled_indices_are_trained_once_and_reported(args):
    # the SDK's caller passes every loop's selection, re-selected records included (compat issue)
    result = processes.train(args, labeled=list(range(60)) + [1, 2, 2], resume_from=None, ckpt_file="ckpt_0.pkl")
    assert result["duplicates_dropped"] == 3 and len(result["labels"]) == 60
    with pytest.raises(InvalidInput, match="more than once"):  # elsewhere (infer) repeats stay an error
        processes.validate_indices([1, 2, 2, 3], 500, "unlabeled")


def test_a_single_class_labelled_set_is_422(args, data_dir):
    y = np.fromfile(data_dir / "y_train.dat", dtype=np.float32)
    pool_labels = y[y != -1][:500]
    benign = np.flatnonzero(pool_labels == 0)[:30].tolist()
    with pytest.raises(UnprocessableInput) as caught:
        processes.train(args, labeled=benign, resume_from=None, ckpt_file="ckpt_0.pkl")
    assert caught.value.detail["field"] == "labeled"


def test_metrics_have_the_protocol_keys():
    metrics = classification_metrics([0, 1, 1, 0], [0, 1, 0, 0], scores=[0.1, 0.9, 0.6, 0.2])
    assert set(metrics) >= {
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
        "roc_auc",
    }
    assert metrics["confusion_matrix"] == [[2, 1], [0, 1]]
    assert metrics["label_disagreement"] == {0: 0.0, 1: round(1 / 3, 3)}  # FP / (FP + TN) per class
    assert metrics["accuracy"] == 0.75


# ----------------------------------------------------------------------------- payloads

GOOD_PAYLOAD = {
    "experiment_id": "e1",
    "project_id": "p1",
    "cur_loop": 0,
    "user_id": "u1",
    "bucket_name": "b1",
    "type": "Classification",
    "n_rec": 10,
    "n_loop": 3,
}


@pytest.mark.parametrize(
    "change, field",
    [
        ({"experiment_id": None}, "experiment_id"),
        ({"cur_loop": -1}, "cur_loop"),
        ({"cur_loop": "x"}, "cur_loop"),
        ({"cur_loop": 1.5}, "cur_loop"),
        ({"bucket_name": "../etc"}, "bucket_name"),
        ({"project_id": "a/b"}, "project_id"),
        ({"experiment_id": ".."}, "experiment_id"),
        ({"n_rec": -5}, "n_rec"),
        ({"type": "Object Detection"}, "type"),
        # ids ending in a newline and digits of other scripts: "$" and int() would let them through
        ({"experiment_id": "e1\n"}, "experiment_id"),
        ({"project_id": "p1\n"}, "project_id"),
        ({"bucket_name": "b1\n"}, "bucket_name"),
        ({"cur_loop": "\u0663"}, "cur_loop"),
        ({"cur_loop": "3\n"}, "cur_loop"),
        ({"cur_loop": " 3"}, "cur_loop"),
        ({"n_loop": "\uff13"}, "n_loop"),
        ({"cur_loop": 10**400}, "cur_loop"),
    ],
)
def test_bad_payloads_name_the_field(change, field):
    payload = {**GOOD_PAYLOAD, **change}
    if change.get("experiment_id", 0) is None:
        del payload["experiment_id"]
    with pytest.raises(VigilError) as caught:
        validate_payload(payload)
    assert 400 <= caught.value.status < 500 and caught.value.detail["field"] == field


def test_numeric_string_loops_are_accepted_as_the_sdk_does():
    assert validate_payload({**GOOD_PAYLOAD, "cur_loop": "2"})["cur_loop"] == 2


# ----------------------------------------------------------------------------- jobs


def test_second_loop_of_an_experiment_is_409_while_one_runs(tmp_path):
    jobs = JobStore(tmp_path / "jobs")
    release, started = threading.Event(), threading.Event()

    def slow(progress):
        started.set()
        progress("waiting", 0.5)
        release.wait(10)
        return {"ok": True}

    job = jobs.start(tmp_path / "exp", {"kind": "test"}, slow)
    started.wait(10)
    with pytest.raises(LoopAlreadyRunning) as caught:
        jobs.start(tmp_path / "exp", {"kind": "test"}, slow)
    assert caught.value.status == 409 and caught.value.detail["job_id"] == job["job_id"]
    assert jobs.get(job["job_id"])["status"] == "running"
    assert (
        jobs.start(tmp_path / "other", {"kind": "test"}, lambda progress: {}, background=False)["status"] == "succeeded"
    )
    release.set()
    for _ in range(100):
        if jobs.get(job["job_id"])["status"] == "succeeded":
            break
        threading.Event().wait(0.05)
    assert jobs.get(job["job_id"])["result"] == {"ok": True}


def test_a_job_whose_worker_died_is_reported_failed(tmp_path):
    jobs = JobStore(tmp_path / "jobs")
    job_id = "0" * 32
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / f"{job_id}.json").write_text(
        json.dumps(
            {
                "job_id": job_id,
                "status": "running",
                "stage": "train",
                "lock": str(tmp_path / "exp" / ".loop.lock"),
                "pid": 999999,
            }
        )
    )
    lock = ExperimentLock(tmp_path / "exp")
    assert lock.try_acquire()  # a live worker holds the lock: the job is left alone
    assert jobs.get(job_id)["status"] == "running"
    lock.release()  # the worker is gone: its lock went with it
    job = jobs.get(job_id)
    assert job["status"] == "failed" and "exited" in job["error"]["reason"] and job["error"]["stage"] == "train"


def test_job_ids_are_checked(tmp_path):
    with pytest.raises(InvalidInput):
        JobStore(tmp_path).get("../../etc/passwd")
    with pytest.raises(VigilError) as caught:
        JobStore(tmp_path).get("f" * 32)
    assert caught.value.status == 404


def _platform_experiment(args, tmp_path, selected: dict[int, list[int]], train_size=500):
    store = LocalBucketStore(tmp_path / "bucket")
    write_json(store, "b1", "p1/meta.json", {"0": "Benign", "1": "Malicious", "train_size": train_size})
    for loop, indices in selected.items():
        write_pickle(store, "b1", f"p1/e1/selected_indices_{loop}.pkl", indices)
    return AlectioPipeline(args, store), store


def test_a_crash_mid_loop_leaves_the_previous_checkpoint_and_records_the_reason(args, data_dir, tmp_path):
    private = tmp_path / "data"
    private.mkdir()
    for name in ("X_train.dat", "y_train.dat", "X_test.dat", "y_test.dat"):
        (private / name).write_bytes((data_dir / name).read_bytes())
    args = {**args, "DATA_DIR": str(private)}
    pipeline, store = _platform_experiment(args, tmp_path, {0: list(range(60)), 1: list(range(60, 90))})
    assert pipeline.start_loop(GOOD_PAYLOAD, background=False)["job"]["status"] == "succeeded"
    checkpoint = Path(args["EXPT_DIR"]) / "p1" / "e1" / "ckpt_0.pkl"
    before = sha256(checkpoint)

    (private / "X_test.dat").unlink()  # the test set vanishes after training: the loop dies in test()
    job = pipeline.start_loop({**GOOD_PAYLOAD, "cur_loop": 1}, background=False)["job"]
    assert job["status"] == "failed" and "X_test.dat" in job["error"]["reason"] and job["error"]["stage"] == "test"
    assert sha256(checkpoint) == before
    assert not store.exists("b1", "p1/e1/metrics_1.pkl")
    # the lock was released: the loop can be retried
    (private / "X_test.dat").write_bytes((data_dir / "X_test.dat").read_bytes())
    assert pipeline.start_loop({**GOOD_PAYLOAD, "cur_loop": 1}, background=False)["job"]["status"] == "succeeded"


@pytest.mark.parametrize("selected", [{0: [1, 2, 700]}, {0: ["a"]}, {0: []}])
def test_bad_bucket_contents_fail_the_job_naming_the_file(args, tmp_path, selected):
    pipeline, _ = _platform_experiment(args, tmp_path, selected)
    job = pipeline.start_loop(GOOD_PAYLOAD, background=False)["job"]
    assert job["status"] == "failed" and job["error"]["detail"]["field"] == "selected_indices_0.pkl"


def test_missing_bucket_files_and_checkpoints_are_refused_before_a_job_starts(args, tmp_path):
    pipeline, store = _platform_experiment(args, tmp_path, {})
    with pytest.raises(UnprocessableInput) as caught:
        pipeline.start_loop(GOOD_PAYLOAD)
    assert caught.value.detail["field"] == "selected_indices_0.pkl"
    write_pickle(store, "b1", "p1/e1/selected_indices_0.pkl", list(range(60)))
    write_pickle(store, "b1", "p1/e1/selected_indices_1.pkl", list(range(60, 70)))
    with pytest.raises(VigilError) as caught:  # loop 1 before loop 0 ran: no ckpt_0 to resume from
        pipeline.start_loop({**GOOD_PAYLOAD, "cur_loop": 1})
    assert caught.value.status == 404 and caught.value.detail["field"] == "cur_loop"
    store.root.joinpath("b1", "p1", "meta.json").unlink()
    with pytest.raises(UnprocessableInput) as caught:
        pipeline.start_loop(GOOD_PAYLOAD)
    assert caught.value.detail["field"] == "meta.json"
    assert not list((Path(args["EXPT_DIR"]) / "jobs").glob("*.json"))  # no job was announced


def test_hostile_pickles_in_the_bucket_are_not_executed(args, tmp_path):
    pipeline, store = _platform_experiment(args, tmp_path, {})

    class Exploit:
        def __reduce__(self):
            return (Path(tmp_path / "pwned").touch, ())

    write_pickle(store, "b1", "p1/e1/selected_indices_0.pkl", Exploit())
    job = pipeline.start_loop(GOOD_PAYLOAD, background=False)["job"]
    assert job["status"] == "failed" and "refusing to unpickle" in job["error"]["reason"]
    assert not (tmp_path / "pwned").exists()


# ----------------------------------------------------------------------------- strategies


def test_strategies_pick_the_uncertain_records():
    outputs = {
        3: {"softmax": [0.9, 0.1]},
        7: {"softmax": [0.55, 0.45]},
        9: {"softmax": [0.2, 0.8]},
        11: {"softmax": [0.5, 0.5]},
    }
    for strategy in ("least_confidence", "margin", "entropy"):
        assert select(outputs, 2, strategy) == [7, 11]
    picked = select(outputs, 2, "random", seed=1)
    assert len(set(picked)) == 2 and set(picked) <= set(outputs)
    assert select(outputs, 10, "margin") == [3, 7, 9, 11]
    with pytest.raises(InvalidInput):
        select(outputs, 2, "most_confident")
    with pytest.raises(InvalidInput):
        select(outputs, 0, "margin")


def test_uncertainty_sampling_beats_random_where_it_should(tmp_path):
    """A diagonal boundary drawn by trees: points near it are worth far more than points away from it."""
    from vigil.active_learning.experiment import run_experiment

    data = write_synthetic_vectorized(tmp_path / "data", train_rows=2000, test_rows=500, seed=3)
    args = processes.normalise_args(
        {"DATA_DIR": str(data), "EXPT_DIR": str(tmp_path / "expt"), "TRAIN_SIZE": None, "TEST_SIZE": None}
    )
    curve = run_experiment(args, tmp_path / "bucket", ["margin", "random"], loops=6, n_rec=40, initial=60, seed=0)
    assert list(curve.groupby("strategy")["labelled"].max()) == [260, 260]
    after_first = curve[curve["loop"] > 0].groupby("strategy")[["accuracy", "roc_auc"]].mean()
    error = 1 - after_first["accuracy"]
    assert error["margin"] < 0.8 * error["random"], after_first  # measured: about half the errors
    assert after_first.loc["margin", "roc_auc"] > after_first.loc["random", "roc_auc"]


# ----------------------------------------------------------------------------- HTTP (Flask test client)


@pytest.fixture
def alectio_client(args, tmp_path):
    from vigil.config import Settings

    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({k: args[k] for k in processes.CONFIG_KEYS}))  # JSON is valid YAML
    settings = Settings.from_env(
        models_dir=tmp_path / "models",
        work_dir=tmp_path / "runs",
        bucket_root=tmp_path / "bucket",
        alectio_config=config,
    )
    app = create_app(settings)
    app.config["TESTING"] = True
    return app.test_client()


def test_train_test_infer_endpoints_answer_plain_json(alectio_client):
    trained = alectio_client.post(
        "/train", json={"labeled": [{"start": 0, "stop": 80}, 400, 401], "resume_from": None, "ckpt_file": "ckpt_0.pkl"}
    )
    assert trained.status_code == 200, trained.json
    assert trained.json["labelled"] == 82 and len(trained.json["labels"]) == 82
    assert all(isinstance(v, int) for v in trained.json["labels"])

    tested = alectio_client.post("/test", json={"ckpt_file": "ckpt_0.pkl"})
    assert tested.status_code == 200
    assert len(tested.json["predictions"]) == 200 and 0 <= tested.json["metrics"]["accuracy"] <= 1

    inferred = alectio_client.post(
        "/infer", json={"unlabeled": {"start": 100, "stop": 500, "step": 2}, "ckpt_file": "ckpt_0"}
    )  # the SDK's name without extension
    assert inferred.status_code == 200
    outputs = inferred.json["outputs"]
    assert list(outputs) == [str(i) for i in range(100, 500, 2)]
    assert isinstance(outputs["100"]["softmax"][0], float) and isinstance(outputs["100"]["prediction"], int)


@pytest.mark.parametrize(
    "path, body, status, field",
    [
        ("/train", {"labeled": [1, 2], "resume_from": None}, 400, "ckpt_file"),
        ("/train", {"resume_from": None, "ckpt_file": "ckpt_0.pkl"}, 400, "labeled"),
        ("/train", {"labeled": [1, 1], "resume_from": None, "ckpt_file": "ckpt_0.pkl"}, 400, "labeled"),
        ("/train", {"labeled": {"start": 0, "stop": 10**12}, "ckpt_file": "ckpt_0.pkl"}, 400, "labeled"),
        ("/train", {"labeled": [1, 2], "resume_from": "../ckpt_0.pkl", "ckpt_file": "ckpt_1.pkl"}, 400, "resume_from"),
        ("/test", {"ckpt_file": "ckpt_9.pkl"}, 404, "ckpt_file"),
        ("/test", {"ckpt_file": "../../models/manifest.json"}, 400, "ckpt_file"),
        ("/infer", {"unlabeled": [5, -2], "ckpt_file": "ckpt_0.pkl"}, 400, "unlabeled"),
        ("/infer", {"unlabeled": "all", "ckpt_file": "ckpt_0.pkl"}, 400, "unlabeled"),
        ("/one_loop", {k: v for k, v in GOOD_PAYLOAD.items() if k != "bucket_name"}, 400, "bucket_name"),
        ("/one_loop", {**GOOD_PAYLOAD, "cur_loop": -3}, 400, "cur_loop"),
        ("/one_loop", {**GOOD_PAYLOAD, "experiment_id": "../../x"}, 400, "experiment_id"),
        ("/end_exp", {"project_id": "p1"}, 400, "experiment_id"),
        ("/train", [1, 2, 3], 400, "body"),
    ],
)
def test_bad_requests_are_4xx_naming_the_field(alectio_client, path, body, status, field):
    response = alectio_client.post(path, json=body)
    assert response.status_code == status, response.json
    assert response.json["detail"]["field"] == field


def test_unknown_jobs_are_404(alectio_client):
    assert alectio_client.get("/jobs/" + "a" * 32).status_code == 404
    assert alectio_client.get("/jobs/nope").status_code == 400
    assert alectio_client.get("/jobs/" + "a" * 32 + "%0A").status_code == 400  # a trailing newline


@pytest.mark.parametrize("path", ["/train", "/test", "/infer", "/one_loop", "/end_exp"])
@pytest.mark.parametrize("depth", [300, 100_000])
def test_json_nested_too_deep_is_400_on_every_alectio_route(alectio_client, path, depth):
    for body in (
        "[" * depth + "]" * depth,
        '{"labeled": ' + "[" * depth + "]" * depth + ', "ckpt_file": "ckpt_0.pkl"}',
    ):
        response = alectio_client.post(path, data=body, content_type="application/json")
        assert response.status_code == 400, response.get_data(as_text=True)[:300]
        assert "nested too deeply" in response.json["error"]


def test_a_400_digit_checkpoint_name_is_400_not_a_crash(alectio_client, args):
    Path(args["EXPT_DIR"]).mkdir(parents=True)  # in an existing folder such a name is ENAMETOOLONG, not ENOENT
    for name in ("ckpt_" + "1" * 400 + ".pkl", "ckpt_" + "1" * 400):
        for path, body in (
            ("/test", {"ckpt_file": name}),
            ("/infer", {"unlabeled": [1], "ckpt_file": name}),
            ("/train", {"labeled": [1, 2], "resume_from": name, "ckpt_file": "ckpt_1.pkl"}),
        ):
            response = alectio_client.post(path, json=body)
            assert response.status_code == 400, (path, response.json)
            assert response.json["detail"]["field"] in ("ckpt_file", "resume_from")


def test_train_refuses_a_closed_experiment(alectio_client, args):
    ids = {"project_id": "p1", "experiment_id": "e1"}
    body = {"labeled": {"start": 0, "stop": 80}, "ckpt_file": "ckpt_0.pkl", **ids}
    assert alectio_client.post("/train", json=body).status_code == 200
    assert alectio_client.post("/end_exp", json=ids).status_code == 200
    checkpoint = Path(args["EXPT_DIR"]) / "p1" / "e1" / "ckpt_1.pkl"
    response = alectio_client.post("/train", json={**body, "ckpt_file": "ckpt_1.pkl", "resume_from": "ckpt_0.pkl"})
    assert response.status_code == 409 and response.json["detail"]["field"] == "experiment_id", response.json
    assert not checkpoint.exists()
    other = alectio_client.post("/train", json={**body, "experiment_id": "e2"})  # other experiments go on
    assert other.status_code == 200


def test_jobs_need_the_token_and_show_no_paths_or_pids(args, tmp_path):
    from vigil.config import Settings

    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({k: args[k] for k in processes.CONFIG_KEYS}))
    settings = Settings.from_env(
        models_dir=tmp_path / "models",
        work_dir=tmp_path / "runs",
        bucket_root=tmp_path / "bucket",
        alectio_config=config,
        api_token="al-token",
    )
    client = create_app(settings).test_client()
    pipeline = AlectioPipeline.from_settings(settings)  # the same EXPT_DIR, so the same job files
    secret = tmp_path / "private" / "X_test.dat"

    def fails(progress):
        progress("test", 0.5)
        raise FileNotFoundError(2, "No such file or directory", str(secret))

    failed = pipeline.jobs.start(Path(args["EXPT_DIR"]) / "p1" / "e1", {"kind": "one_loop"}, fails, background=False)
    succeeded = pipeline.jobs.start(
        Path(args["EXPT_DIR"]) / "p1" / "e2",
        {"kind": "one_loop"},
        lambda progress: {"checkpoint": "ckpt_0.pkl", "data": str(args["DATA_DIR"])},
        background=False,
    )
    assert failed["status"] == "failed" and str(secret) in failed["error"]["reason"]  # the file keeps it all
    for job in (failed, succeeded):
        url = f"/jobs/{job['job_id']}"
        assert client.get(url).status_code == 401
        assert client.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
        response = client.get(url, headers={"Authorization": "Bearer al-token"})
        assert response.status_code == 200 and response.json["job_id"] == job["job_id"]
        text = response.get_data(as_text=True)
        assert str(tmp_path) not in text and '"pid"' not in text and '"lock"' not in text, text
        assert response.json["status"] == job["status"]
    shown = client.get(f"/jobs/{failed['job_id']}", headers={"Authorization": "Bearer al-token"}).json
    assert "X_test.dat" in shown["error"]["reason"]  # the file is still named, without where it lives


# ----------------------------------------------------------------------------- CLI


def test_cli_runs_an_experiment_and_writes_the_learning_curve(tmp_path, monkeypatch, capsys):
    import pandas as pd

    from vigil.cli import main

    monkeypatch.setenv("VIGIL_WORK_DIR", str(tmp_path / "runs"))
    code = main(
        [
            "ember",
            "active-learning",
            "--synthetic",
            "--strategy",
            "entropy,random",
            "--loops",
            "3",
            "--n-rec",
            "30",
            "--out",
            str(tmp_path / "al"),
        ]
    )
    assert code == 0
    curve = pd.read_csv(tmp_path / "al" / "learning_curve.csv")
    assert list(curve.columns[:5]) == ["strategy", "loop", "labelled", "roc_auc", "accuracy"]
    assert curve.groupby("strategy")["labelled"].apply(list).to_dict() == {
        "entropy": [30, 60, 90],
        "random": [30, 60, 90],
    }
    png = (tmp_path / "al" / "learning_curve.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert "learning_curve.png" in capsys.readouterr().out
    # the loops went through the platform's files: the local bucket holds them
    bucket = tmp_path / "al" / "bucket" / "local" / "vigil-local" / "local-entropy"
    assert {p.name for p in bucket.glob("metrics_*.pkl")} == {"metrics_0.pkl", "metrics_1.pkl", "metrics_2.pkl"}
    assert (
        main(["ember", "active-learning", "--synthetic", "--strategy", "smartest", "--out", str(tmp_path / "x")]) == 2
    )


def test_next_loop_right_after_a_finished_one_is_not_refused(tmp_path):
    """A client that sees "succeeded" and starts the next loop at once must not get a 409 while the
    finished job's thread is still between saving its state and releasing the lock."""
    import threading as _threading

    from vigil.active_learning.jobs import ExperimentLock, JobStore

    jobs = JobStore(tmp_path / "jobs")
    experiment = tmp_path / "expt"
    first = jobs.start(experiment, {"cur_loop": 0}, lambda progress: {"ok": True}, background=False)
    assert first["status"] == "succeeded"
    # Hold the lock as the finished job's thread would in that instant, and release it shortly after.
    straggler = ExperimentLock(experiment)
    assert straggler.try_acquire()
    _threading.Timer(0.3, straggler.release).start()
    second = jobs.start(experiment, {"cur_loop": 1}, lambda progress: {"ok": True}, background=False)
    assert second["status"] == "succeeded"
