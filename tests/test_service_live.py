"""The service under a real gunicorn (`vigil serve`, 2 workers x 2 threads): thread limits,
huge bodies, metrics across workers, JSON logs, tampered artifacts and atomic reload under load."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from vigil.artifacts import ArtifactStore
from vigil.config import Settings
from vigil.service import create_app

from service_support import copy_store, gunicorn_workers, metric_samples, service_trained, sum_samples  # noqa: F401


@pytest.fixture(scope="module")
def trained(service_trained):
    return service_trained


@pytest.fixture(scope="module")
def served(trained, tmp_path_factory):
    """One gunicorn (2 workers x 2 threads) over a copy of the trained store, for the tests below
    in file order; the last one stops it to read its logs."""
    from conftest import LiveServer

    task, store = trained
    live_store = copy_store(store.root, tmp_path_factory.mktemp("served") / "models")
    scratch = live_store.root.parent
    server = LiveServer(
        live_store.root,
        env={
            "VIGIL_API_TOKEN": "ops",
            "VIGIL_WORK_DIR": str(scratch / "runs"),
            "VIGIL_BUCKET_ROOT": str(scratch / "bucket"),
        },
    )
    yield task, live_store, server
    server.stop()


def rows_of(task):
    example = task.example_request()
    return example if isinstance(example, list) else [example]


def test_workers_numeric_libraries_use_one_thread(served):
    _, _, server = served
    runtime = requests.get(server.url + "/admin/runtime", headers={"Authorization": "Bearer ops"}, timeout=30).json()
    pools = runtime["thread_pools"]
    assert {p["internal_api"] for p in pools} >= {"openblas", "openmp"}, pools
    assert all(p["num_threads"] == 1 for p in pools), pools


def _post_huge(url: str, size: int, chunked: bool) -> int | None:
    """Send ``size`` bytes; return the status, or None when the server closed the connection early."""
    block = b"[" + b"0," * (1 << 19)

    def body():
        sent = 0
        while sent < size:
            yield block
            sent += len(block)

    try:
        data = body() if chunked else b"x" * size
        response = requests.post(url, data=data, headers={"Content-Type": "application/json"}, timeout=60)
    except requests.ConnectionError:
        return None
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"] == "request body too large"
    return response.status_code


def test_a_100_mb_body_is_refused_and_the_workers_stay_up(served):
    _, _, server = served
    workers_before = gunicorn_workers(server)
    assert len(workers_before) == 2
    for path in ("/predict/anything", "/no/such/route", "/health"):
        assert _post_huge(server.url + path, 100 * 1024 * 1024, chunked=False) in (413, None)
    for path in ("/predict/anything", "/no/such/route"):
        assert _post_huge(server.url + path, 100 * 1024 * 1024, chunked=True) in (413, None)
    with requests.Session() as session:
        statuses = [session.get(server.url + "/health", timeout=10).status_code for _ in range(20)]
    assert statuses == [200] * 20
    assert gunicorn_workers(server) == workers_before  # no worker died or was recycled


def test_metrics_add_up_across_workers(served):
    _, _, server = served
    with ThreadPoolExecutor(8) as pool:
        statuses = list(
            pool.map(lambda _: requests.get(server.url + "/v2/health/live", timeout=10).status_code, range(60))
        )
    assert statuses == [200] * 60
    pids = {
        requests.get(server.url + "/admin/runtime", headers={"Authorization": "Bearer ops"}, timeout=30).json()["pid"]
        for _ in range(12)
    }
    samples = metric_samples(requests.get(server.url + "/metrics", timeout=10).text)
    assert sum_samples(samples, "vigil_requests_total", endpoint="/v2/health/live") == 60
    if len(pids) > 1:  # both workers answered: the sum above came from both of their files
        assert sum_samples(samples, "vigil_requests_total", endpoint="/admin/runtime") >= 11


def test_tampered_model_is_refused_and_reported_in_ready(trained, tmp_path, live_server):
    task, store = trained
    tampered = copy_store(store.root, tmp_path / "models")
    entry = tampered.latest_entry(task.name)
    artifact = tampered.root / entry["file"]
    artifact.write_bytes(artifact.read_bytes() + b"\x00")
    server = live_server(tampered.root)
    assert requests.get(server.url + "/health", timeout=10).status_code == 200
    ready = requests.get(server.url + "/ready", timeout=10)
    assert ready.status_code == 503
    assert "manifest hash" in ready.json()["missing"][task.name]
    assert requests.get(server.url + "/v2/health/ready", timeout=10).json() == {"ready": False}
    response = requests.post(f"{server.url}/predict/{task.slug}", json=task.example_request(), timeout=10)
    assert response.status_code == 503 and set(response.json()) == {"error", "detail"}


def test_unsigned_manifest_is_refused_when_a_model_key_is_set(trained, tmp_path):
    task, store = trained
    copy_store(store.root, tmp_path / "models")
    keyed = ArtifactStore(tmp_path / "models", model_key="k3y")
    client = create_app(Settings.from_env(models_dir=keyed.root, model_key="k3y"), keyed).test_client()
    ready = client.get("/ready")
    assert ready.status_code == 503 and "signature" in ready.get_json()["missing"][task.name]
    # signed with the key, the same artifacts load
    keyed._write_manifest(ArtifactStore(keyed.root).read_manifest())
    assert client.post("/admin/reload").get_json()["models"][task.name]
    assert client.get("/ready").status_code == 200 or task.name in client.get("/ready").get_json()["models"]


def _load_while(server, task, action, clients: int = 4) -> tuple[list, set]:
    """Run ``action`` while ``clients`` threads keep predicting; return (failures, versions seen)."""
    body, failures, versions, stop = rows_of(task), [], set(), threading.Event()

    def client():
        with requests.Session() as session:
            while not stop.is_set():
                try:
                    response = session.post(f"{server.url}/predict/{task.slug}", json=body, timeout=30)
                except requests.RequestException as exc:
                    failures.append(repr(exc))
                    continue
                if response.status_code != 200:
                    failures.append((response.status_code, response.text[:200]))
                versions.add(response.headers.get("X-Model-Version"))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        action()
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    return failures, versions


def test_reload_swaps_versions_with_no_failed_request(served):
    task, live_store, server = served
    loaded = live_store.load(task.name)
    new_versions = []

    def save_and_reload_three_times():
        for _ in range(3):
            entry = live_store.save(
                task.name,
                loaded.model,
                metrics=loaded.metrics,
                threshold=loaded.threshold,
                feature_version=loaded.feature_version,
                extra=loaded.entry.get("extra"),
            )
            new_versions.append(entry["version"])
            reply = requests.post(server.url + "/admin/reload", headers={"Authorization": "Bearer ops"}, timeout=60)
            assert reply.status_code == 200 and reply.json()["models"][task.name] == entry["version"]
            time.sleep(0.4)

    failures, versions = _load_while(server, task, save_and_reload_three_times, clients=6)
    assert not failures, failures[:5]
    assert loaded.version in versions and new_versions[-1] in versions
    # every worker has caught up: the next requests all see the newest version
    body = rows_of(task)
    with ThreadPoolExecutor(4) as pool:
        latest = set(
            pool.map(
                lambda _: requests.post(f"{server.url}/predict/{task.slug}", json=body, timeout=30).headers[
                    "X-Model-Version"
                ],
                range(16),
            )
        )
    assert latest == {new_versions[-1]}


def test_reload_keeps_the_old_model_when_the_new_one_is_tampered(served):
    task, live_store, server = served
    loaded = live_store.load(task.name)
    entry = live_store.save(task.name, loaded.model, metrics=loaded.metrics, extra=loaded.entry.get("extra"))
    artifact = live_store.root / entry["file"]
    artifact.write_bytes(artifact.read_bytes()[:-10])
    reply = requests.post(server.url + "/admin/reload", headers={"Authorization": "Bearer ops"}, timeout=60).json()
    assert reply["ok"] is False and "manifest hash" in reply["errors"][task.name]
    assert reply["models"][task.name] == loaded.version
    ready = requests.get(server.url + "/ready", timeout=10)
    body = ready.json()  # (503 overall while other registered tasks have no model in this store)
    assert task.name in body["errors"] and body["models"][task.name] == loaded.version
    assert task.name not in body["missing"]
    response = requests.post(f"{server.url}/predict/{task.slug}", json=task.example_request(), timeout=10)
    assert response.status_code == 200 and response.headers["X-Model-Version"] == loaded.version


def test_a_hash_valid_broken_model_is_never_served_under_load(served):
    """Hardening item 3: a new version that fails its warm-up keeps the previous one serving."""
    from sklearn.linear_model import LogisticRegression

    task, live_store, server = served
    serving = requests.post(f"{server.url}/predict/{task.slug}", json=rows_of(task), timeout=10)
    serving_version = serving.headers["X-Model-Version"]
    broken = live_store.save(task.name, LogisticRegression())  # verifies, loads, cannot answer

    def reload():
        reply = requests.post(server.url + "/admin/reload", headers={"Authorization": "Bearer ops"}, timeout=60)
        assert "warm-up" in reply.json()["errors"][task.name], reply.text
        assert reply.json()["models"][task.name] == serving_version

    failures, versions = _load_while(server, task, reload)
    assert not failures, failures[:3]
    assert versions == {serving_version} and broken["version"] not in versions


def test_a_byte_flipped_in_the_served_file_is_caught_at_reload(served):
    task, live_store, server = served
    serving = requests.post(f"{server.url}/predict/{task.slug}", json=rows_of(task), timeout=10)
    entry = next(e for e in live_store.entries(task.name) if e["version"] == serving.headers["X-Model-Version"])
    path = live_store.root / entry["file"]
    original = path.read_bytes()
    path.write_bytes(original[:100] + bytes([original[100] ^ 1]) + original[101:])
    try:
        requests.post(server.url + "/admin/reload", headers={"Authorization": "Bearer ops"}, timeout=60)
        ready = requests.get(server.url + "/ready", timeout=10)
        assert ready.status_code == 503 and "does not match" in ready.json()["errors"][task.name]
        # the verified copy in memory keeps answering meanwhile
        response = requests.post(f"{server.url}/predict/{task.slug}", json=rows_of(task), timeout=10)
        assert response.status_code == 200 and response.headers["X-Model-Version"] == entry["version"]
    finally:
        path.write_bytes(original)


def test_logs_are_json_lines_with_the_request_id(served):
    _, _, server = served
    response = requests.get(server.url + "/models", headers={"X-Request-ID": "ops-trace-7"}, timeout=10)
    assert response.headers["X-Request-ID"] == "ops-trace-7"
    output = server.stop()
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert any(
        r.get("request_id") == "ops-trace-7" and r.get("path") == "/models" and r.get("status") == 200 for r in records
    ), output[-2000:]
    assert any(r.get("logger") == "gunicorn.error" for r in records)  # gunicorn's own log is JSON too
