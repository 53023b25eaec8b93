#!/usr/bin/env bash
# Install everything the test suite needs into ./.venv, then run it. CI (.ci/run) calls this
# very script, so what passes here is what CI checks.
set -euo pipefail
cd "$(dirname "$0")/.."

# The browser test drives Debian's Chromium; install it when we may (root), else it skips.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver fonts-noto-color-emoji >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# The CPU build first: an unpinned torch on an empty venv can pull a multi-GB CUDA build.
python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[dev]"

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
python -m pytest -q -ra "$@"
