"""Shared test setup: offline model hubs, and where the public benchmark data lives."""
import os
from pathlib import Path

import pytest

# Nothing may download at run time; make any attempt fail loudly instead of hanging.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (or $SELLER_SHARED_DATA); tests needing it skip when it is absent."""
    root = Path(os.environ.get("SELLER_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not (root / "README.md").exists():
        pytest.skip(f"public benchmark data not found at {root} (set SELLER_SHARED_DATA)")
    return root


# Modules that decode the real GGUF in this very process. Where llama.cpp cannot decode here (the
# AMX SIGILL of seller.llm.buffers, if its protection were gone), a decode would kill pytest and
# every test after it; instead test_llm_buffers runs first, and these tests fail by name.
DECODES_IN_PROCESS = {"test_app", "test_explain", "test_llm_lora", "test_llm_parity",
                      "test_llm_runtime", "test_train", "test_evaluate_runner", "test_evaluate_utility"}


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
