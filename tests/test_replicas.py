"""Two `streamlit run` replicas behind nginx sharing one PostgreSQL database (scripts/replicas.sh):
a real browser session on each replica, through the proxy and its websockets, votes; each vote
lands exactly once in the shared database."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from seller.paths import REPO_ROOT

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason=f"{CHROMIUM} missing: apt-get install -y chromium chromium-driver fonts-noto-color-emoji"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (never `playwright install`)")


@pytest.fixture
def replicas(tmp_path, postgres_url, nginx):
    """(proxy URL, database URL, run folder) of two replicas started by scripts/replicas.sh."""
    script = str(REPO_ROOT / "scripts" / "replicas.sh")
    env = os.environ | {"SELLER_DB_URL": postgres_url, "PYTHON": sys.executable}
    env.pop("SELLER_ASSOCIATE", None)  # each replica's default associate names the replica
    try:
        started = subprocess.run(["bash", script, "start", str(tmp_path), "2"], env=env,
                                 capture_output=True, text=True, timeout=300)
        assert started.returncode == 0, started.stderr
        yield started.stdout.strip().splitlines()[-1], postgres_url, tmp_path
    finally:
        subprocess.run(["bash", script, "stop", str(tmp_path)], env=env, timeout=60)


def sessions_on_each_replica(browser, proxy: str, n_replicas: int, tries: int = 16) -> dict:
    """{associate id: page}: one browser per replica, found by trying affinity keys in turn
    (nginx maps each key to one replica; the page's default associate id names that replica)."""
    pages = {}
    for key in range(tries):
        context = browser.new_context(viewport={"width": 1400, "height": 1500})
        context.add_cookies([{"name": "seller_replica", "value": f"route-{key}", "url": proxy}])
        page = context.new_page()
        page.goto(f"{proxy}/experiments")  # writes no explanations: cheap to find the replica
        associate = page.locator(".st-key-associate_id input")
        associate.wait_for(timeout=120_000)
        name = associate.input_value()
        if name in pages:
            context.close()
            continue
        pages[name] = page
        if len(pages) == n_replicas:
            return pages
    pytest.fail(f"{tries} affinity keys reached only replicas {sorted(pages)}")


def test_votes_from_two_replicas_land_once_each(replicas):
    proxy, db_url, run = replicas
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"])
        pages = sessions_on_each_replica(browser, proxy, 2)
        assert sorted(pages) == ["replica-1", "replica-2"]
        voted = {}
        for page in pages.values():
            page.get_by_role("link", name="Clienteling").click()
        for associate, page in pages.items():
            button = page.locator("[class*='st-key-up-'] button").first
            button.wait_for(timeout=600_000)  # the client's explanations are written
            key = next(c for c in page.locator("[class*='st-key-up-']").first.get_attribute("class").split()
                       if c.startswith("st-key-up-"))
            page.locator(f".{key} button").first.click()
            voted[associate] = key.removeprefix("st-key-up-")
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
    upgraded = {line.split()[-1] for line in log if line.startswith("/_stcore/stream 101 ")}
    assert len(upgraded) == 2, log[-20:]
