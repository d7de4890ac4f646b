#!/bin/bash
# A throwaway S3 endpoint for tests: a single-node Ceph (one mon, one OSD on memstore, so the data
# lives in RAM; no mgr; cephx off) and a RADOS Gateway, all on 127.0.0.1 and free ports, with one S3
# user. Installs ceph-mon, ceph-osd and radosgw when missing.
#
# The OSD holds at most RGW_MEMSTORE_BYTES of data (default 2 GiB; the benchmark asks for more).
#
# Usage: tests/servers/rgw.sh start DIR   writes DIR/env: S3_ENDPOINT, S3_REGION, S3_ACCESS_KEY,
#                                         S3_SECRET_KEY, PIDS, TMP
#        tests/servers/rgw.sh stop DIR    kills the daemons by pid, deletes the data
# Stopping is SIGKILL: the data is throwaway, and on SIGTERM memstore writes its whole RAM to disk.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# Waits up to 60 s for `curl URL` to answer.
wait_http() {
  for _ in $(seq 600); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done
  curl -s -o /dev/null "$1"
}

start() {
  begin "$1"
  need_packages /usr/bin/radosgw ceph-mon ceph-osd radosgw
  trap 'stop_pids KILL' ERR
  local d=$tmp fsid mon_port s3_port osd_uuid
  fsid=$(cat /proc/sys/kernel/random/uuid)
  mon_port=$(free_port)
  s3_port=$(free_port)
  mkdir -p "$d/run" "$d/log" "$d/mon.a" "$d/osd.0" "$d/rgw"
  # Why the less obvious settings: `ms mon client mode = crc` (radosgw fails with -13 otherwise
  # when cephx is off); the addresses (else the OSD binds 0.0.0.0); pool size one (a single OSD);
  # a fast paxos interval (the default 1 s makes RGW's pool creations take ~6 s); beast's
  # tcp_nodelay (with Nagle on, a small GET's body waited 40 ms for the delayed ACK of its headers:
  # docs/scale-out.md).
  cat >"$d/ceph.conf" <<EOC
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
public addr = 127.0.0.1
cluster addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
keyring = /dev/null
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
paxos propose interval = 0.02
run dir = $d/run
admin socket = $d/run/\$name.asok
log file = $d/log/\$name.log
crash dir = $d/crash
mon data = $d/mon.\$id
osd data = $d/osd.\$id
[osd]
osd objectstore = memstore
memstore device bytes = ${RGW_MEMSTORE_BYTES:-2147483648}
osd memory target = 1073741824
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$s3_port tcp_nodelay=1
rgw data = $d/rgw
# Virtual-hosted addressing: bucket.localhost (curl resolves *.localhost to the loopback itself).
rgw dns name = localhost
EOC
  export CEPH_CONF=$d/ceph.conf
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$d/monmap" >/dev/null
  ceph-mon --mkfs -i a --monmap "$d/monmap"
  ceph-mon -f -i a >"$d/log/mon.out" 2>&1 &
  add_pid $!
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  timeout 60 ceph osd new "$osd_uuid" >/dev/null  # waits for the mon
  ceph-osd -i 0 --mkfs --osd-uuid "$osd_uuid" >"$d/log/osd-mkfs.out" 2>&1
  ceph-osd -f -i 0 >"$d/log/osd.out" 2>&1 &
  add_pid $!
  local access=berthtestkey secret
  secret=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  # The user before the gateway: started together, they race to create the default zone (+5 s).
  timeout 60 radosgw-admin user create --uid=berth --display-name=berth \
    --access-key=$access --secret-key="$secret" >/dev/null
  radosgw -f -n client.rgw.a >"$d/log/rgw.out" 2>&1 &
  add_pid $!
  wait_http "http://127.0.0.1:$s3_port/"
  put S3_ENDPOINT "http://127.0.0.1:$s3_port"
  put S3_REGION us-east-1
  put S3_ACCESS_KEY $access
  put S3_SECRET_KEY "$secret"
}

case "${1:-}" in
  start) start "${2:?usage: rgw.sh start DIR}" ;;
  stop) dir=${2:?usage: rgw.sh stop DIR}; stop_pids KILL ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
