#!/usr/bin/env bash
# Several `streamlit run app/main.py` replicas behind nginx, sharing one PostgreSQL database.
#   scripts/replicas.sh start DIR [N]   N replicas (default 2) on free ports, nginx in front; prints
#                                       the proxy's URL. The database is SELLER_DB_URL, else a
#                                       throwaway cluster in DIR (scripts/pg_local.sh).
#   scripts/replicas.sh stop DIR        stop everything `start DIR` started
# A Streamlit session lives in one replica's memory, so nginx keeps a browser on one replica: the
# first response sets a cookie holding a random key and `hash ... consistent` maps the key to a
# replica, so browsers spread over the replicas and each stays put (also when its websocket
# reconnects). The access log names each request's affinity key and replica, so a caller can
# tell which replica a key reaches. Logs and pids stay in DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
action=${1:?usage: replicas.sh start|stop DIR [N]}
dir=$(mkdir -p "${2:?usage: replicas.sh start|stop DIR [N]}" && cd "$2" && pwd)
python=${PYTHON:-python}

free_port() { "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_healthy() {  # url, log: up to 120 s (the first start of a replica loads the models lazily)
  for _ in $(seq 240); do
    "$python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
      "$1/_stcore/health" 2>/dev/null && return 0
    sleep 0.5
  done
  echo "replicas.sh: $1 did not come up; see $2" >&2
  tail -20 "$2" >&2
  return 1
}

write_nginx_conf() {  # proxy_port, replica ports...
  local proxy_port=$1; shift
  mkdir -p "$dir/nginx"
  {
    echo "worker_processes 1;"
    echo "pid $dir/nginx/nginx.pid;"
    echo "error_log $dir/nginx/error.log;"
    echo "events { worker_connections 1024; }"
    echo "http {"
    echo "  log_format upstream '\$request_uri \$status \$upstream_addr \$affinity';"
    echo "  access_log $dir/nginx/access.log upstream;"
    for t in client_body proxy fastcgi uwsgi scgi; do echo "  ${t}_temp_path $dir/nginx/$t;"; done
    echo "  map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }"
    echo "  map \$cookie_seller_replica \$affinity { '' \$request_id; default \$cookie_seller_replica; }"
    echo "  upstream seller {"
    echo "    hash \$affinity consistent;"
    for port in "$@"; do echo "    server 127.0.0.1:$port;"; done
    echo "  }"
    echo "  server {"
    echo "    listen 127.0.0.1:$proxy_port;"
    echo "    location / {"
    echo "      proxy_pass http://seller;"
    echo "      proxy_http_version 1.1;"
    echo "      proxy_set_header Upgrade \$http_upgrade;"          # the session's websocket
    echo "      proxy_set_header Connection \$connection_upgrade;"
    echo "      proxy_set_header Host \$host;"
    echo "      proxy_read_timeout 1d;"                            # it idles between clicks
    echo "      proxy_buffering off;"
    echo "      add_header Set-Cookie \"seller_replica=\$affinity; Path=/; HttpOnly; SameSite=Lax\";"
    echo "    }"
    echo "  }"
    echo "}"
  } >"$dir/nginx/nginx.conf"
}

start() {
  local n=${1:-2}
  command -v nginx >/dev/null || { echo "replicas.sh: nginx not installed (apt-get install nginx)" >&2; exit 1; }
  if [ -z "${SELLER_DB_URL:-}" ]; then
    chmod 755 "$dir"  # as root the cluster runs as user postgres, which must reach it
    SELLER_DB_URL=$(bash scripts/pg_local.sh start "$dir/pg")
  fi
  export SELLER_DB_URL
  local ports=()
  for i in $(seq "$n"); do
    local port
    port=$(free_port)
    ports+=("$port")
    setsid "$python" -m streamlit run app/main.py \
      --server.port "$port" --server.address 127.0.0.1 --server.headless true \
      --browser.gatherUsageStats false --server.fileWatcherType none \
      >"$dir/replica-$i.log" 2>&1 &
    echo $! >"$dir/replica-$i.pid"
  done
  for i in $(seq "$n"); do wait_healthy "http://127.0.0.1:${ports[$((i - 1))]}" "$dir/replica-$i.log"; done
  local proxy_port
  proxy_port=$(free_port)
  write_nginx_conf "$proxy_port" "${ports[@]}"
  nginx -c "$dir/nginx/nginx.conf" -p "$dir/nginx" -e "$dir/nginx/error.log"
  wait_healthy "http://127.0.0.1:$proxy_port" "$dir/nginx/error.log"
  echo "http://127.0.0.1:$proxy_port"
}

stop() {
  [ -f "$dir/nginx/nginx.pid" ] && nginx -c "$dir/nginx/nginx.conf" -p "$dir/nginx" -e "$dir/nginx/error.log" -s quit || true
  for pidfile in "$dir"/replica-*.pid; do
    [ -f "$pidfile" ] || continue
    kill -- "-$(cat "$pidfile")" 2>/dev/null || true  # its process group (setsid above)
    rm -f "$pidfile"
  done
  [ -d "$dir/pg/data" ] && bash scripts/pg_local.sh stop "$dir/pg" || true
}

case $action in
  start) start "${3:-2}" ;;
  stop) stop ;;
  *) echo "replicas.sh: unknown action $action (start|stop)" >&2; exit 2 ;;
esac
