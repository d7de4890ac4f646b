"""Helpers for the access-control suites: a registry started with a multi-environment config, identities
made through the admin API, and raw requests as any of them."""
import json
import os
import textwrap

import pytest

from e2eauth import basic
from ociclient import Client

MULTI_ENV = """
auth:
  service: berth-e2e
  token_lifetime_seconds: 120
namespaces:
  development:
    visibility: private
    creation: on-push
  staging:
    creation: on-push
  production:
    creation: explicit
    grants:
      - subject: robot:deploy
        actions: [pull]
  public:
    visibility: public-pull
grants:
  - subject: robot:ci
    actions: [push]
    repositories: ["development/*", "staging/*", "production/*"]
  - subject: user:dev
    actions: [push, delete]
    repositories: ["development/*"]
"""


def start(make_registry, tmp_path, config=MULTI_ENV, extra=""):
    path = tmp_path / "berth.yaml"
    path.write_text(textwrap.dedent(config) + textwrap.dedent(extra))
    return make_registry(extra_args=["--config", str(path)])


class Admin:
    """The admin API as the fixture admin."""

    def __init__(self, registry):
        self.client = Client(registry)

    def call(self, method, path, doc=None, expect=None):
        body = json.dumps(doc).encode() if doc is not None else None
        r = self.client.request(method, "/api/v1/" + path, body=body,
                                headers={"Content-Type": "application/json"} if body else None)
        if expect is not None:
            assert r.status == expect, r
        return r

    def robot(self, name, actions=None, repositories=None, **extra):
        doc = {"name": name, **extra}
        if actions:
            doc.update(actions=actions, repositories=repositories)
        r = self.call("POST", "robots", doc, expect=201)
        return r.json()["token"]

    def user(self, name, password, actions=None, repositories=None):
        doc = {"name": name, "password": password}
        if actions:
            doc.update(actions=actions, repositories=repositories)
        self.call("POST", "users", doc, expect=201)

    def create_repo(self, name):
        return self.call("POST", "repositories", {"name": name})


def as_user(registry, user, password):
    return Client(registry, auth=basic(user, password))


def anonymous(registry):
    return Client(registry, auth=None)


def storage_snapshot(registry):
    """Every file under the data directory's blobs and the repository list: to prove nothing changed."""
    files = []
    for root, _, names in os.walk(registry.data_dir):
        for n in names:
            if n.endswith((".db", ".db-wal", ".db-shm", ".log")):
                continue
            files.append(os.path.relpath(os.path.join(root, n), registry.data_dir))
    return sorted(files)


def catalog(client):
    r = client.get("/v2/_catalog")
    assert r.status == 200, r
    return r.json()["repositories"]
