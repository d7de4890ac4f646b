"""The WWW-Authenticate challenge over raw HTTP: nothing from the request is echoed into it unless valid
(repository names by the grammar, Host as host[:port]); a cross-repository mount lists the source's pull
scope too, so a client that asks for exactly the challenged scopes gets a token that mounts; an automatic
mount is decided by the identity behind the token; and a valid token that lacks a scope, anonymous or not,
gets error="insufficient_scope" (containerd repeats the request until it sees it)."""
import http.client
import re
import urllib.parse

import pytest

from authenv import Admin, anonymous, as_user, start
from e2eauth import basic
from ociclient import Client, assert_error, digest_of

TOKEN_PARAM_RE = re.compile(r'\s*([a-z]+)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def parse_challenge(value):
    """`Bearer k="v",...` as (scheme, {k: v}); fails on anything but well-formed, unique parameters."""
    scheme, _, rest = value.partition(" ")
    params = {}
    pos = 0
    while pos < len(rest):
        m = TOKEN_PARAM_RE.match(rest, pos)
        assert m, f"malformed challenge at {rest[pos:]!r}: {value!r}"
        key, quoted = m.group(1), m.group(2)
        assert key not in params, f"parameter {key} twice: {value!r}"
        params[key] = re.sub(r"\\(.)", r"\1", quoted)
        pos = m.end()
    assert set(params) <= {"realm", "service", "scope", "error"}, value
    return scheme, params


def raw_get(registry, path, headers):
    """One GET with exactly these headers (http.client would otherwise add its own Host)."""
    conn = http.client.HTTPConnection(*registry.host.split(":"), timeout=15)
    try:
        conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def token(registry, scopes, auth=None):
    query = urllib.parse.urlencode([("service", "berth-e2e")] + [("scope", s) for s in scopes])
    r = Client(registry, auth=auth).get("/token?" + query)
    assert r.status == 200, r
    return r.json()["token"]


def bearer(registry, tok):
    return Client(registry, auth="Bearer " + tok)


@pytest.fixture
def reg(make_registry, tmp_path):
    return start(make_registry, tmp_path)


def test_a_repository_name_with_quotes_is_not_echoed_into_the_challenge(reg):
    for method in ("GET", "HEAD"):
        r = anonymous(reg).request(method, '/v2/a",realm="http://evil.example/x/manifests/latest')
        assert r.status == 401, r
        scheme, params = parse_challenge(r.header("WWW-Authenticate"))
        assert scheme == "Bearer" and params["realm"] == f"{reg.url}/token", params
        assert "scope" not in params and "evil" not in r.header("WWW-Authenticate"), params
    # The mount source is a name too.
    r = anonymous(reg).post('/v2/staging/b/blobs/uploads/?mount=sha256:' + "0" * 64 + '&from=a",realm="x', b"")
    _, params = parse_challenge(r.header("WWW-Authenticate"))
    assert params["scope"] == "repository:staging/b:pull,push", params


def test_a_host_header_that_is_not_host_port_is_refused_not_echoed(reg):
    for host in ('evil.example",error="x', "evil.example/x", "a b", "[::1", "host:port", "host:123456"):
        status, headers, body = raw_get(reg, "/v2/", {"Host": host})
        assert status == 400, (host, status, body)
        assert "www-authenticate" not in headers, (host, headers)
        assert b"Host" in body, body
    for host in ("registry.example.com", "registry.example.com:443", "127.0.0.1:5000", "[::1]:5000", "[::1]"):
        status, headers, _ = raw_get(reg, "/v2/", {"Host": host})
        assert status == 401, (host, status)
        _, params = parse_challenge(headers["www-authenticate"])
        assert params["realm"] == f"http://{host}/token", params


def test_forwarded_host_and_proto_are_validated_when_trusted(make_registry, tmp_path):
    reg = start(make_registry, tmp_path, extra="trust_forwarded_headers: true\n")
    status, headers, _ = raw_get(reg, "/v2/", {"Host": reg.host, "X-Forwarded-Host": "registry.example.com",
                                               "X-Forwarded-Proto": "https"})
    assert status == 401
    assert parse_challenge(headers["www-authenticate"])[1]["realm"] == "https://registry.example.com/token"
    for extra in ({"X-Forwarded-Host": 'x",error="y'}, {"X-Forwarded-Proto": 'https://evil"'}):
        status, headers, _ = raw_get(reg, "/v2/", {"Host": reg.host, **extra})
        assert status == 400 and "www-authenticate" not in headers, (extra, status)


def test_mount_challenge_lists_the_source_and_its_scopes_make_the_mount(reg):
    ci = Admin(reg).robot("ci")
    img = as_user(reg, "ci", ci).push_image("staging/base", "v1")
    layer = digest_of(img.layers[0])
    path = f"/v2/development/app/blobs/uploads/?mount={layer}&from=staging/base"
    r = anonymous(reg).post(path, b"")
    assert_error(r, 401, "UNAUTHORIZED")
    _, params = parse_challenge(r.header("WWW-Authenticate"))
    assert params["scope"] == "repository:development/app:pull,push repository:staging/base:pull", params
    # A client that asks for exactly the challenged scopes (one parameter, space-separated, as
    # containerd sends it) gets a token that mounts.
    tok = token(reg, [params["scope"]], auth=basic("ci", ci))
    r = bearer(reg, tok).post(path, b"")
    assert r.status == 201, r
    assert r.header("Docker-Content-Digest") == layer


def test_automatic_mount_is_decided_by_the_identity_behind_the_token(reg):
    admin = Admin(reg)
    admin.create_repo("production/app")
    img = Client(reg).push_image("production/app", "v1")
    layer = digest_of(img.layers[0])
    # robot:ci may push (so pull) production/*: its token names only the target, yet the blob it may
    # read elsewhere is mounted.
    ci = admin.robot("ci")
    tok = token(reg, ["repository:staging/ci:pull,push"], auth=basic("ci", ci))
    r = bearer(reg, tok).post(f"/v2/staging/ci/blobs/uploads/?mount={layer}", b"")
    assert r.status == 201, r
    # user:dev may not read production: no mount, a plain upload session.
    admin.user("dev", "dev-password-1")
    tok = token(reg, ["repository:development/dev:pull,push"], auth=basic("dev", "dev-password-1"))
    r = bearer(reg, tok).post(f"/v2/development/dev/blobs/uploads/?mount={layer}", b"")
    assert r.status == 202, r
    assert_error(Client(reg).get(f"/v2/development/dev/blobs/{layer}"), 404, "BLOB_UNKNOWN")


def test_a_token_without_the_scope_gets_insufficient_scope_anonymous_or_not(reg):
    Client(reg).push_image("staging/app", "v1")
    anon = token(reg, ["repository:staging/app:pull"])
    for method in ("GET", "HEAD"):
        r = bearer(reg, anon).request(method, "/v2/staging/app/manifests/v1")
        assert r.status == 401, r
        _, params = parse_challenge(r.header("WWW-Authenticate"))
        assert params.get("error") == "insufficient_scope", params
        assert params["scope"] == "repository:staging/app:pull", params
    r = bearer(reg, anon).get("/v2/_catalog")
    assert parse_challenge(r.header("WWW-Authenticate"))[1].get("error") == "insufficient_scope"
    # The same for an authenticated token without the scope, as before.
    tok = token(reg, ["repository:staging/other:pull"], auth=basic())
    r = bearer(reg, tok).get("/v2/staging/app/manifests/v1")
    assert parse_challenge(r.header("WWW-Authenticate"))[1].get("error") == "insufficient_scope"
    # A bad token is invalid_token, and no token at all has no error.
    r = bearer(reg, anon + "x").get("/v2/staging/app/manifests/v1")
    assert parse_challenge(r.header("WWW-Authenticate"))[1].get("error") == "invalid_token"
    r = anonymous(reg).get("/v2/staging/app/manifests/v1")
    assert "error" not in parse_challenge(r.header("WWW-Authenticate"))[1]
