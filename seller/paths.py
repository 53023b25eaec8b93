"""Where things live, resolved from this file so no machine-specific path is ever written down.

The repository layout is fixed: `seller/` sits in the repo root next to `sample_data/` and
`models/`. Public datasets are never copied into the repo; they live in a shared folder beside
it (`<repo>/../shared/data`) or wherever `SELLER_SHARED_DATA` points.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DATA = REPO_ROOT / "sample_data"
MODELS = REPO_ROOT / "models"

SHARED_DATA_ENV = "SELLER_SHARED_DATA"
CACHE_ENV = "SELLER_CACHE"  # derived copies: dequantized backbones, serving weights, MiniLM shards
LEGACY_CACHE_ENV = "SELLER_CACHE_DIR"  # what the MiniLM cache alone once read; still honoured


def shown_path(path: Path) -> str:
    """A path as results and reports show it: relative to the repository when inside it."""
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def shared_data_dir() -> Path:
    """The public-data folder, read at call time so tests and users can repoint the env var."""
    override = os.environ.get(SHARED_DATA_ENV)
    if override:
        return Path(override).expanduser().resolve()
    return (REPO_ROOT.parent / "shared" / "data").resolve()


def cache_dir() -> Path:
    """Where SELLER keeps what it derives from installed models: env SELLER_CACHE (or the older
    SELLER_CACHE_DIR), else ~/.cache/seller; read at call time so tests can repoint it."""
    return Path(os.environ.get(CACHE_ENV) or os.environ.get(LEGACY_CACHE_ENV) or "~/.cache/seller").expanduser()


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in blocks (model files can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def replace_atomically(target: Path):
    """Yield a temporary path beside `target`; when the block succeeds it is renamed over
    `target`, otherwise deleted, so a reader never sees a half-written file."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # ".tmp" suffix: a reader globbing "*.npz" / "*.gguf" in the folder never picks it up
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def swap_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished folder `tmp` to `out`; an old `out` is moved aside first and removed
    only once the new one is in place (restored if the final rename fails), so `out` is always
    either the old folder or the whole new one."""
    if not out.exists():
        os.rename(tmp, out)
        return
    old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except OSError:
        os.rename(old, out)
        raise
    shutil.rmtree(old)
