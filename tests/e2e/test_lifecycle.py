"""Image lifecycle: tag records by time, tag history, promotion across environments (single images and
a multi-arch index with a signature, pulled back with skopeo and podman), rollback, the denials that
leave everything as it was, concurrent promotions onto one tag, and immutable tags as clients see them.
Runs on the embedded backends and on S3 + PostgreSQL (e2e_stored)."""
import json
import os
import subprocess
import threading

import pytest

import images
from backends import metadata_sql
from conftest import wait_for_log
from authenv import Admin, as_user, start, storage_snapshot
from clients import Clients, require
from e2eauth import ADMIN_PASSWORD
from ociclient import OCI_INDEX, OCI_MANIFEST, Client, assert_error, descriptor, next_link

CONFIG = """
auth:
  service: berth-e2e
namespaces:
  staging:
    creation: on-push
  production:
    creation: explicit
    immutable_tags: ["v*"]
grants:
  - subject: robot:ci
    actions: [push]
    repositories: ["staging/*"]
  - subject: robot:deploy
    actions: [pull]
    repositories: ["staging/*", "production/*"]
  - subject: robot:release
    actions: [push]
    repositories: ["production/*"]
"""
IMMUTABLE = "tag production/app:v1.4.0 is immutable (namespaces.production.immutable_tags: v*)"


@pytest.fixture
def reg(make_registry, tmp_path):
    return start(make_registry, tmp_path, config=CONFIG)


@pytest.fixture
def admin(reg):
    return Admin(reg)


def berth(env, *args, check=True, stdin=None):
    proc = subprocess.run([os.environ["BERTH_BIN"], *args], input=stdin, capture_output=True, text=True, env=env,
                          timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"berth {' '.join(args)} exited {proc.returncode}: {proc.stderr}{proc.stdout}")
    return proc


@pytest.fixture
def cli(reg, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / "xdg")}
    berth(env, "login", reg.url, "--password-stdin", stdin=ADMIN_PASSWORD + "\n")
    return env


def tags(client, repo, **query):
    q = "&".join(f"{k}={v}" for k, v in query.items())
    r = client.get(f"/api/v1/repositories/{repo}/tags" + (f"?{q}" if q else ""))
    assert r.status == 200, r
    return r


def history(client, repo, tag):
    r = client.get(f"/api/v1/repositories/{repo}/tags/{tag}/history")
    assert r.status == 200, r
    return r.json()["history"]


def promote(client, dst, tag, source):
    return client.post(f"/api/v1/repositories/{dst}/tags/{tag}", json.dumps({"source": source}).encode(),
                       headers={"Content-Type": "application/json"})


def tag_digest(client, repo, tag):
    r = client.get_manifest(repo, tag)
    return r.header("Docker-Content-Digest") if r.status == 200 else None


def image_size(img):
    return len(img.data) + len(img.config) + sum(len(b) for b in img.layers)


def robot(admin, reg, name):
    token = admin.robot(name)
    return as_user(reg, name, token)


# ---- tag records and history ----

def test_tags_list_newest_first_with_who_size_platforms_and_pages(reg, admin):
    c = Client(reg)
    pushed = [c.push_image("staging/app", tag) for tag in ("one", "two", "three")]
    ci = robot(admin, reg, "ci")
    by_robot = ci.push_image("staging/app", "four")

    doc = tags(c, "staging/app").json()
    assert [t["name"] for t in doc["tags"]] == ["four", "three", "two", "one"]
    four, three = doc["tags"][0], doc["tags"][1]
    assert four["pushed_by"] == "robot:ci" and three["pushed_by"] == "user:admin"
    assert four["digest"] == by_robot.digest and four["media_type"] == OCI_MANIFEST
    assert four["size"] == image_size(by_robot)
    assert four["platforms"] == ["linux/amd64"]
    assert four["pushed_at_ms"] >= three["pushed_at_ms"] and four["pushed_at"].endswith("Z")

    assert [t["name"] for t in tags(c, "staging/app", sort="name").json()["tags"]] == ["four", "one", "three", "two"]
    assert [t["name"] for t in tags(c, "staging/app", order="asc").json()["tags"]] == ["one", "two", "three", "four"]
    first = tags(c, "staging/app", n=2)
    assert [t["name"] for t in first.json()["tags"]] == ["four", "three"]
    second = c.get(next_link(first))
    assert second.status == 200, second
    assert [t["name"] for t in second.json()["tags"]] == ["two", "one"]
    assert pushed[0].digest == second.json()["tags"][1]["digest"]
    assert_error(c.get("/api/v1/repositories/staging/none/tags"), 404, "NAME_UNKNOWN")
    assert_error(c.get("/api/v1/repositories/staging/app/tags?sort=size"), 400, "INVALID_ARGUMENT")


def test_index_records_its_children_sizes_and_platforms(reg):
    c = Client(reg)
    children = [c.push_image("staging/multi") for _ in range(2)]
    index = c.push_index("staging/multi", children, tag="v1")
    (record,) = tags(c, "staging/multi").json()["tags"]
    assert record["media_type"] == OCI_INDEX
    assert record["platforms"] == ["linux/amd64", "linux/arm64"]
    assert record["size"] == len(index.data) + sum(image_size(ch) for ch in children)


def test_images_stored_before_the_upgrade_get_their_platforms_without_a_re_push(reg):
    """An image pushed before Berth recorded platforms has none, and its config blob unread (the
    upgrade's migration marks such manifests; here the rows are set as it leaves them). The next start
    reads each config once, in the background."""
    c = Client(reg)
    c.push_image("staging/app", "old")
    metadata_sql(reg, "UPDATE manifests SET platforms = '', platforms_unread = (1 = 1)")
    assert tags(c, "staging/app").json()["tags"][0]["platforms"] == []

    reg.restart()
    wait_for_log(reg, "read the platforms of 1 image manifest(s) stored before they were recorded")
    assert tags(Client(reg), "staging/app").json()["tags"][0]["platforms"] == ["linux/amd64"]
    assert metadata_sql(reg, "SELECT count(*) FROM manifests WHERE platforms_unread = (1 = 1)") == [("0",)]


def test_history_lists_every_digest_of_a_retagged_tag(reg):
    c = Client(reg)
    a = c.push_image("staging/app", "latest")
    b = c.push_image("staging/app", "latest")
    c.push_manifest("staging/app", "latest", b.data)  # the same digest again: no new entry
    c.push_manifest("staging/app", "latest", a.data)
    assert [h["digest"] for h in history(c, "staging/app", "latest")] == [a.digest, b.digest, a.digest]
    assert all(h["pushed_by"] == "user:admin" and "source" not in h for h in history(c, "staging/app", "latest"))
    # Deleting the tag keeps its history (the rollback candidates).
    assert c.delete("/v2/staging/app/manifests/latest").status == 202
    assert len(history(c, "staging/app", "latest")) == 3
    assert_error(c.get("/api/v1/repositories/staging/app/tags/never/history"), 404, "MANIFEST_UNKNOWN")


def test_listings_need_list_on_the_repository(reg, admin):
    Client(reg).push_image("staging/app", "v1")
    release = robot(admin, reg, "release")
    assert_error(release.get("/api/v1/repositories/staging/app/tags"), 403, "DENIED")
    assert_error(release.get("/api/v1/repositories/staging/app/tags/v1/history"), 403, "DENIED")
    deploy = robot(admin, reg, "deploy")
    assert tags(deploy, "staging/app").json()["tags"][0]["name"] == "v1"


def test_repositories_show_counts_sizes_and_last_push_by_namespace(reg, admin):
    c = Client(reg)
    img = c.push_image("staging/app", "v1")
    c.push_manifest("staging/app", "v2", img.data)
    admin.create_repo("production/app")
    r = c.get("/api/v1/repositories?namespace=staging")
    assert r.status == 200, r
    (repo,) = r.json()["repositories"]
    assert repo["name"] == "staging/app" and repo["tags"] == 2
    assert repo["size"] == image_size(img) and repo["last_push_ms"] > 0
    names = [x["name"] for x in c.get("/api/v1/repositories").json()["repositories"]]
    assert names == ["production/app", "staging/app"]


# ---- promotion ----

def test_promote_links_the_image_and_records_the_source(reg, admin):
    c = Client(reg)
    img = c.push_image("staging/app", "sha-3f9c2e1", layers=2)
    admin.create_repo("production/app")
    before = storage_snapshot(reg)

    r = promote(c, "production/app", "latest", "staging/app:sha-3f9c2e1")
    assert r.status == 200, r
    assert r.json()["digest"] == img.digest and r.json()["previous_digest"] is None
    assert c.get_manifest("production/app", "latest").body == img.data
    for blob in [img.config, *img.layers]:
        got = c.get(f"/v2/production/app/blobs/{descriptor('x', blob)['digest']}")
        assert got.status == 200 and got.body == blob
    assert storage_snapshot(reg) == before  # linked, never copied
    (h,) = history(c, "production/app", "latest")
    assert h["source"] == "staging/app:sha-3f9c2e1" and h["pushed_by"] == "user:admin"

    again = promote(c, "production/app", "latest", f"staging/app@{img.digest}")
    assert again.status == 200 and again.json()["previous_digest"] == img.digest
    assert len(history(c, "production/app", "latest")) == 1  # idempotent


def test_rollback_with_the_cli(reg, cli):
    c = Client(reg)
    c.post("/api/v1/repositories", b'{"name":"production/app"}', headers={"Content-Type": "application/json"})
    good = c.push_image("staging/app", "main-abc1234")
    bad = c.push_image("staging/app", "main-def5678")
    out = berth(cli, "promote", "staging/app:main-abc1234", "production/app:main-abc1234").stdout
    assert out.strip() == f"production/app:main-abc1234 → {good.digest} (new tag)"
    berth(cli, "promote", "staging/app:main-abc1234", "production/app:latest")
    out = berth(cli, "promote", "staging/app:main-def5678", "production/app:latest").stdout
    assert out.strip() == f"production/app:latest → {bad.digest} (was {good.digest})"

    out = berth(cli, "promote", "production/app:main-abc1234", "production/app:latest").stdout
    assert out.strip() == f"production/app:latest → {good.digest} (was {bad.digest})"
    assert tag_digest(c, "production/app", "latest") == good.digest
    assert [h["digest"] for h in history(c, "production/app", "latest")] == [good.digest, bad.digest, good.digest]

    table = berth(cli, "tags", "production/app").stdout.splitlines()
    assert table[0].split()[:4] == ["TAG", "DIGEST", "PUSHED", "BY"]
    assert table[1].startswith("latest ") and good.digest[:19] in table[1] and "user:admin" in table[1]
    assert "linux/amd64" in table[1] and "seconds ago" in table[1]
    hist = berth(cli, "tags", "production/app:latest", "--history").stdout.splitlines()
    assert len(hist) == 4 and "production/app:main-abc1234" in hist[1]
    doc = json.loads(berth(cli, "tags", "production/app", "--json", "--limit", "1").stdout)
    assert [t["name"] for t in doc["tags"]] == ["latest"]
    repos = berth(cli, "repo", "list", "--namespace", "production").stdout.splitlines()
    assert repos[1].split()[:2] == ["production/app", "2"]


def test_a_repository_named_tags_is_reached_with_its_slashes_encoded(reg, cli):
    """`staging/app/tags` would read as staging/app's tags: the CLI encodes a repository's slashes,
    and the API decodes them, so each of the two is reached."""
    c = Client(reg)
    inner = c.push_image("staging/app/tags", "v1")
    outer = c.push_image("staging/app", "v2")
    assert [t["name"] for t in tags(c, "staging%2Fapp%2Ftags").json()["tags"]] == ["v1"]
    assert [t["name"] for t in tags(c, "staging/app").json()["tags"]] == ["v2"]
    assert [h["digest"] for h in history(c, "staging%2Fapp%2Ftags", "v1")] == [inner.digest]

    table = berth(cli, "tags", "staging/app/tags").stdout.splitlines()
    assert len(table) == 2 and table[1].startswith("v1 ") and inner.digest[:19] in table[1]
    berth(cli, "promote", "staging/app/tags:v1", "staging/app/tags:latest")
    assert tag_digest(c, "staging/app/tags", "latest") == inner.digest
    berth(cli, "repo", "delete", "staging/app/tags")
    assert tag_digest(c, "staging/app/tags", "v1") is None
    assert tag_digest(c, "staging/app", "v2") == outer.digest


def test_denials_leave_everything_unchanged(reg, admin):
    c = Client(reg)
    img = c.push_image("staging/app", "v1")
    other = c.push_image("staging/app", "v2")
    admin.create_repo("production/app")
    assert promote(c, "production/app", "v1.4.0", "staging/app:v1").status == 200
    before = (storage_snapshot(reg), tags(c, "production/app").json(), history(c, "production/app", "v1.4.0"))

    release = robot(admin, reg, "release")  # push on production/*, nothing on staging
    assert_error(promote(release, "production/app", "latest", "staging/app:v1"), 403, "DENIED")
    deploy = robot(admin, reg, "deploy")  # pull everywhere, push nowhere
    assert_error(promote(deploy, "production/app", "latest", "staging/app:v1"), 403, "DENIED")
    r = promote(c, "production/missing", "latest", "staging/app:v1")
    assert_error(r, 404, "NAME_UNKNOWN")
    assert "berth repo create production/missing" in r.json()["errors"][0]["message"]
    r = promote(c, "production/app", "v1.4.0", "staging/app:v2")
    assert_error(r, 403, "DENIED")
    assert r.json()["errors"][0]["message"] == IMMUTABLE
    assert_error(promote(c, "production/app", "latest", "staging/app:nope"), 404, "MANIFEST_UNKNOWN")
    assert_error(promote(c, "production/app", "latest", "staging/app"), 400, "INVALID_ARGUMENT")

    after = (storage_snapshot(reg), tags(c, "production/app").json(), history(c, "production/app", "v1.4.0"))
    assert after == before
    assert c.get("/v2/production/missing/tags/list").status == 404
    assert c.get_manifest("production/app", other.digest).status == 404
    assert tag_digest(c, "production/app", "v1.4.0") == img.digest


def test_concurrent_promotions_onto_one_tag_leave_one_winner(reg, admin):
    c = Client(reg)
    builds = [c.push_image("staging/app", f"build-{i}") for i in range(8)]
    admin.create_repo("production/app")
    answers = [None] * len(builds)

    def run(i):
        answers[i] = promote(Client(reg), "production/app", "latest", f"staging/app:build-{i}")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(builds))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(a.status == 200 for a in answers), answers
    current = tag_digest(c, "production/app", "latest")
    entries = history(c, "production/app", "latest")
    assert entries[0]["digest"] == current
    assert sorted(e["digest"] for e in entries) == sorted(b.digest for b in builds)
    # Each answer's previous digest is the entry before its own: one chain, no lost move.
    chain = [e["digest"] for e in reversed(entries)]
    previous = {a.json()["digest"]: a.json()["previous_digest"] for a in answers}
    assert previous[chain[0]] is None
    assert all(previous[chain[i]] == chain[i - 1] for i in range(1, len(chain)))


@require("skopeo", "podman")
def test_promote_a_multiarch_index_with_its_signature_then_pull(reg, admin, tmp_path):
    index = images.make_multiarch("promo", arches=("amd64", "arm64"))
    world = Clients(str(tmp_path / "world"))
    world.copy_to(images.write_oci_layout(str(tmp_path / "layout"), index, "v1"),
                  f"docker://{reg.host}/staging/app:sha-1", "--all")
    c = Client(reg)
    sig = c.push_artifact("staging/app", descriptor(OCI_INDEX, index.manifest.data), "application/vnd.example.sig")
    admin.create_repo("production/app")

    r = promote(c, "production/app", "latest", "staging/app:sha-1")
    assert r.status == 200, r
    assert r.json()["digest"] == index.digest
    refs = c.get(f"/v2/production/app/referrers/{index.digest}")
    assert [m["digest"] for m in refs.json()["manifests"]] == [sig.digest]
    (record,) = tags(c, "production/app").json()["tags"]
    assert record["platforms"] == ["linux/amd64", "linux/arm64"]

    ref = f"{reg.host}/production/app:latest"
    assert world.inspect_raw(f"docker://{ref}") == index.manifest.data
    arm = next(img for img in index.images if img.platform["architecture"] == "arm64")
    assert world.inspect(f"docker://{ref}")["Digest"] in (index.digest, arm.digest)
    fresh = Clients(str(tmp_path / "fresh"))
    fresh.podman("pull", "-q", "--tls-verify=false", "--arch", "arm64", ref)
    assert fresh.podman("image", "inspect", "--format", "{{.Architecture}}", ref).stdout.strip() == "arm64"
    digest = fresh.podman("image", "inspect", "--format", "{{.Digest}}", ref).stdout.strip()
    assert digest in (arm.digest, index.digest), digest


# ---- immutable tags ----

def test_immutable_tags_refuse_moves_and_deletes_but_not_retries(reg, admin, cli):
    c = Client(reg)
    admin.create_repo("production/app")
    first = c.push_image("production/app", "v1.4.0")
    c.push_manifest("production/app", "v1.4.0", first.data)  # a CI retry: same digest
    other = c.push_image("production/app", "latest")

    r = c.put_manifest("production/app", "v1.4.0", other.data)
    assert_error(r, 403, "DENIED")
    assert r.json()["errors"][0]["message"] == IMMUTABLE
    assert_error(c.delete("/v2/production/app/manifests/v1.4.0"), 403, "DENIED")
    assert_error(c.delete(f"/v2/production/app/manifests/{first.digest}"), 403, "DENIED")
    assert_error(promote(c, "production/app", "v1.4.0", "production/app:latest"), 403, "DENIED")
    assert tag_digest(c, "production/app", "v1.4.0") == first.digest
    assert len(history(c, "production/app", "v1.4.0")) == 1
    # Mutable tags still move; a new immutable tag may be set once.
    assert promote(c, "production/app", "latest", "production/app:v1.4.0").status == 200
    assert promote(c, "production/app", "v1.5.0", "production/app:v1.4.0").status == 200

    admin.robot("ci")
    out = berth(cli, "check", "--as", "robot:ci", "--action", "push", "--repo", "production/app", "--tag", "v1.4.0",
                check=False).stdout
    assert IMMUTABLE in out, out
    out = berth(cli, "check", "--as", "user:admin", "--action", "push", "--repo", "production/app", "--tag",
                "latest").stdout
    assert "tag production/app:latest is mutable" in out, out


@require("skopeo", "podman")
def test_clients_print_the_immutable_rule(reg, admin, tmp_path):
    admin.create_repo("production/app")
    world = Clients(str(tmp_path / "world"))
    one = images.write_oci_layout(str(tmp_path / "one"), images.make_image({"a": b"1\n"}), "v1")
    two = images.write_oci_layout(str(tmp_path / "two"), images.make_image({"a": b"2\n"}), "v1")
    dest = f"docker://{reg.host}/production/app:v1.4.0"
    world.copy_to(one, dest)
    world.copy_to(one, dest)  # the same digest again
    refused = world.skopeo("copy", "--dest-tls-verify=false", two, dest, check=False)
    assert refused.returncode != 0
    assert IMMUTABLE in refused.stderr, refused.stderr
    world.skopeo("copy", two, "containers-storage:localhost/two:v1")
    refused = world.podman("push", "--tls-verify=false", "localhost/two:v1", dest, check=False)
    assert refused.returncode != 0
    assert IMMUTABLE in refused.stderr, refused.stderr
