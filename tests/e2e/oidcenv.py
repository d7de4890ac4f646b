"""A CI system's OIDC issuer made in the test (RSA and EC keys, a JWKS file, tokens signed with
python3-jwt) and the registry config that federates it: rules that let builds of main push to production,
of staging to staging and of develop to development."""
import base64
import json
import time

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISSUER = "https://token.actions.example.test"
AUDIENCE = "berth-e2e"


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def int_b64(n):
    return b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))


class Issuer:
    def __init__(self, tmp_path, url=ISSUER):
        self.url = url
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        rn = self.rsa.public_key().public_numbers()
        en = self.ec.public_key().public_numbers()
        self.jwks = {"keys": [
            {"kty": "RSA", "kid": "rsa-1", "alg": "RS256", "use": "sig", "n": int_b64(rn.n), "e": int_b64(rn.e)},
            {"kty": "EC", "kid": "ec-1", "alg": "ES256", "use": "sig", "crv": "P-256",
             "x": b64(en.x.to_bytes(32, "big")), "y": b64(en.y.to_bytes(32, "big"))},
        ]}
        self.jwks_path = tmp_path / "jwks.json"
        self.jwks_path.write_text(json.dumps(self.jwks))

    def token(self, ref, repository="acme/shop", alg="RS256", **overrides):
        now = int(time.time())
        claims = {"iss": self.url, "aud": AUDIENCE, "sub": f"repo:{repository}:ref:{ref}", "ref": ref,
                  "repository": repository, "iat": now, "nbf": now, "exp": now + 300}
        claims.update(overrides)
        key, kid = (self.rsa, "rsa-1") if alg == "RS256" else (self.ec, "ec-1")
        return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def federation_config(issuer, keys=None):
    keys = keys or f"jwks_file: {issuer.jwks_path}"
    return f"""
federation:
  - name: github
    issuer: {issuer.url}
    audience: [{AUDIENCE}]
    {keys}
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
