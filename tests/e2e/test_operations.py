"""Operations (README "Operations"): the health probes a load balancer or Kubernetes asks, the Prometheus
metrics (parsed with prometheus_client's own text parser) and the access log (one line per request, no
secrets). Runs on both backends: the storage check on the filesystem, the metadata check on PostgreSQL."""
import base64
import json
import os
import signal
import socket
import subprocess
import time

import pytest

import backends
from conftest import Registry, wait_for_log
from e2eauth import ADMIN_PASSWORD, ADMIN_USER, basic
from ociclient import Client, digest_of
from prometheus_client.parser import text_string_to_metric_families
from test_backend_outage import own_postgres, pg_ctl  # noqa: F401 (a fixture)

NAME = "ops/app"


def write_config(tmp_path, text):
    path = tmp_path / "berth.yaml"
    path.write_text(text)
    return ["--config", str(path)]


def ready_state(client):
    r = client.get("/health/ready")
    assert r.header("Content-Type") == "application/json"
    return r.status, r.json()


def wait_for_readiness(client, status, timeout=10):
    """Asks /health/ready until it answers `status` (its answer is cached for a second); returns the body."""
    deadline = time.monotonic() + timeout
    while True:
        got, body = ready_state(client)
        if got == status:
            return body
        assert time.monotonic() < deadline, f"/health/ready stayed {got}: {body}"
        time.sleep(0.05)


# ---- health ---------------------------------------------------------------------------------------


def test_probes_need_no_credentials_and_tell_only_their_state(registry):
    for auth in (None, "Basic bm90OnZhbGlk", "Bearer not-a-token"):  # even with bad credentials
        anonymous = Client(registry, auth=auth)
        r = anonymous.get("/health/live")
        assert r.status == 200 and r.json() == {"status": "ok"}
        status, body = ready_state(anonymous)
        assert status == 200
        assert body == {"status": "ok", "checks": {"storage": "ok", "metadata": "ok"}}
    assert Client(registry, auth=None).head("/health/ready").status == 200
    assert Client(registry, auth=None).get("/health/other").status == 404


def chattr(flag, path):
    subprocess.run(["chattr", flag, path], check=True, capture_output=True)


@pytest.mark.skipif(backends.selected() != "embedded", reason="the filesystem's check; S3 has its own permissions")
@pytest.mark.skipif(os.getuid() != 0, reason="chattr +i needs root")
def test_ready_names_the_storage_while_it_cannot_be_written(registry):
    probe = Client(registry, auth=None)
    staging = os.path.join(registry.data_dir, "tmp")  # where every upload (and the probe) begins
    chattr("+i", staging)
    try:
        body = wait_for_readiness(probe, 503)
        assert body["status"] == "unavailable"
        assert body["checks"]["metadata"] == "ok"
        assert body["checks"]["storage"] != "ok" and body["checks"]["storage"]
        assert probe.get("/health/live").status == 200  # alive, only not ready
    finally:
        chattr("-i", staging)
    assert wait_for_readiness(probe, 200)["checks"] == {"storage": "ok", "metadata": "ok"}


@pytest.mark.skipif(backends.selected() == "embedded", reason="the embedded backends have no server to lose")
def test_ready_names_the_metadata_while_postgres_is_down(own_postgres, tmp_path):
    (tmp_path / "berth").mkdir()
    registry = Registry(str(tmp_path / "berth" / "data"))
    registry.backend = backends.new_backend(registry.data_dir, pg=own_postgres)
    registry.start()
    try:
        probe = Client(registry, auth=None)
        assert wait_for_readiness(probe, 200)["checks"]["metadata"] == "ok"
        pg_ctl(own_postgres, "stop", "-m", "fast", "-w")
        body = wait_for_readiness(probe, 503)
        assert body["checks"]["storage"] == "ok"
        assert body["checks"]["metadata"] != "ok"
        port = own_postgres["PGPORT"]
        pg_ctl(own_postgres, "start", "-w", "-l", os.path.join(own_postgres["TMP"], "server.log"), "-o",
               f"-c listen_addresses=127.0.0.1 -p {port} -k {own_postgres['TMP']}")
        wait_for_readiness(probe, 200)
    finally:
        registry.stop()


def test_ready_is_503_once_shutdown_begins(registry):
    """A request that reached the server before SIGTERM is served: /health/ready then says it stops."""
    host, port = registry.host.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"GET /health/ready HTTP/1.1\r\nHost: x\r\n")  # half a header: in flight
        registry.proc.send_signal(signal.SIGTERM)
        wait_for_log(registry, "finishing requests in flight")
        s.sendall(b"\r\n")
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503"), reply
    assert json.loads(body) == {"status": "unavailable", "checks": {"shutdown": "the server is stopping"}}


# ---- metrics --------------------------------------------------------------------------------------


def scrape(client):
    """The samples of /metrics as {(name, ((label, value), ...)): value}, parsed by prometheus_client."""
    r = client.get("/metrics")
    assert r.status == 200, r
    assert r.header("Content-Type").startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(r.body.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0)


def test_metrics_need_an_administrator_unless_public(make_registry, tmp_path):
    registry = make_registry()
    r = Client(registry, auth=None).get("/metrics")
    assert r.status == 401 and r.header("WWW-Authenticate").startswith("Basic ")
    admin = Client(registry)
    assert admin.post("/api/v1/users", json.dumps({"name": "carol", "password": "carol-password-1"}).encode(),
                      headers={"Content-Type": "application/json"}).status == 201
    assert Client(registry, auth=basic("carol", "carol-password-1")).get("/metrics").status == 403
    assert scrape(admin)

    public = make_registry(extra_args=write_config(tmp_path, "metrics:\n  public: true\n"))
    assert scrape(Client(public, auth=None))


def test_metrics_count_known_requests(registry):
    admin = Client(registry)
    oci = Client(registry)
    image = oci.push_image(NAME, tag="v1")
    before = scrape(admin)

    for _ in range(3):
        assert oci.get_manifest(NAME, "v1").status == 200
    assert oci.get_manifest(NAME, "missing").status == 404
    layer = image.layers[0]
    assert oci.get(f"/v2/{NAME}/blobs/{digest_of(layer)}").body == layer
    pushed = os.urandom(1000)
    oci.push_blob(NAME, pushed)
    assert Client(registry, auth=basic(ADMIN_USER, "wrong")).get("/v2/").status == 401
    assert Client(registry, auth="Bearer forged").get(f"/v2/{NAME}/tags/list").status == 401
    assert oci.get("/token?service=berth&scope=repository:ops/app:pull").status == 200
    assert oci.get("/v2/not/a/route/at/all").status == 404

    after = scrape(admin)
    delta = lambda name, **labels: value(after, name, **labels) - value(before, name, **labels)  # noqa: E731
    assert delta("berth_http_requests_total", route="manifest_get", method="GET", code="200") == 3
    assert delta("berth_http_requests_total", route="manifest_get", method="GET", code="404") == 1
    assert delta("berth_http_requests_total", route="blob_get", method="GET", code="200") == 1
    assert delta("berth_http_requests_total", route="none", method="other", code="404") == 1
    assert delta("berth_http_request_duration_seconds_count", route="manifest_get", method="GET") == 4
    assert delta("berth_http_request_duration_seconds_bucket", route="manifest_get", method="GET", le="+Inf") == 4
    assert delta("berth_blob_bytes_sent_total") == len(layer)
    assert delta("berth_blob_bytes_received_total") == len(pushed)
    assert delta("berth_auth_failures_total", reason="bad_credentials") == 1
    assert delta("berth_auth_failures_total", reason="bad_token") == 1
    assert delta("berth_tokens_issued_total") == 1
    assert value(after, "berth_uploads_in_flight") == 0
    assert value(after, "berth_connections_open") >= 1  # the scrape's own
    # The route label is always the route table's operation name, never a raw path.
    routes = {dict(labels).get("route") for (name, labels) in after if name.startswith("berth_http_")}
    assert all(r and "/" not in r for r in routes), routes
    assert value(after, "process_resident_memory_bytes") > 0
    assert value(after, "process_open_fds") > 0
    assert value(after, "process_cpu_seconds_total") > 0
    assert abs(value(after, "process_start_time_seconds") - time.time()) < 3600


def scrape_until(client, name, labels, expected, timeout=5):
    """Scrapes until sample `name`{labels} is `expected` (the storage gauges are reused for a second
    after each reading); returns the samples."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(client)
        if value(samples, name, **labels) == expected:
            return samples
        assert time.monotonic() < deadline, f"{name}{labels} stayed {value(samples, name, **labels)}, not {expected}"
        time.sleep(0.1)


def test_metrics_show_storage_and_the_runs_of_gc_and_retention(make_registry, tmp_path):
    registry = make_registry(extra_args=write_config(tmp_path, """
gc:
  grace_minutes: 0
  interval_minutes: 0
retention:
  - repositories: ["ops/app"]
    keep_last: 1
"""))
    admin = Client(registry)
    old = admin.push_image(NAME, tag="old")
    admin.push_image(NAME, tag="new")
    admin.push_image("ops/other", tag="v1")
    admin.push_image("dev/app", tag="v1")

    def storage_matches_usage():
        usage = {n["name"]: n for n in admin.get("/api/v1/usage").json()["namespaces"]}
        assert usage["ops"]["quota_used_bytes"] > 0
        samples = scrape_until(admin, "berth_storage_bytes", {"namespace": "ops"}, usage["ops"]["quota_used_bytes"])
        assert value(samples, "berth_storage_bytes", namespace="dev") == usage["dev"]["quota_used_bytes"]
        assert value(samples, "berth_repositories", namespace="ops") == 2
        assert value(samples, "berth_repositories", namespace="dev") == 1
        return samples

    before = storage_matches_usage()
    assert ("berth_gc_last_success_timestamp_seconds", ()) not in before  # no collection yet
    assert value(before, "berth_gc_runs_total", outcome="success") == 0
    assert value(before, "berth_retention_runs_total", outcome="success") == 0

    # Retention deletes the tag `old` and the manifest it leaves untagged.
    r = admin.post("/api/v1/retention/preview")
    assert r.status == 200 and r.json()["tags"] == 1  # a preview is not a run
    r = admin.post("/api/v1/retention/run")
    assert r.status == 200 and (r.json()["tags"], r.json()["manifests"]) == (1, 1), r.json()
    assert admin.get_manifest(NAME, old.digest).status == 404
    # A dry run is not counted; a collection is, with the bytes it answered.
    assert admin.post("/api/v1/gc?dry_run=true").status == 200
    r = admin.post("/api/v1/gc")
    assert r.status == 200
    run = r.json()
    assert run["bytes"] == len(old.config) + sum(len(layer) for layer in old.layers)

    after = storage_matches_usage()
    delta = lambda name, **labels: value(after, name, **labels) - value(before, name, **labels)  # noqa: E731
    assert delta("berth_storage_bytes", namespace="ops") == -(run["bytes"] + len(old.data))
    assert delta("berth_gc_runs_total", outcome="success") == 1
    assert delta("berth_gc_runs_total", outcome="failure") == 0
    assert delta("berth_gc_freed_bytes_total") == run["bytes"]
    assert delta("berth_gc_duration_seconds_count") == 1
    assert delta("berth_gc_duration_seconds_sum") == pytest.approx(run["duration_ms"] / 1000)
    assert delta("berth_retention_runs_total", outcome="success") == 1
    assert delta("berth_retention_deleted_tags_total") == 1
    assert delta("berth_retention_deleted_manifests_total") == 1
    # When the collection ended, from the runs every instance logs in the store (the dry run after
    # it does not count): what an alert on "no GC for too long" reads.
    assert admin.post("/api/v1/gc?dry_run=true").status == 200
    ended = (run["started_at_ms"] + run["duration_ms"]) / 1000
    scrape_until(admin, "berth_gc_last_success_timestamp_seconds", {}, ended)  # read again within a second


# ---- access log -----------------------------------------------------------------------------------


def access_lines(registry, count_route, timeout=10):
    """The JSON access-log lines, once a line of `count_route` is there (lines arrive as the server writes)."""
    wait_for_log(registry, f'"route":"{count_route}"', timeout)
    lines = []
    with open(registry.log_path) as f:
        for line in f:
            if line.startswith("{"):
                lines.append(json.loads(line))
    return lines


def test_json_access_log_has_a_line_per_request_and_no_secrets(make_registry, tmp_path):
    registry = make_registry(extra_args=write_config(tmp_path, "log:\n  access: json\n"))
    oci = Client(registry)
    image = oci.push_image(NAME, tag="v1")
    r = oci.get("/token?service=berth&scope=repository:ops/app:pull")
    token = r.json()["token"]
    bearer = Client(registry, auth=f"Bearer {token}")
    assert bearer.request("GET", f"/v2/{NAME}/manifests/v1?access_token={token}",
                          headers={"Accept": image.media_type, "User-Agent": "e2e-agent/1.0"}).status == 200
    assert Client(registry, auth=basic(ADMIN_USER, "wrong-password-xyz")).get("/v2/").status == 401
    assert Client(registry, auth=None).get("/health/live").status == 200

    lines = access_lines(registry, "health_live")
    fields = {"time", "remote_address", "identity", "method", "route", "repository", "status", "bytes_in",
              "bytes_out", "duration_seconds", "user_agent"}
    assert all(set(line) == fields for line in lines), lines[0]
    got = [line for line in lines if line["route"] == "manifest_get"]
    assert len(got) == 1
    line = got[0]
    assert line["method"] == "GET" and line["status"] == 200
    assert line["identity"] == f"user:{ADMIN_USER}" and line["repository"] == NAME
    assert line["bytes_out"] == len(image.data) and line["user_agent"] == "e2e-agent/1.0"
    assert line["remote_address"] == "127.0.0.1" and 0 <= line["duration_seconds"] < 10
    puts = [line for line in lines if line["route"] == "manifest_put"]
    assert len(puts) == 1 and puts[0]["bytes_in"] == len(image.data) and puts[0]["status"] == 201
    refused = [line for line in lines if line["route"] == "base"]
    assert refused and refused[-1]["status"] == 401 and refused[-1]["identity"] == ""

    text = open(registry.log_path).read()
    basic_header = base64.b64encode(f"{ADMIN_USER}:{ADMIN_PASSWORD}".encode()).decode()
    for secret in (token, ADMIN_PASSWORD, "wrong-password-xyz", basic_header, "access_token"):
        assert secret not in text, secret


def test_text_access_log(make_registry, tmp_path):
    registry = make_registry(extra_args=write_config(tmp_path, "log:\n  access: text\n"))
    Client(registry, auth=None).request("GET", "/health/live", headers={"User-Agent": "probe\t\"x\" 1"})
    wait_for_log(registry, " GET health_live ")
    line = next(line for line in open(registry.log_path) if " GET health_live " in line)
    fields = line.split(" ")
    assert fields[1] == "127.0.0.1" and fields[2] == "-"  # address, anonymous
    assert fields[3:7] == ["GET", "health_live", "-", "200"]
    assert line.rstrip("\n").endswith('"probe\\x09\\x22x\\x22 1"')
