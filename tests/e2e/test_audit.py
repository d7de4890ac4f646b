"""The audit log (README "Audit log"): every change is recorded with its identity, address, action,
target and outcome, so are refusals (403) and failed logins; pulls are not; GET /api/v1/audit filters
and pages newest first, `berth audit` prints it; and no password or token ever appears in an entry."""
import json
import os
import subprocess
import time
import urllib.parse

import pytest

from backends import metadata_sql
from e2eauth import ADMIN_PASSWORD, ADMIN_USER, basic
from ociclient import Client, assert_error, digest_of, next_link

pytestmark = pytest.mark.skipif(os.environ.get("BERTH_E2E_TARGET") == "distribution", reason="Berth's admin API")

DEV_PASSWORD = "dev-password-4711"
WRONG_PASSWORD = "wrong-password-0815"


def entries(client, **query):
    """Every entry matching `query`, newest first, following the Link header page by page."""
    url = "/api/v1/audit?" + urllib.parse.urlencode(query)
    found = []
    while url:
        r = client.get(url)
        assert r.status == 200, r
        found += r.json()["entries"]
        url = next_link(r)
    return found


def call(client, method, path, doc=None, status=None):
    body = json.dumps(doc).encode() if doc is not None else None
    r = client.request(method, "/api/v1/" + path, body=body,
                       headers={"Content-Type": "application/json"} if body is not None else None)
    if status is not None:
        assert r.status == status, r
    return r


def one(found, **fields):
    """The single entry of `found` with `fields`."""
    matching = [e for e in found if all(e[k] == v for k, v in fields.items())]
    assert len(matching) == 1, f"{fields}: {matching} in {found}"
    return matching[0]


@pytest.fixture
def audited(registry):
    """A registry after one of each audited action, with the secrets used on the way."""
    admin = Client(registry)
    call(admin, "POST", "users", {"name": "dev", "password": DEV_PASSWORD}, 201)
    grant = call(admin, "POST", "grants", {"subject": "user:dev", "actions": ["pull", "push"],
                                           "repositories": ["team/*"]}, 201).json()["ids"][0]
    robot_token = call(admin, "POST", "robots", {"name": "ci"}, 201).json()["token"]
    call(admin, "POST", "repositories", {"name": "team/empty"}, 201)
    call(admin, "DELETE", "repositories/team/empty", status=200)

    dev = Client(registry, auth=basic("dev", DEV_PASSWORD))
    v1 = dev.push_image("team/app", "v1")
    v2 = admin.push_image("team/app", "v2")
    r = admin.post("/api/v1/repositories/team/prod/tags/v1", json.dumps({"source": "team/app:v1"}).encode(),
                   headers={"Content-Type": "application/json"})
    assert r.status == 200, r
    assert admin.delete("/v2/team/app/manifests/v1").status == 202
    assert admin.delete(f"/v2/team/app/manifests/{v2.digest}").status == 202
    # Refusals: a push where dev may not (403), a wrong password on /v2 and on /token (401).
    assert_error(dev.put("/v2/other/app/manifests/v1", b"{}", headers={"Content-Type": "application/json"}),
                 403, "DENIED")
    assert Client(registry, auth=basic("dev", WRONG_PASSWORD)).get("/v2/").status == 401
    assert Client(registry, auth=basic("ci", "berth_not-a-real-token")).get("/token?service=berth").status == 401
    # Pulls are not recorded.
    before = len(entries(admin))
    assert dev.get_manifest("team/prod", "v1").status == 200
    assert dev.get(f"/v2/team/app/blobs/{digest_of(v1.config)}").status == 200
    assert len(entries(admin)) == before

    call(admin, "POST", "retention/run", status=200)
    call(admin, "POST", "gc?dry_run=true", status=200)
    call(admin, "DELETE", f"grants/{grant}", status=200)
    call(admin, "DELETE", "robots/ci", status=200)
    call(admin, "DELETE", "users/dev", status=200)
    return registry, {"v1": v1, "v2": v2, "secrets": [ADMIN_PASSWORD, DEV_PASSWORD, WRONG_PASSWORD, robot_token,
                                                      "berth_not-a-real-token"]}


def test_every_change_and_refusal_is_recorded_without_secrets(audited):
    registry, pushed = audited
    found = entries(Client(registry))
    assert [e["id"] for e in found] == sorted((e["id"] for e in found), reverse=True)  # newest first
    assert all(e["address"] == "127.0.0.1" for e in found)
    admin, dev = f"user:{ADMIN_USER}", "user:dev"
    ok = {"outcome": "ok"}
    one(found, action="user_create", subject=admin, target="user:dev", status=201, **ok)
    one(found, action="grant_create", subject=admin, target="user:dev", detail="pull,push on team/*", **ok)
    one(found, action="robot_create", subject=admin, target="robot:ci", **ok)
    one(found, action="repository_create", subject=admin, repository="team/empty", **ok)
    one(found, action="repository_delete", subject=admin, repository="team/empty", **ok)
    push = one(found, action="manifest_push", subject=dev, target="team/app:v1", **ok)
    assert push["repository"] == "team/app" and push["status"] == 201
    one(found, action="manifest_push", subject=admin, target="team/app:v2", **ok)
    one(found, action="promote", subject=admin, target="team/prod:v1", detail="from team/app:v1", **ok)
    one(found, action="tag_delete", subject=admin, target="team/app:v1", status=202, **ok)
    one(found, action="manifest_delete", subject=admin, target=f"team/app@{pushed['v2'].digest}", **ok)
    denied = one(found, action="manifest_push", subject=dev, repository="other/app", outcome="denied")
    assert denied["status"] == 403 and denied["target"] == "other/app:v1" and "dev" in denied["detail"]
    one(found, action="login", subject="user:dev", outcome="failed", status=401)
    one(found, action="login", subject="robot:ci", outcome="failed", status=401)
    one(found, action="retention_run", subject=admin, **ok)
    assert one(found, action="gc_run", subject=admin, **ok)["detail"].startswith("dry run")
    one(found, action="grant_delete", subject=admin, **ok)
    one(found, action="robot_revoke", subject=admin, target="robot:ci", **ok)
    one(found, action="user_delete", subject=admin, target="user:dev", **ok)
    # Only changes and refusals: no upload, pull or listing.
    assert not [e for e in found if e["action"].startswith(("upload", "blob_get", "manifest_get", "admin_"))]

    text = json.dumps(found)
    for secret in pushed["secrets"]:
        assert secret not in text
    assert "Basic" not in text and "Bearer" not in text and "dry_run" not in text  # no headers, no query strings


def test_filters_and_paging(audited):
    registry, _ = audited
    admin = Client(registry)
    everything = entries(admin)
    by_repo = entries(admin, repository="team/app")
    assert {e["action"] for e in by_repo} == {"manifest_push", "tag_delete", "manifest_delete"}
    assert [e for e in everything if e["repository"] == "team/app"] == by_repo
    assert {e["action"] for e in entries(admin, subject="user:dev")} == {"manifest_push", "login"}
    assert [e["subject"] for e in entries(admin, action="login")] == ["robot:ci", "user:dev"]
    assert entries(admin, action="login", subject="user:nobody") == []
    # Times: `until` the oldest entry's time keeps that entry (inclusive); `since` an age.
    oldest = everything[-1]
    assert oldest in entries(admin, until=oldest["time_ms"])
    assert entries(admin, since="1h") == everything
    assert entries(admin, since=everything[0]["time_ms"] + 1) == []
    # Pages of two, newest first, with the filters carried by the Link header.
    r = admin.get("/api/v1/audit?n=2&subject=user%3Aadmin")
    first = r.json()["entries"]
    assert len(first) == 2 and next_link(r) and "subject=user%3Aadmin" in next_link(r)
    paged = entries(admin, n=2, subject=f"user:{ADMIN_USER}")
    assert paged == [e for e in everything if e["subject"] == f"user:{ADMIN_USER}"] and paged[:2] == first
    assert_error(admin.get("/api/v1/audit?since=yesterday"), 400, "INVALID_ARGUMENT")
    # Administrators only.
    assert admin.get("/api/v1/audit").status == 200
    assert Client(registry, auth=None).get("/api/v1/audit").status == 401


def test_berth_audit_prints_the_table_and_json(audited, tmp_path):
    registry, _ = audited
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    berth = os.environ["BERTH_BIN"]
    subprocess.run([berth, "login", registry.url, "-u", ADMIN_USER, "--password-stdin"], input=ADMIN_PASSWORD + "\n",
                   text=True, env=env, check=True, capture_output=True)
    table = subprocess.run([berth, "audit", "--repo", "team/app", "--since", "24h"], env=env, check=True,
                           capture_output=True, text=True).stdout.splitlines()
    assert table[0].split()[:3] == ["TIME", "(UTC)", "SUBJECT"]
    assert len(table) == 1 + 4 and "team/app@sha256:" in table[1] and "manifest_delete" in table[1]
    doc = json.loads(subprocess.run([berth, "audit", "--action", "login", "--json"], env=env, check=True,
                                    capture_output=True, text=True).stdout)
    assert [e["subject"] for e in doc["entries"]] == ["robot:ci", "user:dev"]


def test_a_flood_of_refusals_records_ten_a_minute(registry):
    """A subject refused again and again from one address (a CI job retrying a push it may not do)
    gets ten audit entries a minute, not one per request; other subjects are not affected."""
    admin = Client(registry)
    call(admin, "POST", "users", {"name": "dev", "password": DEV_PASSWORD}, 201)
    dev = Client(registry, auth=basic("dev", DEV_PASSWORD))
    for _ in range(25):
        assert_error(dev.put("/v2/other/app/manifests/v1", b"{}", headers={"Content-Type": "application/json"}),
                     403, "DENIED")
    found = entries(admin, subject="user:dev")
    assert len([e for e in found if e["outcome"] == "denied"]) == 10, found
    call(admin, "POST", "users", {"name": "ops", "password": DEV_PASSWORD}, 201)
    assert_error(Client(registry, auth=basic("ops", DEV_PASSWORD)).put(
        "/v2/other/app/manifests/v1", b"{}", headers={"Content-Type": "application/json"}), 403, "DENIED")
    assert len(entries(admin, subject="user:ops")) == 1



def test_old_entries_and_finished_deliveries_go_and_nothing_else(registry):
    """audit.retention_days (default 90) and webhooks.retention_days (default 30), applied by the
    clean-up that runs at start-up and then every hour: older audit entries and finished webhook
    deliveries go; newer ones, and a pending delivery however old, stay. The rows are planted with old
    times in the metadata store, then the restart's clean-up is what removes them."""
    day = 86_400_000
    now = int(time.time() * 1000)
    audit_row = "({}, '{}', '127.0.0.1', 'user_create', '', 'user:x', 'ok', 201, '')"
    metadata_sql(registry, "INSERT INTO audit_log (at_ms, subject, address, action, repository, target, outcome, "
                           "status, detail) VALUES " + ", ".join(
                               [audit_row.format(now - 91 * day, "user:too-old"), audit_row.format(now - 89 * day, "user:kept")]))
    delivery_row = "('{}', 'e-{}', 'push', {at}, 'team/app', 'v1', 'sha256:00', 'x', 1, 'user:a', '', {}, {at}, {at})"
    metadata_sql(registry, "INSERT INTO webhook_deliveries (webhook, event_id, event, at, repository, tag, digest, "
                           "media_type, size, actor, source, state, next_at, updated_at) VALUES " + ", ".join([
                               delivery_row.format("old-delivered", 1, 1, at=now - 31 * day),
                               delivery_row.format("old-failed", 2, 2, at=now - 31 * day),
                               delivery_row.format("old-pending", 3, 0, at=now - 31 * day),
                               delivery_row.format("recent-delivered", 4, 1, at=now - 29 * day)]))
    admin = Client(registry)
    assert {e["subject"] for e in entries(admin, subject="user:too-old")} == {"user:too-old"}

    registry.restart()
    admin = Client(registry)
    assert entries(admin, subject="user:too-old") == []
    assert [e["subject"] for e in entries(admin, subject="user:kept")] == ["user:kept"]
    left = metadata_sql(registry, "SELECT webhook FROM webhook_deliveries ORDER BY webhook")
    assert [row[0] for row in left] == ["old-pending", "recent-delivered"]
