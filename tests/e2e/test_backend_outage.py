"""A backend that cannot be reached (docs/scale-out.md "When a backend fails"): PostgreSQL stopped, or the
object store unreachable, under a running Berth gets 503 UNAVAILABLE with Retry-After and a message a
client prints, and Berth recovers, with everything acknowledged intact, when the backend is back.
S3 + PostgreSQL only (BERTH_E2E_BACKEND=s3pg)."""
import os
import socket
import subprocess
import threading

import pytest

import backends
from conftest import Registry
from ociclient import Client, assert_error, digest_of, random_bytes
from servers import Server

pytestmark = pytest.mark.skipif(backends.selected() == "embedded",
                                reason="the embedded backends have no server to lose")

PG_BIN = "/usr/lib/postgresql/15/bin"


def pg_ctl(env, *args):
    """pg_ctl on the test's own PostgreSQL (as its owner when we are root, as pg.sh runs it)."""
    cmd = [f"{PG_BIN}/pg_ctl", "-D", os.path.join(env["TMP"], "data"), *args]
    if os.getuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def own_postgres(tmp_path):
    server = Server("pg.sh", tmp_path / "pg").start()
    yield server.env
    server.stop()


def test_postgres_down_is_503_and_berth_recovers_when_it_is_back(own_postgres, tmp_path):
    (tmp_path / "berth").mkdir()
    registry = Registry(str(tmp_path / "berth" / "data"))
    registry.backend = backends.new_backend(registry.data_dir, pg=own_postgres)
    registry.start()
    try:
        oci = Client(registry)
        image = oci.push_image("team/app", tag="v1")

        pg_ctl(own_postgres, "stop", "-m", "fast", "-w")
        r = oci.get("/v2/team/app/manifests/v1", headers={"Accept": image.media_type})
        assert_error(r, 503, "UNAVAILABLE")
        assert "database cannot be reached" in r.json()["errors"][0]["message"]
        assert r.header("Retry-After") == "5"

        port = own_postgres["PGPORT"]
        pg_ctl(own_postgres, "start", "-w", "-l", os.path.join(own_postgres["TMP"], "server.log"), "-o",
               f"-c listen_addresses=127.0.0.1 -p {port} -k {own_postgres['TMP']}")
        r = oci.get("/v2/team/app/manifests/v1", headers={"Accept": image.media_type})
        assert r.status == 200 and r.body == image.data
        assert oci.push_image("team/app", tag="v2").response.status == 201
    finally:
        registry.stop()


class Gate:
    """A TCP relay to host:port that can be closed (connections refused, open ones cut) and opened
    again on the same port: an object store that drops off the network and comes back."""

    def __init__(self, host, port):
        self.target = (host, port)
        self.port = 0
        self.listener = None
        self.conns = []
        self.lock = threading.Lock()

    def open(self):
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.port = self.listener.getsockname()[1]
        self.listener.listen(64)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def close(self):
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked on it (close alone does not)
        self.listener.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                c.close()
            self.conns.clear()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture
def gated_s3():
    env = backends._server_env("s3", "rgw.sh", "BERTH_TEST_RGW_ENV")
    host, port = env["S3_ENDPOINT"].split("//", 1)[1].rsplit(":", 1)
    gate = Gate(host, int(port))
    gate.open()
    yield env["S3_ENDPOINT"], gate
    gate.close()


def test_object_store_unreachable_is_503_and_berth_recovers_when_it_is_back(gated_s3, tmp_path):
    endpoint, gate = gated_s3
    (tmp_path / "berth").mkdir()
    registry = Registry(str(tmp_path / "berth" / "data"))
    registry.backend = backends.new_backend(registry.data_dir).replace(
        f"endpoint: {endpoint}", f"endpoint: http://127.0.0.1:{gate.port}")
    registry.start()
    try:
        oci = Client(registry)
        image = oci.push_image("team/app", tag="v1", layers=2)
        big = random_bytes(6 << 20)
        oci.push_blob("team/app", big)

        gate.close()
        for layer in image.layers:
            r = oci.get(f"/v2/team/app/blobs/{digest_of(layer)}")
            assert_error(r, 503, "UNAVAILABLE")
            assert "object store cannot be reached" in r.json()["errors"][0]["message"], r
            assert r.header("Retry-After") == "5"
        r = oci.post("/v2/team/app/blobs/uploads/?digest=" + digest_of(b"refused"), b"refused",
                     headers={"Content-Type": "application/octet-stream"})
        assert_error(r, 503, "UNAVAILABLE")
        # What lives in PostgreSQL is still served.
        r = oci.get("/v2/team/app/manifests/v1", headers={"Accept": image.media_type})
        assert r.status == 200 and r.body == image.data

        gate.open()
        for blob in [image.config, *image.layers, big]:
            r = oci.get(f"/v2/team/app/blobs/{digest_of(blob)}")
            assert r.status == 200 and r.body == blob
        assert oci.push_image("team/app", tag="v2").response.status == 201
        assert oci.get(f"/v2/team/app/blobs/{digest_of(b'refused')}").status == 404  # never acknowledged
    finally:
        registry.stop()
