"""CI federation: the test runs its own OIDC issuer (RSA and EC keys made here, a JWKS file or an HTTPS
server with a discovery document, tokens signed with python3-jwt) and the registry maps claims to grants
with rules. A main-branch token may push to
production, a develop-branch token is DENIED there with its identity and the rule set named; forged,
expired, wrong-audience, `alg: none` and HMAC-confused tokens are refused."""
import base64
import hashlib
import hmac
import http.server
import json
import threading
import time
import urllib.parse

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from authenv import Admin, as_user, start, storage_snapshot
from certs import serve_tls
from e2eauth import basic
from ociclient import Client, assert_error
from oidcenv import Issuer, b64, federation_config, issuer, reg  # noqa: F401 (fixtures)


class HttpsIssuer(Issuer):
    """The issuer as GitHub Actions runs it: a discovery document and a JWKS served over HTTPS (with a
    certificate for 127.0.0.1 made here). `published` is the list of key ids the JWKS holds now;
    `requests` the paths fetched."""

    def __init__(self, tmp_path):
        self.published = ["rsa-1"]
        self.requests = []
        issuer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                issuer.requests.append(self.path)
                if self.path == "/.well-known/openid-configuration":
                    doc = {"issuer": issuer.url, "jwks_uri": issuer.url + "/keys"}
                elif self.path == "/keys":
                    doc = {"keys": [k for k in issuer.jwks["keys"] if k["kid"] in issuer.published]}
                else:
                    self.send_error(404)
                    return
                body = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.cert_path = serve_tls(self.server, tmp_path, "issuer")
        super().__init__(tmp_path, url=f"https://127.0.0.1:{self.server.server_address[1]}")
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


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
    def token_request(tok, scope):
        q = urllib.parse.urlencode([("service", "berth-e2e"), ("scope", scope)])
        return Client(reg, auth=basic("oidc", tok)).get("/token?" + q)

    main = issuer.token("refs/heads/main")
    r = token_request(main, "repository:production/shop:pull,push")
    assert r.status == 200, r
    claims = json.loads(base64.urlsafe_b64decode(r.json()["token"].split(".")[1] + "=="))
    assert {a["name"]: sorted(a["actions"]) for a in claims["access"]} == {"production/shop": ["pull", "push"]}
    assert "refresh_token" not in r.json()
    assert Client(reg, auth="Bearer " + r.json()["token"]).post("/v2/production/shop/blobs/uploads/", b"").status == 202

    # A develop build may neither push nor pull production: its token grants nothing there, and each
    # request it is shown on is refused with the identity, the repository and the rules — in the
    # message, which is what clients print.
    develop = issuer.token("refs/heads/develop")
    r = token_request(develop, "repository:production/shop:pull,push")
    assert r.status == 200, r
    claims = json.loads(base64.urlsafe_b64decode(r.json()["token"].split(".")[1] + "=="))
    assert claims["access"] == [], claims
    dev = Client(reg, auth="Bearer " + r.json()["token"])
    resp = dev.post("/v2/production/shop/blobs/uploads/", b"")
    assert_error(resp, 403, "DENIED")
    message = resp.json()["errors"][0]["message"]
    assert "oidc:repo:acme/shop:ref:refs/heads/develop may not push production/shop" in message, message
    assert 'federation "github"' in message and "develop" in message, message
    # A push begins with a HEAD on each blob, and a refused HEAD has no body to print: it answers as
    # not found, so the client goes on to the POST above. GET keeps its 403 and message.
    blob = f"/v2/production/shop/blobs/sha256:{'a' * 64}"
    assert_error(Client(reg).get(blob), 404, "BLOB_UNKNOWN")
    assert dev.request("HEAD", blob).status == 404
    resp = dev.get(blob)
    assert_error(resp, 403, "DENIED")
    assert "may not pull production/shop" in resp.json()["errors"][0]["message"]


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
    proc = subprocess.run([os.environ["BERTH_BIN"], "check", "--config", reg.config_path,
                           "--data", reg.data_dir, "--as", token, "--action", "push", "--repo",
                           "production/shop"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc
    assert "denied: oidc:repo:acme/shop:ref:refs/heads/develop may not push production/shop" in proc.stdout
    assert 'federation "github"' in proc.stdout


def test_keys_are_discovered_over_https_and_a_rotated_key_is_fetched(make_registry, tmp_path):
    issuer = HttpsIssuer(tmp_path)
    try:
        reg = start(make_registry, tmp_path, extra=federation_config(issuer, keys=f"ca_file: {issuer.cert_path}"))
        Admin(reg).create_repo("production/shop")
        assert issuer.requests == ["/.well-known/openid-configuration", "/keys"]  # at start-up
        oidc(reg, issuer.token("refs/heads/main")).push_image("production/shop", "rsa")

        # Before the rotation the EC key is unknown; the issuer then publishes it and Berth fetches it.
        issuer.published = ["rsa-1", "ec-1"]
        ci = oidc(reg, issuer.token("refs/heads/main", alg="ES256"))
        ci.push_image("production/shop", "ec")
        assert issuer.requests[2:] == ["/keys"]  # one fetch for the new key id, the discovered URL kept
        assert Client(reg).get("/v2/production/shop/tags/list").json()["tags"] == ["ec", "rsa"]

        # A key id the issuer does not publish is refused without a fetch per request.
        forged = issuer.token("refs/heads/main", alg="ES256")
        header = json.loads(base64.urlsafe_b64decode(forged.split(".")[0] + "=="))
        forged = jwt.encode(jwt.decode(forged, options={"verify_signature": False}), issuer.ec,
                            algorithm="ES256", headers={**header, "kid": "ec-2"})
        for _ in range(3):
            assert_error(oidc(reg, forged).post("/v2/production/shop/blobs/uploads/", b""), 401, "UNAUTHORIZED")
        assert issuer.requests[3:] == []  # the last forced fetch was under 30 s ago
    finally:
        issuer.stop()


def test_an_untrusted_issuer_certificate_refuses_its_tokens(make_registry, tmp_path):
    issuer = HttpsIssuer(tmp_path)
    try:
        reg = start(make_registry, tmp_path, extra=federation_config(issuer, keys="subject_claim: sub"))
        assert issuer.requests == []  # the TLS handshake failed: nothing was asked
        r = oidc(reg, issuer.token("refs/heads/main")).post("/v2/production/shop/blobs/uploads/", b"")
        assert_error(r, 401, "UNAUTHORIZED")
        assert "not available" in r.json()["errors"][0]["detail"]
        with open(reg.log_path) as log:
            assert "cannot fetch the issuer's keys" in log.read()
    finally:
        issuer.stop()
