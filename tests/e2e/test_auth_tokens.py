"""Docker registry token authentication over raw HTTP: the Bearer challenge, GET /token with Basic
credentials and several scopes, the OAuth2 POST (password and refresh_token grants), tokens carrying
exactly the granted scope, and the security cases — a token for repository A used on B, an expired
token, a wrong audience, a tampered signature, `alg: none`, a scope asking for more than granted, a
revoked robot — each refused with the right code and nothing changed in storage."""
import base64
import json
import re
import time
import urllib.parse

import jwt  # python3-jwt
import pytest
from cryptography.hazmat.primitives import serialization

from authenv import Admin, anonymous, as_user, start, storage_snapshot
from e2eauth import ADMIN_PASSWORD, ADMIN_USER, basic
from ociclient import Client, assert_error, random_bytes


def token_for(registry, *scopes, auth=None, offline=False):
    query = [("service", "berth-e2e")] + [("scope", s) for s in scopes]
    if offline:
        query.append(("offline_token", "true"))
    r = Client(registry, auth=auth).get("/token?" + urllib.parse.urlencode(query))
    return r


def payload(token):
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def access_of(token):
    return {(a["type"], a["name"]): sorted(a["actions"]) for a in payload(token)["access"]}


def bearer(registry, token):
    return Client(registry, auth="Bearer " + token)


@pytest.fixture
def reg(make_registry, tmp_path):
    return start(make_registry, tmp_path)


def test_challenge_points_at_the_token_endpoint(reg):
    r = anonymous(reg).get("/v2/")
    assert_error(r, 401, "UNAUTHORIZED")
    assert r.header("WWW-Authenticate") == f'Bearer realm="{reg.url}/token",service="berth-e2e"'
    r = anonymous(reg).post("/v2/staging/app/blobs/uploads/", b"")
    assert r.header("WWW-Authenticate") == (f'Bearer realm="{reg.url}/token",service="berth-e2e",'
                                            'scope="repository:staging/app:pull,push"')


def test_token_from_basic_credentials_pushes_and_pulls(reg):
    r = token_for(reg, "repository:staging/app:pull,push", auth=basic())
    assert r.status == 200, r
    doc = r.json()
    assert doc["token"] == doc["access_token"]
    assert doc["expires_in"] == 120
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", doc["issued_at"])
    assert "refresh_token" not in doc
    claims = payload(doc["token"])
    assert claims["sub"] == "user:admin" and claims["aud"] == "berth-e2e" and claims["iss"] == "berth-e2e"
    assert access_of(doc["token"]) == {("repository", "staging/app"): ["pull", "push"]}
    client = bearer(reg, doc["token"])
    assert client.get("/v2/").status == 200
    img = client.push_image("staging/app", "v1")
    assert client.get_manifest("staging/app", "v1").body == img.data


def test_several_scopes_and_a_pull_push_mix_for_a_cross_repository_mount(reg):
    admin = Admin(reg)
    token = admin.robot("ci")
    ci = as_user(reg, "ci", token)
    img = ci.push_image("staging/base", "v1")
    layer = img.layers[0]
    from ociclient import digest_of
    r = token_for(reg, "repository:staging/base:pull", "repository:development/app:push",
                  auth=basic("ci", token))
    access = access_of(r.json()["token"])
    assert access == {("repository", "staging/base"): ["pull"], ("repository", "development/app"): ["push"]}
    client = bearer(reg, r.json()["token"])
    m = client.post(f"/v2/development/app/blobs/uploads/?mount={digest_of(layer)}&from=staging/base", b"")
    assert m.status == 201, m
    # Without pull on the source, the mount falls back to a plain upload session.
    r = token_for(reg, "repository:development/other:push", auth=basic("ci", token))
    m = bearer(reg, r.json()["token"]).post(
        f"/v2/development/other/blobs/uploads/?mount={digest_of(layer)}&from=staging/base", b"")
    assert m.status == 202, m


def test_scope_asking_for_more_than_granted_is_cut_down_and_denied_by_name(reg):
    admin = Admin(reg)
    admin.create_repo("production/app")
    Client(reg).push_image("production/app", "v1")
    deploy_token = admin.robot("deploy")
    r = token_for(reg, "repository:production/app:pull,push,delete", "repository:staging/app:pull",
                  "registry:catalog:*", auth=basic("deploy", deploy_token))
    token = r.json()["token"]
    assert access_of(token) == {("repository", "production/app"): ["pull"], ("registry", "catalog"): ["*"]}
    client = bearer(reg, token)
    assert client.get_manifest("production/app", "v1").status == 200
    before = storage_snapshot(reg)
    r = client.post("/v2/production/app/blobs/uploads/", b"")
    assert_error(r, 403, "DENIED")
    detail = r.json()["errors"][0]["detail"]
    assert "robot:deploy" in detail and "production/app" in detail, detail
    assert_error(client.delete("/v2/production/app/manifests/v1"), 403, "DENIED")
    assert storage_snapshot(reg) == before
    # The catalog scope filters by what the robot may see.
    assert client.get("/v2/_catalog").json()["repositories"] == ["production/app"]


def test_token_for_repository_a_does_not_open_b(reg):
    Client(reg).push_image("staging/b", "v1")
    token = token_for(reg, "repository:staging/a:pull,push", auth=basic()).json()["token"]
    client = bearer(reg, token)
    before = storage_snapshot(reg)
    for r in (client.get_manifest("staging/b", "v1"), client.post("/v2/staging/b/blobs/uploads/", b""),
              client.delete("/v2/staging/b/manifests/v1")):
        assert_error(r, 401, "UNAUTHORIZED")
        assert 'error="insufficient_scope"' in r.header("WWW-Authenticate")
        assert "repository:staging/b:" in r.header("WWW-Authenticate")
    assert storage_snapshot(reg) == before


def signing_key(reg):
    with open(f"{reg.data_dir}/token-signing-key.pem", "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def forge(reg, **overrides):
    """A token signed with the registry's own key (as an insider would), with claims changed."""
    now = int(time.time())
    claims = {"iss": "berth-e2e", "aud": "berth-e2e", "sub": "user:admin", "iat": now, "nbf": now,
              "exp": now + 60, "use": "access",
              "access": [{"type": "repository", "name": "staging/app", "actions": ["pull", "push"]}]}
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    real = token_for(reg, auth=basic()).json()["token"]
    kid = json.loads(base64.urlsafe_b64decode(real.split(".")[0] + "=="))["kid"]
    return jwt.encode(claims, signing_key(reg), algorithm="ES256", headers={"kid": kid})


def hs256_with_public_key(reg, claims):
    """The classic key-confusion forgery: HMAC over the token with the public key as the secret."""
    import hashlib
    import hmac
    secret = signing_key(reg).public_key().public_bytes(serialization.Encoding.PEM,
                                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(claims)}"
    sig = base64.urlsafe_b64encode(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())
    return signing_input + "." + sig.rstrip(b"=").decode()


def b64(doc):
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()


def test_bad_tokens_are_401_with_a_challenge_and_change_nothing(reg):
    good = forge(reg)
    assert bearer(reg, good).post("/v2/staging/app/blobs/uploads/", b"").status == 202
    header, body, sig = good.split(".")
    tampered_sig = sig[:-4] + ("AAAA" if not sig.endswith("AAAA") else "BBBB")
    forged_body = b64({**payload(good), "access": [{"type": "repository", "name": "production/app",
                                                    "actions": ["push"]}]})
    cases = {
        "expired": forge(reg, exp=int(time.time()) - 600, iat=int(time.time()) - 900, nbf=int(time.time()) - 900),
        "wrong audience": forge(reg, aud="someone-else"),
        "wrong issuer": forge(reg, iss="someone-else"),
        "refresh used as access": forge(reg, use="refresh"),
        "tampered signature": f"{header}.{body}.{tampered_sig}",
        "tampered claims": f"{header}.{forged_body}.{sig}",
        "alg none": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{body}.",
        "alg HS256 with the public key": hs256_with_public_key(reg, payload(good)),
        "garbage": "not-a-token",
    }
    before = storage_snapshot(reg)
    for what, token in cases.items():
        for r in (bearer(reg, token).post("/v2/staging/app/blobs/uploads/", b""),
                  bearer(reg, token).put("/v2/production/app/manifests/v1", b"{}")):
            assert r.status == 401, (what, r)
            assert r.error_codes()[0] == "UNAUTHORIZED", (what, r)
            assert r.header("WWW-Authenticate").startswith("Bearer realm="), (what, r)
    assert storage_snapshot(reg) == before


def test_oauth2_password_and_refresh_grants(reg):
    admin = Admin(reg)
    robot_token = admin.robot("ci")
    form = urllib.parse.urlencode({"grant_type": "password", "username": "ci", "password": robot_token,
                                   "service": "berth-e2e", "client_id": "containerd",
                                   "scope": "repository:staging/app:pull,push repository:staging/lib:pull"})
    r = Client(reg, auth=None).post("/token", form.encode(),
                                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 200, r
    doc = r.json()
    assert access_of(doc["access_token"]) == {("repository", "staging/app"): ["pull", "push"],
                                              ("repository", "staging/lib"): ["pull"]}
    refresh = doc["refresh_token"]
    form = urllib.parse.urlencode({"grant_type": "refresh_token", "refresh_token": refresh,
                                   "service": "berth-e2e", "scope": "repository:staging/app:pull"})
    r = Client(reg, auth=None).post("/token", form.encode(),
                                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 200, r
    assert access_of(r.json()["access_token"]) == {("repository", "staging/app"): ["pull"]}
    # An access token is not a refresh token; a revoked robot cannot refresh.
    bad = urllib.parse.urlencode({"grant_type": "refresh_token", "refresh_token": doc["access_token"]})
    assert_error(Client(reg, auth=None).post("/token", bad.encode()), 401, "UNAUTHORIZED")
    admin.call("DELETE", "robots/ci", expect=200)
    r = Client(reg, auth=None).post("/token", form.encode(),
                                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_error(r, 401, "UNAUTHORIZED")
    wrong = urllib.parse.urlencode({"grant_type": "password", "username": "ci", "password": "nope"})
    assert_error(Client(reg, auth=None).post("/token", wrong.encode()), 401, "UNAUTHORIZED")


def test_offline_token_gives_a_refresh_token(reg):
    doc = token_for(reg, "repository:staging/app:pull", auth=basic(), offline=True).json()
    assert payload(doc["refresh_token"])["use"] == "refresh"


def test_anonymous_tokens_only_reach_public_namespaces(reg):
    Client(reg).push_image("public/tool", "v1")
    Client(reg).push_image("staging/app", "v1")
    r = token_for(reg, "repository:public/tool:pull,push", "repository:staging/app:pull")
    assert r.status == 200, r
    token = r.json()["token"]
    assert access_of(token) == {("repository", "public/tool"): ["pull"]}
    assert bearer(reg, token).get_manifest("public/tool", "v1").status == 200
    r = bearer(reg, token).get_manifest("staging/app", "v1")
    assert r.status in (401, 403), r
    assert token_for(reg, "repository:staging/app:pull", auth=basic("admin", "wrong")).status == 401


def test_revoked_robot_cannot_get_tokens(reg):
    admin = Admin(reg)
    token = admin.robot("ci")
    assert token_for(reg, "repository:staging/app:push", auth=basic("ci", token)).status == 200
    admin.call("DELETE", "robots/ci", expect=200)
    r = token_for(reg, "repository:staging/app:push", auth=basic("ci", token))
    assert_error(r, 401, "UNAUTHORIZED")


def test_a_token_is_bounded_by_its_scope_on_the_admin_api(reg):
    # An administrator's token cut down to pulling one repository cannot use the admin API.
    pull_only = token_for(reg, "repository:staging/app:pull", auth=basic()).json()["token"]
    before = Admin(reg).call("GET", "users", expect=200).json()["users"]
    for method, path, body in (("POST", "/api/v1/users", b'{"name":"eve","password":"eve-password-1"}'),
                               ("POST", "/api/v1/robots", b'{"name":"evil"}'),
                               ("GET", "/api/v1/whoami", None)):
        r = bearer(reg, pull_only).request(method, path, body=body)
        assert_error(r, 401, "UNAUTHORIZED")
        assert r.header("WWW-Authenticate") == (f'Bearer realm="{reg.url}/token",service="berth-e2e",'
                                                'scope="registry:admin:*",error="insufficient_scope"'), r
        assert "registry:admin:*" in r.json()["errors"][0]["message"]
    assert Admin(reg).call("GET", "users", expect=200).json()["users"] == before
    # Asked for explicitly, the admin scope acts with the subject's own rights.
    r = token_for(reg, "registry:admin:*", auth=basic())
    assert access_of(r.json()["token"]) == {("registry", "admin"): ["*"]}
    admin_token = r.json()["token"]
    r = bearer(reg, admin_token).post("/api/v1/users", b'{"name":"eve","password":"eve-password-1"}')
    assert r.status == 201, r
    ci = Admin(reg).robot("ci")
    ci_admin = token_for(reg, "registry:admin:*", auth=basic("ci", ci)).json()["token"]
    assert bearer(reg, ci_admin).get("/api/v1/whoami").json()["subject"] == "robot:ci"
    assert_error(bearer(reg, ci_admin).post("/api/v1/robots", b'{"name":"evil"}'), 403, "DENIED")
    # Nobody gets it anonymously; Basic credentials need no token at all.
    assert access_of(token_for(reg, "registry:admin:*").json()["token"]) == {}
    assert Admin(reg).call("GET", "whoami", expect=200).json()["admin"] is True
