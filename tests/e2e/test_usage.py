"""Usage (issue #11): GET /api/v1/usage and `berth usage` per namespace and repository, with blobs
shared between repositories counted once in stored bytes."""
import json
import os
import subprocess

import pytest

import images
from clients import expect, push_image, request
from e2eauth import ADMIN_PASSWORD, ADMIN_USER

pytestmark = pytest.mark.skipif(os.environ.get("BERTH_E2E_TARGET") == "distribution",
                                reason="Berth's admin API")


def usage(registry, ns=None):
    path = "/api/v1/usage" + (f"?namespace={ns}" if ns else "")
    return json.loads(expect(request(registry.url, "GET", path), 200, f"GET {path}").body)


def test_usage_counts_shared_blobs_once(registry, tmp_path):
    base = {"base.bin": os.urandom(40_000)}
    app = images.make_image({"app": b"app"}, extra_layers=[base])
    db = images.make_image({"db": b"db"}, extra_layers=[base])
    expect(push_image(registry.url, "prod/app", app, "v1"), 201, "push app")
    expect(push_image(registry.url, "prod/app", app, "latest"), 201, "tag app")
    expect(push_image(registry.url, "prod/db", db, "v1"), 201, "push db")
    expect(push_image(registry.url, "dev/app", app, "v1"), 201, "push dev app")

    size = lambda image: sum(len(b.data) for b in image.blobs())  # noqa: E731
    distinct = {b.digest: len(b.data) for image in (app, db) for b in image.blobs()}

    prod = usage(registry, "prod")["namespaces"]
    assert [n["name"] for n in prod] == ["prod"]
    ns = prod[0]
    assert (ns["repositories"], ns["tags"], ns["manifests"]) == (2, 3, 2)
    assert ns["logical_bytes"] == size(app) + size(db)
    assert ns["stored_bytes"] == sum(distinct.values())  # the base layer once
    assert ns["dedup_ratio"] > 1
    assert [(r["name"], r["tags"], r["logical_bytes"]) for r in ns["repository_usage"]] == [
        ("prod/app", 2, size(app)), ("prod/db", 1, size(db))]

    everything = usage(registry)
    assert [n["name"] for n in everything["namespaces"]] == ["dev", "prod"]
    assert everything["logical_bytes"] == 2 * size(app) + size(db)
    assert everything["stored_bytes"] == sum(distinct.values())
    assert everything["dedup_ratio"] == pytest.approx(everything["logical_bytes"] / everything["stored_bytes"])
    expect(request(registry.url, "GET", "/api/v1/usage", auth=None), 401, "anonymous usage")


def test_berth_usage_prints_the_table_and_json(registry, tmp_path):
    image = images.make_image({"x": os.urandom(1000)})
    expect(push_image(registry.url, "team/x", image, "v1"), 201, "push")
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    berth = os.environ["BERTH_BIN"]
    subprocess.run([berth, "login", registry.url, "-u", ADMIN_USER, "--password-stdin"], input=ADMIN_PASSWORD + "\n",
                   text=True, env=env, check=True, capture_output=True)
    table = subprocess.run([berth, "usage"], env=env, check=True, capture_output=True, text=True).stdout
    assert "team (1 repositories)" in table and "team/x" in table
    doc = json.loads(subprocess.run([berth, "usage", "--namespace", "team", "--json"], env=env, check=True,
                                    capture_output=True, text=True).stdout)
    assert doc["namespaces"][0]["repository_usage"][0]["logical_bytes"] == sum(len(b.data) for b in image.blobs())
