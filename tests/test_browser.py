"""A real browser against a live `streamlit run`: sign in, select a client, vote, find the row on
disk; an associate's scope; the idle expiry."""
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

from argon2 import PasswordHasher

from seller import settings
from seller.data.dataset import load_sample
from seller.feedback.store import FeedbackStore
from seller.feedback.users import AccountDirectory
from seller.paths import REPO_ROOT

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason=f"{CHROMIUM} missing: apt-get install -y chromium chromium-driver fonts-noto-color-emoji"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (never `playwright install`)")
PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path, request):
    """A live app on a fresh DB holding max (manager) and anna (associate of Tokyo Ginza);
    `@pytest.mark.parametrize("server", [{ENV: value}], indirect=True)` adds env vars."""
    store = FeedbackStore(f"sqlite:///{tmp_path / 'feedback.db'}")
    directory = AccountDirectory(store, hasher=PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1))
    directory.add("max", "manager", password=PASSWORD)
    directory.add("anna", "associate", ["Tokyo Ginza"], password=PASSWORD)
    store.dispose()
    port = free_port()
    env = os.environ | {"SELLER_DB_PATH": str(tmp_path / "feedback.db")} | getattr(request, "param", {})
    env.pop("SELLER_DB_URL", None)
    env.pop("SELLER_DATA", None)
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
        # a test whose clicks all landed can still have killed the server (a native crash in a
        # decode): that is a failure, whatever the page showed before it died
        if proc.poll() is not None:
            pytest.fail(f"streamlit died during the test (rc {proc.returncode}): "
                        f"{(tmp_path / 'streamlit.log').read_text()[-2000:]}")
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


def launch(p):
    return p.chromium.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"])


def sign_in(page, url: str, username: str, path: str = "") -> None:
    page.goto(url + path)
    page.get_by_role("textbox", name="Username").wait_for(timeout=60_000)
    names = [n for n in load_sample().clients["display_name"] if n in page.content()]
    assert names == [], "client names shown before sign-in"
    page.get_by_role("textbox", name="Username").fill(username)
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text(f"Signed in as {username}").wait_for(timeout=60_000)


def test_select_client_vote_and_screenshot(server):
    url, tmp = server
    sample = load_sample()
    client = sample.clients.set_index("client_id").loc[sample.events["client_id"].value_counts().index[1]]
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1500})
        sign_in(page, url, "max")
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
            if settings.screenshot_dir():
                shutil.copy(tmp / "clienteling_no_model.png", settings.screenshot_dir())
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
        if settings.screenshot_dir():
            shutil.copy(shot, settings.screenshot_dir())
        # a deep link to the experiments page (a fresh page load: sign in again) runs the router
        # and counts the vote
        sign_in(page, url, "max", "/experiments")
        votes = page.locator("[data-testid='stMetric']").filter(has_text="Votes")
        votes.wait_for(timeout=60_000)
        assert votes.locator("[data-testid='stMetricValue']").inner_text().strip() == "1"
        assert page.get_by_text("Associate id").count() == 0  # votes carry the account, not a typed id
        browser.close()
    rows = db_rows(tmp / "feedback.db")
    assert len(rows) == 1, rows
    assert rows[0][:4] == ("max", client.name, item_id, 1) and rows[0][4].strip()
    assert shot.stat().st_size > 10_000
    with sqlite3.connect(tmp / "feedback.db") as conn:
        actions = conn.execute("SELECT action, client_id, item_id FROM audit_events WHERE username = 'max'").fetchall()
    assert ("open_client", client.name, None) in actions and ("vote", client.name, item_id) in actions
    assert sum(a == "explanation_shown" and c == client.name for a, c, _ in actions) == 5


def other_boutique_client() -> tuple[str, str]:
    clients = load_sample().clients
    row = clients[clients["home_boutique"] != "Tokyo Ginza"].iloc[0]
    return row["client_id"], row["display_name"]


NO_MODEL = {"SELLER_MODEL": "/nonexistent"}  # scope and sign-in need no model: keep the page quick


@pytest.mark.parametrize("server", [NO_MODEL], indirect=True)
def test_associate_cannot_open_another_boutiques_client_by_url(server):
    url, _ = server
    client_id, name = other_boutique_client()
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        sign_in(page, url, "anna", f"/?client={client_id}")
        page.get_by_text(f"Client {client_id} is not one of your boutiques' clients").wait_for(timeout=120_000)
        wait_until_idle(page)
        assert name not in page.content()
        assert page.get_by_role("link", name="Experiments").count() == 0
        page.goto(f"{url}/experiments")  # a deep link to a page above the role
        page.get_by_role("textbox", name="Username").wait_for(timeout=60_000)  # a fresh page load: signed out again
        assert page.locator("[data-testid='stMetric']").filter(has_text="Votes").count() == 0
        # a manager following the same deep link lands on it once signed in
        sign_in(page, url, "max", "/experiments")
        page.get_by_role("heading", name="Explanation-style experiment").wait_for(timeout=60_000)
        browser.close()


@pytest.mark.parametrize("server", [NO_MODEL | {"SELLER_IDLE_MINUTES": "0.1"}], indirect=True)
def test_idle_page_signs_out_by_itself(server):
    url, tmp = server
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        sign_in(page, url, "anna")
        # no interaction: after 6 s idle the page's own watcher re-runs it into the sign-in form
        page.get_by_text("Your session ended after 0.1 minutes without activity").wait_for(timeout=60_000)
        wait_until_idle(page)  # the last run's elements go once the run is over
        assert page.get_by_role("textbox", name="Username").count() == 1
        names = [n for n in load_sample().clients["display_name"] if n in page.content()]
        assert names == []
        browser.close()
    with sqlite3.connect(tmp / "feedback.db") as conn:
        assert conn.execute("SELECT count(*) FROM audit_events WHERE username = 'anna' "
                            "AND action = 'session_expired'").fetchone() == (1,)
