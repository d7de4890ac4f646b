"""The server process itself: graceful shutdown, TLS, the config file, and bounded memory for huge blobs."""
import contextlib
import hashlib
import os
import socket
import sqlite3
import ssl
import subprocess
import time

import pytest

from conftest import wait_for_log
from e2eauth import basic
from ociclient import OCTET, Client, digest_of, random_bytes, with_query

NAME = "server/test"


def test_sigterm_lets_an_upload_in_flight_finish_and_keeps_unfinished_sessions(registry):
    oci = Client(registry)
    first, second = random_bytes(300_000), random_bytes(200_000)
    location = oci.start_upload(NAME)

    # A PATCH whose body is half sent when SIGTERM arrives.
    conn = oci.begin("PATCH", location, {"Content-Type": OCTET, "Content-Length": str(len(first))})
    conn.send(first[: len(first) // 2])
    registry.proc.terminate()
    wait_for_log(registry, "finishing requests in flight")

    # New connections are refused while the request in flight goes on.
    with pytest.raises(OSError):
        socket.create_connection(tuple(registry.host.rsplit(":", 1)), timeout=5).close()

    conn.send(first[len(first) // 2:])
    response = conn.getresponse()
    assert response.status == 202
    assert response.getheader("Range") == f"0-{len(first) - 1}"
    conn.close()
    assert registry.proc.wait(timeout=30) == 0

    # The session survives the restart and resumes where it stopped.
    registry.start()
    oci = Client(registry)
    status = oci.get(location)  # only the path is used: the port changed
    assert status.status == 204
    assert status.header("Range") == f"0-{len(first) - 1}"
    done = oci.put(with_query(status.header("Location"), digest=digest_of(first + second)), second,
                   headers={"Content-Type": OCTET, "Content-Range": f"{len(first)}-{len(first) + len(second) - 1}"})
    assert done.status == 201, done
    assert oci.get(f"/v2/{NAME}/blobs/{digest_of(first + second)}").body == first + second


def test_a_tls_client_hello_on_the_plain_port_is_answered_at_once(registry):
    host, port = registry.host.rsplit(":", 1)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with pytest.raises(ssl.SSLError):
            context.wrap_socket(raw, server_hostname=host)
    # Answered, not left to time out (clients probing TLS would wait for that).
    assert time.monotonic() - started < 5

    # The raw exchange: a ClientHello record gets a plain-text 400 and a close.
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + os.urandom(32))
        answer = raw.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400 ")


@pytest.fixture
def tls_files(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def test_tls_from_the_config_file_serves_https(make_registry, tls_files, tmp_path):
    cert, key = tls_files
    config = tmp_path / "berth.yml"
    config.write_text(f"log_level: warn\ntls:\n  certificate: {cert}\n  private_key: {key}\n")
    registry = make_registry(extra_args=["--config", str(config)])
    context = ssl.create_default_context(cafile=str(cert))
    host, port = registry.host.rsplit(":", 1)
    import http.client
    conn = http.client.HTTPSConnection(host, int(port), context=context, timeout=10)
    conn.request("GET", "/v2/", headers={"Authorization": basic()})
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("Docker-Distribution-API-Version") == "registry/2.0"
    conn.close()


@pytest.mark.parametrize("content, message", [
    ("listen: 127.0.0.1:0\nlisen: typo\n", "unknown key `lisen`"),
    ("limits:\n  max_page: many\n", "`max_page` has the wrong type"),
    ("tls:\n  certificate: /nonexistent\n", "tls needs both"),
    ("[not, a, mapping]\n", "expected a mapping"),
])
def test_a_bad_config_file_stops_start_up_with_a_message(tmp_path, content, message):
    config = tmp_path / "berth.yml"
    config.write_text(content)
    run = subprocess.run([os.environ["BERTH_BIN"], "serve", "--config", str(config), "--data", str(tmp_path / "d")],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode != 0
    assert message in run.stderr
    assert str(config) in run.stderr


def test_flags_override_the_config_file(make_registry, tmp_path):
    config = tmp_path / "berth.yml"
    config.write_text(f"listen: 127.0.0.1:1\ndata: {tmp_path / 'from-config'}\n")
    data = tmp_path / "from-flag"
    registry = make_registry(extra_args=["--config", str(config)], data_dir=str(data))
    assert Client(registry).get("/v2/").status == 200
    assert (data / "berth.db").exists()
    assert not (tmp_path / "from-config").exists()


def rss_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


BIG = int(os.environ.get("BERTH_E2E_BIG_BLOB_BYTES", 5 * 1024**3))
PIECE = 4 * 1024 * 1024


def big_pieces(base, hasher):
    """BIG bytes, streamed from one reused random piece (no 5 GiB in the test's memory), hashed as
    they are produced."""
    sent = 0
    while sent < BIG:
        n = min(PIECE, BIG - sent)
        # Vary every piece so the blob is not trivially repetitive.
        piece = sent.to_bytes(8, "little") + base[8:n] if n >= 8 else base[:n]
        hasher.update(piece)
        yield piece
        sent += n


def test_a_huge_blob_streams_both_ways_with_bounded_memory(make_registry):
    # ASan's quarantine holds freed memory back on purpose; it would count as growth here.
    registry = make_registry(env={"ASAN_OPTIONS": "quarantine_size_mb=0:thread_local_quarantine_size_kb=0"})
    pid = registry.proc.pid
    oci = Client(registry, timeout=600)

    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")  # reset the peak (VmHWM) to the current RSS
    before = rss_kib(pid, "VmRSS")

    expected = hashlib.sha256()
    location = oci.start_upload(NAME)
    r = oci.request("PATCH", location, chunks=big_pieces(random_bytes(PIECE), expected), headers={"Content-Type": OCTET})
    assert r.status == 202, r
    digest = "sha256:" + expected.hexdigest()
    r = oci.put(with_query(r.header("Location"), digest=digest))
    assert r.status == 201, r

    conn = oci.begin("GET", f"/v2/{NAME}/blobs/{digest}", {})
    response = conn.getresponse()
    assert response.status == 200
    assert int(response.getheader("Content-Length")) == BIG
    got = hashlib.sha256()
    while True:
        piece = response.read(PIECE)
        if not piece:
            break
        got.update(piece)
    conn.close()
    assert "sha256:" + got.hexdigest() == digest

    grown_mib = (rss_kib(pid, "VmHWM") - before) / 1024
    assert grown_mib < 64, f"RSS grew by {grown_mib:.1f} MiB while streaming {BIG} bytes"


def test_uploads_abandoned_longer_than_the_limit_are_discarded_at_start_up(registry):
    oci = Client(registry)
    abandoned, recent = oci.start_upload(NAME), oci.start_upload(NAME)
    assert oci.patch(abandoned, b"old bytes", headers={"Content-Type": OCTET}).status == 202
    registry.stop()
    # Age the abandoned session past the default limit (24 h) as its client would by going away: its
    # age is the last change of its record (docs/storage-layout.md), in unix milliseconds.
    uuid = abandoned.rstrip("/").rsplit("/", 1)[1]
    two_days_ago_ms = int((time.time() - 2 * 86400) * 1000)
    with contextlib.closing(sqlite3.connect(os.path.join(registry.data_dir, "berth.db"))) as db:
        with db:
            assert db.execute("UPDATE uploads SET updated_at = ? WHERE id = ?", (two_days_ago_ms, uuid)).rowcount == 1

    registry.start()
    oci = Client(registry)
    r = oci.get(abandoned)
    assert r.status == 404 and "BLOB_UPLOAD_UNKNOWN" in r.error_codes(), r
    assert oci.get(recent).status == 204
    assert not os.path.exists(os.path.join(registry.data_dir, "uploads", uuid))


def test_a_second_server_on_the_same_data_directory_refuses_to_start(registry):
    second = subprocess.run([os.environ["BERTH_BIN"], "serve", "--listen", "127.0.0.1:0", "--data", registry.data_dir],
                            capture_output=True, text=True, timeout=30,
                            env={**os.environ, "BERTH_ADMIN_PASSWORD": registry.password})
    assert second.returncode == 1
    assert "listening" not in second.stdout
    assert f"data directory {registry.data_dir} is in use" in second.stderr, second.stderr
    assert f"pid {registry.proc.pid}" in second.stderr, second.stderr

    # The first one is untouched and keeps serving.
    assert Client(registry).get("/v2/").status == 200

    # The kernel drops its lock however it ends, kill -9 included: the next server gets the directory.
    registry.kill()
    registry.start()
    assert Client(registry).get("/v2/").status == 200
