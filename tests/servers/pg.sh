#!/bin/bash
# A throwaway PostgreSQL 15 for tests: a fresh cluster in a temp dir (in RAM when /dev/shm has room,
# see ram_or_tmp in lib.sh), listening on a free port of 127.0.0.1 only, with durability off (fsync,
# synchronous_commit, full_page_writes: never in production). Installs postgresql-15 when missing.
#
# Usage: tests/servers/pg.sh start DIR   writes DIR/env: DATABASE_URL, PGPORT, PIDS, TMP
#        tests/servers/pg.sh stop DIR    stops the postmaster by its pid (immediate shutdown), deletes the data
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bin=/usr/lib/postgresql/15/bin

# initdb refuses to run as root: run the server as the postgres user then.
as_server() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  begin "$1" "$(ram_or_tmp)"
  need_packages $bin/initdb postgresql-15
  trap 'stop_pids QUIT' ERR
  [ "$(id -u)" -eq 0 ] && chown postgres: "$tmp"
  as_server $bin/initdb -D "$tmp/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >"$tmp/initdb.log"
  # The port is free when picked but may be taken before the server binds it: try a few.
  local port started=""
  for _ in 1 2 3; do
    port=$(free_port)
    if as_server $bin/pg_ctl -D "$tmp/data" -l "$tmp/server.log" -w -t 60 start -o "-c listen_addresses=127.0.0.1 \
        -p $port -k $tmp -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100" \
        >/dev/null; then
      started=1
      break
    fi
  done
  [ -n "$started" ] || { cat "$tmp/server.log" >&2; false; }
  add_pid "$(head -1 "$tmp/data/postmaster.pid")"
  as_server $bin/createdb -h 127.0.0.1 -p "$port" -U postgres berth_test
  put PGPORT "$port"
  put DATABASE_URL "postgresql://postgres@127.0.0.1:$port/berth_test"
}

case "${1:-}" in
  start) start "${2:?usage: pg.sh start DIR}" ;;
  # SIGQUIT is PostgreSQL's immediate shutdown: the postmaster stops its children and exits at once.
  stop) dir=${2:?usage: pg.sh stop DIR}; stop_pids QUIT ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
