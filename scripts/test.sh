#!/usr/bin/env bash
# Install everything the test suite needs into ./.venv, then run it. CI (.ci/run) calls this
# very script, so what passes here is what CI checks.
set -euo pipefail
cd "$(dirname "$0")/.."

# The browser tests drive Debian's Chromium, the feedback tests a PostgreSQL server too, the
# replica test nginx in front of two app servers: install them when we may (root); without them
# those tests skip, naming what was not tested (under CI=true, set by .ci/run, PostgreSQL and
# nginx missing fail instead).
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium chromium-driver fonts-noto-color-emoji)
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
command -v nginx >/dev/null 2>&1 || missing+=(nginx)
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# The CPU build first: an unpinned torch on an empty venv can pull a multi-GB CUDA build.
python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[dev]"

# A throwaway PostgreSQL cluster for this run (tests create and drop their own databases in it).
if [ -z "${SELLER_TEST_PG_URL:-}" ] && ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  pg_dir=$(mktemp -d -t seller-pg.XXXXXX)
  chmod 755 "$pg_dir"  # as root the server runs as user postgres, which must reach it
  trap 'bash scripts/pg_local.sh stop "$pg_dir/cluster" || true; rm -rf "$pg_dir"' EXIT
  SELLER_TEST_PG_URL=$(bash scripts/pg_local.sh start "$pg_dir/cluster")
  export SELLER_TEST_PG_URL
fi

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
python -m pytest -q -ra "$@"
