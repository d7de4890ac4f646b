"""Shared fixtures for the end-to-end tests: a real registry process on 127.0.0.1, fresh data each time.

The registry under test is Berth (the binary named by $BERTH_BIN). With BERTH_E2E_TARGET=distribution the
same tests run against CNCF Distribution (Debian's docker-registry), to check a test against the reference.

Backends: BERTH_E2E_BACKEND=s3pg runs every Berth with its blobs in S3 (a Ceph RADOS Gateway) and its
metadata in PostgreSQL (backends.py); the default is the embedded filesystem + SQLite.
"""
import os
import re
import shutil
import signal
import subprocess
import tempfile

import pytest

import backends
from e2eauth import ADMIN_PASSWORD, ADMIN_USER

# The `postgres` and `s3` fixtures: real servers for the tests that need them (servers.py).
pytest_plugins = ["servers"]

LISTEN_RE = re.compile(r"listening on (?:https?://)?(\[[0-9a-f:]+\]|[0-9.]+):(\d+)")


class Registry:
    """A running registry process. `url` is http://127.0.0.1:PORT, `host` is 127.0.0.1:PORT.

    Berth starts with BERTH_ADMIN_PASSWORD set, so `user`/`password` (the first-start admin) can do
    everything; `env` may override it."""

    user = ADMIN_USER
    password = ADMIN_PASSWORD

    def __init__(self, data_dir, extra_args=(), env=None):
        self.data_dir = data_dir
        self.extra_args = list(extra_args)
        self.env = env
        self.proc = None
        self.host = None
        self.url = None
        self.log_path = os.path.normpath(data_dir) + ".log"
        self.backend = None  # the S3 prefix and database this registry keeps, across restarts

    def start(self):
        target = os.environ.get("BERTH_E2E_TARGET", "berth")
        if target == "distribution":
            self._start_distribution()
        else:
            self._start_berth()
        return self

    def _start_berth(self):
        binary = os.environ.get("BERTH_BIN")
        if not binary:
            pytest.fail("BERTH_BIN is not set: run through ctest, or export BERTH_BIN=build/src/cli/berth")
        args = self.extra_args
        if backends.selected() != "embedded":
            if self.backend is None:
                self.backend = backends.new_backend(self.data_dir)
            args = backends.with_backend_config(args, self.backend)
        # The config file the server reads (with the backend's sections), for `berth check --config`.
        self.config_path = args[args.index("--config") + 1] if "--config" in args else None
        cmd = [binary, "serve", "--listen", "127.0.0.1:0", "--data", self.data_dir, *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, "BERTH_ADMIN_PASSWORD": ADMIN_PASSWORD, **(self.env or {})})
        self.log = open(self.log_path, "a")
        for line in self.proc.stdout:
            self.log.write(line)
            m = LISTEN_RE.search(line)
            if m:
                self.host = f"{m.group(1)}:{m.group(2)}"
                break
        else:
            self.proc.wait()
            self.log.flush()
            pytest.fail(f"berth exited with {self.proc.returncode} before listening; log: {open(self.log_path).read()}")
        self.url = f"http://{self.host}"
        # Keep draining the output so the server never blocks on a full pipe.
        import threading
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stdout:
            self.log.write(line)
            self.log.flush()

    def _start_distribution(self):
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        config = os.path.join(self.data_dir, "config.yml")
        os.makedirs(self.data_dir, exist_ok=True)
        with open(config, "w") as f:
            f.write(f"""version: 0.1
log: {{level: warn}}
storage:
  filesystem: {{rootdirectory: {self.data_dir}/store}}
  delete: {{enabled: true}}
http: {{addr: 127.0.0.1:{port}}}
""")
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(["docker-registry", "serve", config], stdout=self.log, stderr=subprocess.STDOUT)
        import time
        import urllib.request
        deadline = time.monotonic() + 10
        while True:  # Distribution prints nothing reliable to wait on: poll /v2/ (reference target only)
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.host = f"127.0.0.1:{port}"
        self.url = f"http://{self.host}"

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def kill(self):
        """kill -9: the crash tests' way to stop it."""
        return self.stop(signal.SIGKILL)

    def restart(self):
        self.stop()
        return self.start()


def wait_for_log(registry, text, timeout=10):
    """Waits until the server has written `text` to its log (an observable event, not a delay)."""
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(registry.log_path) as f:
            if text in f.read():
                return
        time.sleep(0.01)
    pytest.fail(f"the server never logged {text!r}")


@pytest.fixture
def data_dir():
    d = tempfile.mkdtemp(prefix="berth-e2e-")
    yield os.path.join(d, "data")
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def registry(data_dir):
    """A fresh registry for one test."""
    r = Registry(data_dir).start()
    yield r
    r.stop()


@pytest.fixture
def make_registry(tmp_path_factory):
    """Factory for tests that need their own options or several registries: make_registry(extra_args=[...])."""
    started = []

    def make(extra_args=(), env=None, data_dir=None):
        d = data_dir or str(tmp_path_factory.mktemp("berth") / "data")
        r = Registry(d, extra_args, env).start()
        started.append(r)
        return r

    yield make
    for r in started:
        r.stop()
