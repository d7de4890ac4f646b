"""Access control over raw HTTP with Basic credentials on /v2 (as the OCI conformance suite sends them):
private by default, namespaces per environment, grants, explicit creation, catalog filtering, and the
refusals (401 with a challenge, 403 DENIED naming the identity and repository)."""
import os
import re
import stat

import pytest

from authenv import Admin, anonymous, as_user, catalog, start, storage_snapshot
from e2eauth import ADMIN_PASSWORD, basic
from ociclient import Client, assert_error, oci, random_bytes  # noqa: F401 (fixture)


def test_base_without_credentials_is_401_with_a_challenge(registry):
    r = anonymous(registry).get("/v2/")
    assert_error(r, 401, "UNAUTHORIZED")
    challenge = r.header("WWW-Authenticate")
    assert challenge, r
    m = re.match(r'(Bearer|Basic) realm="([^"]+)"', challenge)
    assert m, challenge
    if m.group(1) == "Bearer":
        assert m.group(2) == f"{registry.url}/token", challenge
        assert 'service="' in challenge


def test_base_with_basic_credentials_is_200(oci):
    assert oci.get("/v2/").status == 200


def test_wrong_password_is_401_and_changes_nothing(registry, oci):
    before = storage_snapshot(registry)
    bad = as_user(registry, "admin", "not-the-password")
    assert_error(bad.get("/v2/"), 401, "UNAUTHORIZED")
    assert_error(bad.post("/v2/team/app/blobs/uploads/", b""), 401, "UNAUTHORIZED")
    assert storage_snapshot(registry) == before


def test_private_by_default_refuses_anonymous_pull(registry, oci):
    img = oci.push_image("team/app", "v1")
    anon = anonymous(registry)
    for path in ("/v2/team/app/manifests/v1", f"/v2/team/app/blobs/{img.digest}", "/v2/team/app/tags/list",
                 "/v2/_catalog"):
        r = anon.get(path)
        assert_error(r, 401, "UNAUTHORIZED")
        challenge = r.header("WWW-Authenticate")
        assert challenge
        if challenge.startswith("Bearer") and "tags" not in path and "_catalog" not in path:
            assert 'scope="repository:team/app:pull"' in challenge, challenge


def test_public_pull_namespace_serves_anonymous_pulls_only(make_registry, tmp_path):
    reg = start(make_registry, tmp_path)
    admin = Client(reg)
    img = admin.push_image("public/tool", "v1")
    anon = anonymous(reg)
    r = anon.get("/v2/public/tool/manifests/v1", headers={"Accept": img.media_type})
    assert r.status == 200 and r.body == img.data, r
    assert anon.get(f"/v2/public/tool/blobs/{img.digest}").status in (200, 404)
    assert anon.get("/v2/public/tool/tags/list").json()["tags"] == ["v1"]
    before = storage_snapshot(reg)
    assert_error(anon.post("/v2/public/tool/blobs/uploads/", b""), 401, "UNAUTHORIZED")
    assert_error(anon.delete(f"/v2/public/tool/manifests/{img.digest}"), 401, "UNAUTHORIZED")
    assert storage_snapshot(reg) == before
    # Private namespaces stay private.
    admin.push_image("staging/app", "v1")
    assert_error(anon.get("/v2/staging/app/manifests/v1"), 401, "UNAUTHORIZED")


def test_deploy_robot_pulls_production_but_cannot_push(make_registry, tmp_path):
    reg = start(make_registry, tmp_path)
    admin = Admin(reg)
    admin.create_repo("production/app")
    img = Client(reg).push_image("production/app", "v1")
    token = admin.robot("deploy")
    deploy = as_user(reg, "deploy", token)
    r = deploy.get_manifest("production/app", "v1")
    assert r.status == 200 and r.body == img.data, r
    before = storage_snapshot(reg)
    r = deploy.post("/v2/production/app/blobs/uploads/", b"")
    assert_error(r, 403, "DENIED")
    detail = r.json()["errors"][0]["detail"]
    assert "robot:deploy" in detail and "production/app" in detail, detail
    assert_error(deploy.put_manifest("production/app", "v2", img.data, img.media_type), 403, "DENIED")
    assert_error(deploy.delete(f"/v2/production/app/manifests/{img.digest}"), 403, "DENIED")
    assert storage_snapshot(reg) == before
    assert Client(reg).tags("production/app") == ["v1"]
    # Not even pull elsewhere.
    Client(reg).push_image("staging/app", "v1")
    assert_error(deploy.get_manifest("staging/app", "v1"), 403, "DENIED")


def test_explicit_namespace_refuses_push_to_a_missing_repository_with_the_hint(make_registry, tmp_path):
    reg = start(make_registry, tmp_path)
    ci = as_user(reg, "ci", Admin(reg).robot("ci"))
    r = ci.post("/v2/production/shop/blobs/uploads/", b"")
    assert_error(r, 404, "NAME_UNKNOWN")
    detail = r.json()["errors"][0]["detail"]
    assert "production/shop" in detail and "berth repo create production/shop" in detail, detail
    r = ci.put_manifest("production/shop", "v1", b"{}")
    assert_error(r, 404, "NAME_UNKNOWN")
    # Once created, the same push works; on-push namespaces never needed it.
    assert Admin(reg).create_repo("production/shop").status == 201
    ci.push_image("production/shop", "v1")
    ci.push_image("staging/shop", "v1")
    assert Client(reg).tags("production/shop") == ["v1"]


def test_catalog_is_filtered_per_caller(make_registry, tmp_path):
    reg = start(make_registry, tmp_path)
    admin = Admin(reg)
    for repo in ("production/app", "production/api"):
        admin.create_repo(repo)
    root = Client(reg)
    for repo in ("production/app", "staging/app", "development/app", "public/tool", "other/thing"):
        root.push_image(repo, "v1")
    assert catalog(root) == sorted(["production/api", "production/app", "staging/app", "development/app",
                                    "public/tool", "other/thing"])
    deploy = as_user(reg, "deploy", admin.robot("deploy"))
    assert catalog(deploy) == ["production/api", "production/app", "public/tool"]
    admin.user("dev", "dev-password-1")
    dev = as_user(reg, "dev", "dev-password-1")
    assert catalog(dev) == ["development/app", "public/tool"]
    # Pagination runs over the filtered list.
    r = deploy.get("/v2/_catalog?n=1")
    assert r.json()["repositories"] == ["production/api"]
    assert "last=production/api" in r.header("Link")


def test_user_grants_from_config(make_registry, tmp_path):
    reg = start(make_registry, tmp_path)
    Admin(reg).user("dev", "dev-password-1")
    dev = as_user(reg, "dev", "dev-password-1")
    img = dev.push_image("development/web", "v1")
    assert dev.delete(f"/v2/development/web/manifests/{img.digest}").status == 202
    r = dev.post("/v2/staging/web/blobs/uploads/", b"")
    assert_error(r, 403, "DENIED")
    assert "user:dev" in r.json()["errors"][0]["detail"]


def test_revoked_robot_is_refused(make_registry, tmp_path):
    reg = start(make_registry, tmp_path)
    admin = Admin(reg)
    token = admin.robot("ci")
    ci = as_user(reg, "ci", token)
    ci.push_image("staging/app", "v1")
    admin.call("DELETE", "robots/ci", expect=200)
    before = storage_snapshot(reg)
    r = ci.post("/v2/staging/app/blobs/uploads/", b"")
    assert_error(r, 401, "UNAUTHORIZED")
    assert r.header("WWW-Authenticate")
    assert_error(ci.get_manifest("staging/app", "v1"), 401, "UNAUTHORIZED")
    assert storage_snapshot(reg) == before
    # A token is only good under its own name.
    token2 = admin.robot("ci2")
    assert_error(as_user(reg, "ci", token2).get("/v2/"), 401, "UNAUTHORIZED")


def test_path_traversal_names_are_refused_and_touch_nothing(registry, oci):
    oci.push_image("team/app", "v1")
    before = storage_snapshot(registry)
    anon = anonymous(registry)
    for name in ("..", "../etc", "team/../../etc", "team/./app", "%2e%2e/x", "team//app"):
        for method, path in (("POST", f"/v2/{name}/blobs/uploads/"), ("GET", f"/v2/{name}/tags/list"),
                             ("PUT", f"/v2/{name}/manifests/v1")):
            r = oci.request(method, path, body=b"{}" if method != "GET" else None)
            assert r.status in (400, 404), (name, method, r)
            assert r.status != 201
            r = anon.request(method, path, body=b"{}" if method != "GET" else None)
            assert r.status in (401, 400, 404), (name, method, r)
    assert storage_snapshot(registry) == before


def test_failed_logins_are_rate_limited_per_address_and_account(registry, oci):
    assert oci.get("/v2/").status == 200
    statuses = [as_user(registry, "admin", f"wrong-{i}").get("/v2/").status for i in range(12)]
    assert statuses[:10] == [401] * 10, statuses
    r = as_user(registry, "admin", "wrong-again").get("/v2/")
    assert_error(r, 429, "TOOMANYREQUESTS")
    assert 1 <= int(r.header("Retry-After")) <= 60
    # Credentials verified before keep working; other accounts are not held off (test_auth_ratelimit.py).
    assert oci.get("/v2/").status == 200
    assert_error(as_user(registry, "nobody", "x").get("/v2/"), 401, "UNAUTHORIZED")


def test_generated_admin_password_is_printed_once_and_kept_0600(make_registry):
    reg = make_registry(env={"BERTH_ADMIN_PASSWORD": ""})
    path = os.path.join(reg.data_dir, "admin-password")
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode == 0o600, oct(mode)
    password = open(path).read().strip()
    assert len(password) >= 20
    reg.log.flush()
    log = open(reg.log_path).read()
    assert log.count(password) == 1, "printed exactly once"
    assert Client(reg, auth=basic("admin", password)).get("/v2/").status == 200
    assert Client(reg).get("/v2/").status == 401  # the e2e default password was not used
    reg.restart()
    reg.log.flush()
    assert open(reg.log_path).read().count(password) == 1, "not printed again on restart"
    assert ADMIN_PASSWORD not in open(reg.log_path).read()


def test_whoami_and_admin_only_endpoints(make_registry, tmp_path):
    reg = start(make_registry, tmp_path)
    admin = Admin(reg)
    me = admin.call("GET", "whoami", expect=200).json()
    assert me["subject"] == "user:admin" and me["admin"] is True
    token = admin.robot("ci")
    ci = as_user(reg, "ci", token)
    me = ci.get("/api/v1/whoami").json()
    assert me["subject"] == "robot:ci" and me["admin"] is False
    assert any("staging/*" in g["repositories"] for g in me["grants"]), me
    assert_error(ci.get("/api/v1/users"), 403, "DENIED")
    assert_error(ci.post("/api/v1/robots", b'{"name":"evil"}'), 403, "DENIED")
    assert_error(ci.post("/api/v1/repositories", b'{"name":"production/x"}'), 403, "DENIED")
    assert_error(anonymous(reg).get("/api/v1/whoami"), 401, "UNAUTHORIZED")
    ns = admin.call("GET", "namespaces", expect=200).json()
    assert {"name": "production", "visibility": "private", "creation": "explicit", "immutable_tags": [],
            "source": "config", "quota_bytes": None, "max_repositories": None} in ns["namespaces"]
    # Repository delete through the API removes it from the catalog.
    Client(reg).push_image("staging/gone", "v1")
    admin.call("DELETE", "repositories/staging/gone", expect=200)
    assert "staging/gone" not in catalog(Client(reg))
    assert_error(Client(reg).get_manifest("staging/gone", "v1"), 404, "MANIFEST_UNKNOWN", "NAME_UNKNOWN")


def test_check_endpoint_names_the_deciding_grant(make_registry, tmp_path):
    reg = start(make_registry, tmp_path)
    admin = Admin(reg)
    admin.robot("deploy")
    r = admin.call("GET", "check?subject=robot:deploy&action=pull&repository=production/app", expect=200).json()
    assert r["allowed"] is True and "namespaces.production.grants[0]" in r["reason"], r
    r = admin.call("GET", "check?subject=robot:deploy&action=push&repository=production/app", expect=200).json()
    assert r["allowed"] is False and "robot:deploy" in r["reason"], r
