"""The console's server side without a browser: a page per task, the model facts the pages read, the
IoT picture, and the live view's stream windows (the browser tests are tests/test_ui_browser.py)."""

from __future__ import annotations

import io

import pytest

from vigil.artifacts import ArtifactStore
from vigil.config import Settings
from vigil.service import create_app
from vigil.tasks import all_tasks, get_task


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """IoT and web events (a second each) trained into one store; the other tasks stay untrained."""
    root = tmp_path_factory.mktemp("ui-routes")
    settings = Settings.from_env(models_dir=root / "models", work_dir=root / "runs")
    store = ArtifactStore(settings.models_dir)
    for name in ("iot_anomaly", "web_events"):
        get_task(name).train_default(store, settings)
    return settings, store


@pytest.fixture
def api(trained):
    settings, store = trained
    app = create_app(settings, store)
    app.config["TESTING"] = True
    return app.test_client()


def test_every_task_has_a_page_and_the_home_page_links_it(api):
    home = api.get("/ui").get_data(as_text=True)
    for task in all_tasks():
        response = api.get(f"/ui/{task.slug}")
        assert response.status_code == 200 and response.mimetype == "text/html", task.slug
        assert f'href="/ui/{task.slug}"' in home and task.title.replace("'", "&#39;") in home
        assert "common.js" in response.get_data(as_text=True)
    assert api.get("/ui/no-such-task").status_code == 404


def test_models_show_the_facts_a_page_needs_and_nothing_else_of_the_manifest(api, trained):
    _, store = trained
    model = api.get("/models/web_events").get_json()
    extra = store.latest_entry("web_events")["extra"]
    assert model["facts"]["attack_clusters"] == extra["attack_clusters"]
    assert model["facts"]["good_clusters"] == extra["good_clusters"]
    assert set(model["facts"]) == set(get_task("web_events").model_facts) and "forest_params" not in model["facts"]
    iot = api.get("/models/iot_anomaly").get_json()["facts"]
    assert iot["classes"] == ["human", "moto", "car"]


def test_the_iot_picture_is_a_png_of_the_current_model_with_bad_readings_refused(api):
    from PIL import Image

    response = api.get("/ui/iot-anomaly/picture.png?class=car&length=4500&width=1750")
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert Image.open(io.BytesIO(response.data)).size[0] > 300
    assert api.get("/ui/iot-anomaly/picture.png").status_code == 200  # no reading: the boundary alone
    bad = api.get("/ui/iot-anomaly/picture.png?class=truck")
    assert bad.status_code == 400 and "human, moto, car" in bad.get_json()["error"]
    assert api.get("/ui/iot-anomaly/picture.png?class=car&length=long&width=1").status_code == 400
    assert api.get("/ui/ember/picture.png").status_code == 404  # ember draws no picture


def test_stream_windows_of_a_live_stream_read_from_its_results(api, trained):
    from vigil.streaming.consumer import run_key_for, safe_name
    from vigil.streaming.results import ResultsStore
    from vigil.tasks.dns_exfil import write_stream_status

    settings, store = trained
    assert api.get("/dns/streams/windows").get_json() == {"streams": []}
    info = {"topic": "t", "group": "g", "bootstrap_servers": "127.0.0.1:1"}
    results = ResultsStore(settings.work_dir / "dns" / "stream" / safe_name("t-g") / "results.sqlite")
    for i, (static_f1, dynamic_f1, retrained) in enumerate([(0.9, 0.9, 0), (0.5, 0.6, 1), (0.5, 0.9, 0)]):
        record = {"offsets": f"0:{i}", "n_messages": 10, "static_f1": static_f1, "dynamic_f1": dynamic_f1}
        results.record_window(run_key_for(**info), "c", {**record, "retrained": retrained}, [], {0: i + 1}, {})
    results.close()
    write_stream_status(store, "g.c", "running", dynamic_version="2", **info)
    try:
        (stream,) = api.get("/dns/streams/windows?limit=2").get_json()["streams"]
        assert stream["topic"] == "t" and stream["dynamic_version"] == "2"
        assert [(w["window_index"], w["dynamic_f1"], w["retrained"]) for w in stream["windows"]] == [
            (1, 0.6, 1),
            (2, 0.9, 0),
        ]
    finally:
        write_stream_status(store, "g.c", "stopped", **info)
    assert api.get("/dns/streams/windows").get_json() == {"streams": []}
