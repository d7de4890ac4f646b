"""Real PostgreSQL and S3 (a Ceph RADOS Gateway) for end-to-end tests, started by the project's own
scripts (tests/servers/pg.sh, rgw.sh) once per pytest session, when a test first asks for them, and
stopped by PID when the session ends.

Ask for the `postgres` or `s3` fixture; each is the script's env file as a dict:
  postgres: DATABASE_URL, PGPORT
  s3:       S3_ENDPOINT, S3_REGION, S3_ACCESS_KEY, S3_SECRET_KEY
A test that asks is skipped, with the reason, only when the server's Debian packages cannot be
installed; any other failure to start fails it. Loaded by conftest.py (pytest_plugins).
"""
import os
import subprocess
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "servers"


def read_env(path):
    """The KEY=VALUE lines of a server's env file, as a dict ({} when the file is gone)."""
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)


class Server:
    """One server run by tests/servers/<script> in `state_dir`."""

    def __init__(self, script, state_dir):
        self.script = str(SCRIPTS / script)
        self.state_dir = str(state_dir)
        self.env = {}

    def start(self):
        subprocess.run([self.script, "start", self.state_dir], check=True, timeout=600)
        self.env = read_env(os.path.join(self.state_dir, "env"))
        return self

    def pids(self):
        return [int(p) for p in self.env.get("PIDS", "").split(",") if p]

    def stop(self):
        subprocess.run([self.script, "stop", self.state_dir], check=True, timeout=120)


def _serve(script, tmp_path_factory):
    server = Server(script, tmp_path_factory.mktemp(script.split(".")[0])).start()
    try:
        if "SKIP" in server.env:
            pytest.skip(f"{script}: {server.env['SKIP']}")
        yield server.env
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    yield from _serve("pg.sh", tmp_path_factory)


@pytest.fixture(scope="session")
def s3(tmp_path_factory):
    yield from _serve("rgw.sh", tmp_path_factory)
