"""A backend that cannot be reached (docs/scale-out.md "When a backend fails"): PostgreSQL stopped under a
running Berth gets 503 UNAVAILABLE with a message a client prints, and Berth recovers, with everything
acknowledged intact, when the database is back. S3 + PostgreSQL only (BERTH_E2E_BACKEND=s3pg)."""
import os
import subprocess

import pytest

import backends
from conftest import Registry
from ociclient import Client, assert_error
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
