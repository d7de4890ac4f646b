"""A single-request upload (POST /v2/<name>/blobs/uploads/?digest=) that fails leaves nothing behind:
no client knows its id, so nobody could resume or cancel it, and its bytes would fill the disk until
the idle purge. Cut off mid-body, short of its Content-Length, or refused on a full disk: afterwards
the data directory holds no upload (Berth's layout: <data>/uploads/<id>/)."""
import os
import shutil
import socket
import struct
import subprocess
import time

import pytest

from e2eauth import basic
from ociclient import OCTET, Client, digest_of, oci, random_bytes, with_query  # noqa: F401

pytestmark = pytest.mark.skipif(os.environ.get("BERTH_E2E_TARGET") == "distribution",
                                reason="looks into Berth's data directory")

NAME = "leftovers/app"
MiB = 1 << 20


def upload_dirs(registry):
    root = os.path.join(registry.data_dir, "uploads")
    return sorted(os.listdir(root)) if os.path.isdir(root) else []


def bytes_received(registry):
    total = 0
    for d in upload_dirs(registry):
        try:
            total += os.path.getsize(os.path.join(registry.data_dir, "uploads", d, "data"))
        except FileNotFoundError:
            pass
    return total


def wait_until(predicate, timeout=20):
    """Polls `predicate` until it holds (True) or `timeout` seconds pass (False): the server handles
    a vanished client on its own time, and nothing tells a test when it is done."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def single_post_header(registry, data, length):
    target = with_query(f"/v2/{NAME}/blobs/uploads/", digest=digest_of(data))
    return (f"POST {target} HTTP/1.1\r\nHost: {registry.host}\r\nContent-Type: {OCTET}\r\n"
            f"Authorization: {basic()}\r\nContent-Length: {length}\r\n\r\n").encode()


def test_single_post_cut_off_mid_body_leaves_nothing(registry):
    data = random_bytes(3 * MiB)
    host, port = registry.host.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(single_post_header(registry, data, len(data)) + data[:2 * MiB])
        # The upload exists and holds bytes: the test is about what happens to them.
        assert wait_until(lambda: bytes_received(registry) > 0), "the server never stored a byte"
        # Gone without a word: the close resets the connection.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert wait_until(lambda: upload_dirs(registry) == []), upload_dirs(registry)
    assert Client(registry).head(f"/v2/{NAME}/blobs/{digest_of(data)}").status == 404


def test_single_post_shorter_than_announced_is_400_and_leaves_nothing(registry):
    data = random_bytes(3 * MiB)
    host, port = registry.host.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(single_post_header(registry, data, len(data)) + data[:2 * MiB])
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 400"), reply[:300]
    assert b"SIZE_INVALID" in reply, reply[:300]
    # Cleaned up before the answer, not some time later.
    assert upload_dirs(registry) == []


def test_single_post_with_the_wrong_digest_leaves_nothing(oci, registry):
    data = random_bytes(MiB + 5)
    r = oci.post(with_query(f"/v2/{NAME}/blobs/uploads/", digest=digest_of(b"other")), data,
                 headers={"Content-Type": OCTET})
    assert r.status == 400, r
    assert upload_dirs(registry) == []


@pytest.fixture
def small_disk(tmp_path):
    """A 24 MiB tmpfs (needs root: skipped otherwise)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {made.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_single_post_refused_on_a_full_disk_frees_the_disk(make_registry, small_disk):
    # The disk is the data directory itself: the server's log (DATA.log) stays off the full disk.
    registry = make_registry(data_dir=str(small_disk))
    client = Client(registry, timeout=30)
    data = random_bytes(40 * MiB)  # more than the disk holds
    try:
        r = client.post(with_query(f"/v2/{NAME}/blobs/uploads/", digest=digest_of(data)), data,
                        headers={"Content-Type": OCTET})
        assert r.status >= 500, r
    except (ConnectionError, socket.timeout):
        pass  # the server answered and closed while the client was still sending
    assert wait_until(lambda: upload_dirs(registry) == []), upload_dirs(registry)
    assert shutil.disk_usage(small_disk).used < 8 * MiB
    # The space is back: the next push fits.
    small = random_bytes(MiB)
    r = client.post(with_query(f"/v2/{NAME}/blobs/uploads/", digest=digest_of(small)), small,
                    headers={"Content-Type": OCTET})
    assert r.status == 201, r
