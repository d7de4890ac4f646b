"""Webhooks (issue #12): every manifest push, delete, promotion and retention deletion in a configured
repository becomes one event, stored with the change and delivered by a background worker to a test
receiver on 127.0.0.1, signed (X-Berth-Signature: sha256=HMAC-SHA256(secret, body)). A receiver that
refuses connections for a while gets every event once it is back, each exactly once; events not yet
delivered when Berth is killed with SIGKILL are delivered after the restart. The retry base is 50 ms
(webhooks.retry_base_ms), so retries take milliseconds; the tests poll the receiver with a deadline."""
import hashlib
import hmac
import json
import os
import re
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from authenv import start
from certs import serve_tls
from e2eauth import ADMIN_PASSWORD, ADMIN_USER
from ociclient import Client

SECRET = "s3cret-for-tests"
DEADLINE = 15


class Receiver:
    """An HTTP receiver on 127.0.0.1:`port` recording each POST (headers and body); answers 204.
    With `tls_dir`, an https receiver whose self-signed certificate (its CA file) is `self.ca`."""

    def __init__(self, port, tls_dir=None):
        self.port = port
        self.received = []
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.cond:
                    receiver.received.append((dict(self.headers), body))
                    receiver.cond.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.ca = serve_tls(self.server, tls_dir, "receiver") if tls_dir else None
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, kind=None):
        with self.cond:
            return [json.loads(b) for h, b in self.received if kind is None or h["X-Berth-Event"] == kind]

    def wait_for(self, predicate, what):
        with self.cond:
            assert self.cond.wait_for(lambda: predicate(self), timeout=DEADLINE), \
                f"the receiver never got {what}; got {[b for _, b in self.received]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def free_port():
    """A port nothing listens on (yet): connections to it are refused until a Receiver takes it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def receivers():
    made = []

    def make(port, tls_dir=None):
        r = Receiver(port, tls_dir)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def start_berth(make_registry, tmp_path, port):
    secret = tmp_path / "webhook-secret"
    secret.write_text(SECRET + "\n")
    config = f"""
webhooks:
  retry_base_ms: 50
  registry_host: registry.test:5000
  hooks:
    - name: deploy
      url: http://127.0.0.1:{port}/hook
      events: [push, delete, promote]
      repositories: ["production/*"]
      secret_file: {secret}
      timeout_seconds: 5
"""
    return start(make_registry, tmp_path, config=config)


def deliveries(oci, query="", webhook="deploy"):
    r = oci.get(f"/api/v1/webhooks/{webhook}/deliveries{query}")
    assert r.status == 200, r
    return r.json()["deliveries"]


def wait_until(condition, what):
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_one_signed_event_per_push_and_per_delete(make_registry, tmp_path, receivers):
    port = free_port()
    receiver = receivers(port)
    reg = start_berth(make_registry, tmp_path, port)
    oci = Client(reg)

    image = oci.push_image("production/app", "v1", layers=3)  # four blobs, one manifest
    oci.push_image("staging/app", "v1")  # no webhook wants staging/*
    receiver.wait_for(lambda r: len(r.events("push")) >= 1, "the push event")
    headers, body = receiver.received[0]
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Berth-Signature"], expected)
    assert headers["X-Berth-Event"] == "push"
    event = json.loads(body)
    assert event["type"] == "push"
    assert event["repository"] == "production/app" and event["tag"] == "v1"
    assert event["digest"] == image.digest
    assert event["mediaType"] == image.media_type and event["size"] == len(image.data)
    assert event["actor"] == f"user:{ADMIN_USER}" and event["host"] == "registry.test:5000"
    assert len(event["id"]) == 32 and event["time"].endswith("Z")

    assert oci.delete(f"/v2/production/app/manifests/v1").status == 202
    receiver.wait_for(lambda r: len(r.events("delete")) == 1, "the delete event")
    # Deliveries go oldest first: a second push event would have come before the delete's.
    assert [e["type"] for e in receiver.events()] == ["push", "delete"]
    wait_until(lambda: all(d["state"] == "delivered" for d in deliveries(oci)), "both deliveries recorded")
    listed = deliveries(oci)
    assert [(d["event"], d["state"], d["attempts"], d["status"]) for d in listed] == \
        [("delete", "delivered", 1, 204), ("push", "delivered", 1, 204)]
    assert headers["X-Berth-Delivery"] == str(listed[1]["id"])
    assert receiver.events("delete")[0]["digest"] == image.digest

    metrics = oci.get("/metrics").body.decode()
    assert 'berth_webhook_deliveries_total{webhook="deploy",outcome="delivered"} 2' in metrics

    # The CLI: list, deliveries, test (a ping, unrecorded).
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    berth = os.environ["BERTH_BIN"]
    subprocess.run([berth, "login", reg.url, "-u", ADMIN_USER, "--password-stdin"], input=ADMIN_PASSWORD + "\n",
                   text=True, env=env, check=True, capture_output=True)
    run = lambda *args: subprocess.run([berth, "webhook", *args], env=env, check=True, capture_output=True,
                                       text=True).stdout
    assert "deploy" in run("list") and "production/*" in run("list")
    table = run("deliveries", "deploy")
    assert "production/app:v1" in table and "delivered" in table
    assert "answered HTTP 204" in run("test", "deploy")
    assert receiver.events("ping")[0]["webhook"] == "deploy"
    assert len(deliveries(oci)) == 2


def test_an_https_receiver_behind_a_private_ca_is_trusted_through_ca_file(make_registry, tmp_path, receivers):
    """Two hooks to one https receiver whose certificate no system store trusts: the one with its
    CA in `ca_file` delivers; the one without fails the certificate check, and says so."""
    port = free_port()
    receiver = receivers(port, tls_dir=tmp_path)
    secret = tmp_path / "webhook-secret"
    secret.write_text(SECRET)
    hook = f"""
      url: https://127.0.0.1:{port}/hook
      events: [push]
      repositories: ["production/*"]
      secret_file: {secret}"""
    reg = start(make_registry, tmp_path, config=f"""
webhooks:
  retry_base_ms: 50
  hooks:
    - name: trusted{hook}
      ca_file: {receiver.ca}
    - name: system-store{hook}
""")
    oci = Client(reg)
    image = oci.push_image("production/app", "v1")
    receiver.wait_for(lambda r: len(r.events("push")) == 1, "the push event over https")
    assert receiver.events("push")[0]["digest"] == image.digest
    wait_until(lambda: deliveries(oci, webhook="trusted")[0]["state"] == "delivered", "the delivery recorded")
    wait_until(lambda: deliveries(oci, webhook="system-store")[0]["attempts"] >= 2, "the untrusted one retried")
    refused = deliveries(oci, webhook="system-store")[0]
    assert refused["state"] == "pending" and refused["status"] == 0
    assert "certificate verify failed" in refused["last_error"], refused["last_error"]
    assert len(receiver.events("push")) == 1


def test_a_receiver_down_for_a_while_gets_every_event_exactly_once(make_registry, tmp_path, receivers):
    port = free_port()  # refusing: nothing listens yet
    reg = start_berth(make_registry, tmp_path, port)
    oci = Client(reg)
    pushed = [oci.push_image("production/app", f"v{i}").digest for i in range(3)]
    wait_until(lambda: len(deliveries(oci, "?failed=true")) == 3 and
               all(d["attempts"] >= 2 for d in deliveries(oci)), "three deliveries failing and retried")
    failed = deliveries(oci, "?failed=true")
    assert all(d["state"] == "pending" and d["status"] == 0 and d["last_error"] for d in failed)

    receiver = receivers(port)
    receiver.wait_for(lambda r: len(r.events("push")) >= 3, "the three push events")
    wait_until(lambda: all(d["state"] == "delivered" for d in deliveries(oci)), "every delivery recorded")
    events = receiver.events("push")
    assert len(events) == 3 and len({e["id"] for e in events}) == 3
    assert sorted(e["digest"] for e in events) == sorted(pushed)
    metrics = oci.get("/metrics").body.decode()
    assert 'berth_webhook_deliveries_total{webhook="deploy",outcome="delivered"} 3' in metrics
    failures = re.search(r'berth_webhook_deliveries_total\{webhook="deploy",outcome="failed"\} (\d+)', metrics)
    assert int(failures.group(1)) >= 6  # two refused attempts each, at least

    # A redelivery sends the same event again, under the same delivery id.
    first = deliveries(oci)[-1]
    assert oci.post(f"/api/v1/webhook-deliveries/{first['id']}").status == 202
    receiver.wait_for(lambda r: len(r.events("push")) == 4, "the redelivery")
    assert receiver.received[-1][0]["X-Berth-Delivery"] == str(first["id"])
    assert receiver.events("push")[-1]["id"] == first["event_id"]


def test_events_undelivered_at_a_kill_9_are_delivered_after_the_restart(make_registry, tmp_path, receivers):
    port = free_port()
    reg = start_berth(make_registry, tmp_path, port)
    oci = Client(reg)
    pushed = {oci.push_image("production/app", f"v{i}").digest for i in range(2)}
    wait_until(lambda: all(d["attempts"] >= 1 for d in deliveries(oci)) and len(deliveries(oci)) == 2,
               "both deliveries attempted")
    reg.kill()
    receiver = receivers(port)
    reg.start()
    receiver.wait_for(lambda r: len(r.events("push")) >= 2, "the events after the restart")
    wait_until(lambda: all(d["state"] == "delivered" for d in deliveries(Client(reg))), "both recorded delivered")
    events = receiver.events("push")
    assert len(events) == 2 and {e["digest"] for e in events} == pushed
