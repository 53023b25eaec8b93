"""Shared test setup: offline model hubs, where the public benchmark data lives, test databases."""
import os
import shutil
import uuid
from pathlib import Path

import pytest

from seller import settings
from seller.paths import shared_data_dir

# Nothing may download at run time; make any attempt fail loudly instead of hanging.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
PG_URL_ENV = settings.TEST_PG_URL.name  # an admin URL; scripts/test.sh starts a throwaway cluster and sets it


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (or $SELLER_SHARED_DATA); tests needing it skip when it is absent."""
    root = shared_data_dir()
    if not (root / "README.md").exists():
        pytest.skip(f"public benchmark data not found at {root} (set SELLER_SHARED_DATA)")
    return root


# Modules that decode the real GGUF in this very process. Where llama.cpp cannot decode here (the
# AMX SIGILL of seller.llm.buffers, if its protection were gone), a decode would kill pytest and
# every test after it; instead test_llm_buffers runs first, and these tests fail by name.
DECODES_IN_PROCESS = {"test_app", "test_explain", "test_llm_lora", "test_llm_parity", "test_llm_runtime",
                      "test_llm_worker", "test_train", "test_evaluate_runner", "test_evaluate_utility", "test_fit"}


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.module.__name__.rpartition(".")[2] != "test_llm_buffers")
    for item in items:
        if item.module.__name__.rpartition(".")[2] in DECODES_IN_PROCESS:
            item.add_marker(pytest.mark.gguf)


_probe: dict = {}


def pytest_runtest_setup(item):
    if item.get_closest_marker("gguf") is None:
        return
    if not _probe:
        from seller.llm.buffers import probe_in_child
        _probe.update(probe_in_child(weights="as-is"))
    if not _probe["ok"]:
        pytest.fail(f"not decoding in-process: the shipped GGUF failed in a child process (rc "
                    f"{_probe['returncode']}, {_probe['signal']}); see tests/test_llm_buffers.py",
                    pytrace=False)
# -- databases ----------------------------------------------------------------------------------


def service_missing(why: str):
    """A service the test needs is absent. Under CI=true that fails the test: the tests that say
    "SQLite and PostgreSQL alike" must not pass on SQLite alone there. Elsewhere it is a skip
    whose reason names what was not tested (pytest -ra lists it)."""
    if settings.under_ci():
        pytest.fail(f"{why}; CI=true requires it")
    pytest.skip(why)


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """The PostgreSQL server to test against (an unreachable one fails the tests, never skips)."""
    url = settings.postgres_test_url()
    if not url:
        service_missing(f"PostgreSQL NOT tested: {PG_URL_ENV} is unset "
                        f"(bash scripts/test.sh starts a throwaway cluster and sets it)")
    return url


@pytest.fixture(scope="session")
def nginx() -> str:
    path = shutil.which("nginx")
    if not path:
        service_missing("nginx missing: reverse-proxy replicas NOT tested (apt-get install nginx; "
                        "scripts/test.sh does as root)")
    return path


@pytest.fixture
def postgres_url(postgres_admin_url):
    """A new, empty database on the test server, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"seller_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(postgres_admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """An empty feedback database URL, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'feedback.db'}"
    return request.getfixturevalue("postgres_url")
