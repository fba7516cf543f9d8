"""Every task page of the analyst's console in a real headless Chromium (Debian's), against one real
gunicorn server holding every task's default model: real inputs in, rendered verdicts read back.

Any JavaScript error on a page (an uncaught exception, or a console error) fails the test that opened
it. ``WRITE_UI_FIGURES=1`` also writes each page's screenshot to ``docs/figures/ui-<page>.png`` (the
pictures of docs/ui.md).
"""

from __future__ import annotations

import base64
import csv
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest
import requests
from test_web_sessions_browser import CHROMIUM, CHROMIUM_ARGS

from vigil.artifacts import ArtifactStore
from vigil.config import Settings
from vigil.tasks import all_tasks, get_task

from conftest import REPO_ROOT, LiveServer

DATA = REPO_ROOT / "data"
PE_FILES = [DATA / "ember" / "pe" / "t32.exe", DATA / "ember" / "pe" / "w64-arm.exe"]  # pip's launchers
DEBIAN_PE = [DATA / "ember" / "debian" / name for name in ("clam-upack.exe", "icmp-x86_64.dll", "fbx64.efi")]
FIGURES = REPO_ROOT / "docs" / "figures"


@pytest.fixture(scope="module")
def console_models(web_sessions_trained, tmp_path_factory) -> Path:
    """Every task's default model (as `vigil bootstrap` trains them), web-sessions' reused."""
    root = tmp_path_factory.mktemp("console")
    models = root / "models"
    shutil.copytree(web_sessions_trained[0].models_dir, models)
    settings = Settings.from_env(models_dir=models, work_dir=root / "runs")
    store = ArtifactStore(models)
    for task in all_tasks():
        if store.latest_entry(task.name) is None:
            task.train_default(store, settings)
    return models


@pytest.fixture(scope="module")
def server(console_models):
    work = console_models.parent / "work"
    live = LiveServer(console_models, env={"VIGIL_WORK_DIR": str(work)}, args=["--workers", "1"])
    live.work_dir = work
    yield live
    live.stop()


@pytest.fixture(scope="module")
def chromium():
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is needed for the browser tests: run scripts/install_test_tools.sh")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class PageErrors(list):
    """JavaScript errors of one page; ``allow(text)`` expects console errors containing ``text``."""

    def __init__(self):
        super().__init__()
        self.allowed: list[str] = []

    def allow(self, text: str) -> None:
        self.allowed.append(text)

    def unexpected(self) -> list[str]:
        return [e for e in self if not any(a in e for a in self.allowed)]


@pytest.fixture
def page(chromium, server):
    """A fresh page whose uncaught exceptions and console errors fail the test."""
    context = chromium.new_context(viewport={"width": 1180, "height": 900}, base_url=server.url)
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    errors = PageErrors()
    tab.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    tab.on("console", lambda msg: errors.append(f"console.{msg.type}: {msg.text}") if msg.type == "error" else None)
    tab.errors = errors
    yield tab
    context.close()
    assert not errors.unexpected(), errors.unexpected()


def screenshot(page, name: str, tmp_path: Path) -> None:
    if os.environ.get("WRITE_UI_FIGURES"):
        FIGURES.mkdir(parents=True, exist_ok=True)
        path = FIGURES / f"ui-{name}.png"
    else:
        path = tmp_path / f"ui-{name}.png"
    from PIL import Image

    shot = Image.open(io.BytesIO(page.screenshot(full_page=True)))
    shot = shot.crop((0, 0, shot.width, min(shot.height, 1400)))  # the top of a long table is enough
    shot.convert("RGB").quantize(colors=64).save(path, optimize=True)  # a palette PNG: text stays sharp
    assert path.stat().st_size < 200_000, f"{path} is {path.stat().st_size} bytes"


def cells(page, selector: str) -> list[list[str]]:
    return page.eval_on_selector_all(selector, "rows => rows.map(r => [...r.cells].map(c => c.innerText.trim()))")


def test_home_lists_every_task_with_a_working_link(page, tmp_path):
    page.goto("/ui")
    page.wait_for_function("document.querySelector('#home-tasks .model-state').textContent !== ''")
    items = page.locator("#home-tasks li")
    assert items.count() == len(all_tasks())
    for task in all_tasks():
        item = page.locator(f"#home-tasks li[data-task='{task.slug}']")
        assert task.title in item.inner_text()
        assert item.locator("a").get_attribute("href") == f"/ui/{task.slug}"
        assert item.locator(".model-state").inner_text() == "model version 1 answers"
    screenshot(page, "home", tmp_path)
    for task in all_tasks():  # every link leads to its page, which loads without a script error
        page.goto("/ui")
        page.click(f"#home-tasks li[data-task='{task.slug}'] a")
        page.wait_for_load_state("networkidle")
        assert page.url.endswith(f"/ui/{task.slug}")
        assert page.locator("nav a.active").inner_text() == task.ui_label


def test_malware_page_scores_real_pe_files_chosen_and_dropped(page, server, tmp_path):
    page.goto("/ui/ember")
    page.wait_for_selector("#demo-warning:not([hidden])")  # the default model is the synthetic demo
    assert "not a malware detector" in page.inner_text("#demo-warning")
    page.set_input_files("#files", [str(p) for p in PE_FILES + DEBIAN_PE])
    page.click("#check-files")
    page.wait_for_selector("#result:not([hidden])")
    rows = cells(page, "#files-table tbody tr")
    assert [r[0] for r in rows] == [p.name for p in PE_FILES + DEBIAN_PE]
    threshold = requests.get(f"{server.url}/models/ember", timeout=30).json()["threshold"]
    for path, row in zip(PE_FILES + DEBIAN_PE, rows):
        sha = page.get_attribute(f"#files-table tr[data-file='{path.name}'] td.sha", "title")
        assert sha == hashlib.sha256(path.read_bytes()).hexdigest() and row[1] == sha[:16] + "…"
        probability = float(row[3].rstrip("%")) / 100
        assert row[2] == ("malicious" if probability >= threshold else "benign")
        assert row[2] == "benign" or path in DEBIAN_PE  # pip's launchers are benign (the demo model's verdict)
        reasons = page.eval_on_selector_all(
            f"#files-table tr[data-file='{path.name}'] ul.reasons li", "items => items.map(i => i.innerText)"
        )
        assert len(reasons) == 3 and all("the score by" in r for r in reasons), reasons  # LightGBM pred_contrib
    flagged = sum(1 for r in rows if r[2] == "malicious")
    assert page.inner_text("#summary") == f"{flagged} of {len(rows)} file(s) flagged as malicious."
    assert "1.0% false-positive rate" in page.inner_text("#result-detail")
    screenshot(page, "malware", tmp_path)

    # drag-and-drop: the same launcher dropped on the zone
    payload = base64.b64encode(PE_FILES[0].read_bytes()).decode()
    transfer = page.evaluate_handle(
        """([name, b64]) => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const data = new DataTransfer();
            data.items.add(new File([bytes], name, {type: "application/octet-stream"}));
            return data;
        }""",
        ["dropped-t32.exe", payload],
    )
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})
    assert "dropped-t32.exe" in page.inner_text("#chosen")
    page.click("#check-files")
    page.wait_for_function("document.querySelector('#files-table tbody tr').dataset.file === 'dropped-t32.exe'")
    assert cells(page, "#files-table tbody tr") == [["dropped-t32.exe", *rows[0][1:]]]

    # not a PE file: scored on its bytes alone, and the row says so
    page.set_input_files("#files", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}])
    page.click("#check-files")
    page.wait_for_selector("#files-table tr[data-file='notes.txt']")
    assert "not a parsable PE file" in page.inner_text("#files-table tr[data-file='notes.txt'] td.why")


def _sample_events(n: int) -> tuple[str, list[dict]]:
    with open(DATA / "web_events" / "events_sample.csv", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = [row for _, row in zip(range(n), reader)]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return text.getvalue(), [dict(zip(header, row)) for row in rows]


def test_web_events_page_labels_pasted_csv_and_uploaded_mlpt_json(page, server, tmp_path):
    facts = requests.get(f"{server.url}/models/web_events", timeout=30).json()["facts"]
    attack, good = set(facts["attack_clusters"]), set(facts["good_clusters"])
    assert attack and good
    text, events = _sample_events(60)
    page.goto("/ui/web-events")
    page.fill("#events", text)
    page.click("#check-events")
    page.wait_for_selector("#result:not([hidden])")
    rows = page.eval_on_selector_all(
        "#events-table tbody tr",
        "rows => rows.map(r => ({id: r.dataset.event, kind: r.dataset.kind, cluster: r.cells[4].innerText,"
        " why: r.cells[6].innerText}))",
    )
    assert [r["id"] for r in rows] == [e["EVENT_ID"] for e in events]
    for row in rows:
        cluster = -1 if row["cluster"].startswith("noise") else int(row["cluster"])
        kind = "attack" if cluster in attack else "good" if cluster in good else "noise"
        assert row["kind"] == kind, row
        assert {"attack": "attack cluster", "good": "ordinary traffic", "noise": "no cluster"}[kind] in row["why"]
        assert "component" in row["why"] and "the score by" in row["why"], row  # the forest's own reasons
    # the same labels as the API gives for these events
    from vigil.tasks.web_events.data import event_to_request_record

    records = [event_to_request_record(e) for e in events]
    answer = requests.post(f"{server.url}/predict/web-events", json=records, timeout=60).json()
    assert [r["kind"] == "attack" for r in rows] == [a.get("attack", a["LABEL_PRED"] in attack) for a in answer]
    assert [str(-1 if r["cluster"].startswith("noise") else int(r["cluster"])) for r in rows] == [
        str(a["LABEL_PRED"]) for a in answer
    ]
    by_cluster = {int(r[0].replace("noise (-1)", "-1")): int(r[2]) for r in cells(page, "#clusters-table tbody tr")}
    assert sum(by_cluster.values()) == len(events)
    assert by_cluster == {c: [a["LABEL_PRED"] for a in answer].count(c) for c in by_cluster}
    attacks = sum(1 for r in rows if r["kind"] == "attack")
    assert page.inner_text("#summary").startswith(f"{attacks} of {len(events)} event(s) fall in an attack cluster")
    screenshot(page, "web-events", tmp_path)

    # ML-PT's own JSON request, uploaded as a file (NaN for missing values, as its client writes them)
    upload = tmp_path / "events.json"
    upload.write_text(json.dumps(records[:20]))
    page.click("#clear-events")
    page.set_input_files("#events-file", str(upload))
    page.wait_for_function("document.getElementById('events').value.length > 0")
    page.click("#check-events")
    page.wait_for_function("document.querySelectorAll('#events-table tbody tr').length === 20")
    again = page.eval_on_selector_all("#events-table tbody tr", "rows => rows.map(r => r.dataset.kind)")
    assert again == [r["kind"] for r in rows[:20]]

    # the example of ML-PT's README (two events, one value missing), one click away
    page.click("#example-events")
    page.click("#check-events")
    page.wait_for_function("document.querySelectorAll('#events-table tbody tr').length === 2")

    # one unreadable record among good ones: the good ones are labelled, the bad one is named
    page.fill("#events", json.dumps([records[0], {"data": "{not json"}, records[1]]))
    page.click("#check-events")
    page.wait_for_selector("#bad-events li")
    assert len(cells(page, "#events-table tbody tr")) == 2
    assert page.inner_text("#bad-events").startswith("Event 2: ")
    assert "1 could not be read" in page.inner_text("#summary")

    # a CSV without ML-PT's columns: one clear line, no request
    page.fill("#events", "ip,agent\n1.2.3.4,curl")
    page.click("#check-events")
    page.wait_for_selector("#error:not([hidden])")
    assert "lacks CLIENT_IP" in page.inner_text("#error")


def _real_names() -> tuple[list[str], list[str]]:
    with gzip.open(DATA / "dns_exfil" / "captures.csv.gz", "rt", newline="") as handle:
        tunnels = [r["qname"] for r in csv.DictReader(handle) if r["data_bearing"] == "1"]
    with gzip.open(DATA / "dns_exfil" / "benign_names.csv.gz", "rt", newline="") as handle:
        benign = [r["name"] for r in csv.DictReader(handle)]
    return tunnels[:40], ["www.wikipedia.org", "mail.google.com", *benign[::5000][:6]]


def _write_windows(path: Path, run_key: str, windows: list[dict]) -> None:
    from vigil.streaming.results import ResultsStore

    results = ResultsStore(path)
    for record in windows:
        results.record_window(run_key, "ui-test", record, [], {0: record["n_messages"]}, {"state": 1})
    results.close()


def _window(i: int, static_f1: float, dynamic_f1: float, retrained: int = 0) -> dict:
    return {
        "offsets": f"0:{i * 500}-{i * 500 + 499}",
        "n_messages": 500,
        "n_rejected": 0,
        "n_attacks": 120,
        "static_f1": static_f1,
        "static_accuracy": static_f1,
        "static_roc_auc": static_f1,
        "dynamic_f1": dynamic_f1,
        "dynamic_accuracy": dynamic_f1,
        "dynamic_roc_auc": dynamic_f1,
        "dynamic_version": "2" if retrained or i > 3 else "1",
        "retrained": retrained,
        "reason": "F1 below the floor" if retrained else "ok",
        "seconds": 0.2,
    }


def test_dns_page_names_log_upload_and_live_stream_view(page, server, console_models, tmp_path):
    tunnels, benign = _real_names()
    names = [*benign[:4], *tunnels, *benign[4:]]
    page.goto("/ui/dns")
    page.fill("#names", "\n".join(names))
    page.click("#check-names")
    page.wait_for_selector("#result:not([hidden])")
    rows = page.eval_on_selector_all(
        "#names-table tbody tr", "rows => rows.map(r => [r.dataset.name, r.cells[2].innerText, r.cells[3].innerText])"
    )
    answer = requests.post(f"{server.url}/predict/dns", json={"queries": names}, timeout=60).json()
    assert [r[0] for r in rows] == names
    assert [r[1] for r in rows] == [a["decision"] for a in answer["results"]]
    verdicts = dict((r[0], r[1]) for r in rows)
    assert all(verdicts[name] == "exfiltration" for name in tunnels), rows  # real iodine/dns2tcp/... queries
    assert verdicts["www.wikipedia.org"] == verdicts["mail.google.com"] == "benign"
    reasons = page.eval_on_selector_all(
        "#names-table tbody tr", "rows => rows.map(r => r.querySelectorAll('td.why ul.reasons li').length)"
    )
    assert reasons == [3] * len(names)
    assert "a label of" in page.inner_text(f"#names-table tr[data-name='{tunnels[0]}'] td.why")
    # per domain: the tunnel's zone is flagged, with the detector's reasons; the benign ones are not
    tunnel_domain = page.get_attribute("#domains-table tr[data-flagged=true]", "data-domain")
    assert tunnels[0].endswith(tunnel_domain) and page.locator("#domains-table tr[data-flagged=true]").count() == 1
    assert "unique subdomains" in page.inner_text("#domains-table tr[data-flagged=true] td.why")
    assert page.get_attribute("#domains-table tr[data-domain='wikipedia.org']", "data-flagged") == "false"
    flagged = sum(1 for r in rows if r[1] == "exfiltration")
    assert page.inner_text("#summary").startswith(f"{flagged} of {len(names)} name(s) look like exfiltration")
    screenshot(page, "dns", tmp_path)

    # a log: the capture CSV's own format (qname column), uploaded
    log = tmp_path / "capture.csv"
    with gzip.open(DATA / "dns_exfil" / "captures.csv.gz", "rt") as handle:
        log.write_text("".join(line for _, line in zip(range(11), handle)))
    page.click("#clear-names")
    page.set_input_files("#log-file", str(log))
    page.wait_for_function("document.getElementById('names').value.split('\\n').length === 10")
    assert page.input_value("#names").split("\n")[0] == "vaaaakarfbq.i.tun.vigil-test.net"
    page.click("#check-names")
    page.wait_for_function("document.querySelectorAll('#names-table tbody tr').length === 10")

    # BIND and dnsmasq query-log lines, pasted as they are
    bind = (
        f"01-Dec-2026 10:00:01.123 client @0x7f 10.0.0.5#53211 ({tunnels[1]}): query: {tunnels[1]} IN TXT +E(0) (10.0.0.1)\n"
        "Dec  1 10:00:02 dnsmasq[812]: query[A] www.wikipedia.org from 10.0.0.7\n"
    )
    page.fill("#names", bind)
    page.click("#check-names")
    page.wait_for_function("document.querySelectorAll('#names-table tbody tr').length === 2")
    assert [r[1:3] for r in cells(page, "#names-table tbody tr")] == [
        [tunnels[1], "exfiltration"],
        ["www.wikipedia.org", "benign"],
    ]

    # the example names, one click away
    page.click("#clear-names")
    page.click("#example-names")
    page.click("#check-names")
    page.wait_for_selector("#result:not([hidden])")
    assert [r[2] for r in cells(page, "#names-table tbody tr")] == ["benign", "exfiltration"]

    # the live view: a running stream's heartbeat and its results, as `vigil dns stream` writes them
    from vigil.streaming.consumer import run_key_for, safe_name
    from vigil.tasks.dns_exfil import write_stream_status

    assert page.is_visible("#streams-none")
    store = ArtifactStore(console_models)
    info = {"topic": "dns-live", "group": "ui", "bootstrap_servers": "127.0.0.1:9092"}
    results = server.work_dir / "dns" / "stream" / safe_name("dns-live-ui") / "results.sqlite"
    run_key = run_key_for(info["bootstrap_servers"], info["topic"], info["group"])
    _write_windows(results, run_key, [_window(0, 0.95, 0.95), _window(1, 0.93, 0.94), _window(2, 0.61, 0.62, 1)])
    from vigil.tasks.dns_exfil.domains import DomainDetector

    detector = DomainDetector()
    detector.observe(tunnels)  # the stream's per-domain detector on the real tunnel queries
    alerts = detector.flagged()
    assert alerts
    info["flagged_domains"] = alerts
    write_stream_status(store, "ui.ui-test", "running", dynamic_version="2", static_version="1", windows=3, **info)
    page.wait_for_selector(".stream svg.chart polyline.dynamic")
    assert page.locator(".stream svg line.retrain").count() == 1 + 1  # the retrain, and its legend swatch
    line = page.inner_text(".stream-line")
    assert "unique subdomains" in page.inner_text(".stream ul.flagged-domains")
    assert line.startswith("3 window(s); latest #2: static F1 0.610, dynamic F1 0.620; 1 retrain(s)")
    _write_windows(results, run_key, [_window(3, 0.58, 0.91), _window(4, 0.57, 0.93)])
    write_stream_status(store, "ui.ui-test", "running", dynamic_version="2", static_version="1", windows=5, **info)
    page.wait_for_function("document.querySelector('.stream-line').textContent.startsWith('5 window(s)')")
    points = page.get_attribute(".stream svg polyline.dynamic", "points").split()
    assert len(points) == 5
    write_stream_status(store, "ui.ui-test", "stopped", windows=5, **info)
    page.wait_for_selector("#streams-none")


def test_iot_page_marks_the_reading_on_the_decision_boundary(page, tmp_path):
    page.goto("/ui/iot-anomaly")
    page.wait_for_function("document.getElementById('boundary').dataset.loaded")
    assert page.eval_on_selector_all("#klass option", "o => o.map(x => x.value)") == ["human", "moto", "car"]
    page.select_option("#klass", "car")
    page.fill("#length", "4500")
    page.fill("#width", "1750")
    page.click("#check-reading")
    page.wait_for_selector("#result:not([hidden])")
    assert page.inner_text("#decision") == "Fits its class"  # a real car's size
    assert re.fullmatch(r"\d{1,3}\.\d%", page.inner_text("#probability"))
    assert "length 4500 mm" in page.inner_text("#reasons ul.reasons")  # Shapley values of the reading
    page.wait_for_function("document.getElementById('boundary').dataset.loaded.includes('length=4500')")
    src = page.get_attribute("#boundary", "src")
    assert "class=car" in src and "width=1750" in src
    assert page.evaluate("document.getElementById('boundary').naturalWidth") > 200
    assert "reading 4500 × 1750 mm marked" in page.inner_text("#boundary-caption")
    screenshot(page, "iot", tmp_path)

    page.select_option("#klass", "human")
    page.fill("#length", "600")
    page.fill("#width", "1900")
    page.click("#check-reading")
    page.wait_for_function("document.getElementById('decision').textContent.startsWith('Odd')")

    page.fill("#width", "wide")
    page.click("#check-reading")
    page.wait_for_selector("#error:not([hidden])")
    assert "millimetres" in page.inner_text("#error")


def test_alice_page_checks_a_real_session(page, tmp_path):
    page.goto("/ui/web-sessions")
    page.click("#random-session")
    page.wait_for_function("document.getElementById('site1').value !== ''")
    page.click("#check-session")
    page.wait_for_selector("#result:not([hidden])")
    assert page.inner_text("#decision") in ("Alice: flag this session", "Not Alice")
    screenshot(page, "alice", tmp_path)


def test_models_page_names_metrics_dates_and_serving_versions(page, console_models, tmp_path):
    page.goto("/ui/models")
    page.wait_for_selector("#models tr[data-task=ember]")
    store = ArtifactStore(console_models)
    for task in all_tasks():
        row = page.locator(f"#models tr[data-task={task.name}]")
        text = row.inner_text()
        assert task.ui_label in text and f"version {store.latest_entry(task.name)['version']}" in text
        assert f"answers POST /predict/{task.slug}" in text
        created = store.latest_entry(task.name)["created_at"][:10]  # 2026-12-01 -> "1 Dec 2026"
        day = time.strftime("%-d %b %Y", time.strptime(created, "%Y-%m-%d"))
        assert day in row.locator("time").inner_text()
        assert "_" not in row.locator("ul.metrics").inner_text(), text  # no raw metric keys
    ember = page.locator("#models tr[data-task=ember]").inner_text()
    assert "ROC AUC: " in ember and "detection rate at 1% FPR" in ember
    assert page.inner_text("#missing") == "none: every task has a model"
    screenshot(page, "models", tmp_path)


def test_pages_of_every_task_name_their_template():
    for task in all_tasks():
        assert task.ui_template and (REPO_ROOT / "src" / "vigil" / "web" / "templates" / task.ui_template).is_file()
        assert get_task(task.slug).ui_label


def test_dns_live_view_follows_a_real_stream(page, server, console_models, tmp_path):
    """`vigil dns stream`'s own consumer on the embedded Kafka broker, fed real benign names and a real
    dns2tcp capture (moved under another domain): the page draws its windows as they close, then
    the tunnel's domain as the stream flags it, and says when the stream has stopped."""
    import threading

    from vigil.drift import RetrainPolicy
    from vigil.streaming.broker import EmbeddedBroker
    from vigil.streaming.consumer import WindowedConsumer, safe_name
    from vigil.streaming.kafka_io import ensure_topic, produce
    from vigil.streaming.results import ResultsStore
    from vigil.tasks.dns_exfil.benign import load_benign
    from vigil.tasks.dns_exfil.capture import load_captures
    from vigil.tasks.dns_exfil.stream import DnsWindowProcessor

    benign = load_benign().sample(1500, random_state=0).name.tolist()
    captures = load_captures()
    tunnel = captures[captures.tool == "dns2tcp"].head(400)
    start = 1_700_000_000.0
    events = [{"query": n, "time": start + i * 2.0, "label": 0} for i, n in enumerate(benign)]
    events += [
        {"query": q.replace("tun.vigil-test.net", "exfil-relay.net"), "time": start + 1000.0 + t, "label": 1}
        for q, t in zip(tunnel.qname, tunnel.time)
    ]
    events.sort(key=lambda e: e["time"])
    values = [json.dumps(e).encode() for e in events]
    store = ArtifactStore(console_models)
    topic, group = "dns-ui-live", "console"
    results_path = server.work_dir / "dns" / "stream" / safe_name(f"{topic}-{group}") / "results.sqlite"
    page.goto("/ui/dns")
    page.wait_for_selector("#streams-none")
    with EmbeddedBroker() as broker:
        ensure_topic(broker.bootstrap_servers, topic, 1)
        info = {"topic": topic, "group": group, "bootstrap_servers": broker.bootstrap_servers}
        holder: dict = {}

        def run() -> None:  # the consumer's SQLite connection belongs to this thread
            processor = DnsWindowProcessor(store, store.load("dns_exfil"), f"{group}.main", RetrainPolicy(), info)
            consumer = WindowedConsumer(
                broker.bootstrap_servers,
                topic,
                group,
                processor,
                ResultsStore(results_path),
                window_size=300,
                idle_timeout_s=120,
                config_overrides={"session.timeout.ms": 2000, "heartbeat.interval.ms": 500},
            )
            holder["consumer"] = consumer
            holder["stats"] = consumer.run()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        produce(broker.bootstrap_servers, topic, values[:950])
        page.wait_for_function("(document.querySelector('.stream-line') || {}).textContent?.startsWith('3 window(s)')")
        assert page.locator(".stream h3").inner_text() == f"Topic {topic}, group {group}"
        produce(broker.bootstrap_servers, topic, values[950:])
        page.wait_for_function("document.querySelector('.stream-line').textContent.startsWith('6 window(s)')")
        page.wait_for_selector(".stream ul.flagged-domains li[data-domain='exfil-relay.net']")
        assert "unique subdomains" in page.inner_text(".stream ul.flagged-domains")
        windows = ResultsStore(results_path).windows()
        shown = len(page.get_attribute(".stream svg polyline.dynamic", "points").split())
        assert shown == sum(
            1 for w in windows if isinstance(w["dynamic_f1"], float) and w["dynamic_f1"] == w["dynamic_f1"]
        )
        assert page.locator(".stream svg line.retrain").count() == 1 + sum(w["retrained"] for w in windows)
        screenshot(page, "dns-stream", tmp_path)
        holder["consumer"].stop()
        thread.join(timeout=60)
        assert holder["stats"].windows == 6
    page.wait_for_selector("#streams-none")
