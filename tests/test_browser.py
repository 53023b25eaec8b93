"""A real browser against a live `streamlit run`: select a client, vote, find the row on disk."""
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from seller.data.dataset import load_sample
from seller.paths import REPO_ROOT

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason=f"{CHROMIUM} missing: apt-get install -y chromium chromium-driver fonts-noto-color-emoji"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (never `playwright install`)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    port = free_port()
    env = os.environ | {"SELLER_DB_PATH": str(tmp_path / "feedback.db"), "SELLER_ASSOCIATE": "A-browser"}
    env.pop("SELLER_DB_URL", None)
    log = open(tmp_path / "streamlit.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO_ROOT / "app" / "main.py"),
         "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start: {(tmp_path / 'streamlit.log').read_text()[-2000:]}")
            time.sleep(0.3)
        yield url, tmp_path
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def wait_until_idle(page, timeout_ms: int = 600_000) -> None:
    """Wait for the script run to finish (Streamlit shows its status widget while running)."""
    status = page.locator("[data-testid='stStatusWidget']")
    try:
        status.wait_for(state="visible", timeout=5_000)
    except sync_api.TimeoutError:
        pass  # the run was already over
    status.wait_for(state="hidden", timeout=timeout_ms)


def db_rows(path: Path) -> list[tuple]:
    if not path.exists():
        return []
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT associate_id, client_id, item_id, vote, explanation FROM feedback").fetchall()


def test_select_client_vote_and_screenshot(server):
    url, tmp = server
    sample = load_sample()
    client = sample.clients.set_index("client_id").loc[sample.events["client_id"].value_counts().index[1]]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 1500})
        page.goto(url)
        page.wait_for_selector(".js-plotly-plot", timeout=600_000)  # first client drawn
        wait_until_idle(page)
        # choose the client by typing into the picker, as an associate would
        picker = page.locator(".st-key-client_id input")
        picker.click()
        picker.fill(client.name)
        page.keyboard.press("Enter")
        page.get_by_role("heading", name=client["display_name"]).wait_for(timeout=600_000)
        wait_until_idle(page)  # no stale cards of the previous client left to click
        if page.get_by_text("Explanation model not installed").count():
            page.screenshot(path=str(tmp / "clienteling_no_model.png"), full_page=True)
            if os.environ.get("SELLER_SCREENSHOT_DIR"):
                shutil.copy(tmp / "clienteling_no_model.png", os.environ["SELLER_SCREENSHOT_DIR"])
            pytest.fail("the shipped explanation model (models/sample) did not load: "
                        + page.get_by_text("Explanation model not installed").first.inner_text())
        # this client's vote buttons (keyed by client: a stale card of the previous one never matches)
        mine = f"st-key-up-{client.name}-"
        page.locator(f"[class*='{mine}'] button").first.wait_for(timeout=600_000)  # explanations written
        key = next(c for c in page.locator(f"[class*='{mine}']").first.get_attribute("class").split()
                   if c.startswith(mine))
        item_id = key.removeprefix(mine)
        page.locator(f".{key} button").first.click()  # the DOM can hold the widget twice mid-rerun
        deadline = time.monotonic() + 30
        while not db_rows(tmp / "feedback.db") and time.monotonic() < deadline:
            time.sleep(0.2)
        page.wait_for_timeout(800)  # let the toast and the re-run settle for the screenshot
        shot = tmp / "clienteling.png"
        page.screenshot(path=str(shot), full_page=True)
        if os.environ.get("SELLER_SCREENSHOT_DIR"):
            shutil.copy(shot, os.environ["SELLER_SCREENSHOT_DIR"])
        # a deep link to the experiments page runs the router and counts the vote
        page.goto(f"{url}/experiments")
        votes = page.locator("[data-testid='stMetric']").filter(has_text="Votes")
        votes.wait_for(timeout=60_000)
        assert votes.locator("[data-testid='stMetricValue']").inner_text().strip() == "1"
        assert page.get_by_text("Associate id").count() == 1
        browser.close()
    rows = db_rows(tmp / "feedback.db")
    assert len(rows) == 1, rows
    assert rows[0][:4] == ("A-browser", client.name, item_id, 1) and rows[0][4].strip()
    assert shot.stat().st_size > 10_000
