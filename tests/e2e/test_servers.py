"""The test servers themselves (servers.py, tests/servers/*.sh): they answer, they live on loopback
only, and stopping one ends every process it started."""
import os
import re
import subprocess
import urllib.request

from servers import Server


def listening_addresses(pid):
    """The local addresses TCP sockets of process `pid` listen on."""
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    return [line.split()[3] for line in out.splitlines() if f"pid={pid}," in line]


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_postgres_answers_sql(postgres):
    out = subprocess.run(["psql", postgres["DATABASE_URL"], "-Atc", "SELECT 6 * 7"], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "42"


def test_s3_answers_and_listens_on_loopback_only(s3):
    with urllib.request.urlopen(s3["S3_ENDPOINT"] + "/") as reply:  # anonymous ListBuckets
        assert reply.status == 200
        assert b"ListAllMyBucketsResult" in reply.read()
    port = re.search(r":(\d+)$", s3["S3_ENDPOINT"]).group(1)
    out = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True, check=True).stdout
    assert [line.split()[3] for line in out.splitlines() if line.split()[3].endswith(":" + port)] == [
        "127.0.0.1:" + port]


def test_stop_ends_every_process_and_removes_the_data(tmp_path):
    server = Server("pg.sh", tmp_path / "pg").start()
    pids = server.pids()
    data = server.env["TMP"]
    assert pids and all(alive(p) for p in pids)
    addresses = listening_addresses(pids[0])
    assert addresses and all(address.startswith("127.0.0.1:") for address in addresses)
    server.stop()
    assert not any(alive(p) for p in pids)
    assert not os.path.exists(data)
