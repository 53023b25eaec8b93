#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on localhost, for the tests and the replica demo.
#   scripts/pg_local.sh start DIR   initdb into DIR (new), start it on a free port, print its URL
#   scripts/pg_local.sh stop DIR    stop it (the caller removes DIR)
# Trust auth on 127.0.0.1 only, fsync off: nothing here outlives the run. PostgreSQL refuses to
# run as root, so as root the cluster runs as the `postgres` user that Debian's package creates.
set -euo pipefail
action=${1:?usage: pg_local.sh start|stop DIR}
dir=${2:?usage: pg_local.sh start|stop DIR}

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bindir/pg_ctl" ] || { echo "pg_local.sh: PostgreSQL not installed (apt-get install postgresql)" >&2; exit 1; }
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case $action in
  start)
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then
      chown postgres: "$dir"
      runuser -u postgres -- test -w "$dir" \
        || { echo "pg_local.sh: user postgres cannot reach $dir (make its parents traversable, e.g. chmod 755)" >&2; exit 1; }
    fi
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_owner "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log"
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=200" >/dev/null \
      || { tail -20 "$dir/server.log" >&2; exit 1; }
    echo "postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    ;;
  *) echo "pg_local.sh: unknown action $action (start|stop)" >&2; exit 2 ;;
esac
