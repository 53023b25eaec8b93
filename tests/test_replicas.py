"""Two `streamlit run` replicas behind nginx sharing one PostgreSQL database (scripts/replicas.sh):
a signed-in browser session on each replica, through the proxy and its websockets, votes; each
vote lands exactly once in the shared database, under its account."""
import os
import subprocess
import sys
import time
from pathlib import Path

import urllib.request

import pytest
from argon2 import PasswordHasher
from sqlalchemy import create_engine, text

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
USERS = ("ines", "joao")  # one manager per replica: managers reach every client


@pytest.fixture
def replicas(tmp_path, postgres_url, nginx):
    """(proxy URL, database URL, run folder) of two replicas started by scripts/replicas.sh,
    sharing a database that holds the two accounts."""
    store = FeedbackStore(postgres_url)
    directory = AccountDirectory(store, hasher=PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1))
    for username in USERS:
        directory.add(username, "manager", password=PASSWORD)
    store.dispose()
    script = str(REPO_ROOT / "scripts" / "replicas.sh")
    env = os.environ | {"SELLER_DB_URL": postgres_url, "PYTHON": sys.executable}
    try:
        started = subprocess.run(["bash", script, "start", str(tmp_path), "2"], env=env,
                                 capture_output=True, text=True, timeout=300)
        assert started.returncode == 0, started.stderr
        yield started.stdout.strip().splitlines()[-1], postgres_url, tmp_path
    finally:
        subprocess.run(["bash", script, "stop", str(tmp_path)], env=env, timeout=60)


def keys_for_each_replica(proxy: str, run: Path, n_replicas: int, tries: int = 16) -> dict:
    """{replica address: affinity key}, found by asking the proxy with one key after another
    and reading which replica its access log says answered."""
    found = {}
    for key in (f"route-{k}" for k in range(tries)):
        request = urllib.request.Request(f"{proxy}/_stcore/health", headers={"Cookie": f"seller_replica={key}"})
        assert urllib.request.urlopen(request, timeout=30).status == 200
        line = (run / "nginx" / "access.log").read_text().splitlines()[-1].split()
        assert line[-1] == key, line
        found.setdefault(line[-2], key)
        if len(found) == n_replicas:
            return found
    pytest.fail(f"{tries} affinity keys reached only replicas {sorted(found)}")


def test_votes_from_two_replicas_land_once_each(replicas):
    proxy, db_url, run = replicas
    keys = keys_for_each_replica(proxy, run, 2)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"])
        pages, voted = {}, {}
        for username, key in zip(USERS, keys.values()):  # one signed-in session on each replica
            context = browser.new_context(viewport={"width": 1400, "height": 1500})
            context.add_cookies([{"name": "seller_replica", "value": key, "url": proxy}])
            page = pages[username] = context.new_page()
            page.goto(proxy)
            page.get_by_role("textbox", name="Username").fill(username)
            page.get_by_role("textbox", name="Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.get_by_text(f"Signed in as {username}").wait_for(timeout=120_000)
        for username, page in pages.items():
            button = page.locator("[class*='st-key-up-'] button").first
            button.wait_for(timeout=600_000)  # the client's explanations are written
            key = next(c for c in page.locator("[class*='st-key-up-']").first.get_attribute("class").split()
                       if c.startswith("st-key-up-"))
            page.locator(f".{key} button").first.click()
            voted[username] = key.removeprefix("st-key-up-")
        engine = create_engine(db_url)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT associate_id, client_id, item_id, vote FROM feedback")).all()
            if len(rows) >= 2:
                break
            time.sleep(0.3)
        engine.dispose()
        browser.close()
    assert sorted(rows) == sorted((a, *key.split("-", 1), 1) for a, key in voted.items()), (rows, voted)
    # both sessions' websockets went through nginx, one to each replica
    log = (run / "nginx" / "access.log").read_text().splitlines()
    upgraded = {line.split()[-2] for line in log if line.startswith("/_stcore/stream 101 ")}
    assert upgraded == set(keys), log[-20:]
