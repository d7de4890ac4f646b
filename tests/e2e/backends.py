"""The backends a Berth under test keeps its data in, chosen for the whole run by BERTH_E2E_BACKEND:

  embedded (default)  filesystem blobs and SQLite metadata under --data
  s3pg                blobs in S3 (a Ceph RADOS Gateway), metadata and identities in PostgreSQL

With s3pg every registry gets its own key prefix in one bucket and its own database, so tests stay as
isolated as with a fresh data directory; a restarted registry keeps them. The servers are the ctest
fixtures' (their env files named by BERTH_TEST_PG_ENV and BERTH_TEST_RGW_ENV) or, when a suite is run
by hand, started once for the process by tests/servers/*.sh and stopped by PID at exit.
"""
import atexit
import contextlib
import hashlib
import os
import re
import sqlite3
import subprocess
import tempfile
import uuid

BUCKET = "berth-e2e"
_servers = {}


def selected():
    backend = os.environ.get("BERTH_E2E_BACKEND", "embedded")
    if backend not in ("embedded", "s3pg"):
        raise RuntimeError(f"BERTH_E2E_BACKEND={backend}: expected embedded or s3pg")
    return backend


def _server_env(name, script, variable):
    """The env file of server `name`: the ctest fixture's, or one started for this process."""
    from servers import Server, read_env  # imported here: conftest loads it as a pytest plugin first

    if name in _servers:
        return _servers[name]
    path = os.environ.get(variable)
    if path:
        env = read_env(path)
        if not env:
            raise RuntimeError(f"{variable}={path}: cannot read it; did tests/servers/{script} start fail?")
    else:
        server = Server(script, tempfile.mkdtemp(prefix=f"berth-{name}-")).start()
        atexit.register(server.stop)
        env = server.env
    if "SKIP" in env:
        raise RuntimeError(f"{script}: {env['SKIP']}")
    if name == "s3":
        _create_bucket(env)
    _servers[name] = env
    return env


def _s3(env, method, path, body=b""):
    """A signed S3 request (curl) on `path` ("/bucket" or "/bucket/key"); returns the HTTP status."""
    out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", method,
                          "-H", f"x-amz-content-sha256: {hashlib.sha256(body).hexdigest()}",
                          "--aws-sigv4", f"aws:amz:{env['S3_REGION']}:s3",
                          "--user", f"{env['S3_ACCESS_KEY']}:{env['S3_SECRET_KEY']}",
                          *(["--data-binary", "@-"] if body else []),
                          f"{env['S3_ENDPOINT']}{path}"], input=body, capture_output=True, check=True)
    return int(out.stdout)


def _create_bucket(env):
    """The bucket every registry of this run keeps its prefix in (S3 answers 409 when it exists)."""
    status = _s3(env, "PUT", f"/{BUCKET}")
    if status not in (200, 409):
        raise RuntimeError(f"creating bucket {BUCKET}: HTTP {status}")


def s3_object(backend_yaml, method, key, body=b""):
    """`method` on object `key` under the prefix of a registry's backend (its new_backend YAML); returns
    the HTTP status."""
    prefix = re.search(r"^\s*prefix: (\S+)$", backend_yaml, re.M).group(1)
    return _s3(s3_env(), method, f"/{BUCKET}/{prefix}{key}", body)


def s3_env():
    """The run's S3 service (S3_ENDPOINT, S3_REGION, S3_ACCESS_KEY, S3_SECRET_KEY), its BUCKET created."""
    return _server_env("s3", "rgw.sh", "BERTH_TEST_RGW_ENV")


def new_backend(data_dir, pg=None):
    """A fresh prefix and database for one registry; returns the YAML that selects them. `pg`: the env
    of a PostgreSQL of the test's own (default: the run's)."""
    pg = pg or _server_env("postgres", "pg.sh", "BERTH_TEST_PG_ENV")
    s3 = s3_env()
    name = "e2e_" + uuid.uuid4().hex[:16]
    admin_url = pg["DATABASE_URL"].rsplit("/", 1)[0] + "/postgres"
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", admin_url, "-c", f"CREATE DATABASE {name}"],
                   check=True, capture_output=True)
    secrets = os.path.join(os.path.dirname(os.path.normpath(data_dir)), "backend-secrets")
    os.makedirs(secrets, exist_ok=True)
    files = {"pg-url": pg["DATABASE_URL"].rsplit("/", 1)[0] + "/" + name,
             "s3-access-key": s3["S3_ACCESS_KEY"], "s3-secret-key": s3["S3_SECRET_KEY"]}
    for file, value in files.items():
        with open(os.path.join(secrets, file), "w") as f:
            f.write(value + "\n")
    return f"""
storage:
  driver: s3
  s3:
    endpoint: {s3['S3_ENDPOINT']}
    region: {s3['S3_REGION']}
    bucket: {BUCKET}
    prefix: {name}/
    access_key_file: {secrets}/s3-access-key
    secret_key_file: {secrets}/s3-secret-key
    path_style: true
metadata:
  driver: postgres
  postgres:
    url_file: {secrets}/pg-url
    max_connections: 4
"""


def with_backend_config(args, backend_yaml):
    """`args` for `berth serve` with the backend's YAML added to the test's own --config (or as one)."""
    args = list(args)
    if "--config" in args:
        i = args.index("--config") + 1
        with open(args[i]) as f:
            own = f.read()
        path = args[i] + ".backend.yaml"
        args[i] = path
    else:
        own = ""
        path = tempfile.mkstemp(prefix="berth-backend-", suffix=".yaml")[1]
        args += ["--config", path]
    with open(path, "w") as f:
        f.write(own.rstrip("\n") + "\n" + backend_yaml)
    return args


def metadata_sql(registry, statement):
    """Runs `statement` on `registry`'s metadata database (its berth.db, or its PostgreSQL database) and
    returns the rows, each a tuple of strings: what a test plants or reads behind the API's back."""
    if registry.backend is None:
        with contextlib.closing(sqlite3.connect(os.path.join(registry.data_dir, "berth.db"), timeout=10)) as db:
            rows = db.execute(statement).fetchall()
            db.commit()
        return [tuple(str(v) for v in row) for row in rows]
    with open(re.search(r"url_file: (\S+)", registry.backend).group(1)) as f:
        url = f.read().strip()
    out = subprocess.run(["psql", "-qAt", "-v", "ON_ERROR_STOP=1", url, "-c", statement], capture_output=True,
                         text=True, check=True)
    return [tuple(line.split("|")) for line in out.stdout.splitlines()]
