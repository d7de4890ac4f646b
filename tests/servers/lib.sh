# Helpers shared by pg.sh and rgw.sh (sourced, not run).
#
# A server's state lives in one directory DIR given on the command line: DIR/env holds KEY=VALUE
# lines (no quotes, no spaces) that tests read and `stop` uses; DIR/tmp holds its data and logs.
# A key is appended as soon as it is known (PIDS with each process started), so `stop` can clean up
# after a `start` that failed half-way.

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# A TCP port free on 127.0.0.1 right now (the kernel's choice for port 0).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# put KEY VALUE: sets KEY=VALUE in the env file.
put() {
  sed -i "/^$1=/d" "$dir/env"
  echo "$1=$2" >>"$dir/env"
}

# get KEY: the value of KEY in the env file ("" when absent).
get() { sed -n "s/^$1=//p" "$dir/env" 2>/dev/null | tail -1; }

# need_packages CHECK_BINARY PACKAGE...: installs the packages when CHECK_BINARY is missing. When they
# cannot be installed, writes SKIP=<reason> into the env file and exits 0, so the tests skip with
# that reason instead of failing.
need_packages() {
  local binary=$1
  shift
  [ -x "$binary" ] && return 0
  if ! "$repo/scripts/deps" "$@" >"$dir/install.log" 2>&1 || [ ! -x "$binary" ]; then
    put SKIP "packages_not_installable:$*_(see_$dir/install.log)"
    echo "$(basename "$0"): could not install $*; tests that need this server will skip" >&2
    exit 0
  fi
}

# stop_pids SIGNAL: sends SIGNAL to every pid in PIDS, waits until they are gone (10 s at most),
# then removes the data. Never kills anything it did not start: only the recorded pids.
# Says on stderr how long each step took (in the test's log: a slow stop shows where it waited).
stop_pids() {
  local signal=$1 pids tmp started=$SECONDS
  pids=$(get PIDS | tr , ' ')
  for p in $pids; do kill "-$signal" "$p" 2>/dev/null || true; done
  for p in $pids; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && echo "$(basename "$0"): pid $p still runs after 10 s" >&2
  done
  echo "$(basename "$0"): pids $pids stopped after $((SECONDS - started)) s" >&2
  tmp=$(get TMP)
  [ -n "$tmp" ] && rm -rf "$tmp"
  echo "$(basename "$0"): $tmp removed after $((SECONDS - started)) s" >&2
  rm -f "$dir/env"
}

# /dev/shm when it is a tmpfs with 4 GiB free, else TMPDIR or /tmp: where a server whose data is many
# small files keeps it. PostgreSQL's data after the suite is ~25,000 files (a database per test
# registry); removing them from the disk took 31 s, and 60-82 s while builds ran beside the tests.
ram_or_tmp() {
  local free
  free=$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 && $1 == "tmpfs" { print $4 }')
  if [ -n "$free" ] && [ "$free" -ge $((4 * 1024 * 1024)) ] && [ -w /dev/shm ]; then
    echo /dev/shm
  else
    echo "${TMPDIR:-/tmp}"
  fi
}

# begin DIR [BASE]: sets $dir, clears what an earlier run left there, records the temp data
# directory (made under BASE, by default TMPDIR or /tmp).
begin() {
  dir=$1
  [ -f "$dir/env" ] && stop_pids KILL
  mkdir -p "$dir"
  : >"$dir/env"
  tmp=$(mktemp -d "${2:-${TMPDIR:-/tmp}}/berth-$(basename "$0" .sh).XXXXXX")
  put TMP "$tmp"
}

# add_pid PID: records a process to stop.
add_pid() {
  local pids
  pids=$(get PIDS)
  put PIDS "${pids:+$pids,}$1"
}
