"""CI federation: the test runs its own OIDC issuer (RSA and EC keys made here, a JWKS file, tokens signed
with python3-jwt) and the registry maps claims to grants with rules. A main-branch token may push to
production, a develop-branch token is DENIED there with its identity and the rule set named; forged,
expired, wrong-audience, `alg: none` and HMAC-confused tokens are refused."""
import base64
import hashlib
import hmac
import json
import time
import urllib.parse

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from authenv import MULTI_ENV, Admin, as_user, start, storage_snapshot
from ociclient import Client, assert_error

ISSUER = "https://token.actions.example.test"
AUDIENCE = "berth-e2e"


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def int_b64(n):
    return b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))


class Issuer:
    def __init__(self, tmp_path):
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        rn = self.rsa.public_key().public_numbers()
        en = self.ec.public_key().public_numbers()
        jwks = {"keys": [
            {"kty": "RSA", "kid": "rsa-1", "alg": "RS256", "use": "sig", "n": int_b64(rn.n), "e": int_b64(rn.e)},
            {"kty": "EC", "kid": "ec-1", "alg": "ES256", "use": "sig", "crv": "P-256",
             "x": b64(en.x.to_bytes(32, "big")), "y": b64(en.y.to_bytes(32, "big"))},
        ]}
        self.jwks_path = tmp_path / "jwks.json"
        self.jwks_path.write_text(json.dumps(jwks))

    def token(self, ref, repository="acme/shop", alg="RS256", **overrides):
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": f"repo:{repository}:ref:{ref}", "ref": ref,
                  "repository": repository, "iat": now, "nbf": now, "exp": now + 300}
        claims.update(overrides)
        key, kid = (self.rsa, "rsa-1") if alg == "RS256" else (self.ec, "ec-1")
        return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def federation_config(issuer):
    return f"""
federation:
  - name: github
    issuer: {ISSUER}
    audience: [{AUDIENCE}]
    jwks_file: {issuer.jwks_path}
    rules:
      - name: main
        when: 'repository == "acme/shop" && (ref == "refs/heads/main" || ref starts with "refs/tags/v")'
        actions: [push]
        repositories: ["production/*"]
      - name: staging
        when: 'repository == "acme/shop" && ref == "refs/heads/staging"'
        actions: [push]
        repositories: ["staging/*"]
      - name: develop
        when: 'repository == "acme/shop" && ref == "refs/heads/develop"'
        actions: [push]
        repositories: ["development/*"]
"""


@pytest.fixture
def issuer(tmp_path):
    return Issuer(tmp_path)


@pytest.fixture
def reg(make_registry, tmp_path, issuer):
    r = start(make_registry, tmp_path, extra=federation_config(issuer))
    Admin(r).create_repo("production/shop")
    return r


def oidc(reg, token):
    return as_user(reg, "oidc", token)


def test_main_branch_token_pushes_to_production(reg, issuer):
    for alg in ("RS256", "ES256"):
        ci = oidc(reg, issuer.token("refs/heads/main", alg=alg))
        img = ci.push_image("production/shop", f"main-{alg.lower()}")
        assert Client(reg).get_manifest("production/shop", f"main-{alg.lower()}").body == img.data
    oidc(reg, issuer.token("refs/tags/v1.2.0")).push_image("production/shop", "v1.2.0")


def test_develop_token_is_denied_on_production_naming_identity_and_rules(reg, issuer):
    dev = oidc(reg, issuer.token("refs/heads/develop"))
    dev.push_image("development/shop", "dev")
    before = storage_snapshot(reg)
    r = dev.post("/v2/production/shop/blobs/uploads/", b"")
    assert_error(r, 403, "DENIED")
    detail = r.json()["errors"][0]["detail"]
    assert "oidc:repo:acme/shop:ref:refs/heads/develop" in detail, detail
    assert "production/shop" in detail and 'federation "github"' in detail, detail
    assert "main" in detail and "develop" in detail, detail
    assert storage_snapshot(reg) == before
    # A token no rule matches at all says so.
    other = oidc(reg, issuer.token("refs/heads/main", repository="evil/fork"))
    r = other.post("/v2/staging/shop/blobs/uploads/", b"")
    assert_error(r, 403, "DENIED")
    assert "no rule of federation \"github\" matched" in r.json()["errors"][0]["detail"]


def test_token_exchange_at_the_token_endpoint(reg, issuer):
    main = issuer.token("refs/heads/main")
    develop = issuer.token("refs/heads/develop")
    for tok, expected in ((main, ["pull", "push"]), (develop, None)):
        q = urllib.parse.urlencode([("service", "berth-e2e"), ("scope", "repository:production/shop:pull,push")])
        from e2eauth import basic
        r = Client(reg, auth=basic("oidc", tok)).get("/token?" + q)
        assert r.status == 200, r
        claims = json.loads(base64.urlsafe_b64decode(r.json()["token"].split(".")[1] + "=="))
        got = {a["name"]: sorted(a["actions"]) for a in claims["access"]}
        assert got.get("production/shop") == expected, got
        assert "refresh_token" not in r.json()
        bearer = Client(reg, auth="Bearer " + r.json()["token"])
        resp = bearer.post("/v2/production/shop/blobs/uploads/", b"")
        if expected:
            assert resp.status == 202, resp
        else:
            assert_error(resp, 403, "DENIED")
            assert "refs/heads/develop" in resp.json()["errors"][0]["detail"]


def test_bad_oidc_tokens_are_refused(reg, issuer, tmp_path):
    good = issuer.token("refs/heads/main")
    header, body, sig = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_public_pem = issuer.rsa.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    hs_input = f"{b64(json.dumps({'alg': 'HS256', 'kid': 'rsa-1'}).encode())}.{body}"
    hs_sig = b64(hmac.new(rsa_public_pem, hs_input.encode(), hashlib.sha256).digest())
    cases = {
        "expired": issuer.token("refs/heads/main", exp=int(time.time()) - 600, iat=int(time.time()) - 900,
                                nbf=int(time.time()) - 900),
        "not yet valid": issuer.token("refs/heads/main", nbf=int(time.time()) + 3600),
        "wrong audience": issuer.token("refs/heads/main", aud="someone-else"),
        "unknown issuer": issuer.token("refs/heads/main", iss="https://evil.example"),
        "tampered claims": f"{header}.{b64(json.dumps({**claims, 'ref': 'refs/heads/main'}).encode())}x.{sig}",
        "tampered signature": f"{header}.{body}.{sig[:-3]}AAA",
        "signed by another key": jwt.encode(claims, stranger, algorithm="RS256", headers={"kid": "rsa-1"}),
        "alg none": f"{b64(json.dumps({'alg': 'none'}).encode())}.{body}.",
        "HS256 with the public key": f"{hs_input}.{hs_sig}",
    }
    before = storage_snapshot(reg)
    for what, tok in cases.items():
        r = oidc(reg, tok).post("/v2/production/shop/blobs/uploads/", b"")
        assert r.status == 401, (what, r)
        assert r.error_codes()[0] == "UNAUTHORIZED", (what, r)
        assert r.header("WWW-Authenticate"), what
    assert storage_snapshot(reg) == before


def test_berth_check_offline_with_an_oidc_token(reg, issuer, tmp_path):
    import os
    import subprocess
    token = issuer.token("refs/heads/develop")
    proc = subprocess.run([os.environ["BERTH_BIN"], "check", "--config", str(tmp_path / "berth.yaml"),
                           "--data", reg.data_dir, "--as", token, "--action", "push", "--repo",
                           "production/shop"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc
    assert "denied: oidc:repo:acme/shop:ref:refs/heads/develop may not push production/shop" in proc.stdout
    assert 'federation "github"' in proc.stdout
