"""The browser front end in a real headless Chromium (Debian's), against a real gunicorn server."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from conftest import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def models_dir(web_sessions_trained) -> Path:
    return web_sessions_trained[0].models_dir


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is needed for the browser tests: run scripts/install_test_tools.sh")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def test_session_form_models_page_and_try_page_in_a_browser(browser, live_server, models_dir, tmp_path):
    ui_port = free_port()
    server = live_server(models_dir, args=["--ui-port", str(ui_port), "--workers", "1"])
    ui = f"http://127.0.0.1:{ui_port}"
    page = browser.new_page(viewport={"width": 1100, "height": 1000})
    page.set_default_timeout(20_000)

    # the session form, on the UI port: a random real session, then the answer
    page.goto(f"{ui}/ui/web-sessions")
    page.click("#random-session")
    page.wait_for_function("document.getElementById('site1').value !== ''")
    assert "it came from" in page.text_content("#random-origin")
    page.click("#check-session")
    page.wait_for_selector("#result:not([hidden])")
    probability = page.text_content("#probability")
    assert re.fullmatch(r"\d{1,3}\.\d%", probability), probability
    assert page.text_content("#decision") in ("Alice: flag this session", "Not Alice")
    assert "model version 1" in page.text_content("#result-detail")
    page.screenshot(path=str(tmp_path / "web_sessions_ui.png"), full_page=True)

    # typed by hand, with a bad time: the API's error is shown, naming the field
    page.click("#clear-session")
    page.fill("#site1", "vk.com")
    page.fill("#time1", "yesterday-ish")
    page.click("#check-session")
    page.wait_for_selector("#error:not([hidden])")
    assert "times[0]" in page.text_content("#error") and page.is_hidden("#result")
    page.fill("#site1", "www.google.fr")
    page.fill("#time1", "2014-06-03 16:20:00")
    page.fill("#site2", "vk.com")
    page.fill("#time2", "2014-06-03 16:20:07")
    page.click("#check-session")
    page.wait_for_selector("#result:not([hidden])")
    page.screenshot(path=str(tmp_path / "web_sessions_ui_typed.png"), full_page=True)

    # pasted in Alice_log.csv's own format (header line included)
    page.click("text=Paste a session")
    page.fill("#paste", "timestamp,site\n2014-06-03 16:25:10,api.bing.com\n2014-06-03 16:25:11,www.google.fr")
    page.click("#paste-fill")
    assert page.input_value("#site1") == "api.bing.com" and page.input_value("#time2") == "2014-06-03 16:25:11"
    assert page.input_value("#site3") == ""

    # the loaded models, through GET /models, on the API port
    page.goto(f"{server.url}/ui/models")
    row = page.wait_for_selector("#models tr[data-task=web_sessions]")
    assert "ROC AUC" in row.text_content()
    page.screenshot(path=str(tmp_path / "models_page.png"), full_page=True)

    # every task has a page to try /predict; the example request works as it stands
    page.goto(f"{ui}/ui/tasks")
    page.click("text=POST /predict/web-sessions")
    page.click("#send")
    page.wait_for_function("document.getElementById('status').textContent !== ''")
    assert page.text_content("#status").startswith("200")
    assert '"success": true' in page.text_content("#response")
    page.fill("#body", '{"sites": ["vk.com"]}')
    page.click("#send")
    page.wait_for_function("document.getElementById('status').textContent.startsWith('400')")
    assert '"success": false' in page.text_content("#response")
    page.screenshot(path=str(tmp_path / "try_page.png"), full_page=True)
    print(f"screenshots in {tmp_path}")
