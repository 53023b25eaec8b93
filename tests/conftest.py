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
