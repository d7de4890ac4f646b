"""Retention (issue #11): config rules keep the newest tags (keep_last, keep_days) and protected ones;
POST /api/v1/retention/preview says exactly what POST /api/v1/retention/run then deletes: the tags no
rule keeps, the manifests they leave untagged (an index with its children, unless a kept index lists
them) and their referrers; with untagged_days, the manifests untagged for that long; repositories
outside the rules' patterns are never touched. The preview says what a GC after it frees. The CLI.

untagged_days without waiting days: a rule with `untagged_days: 0` deletes every untagged manifest
(untagged up to the run), one with `untagged_days: 1` none of those pushed just now."""
import json
import os
import subprocess

import pytest

from authenv import Admin, as_user, start
from e2eauth import ADMIN_PASSWORD
from ociclient import OCI_INDEX, Client, assert_error

RULES = """
retention:
  - repositories: ["dev/*"]
    keep_last: 2
    protect: ["latest", "v*"]
"""
APP = "dev/app"
NOTHING = {"repositories": [], "tags": 0, "manifests": 0, "untagged": 0, "bytes_freed_by_gc": 0}


def retention(client, what, repository=None):
    body = json.dumps({"repository": repository}).encode() if repository else b""
    r = client.post(f"/api/v1/retention/{what}", body, headers={"Content-Type": "application/json"})
    assert r.status == 200, r
    return r.json()


def by_repository(answer):
    return {r["repository"]: r for r in answer["repositories"]}


def exists(oci, name, dgst):
    return oci.get_manifest(name, dgst, method="HEAD").status == 200


def push_app(oci):
    """dev/app, oldest push first. keep_last 2 keeps t3 and t2, protect keeps v1.0; old, child-tag and t1 go."""
    p = {}
    p["oa"] = oci.push_image(APP)
    p["ob"] = oci.push_image(APP)
    p["old"] = oci.push_index(APP, [p["oa"], p["ob"]], tag="old")
    p["sig_old"] = oci.push_artifact(APP, p["old"], "application/vnd.example.signature")
    p["sbom_oa"] = oci.push_artifact(APP, p["oa"], "application/vnd.example.sbom")
    p["v1"] = oci.push_image(APP, "v1.0")
    p["k1"] = oci.push_image(APP, "child-tag")  # a platform image that the kept index t2 lists
    p["t1"] = oci.push_image(APP, "t1")
    p["sig_t1"] = oci.push_artifact(APP, p["t1"], "application/vnd.example.signature")
    p["k2"] = oci.push_image(APP)
    p["t2"] = oci.push_index(APP, [p["k1"], p["k2"]], tag="t2")
    p["sig_t2"] = oci.push_artifact(APP, p["t2"], "application/vnd.example.signature")
    p["t3"] = oci.push_image(APP, "t3")
    return p


def test_preview_is_what_run_deletes_keep_last_with_indexes_and_referrers(make_registry, tmp_path):
    reg = start(make_registry, tmp_path, config=RULES)
    oci = Client(reg)
    p = push_app(oci)
    for i in range(4):
        oci.push_image("prod/app", f"r{i}")  # no rule matches prod/*
    oci.push_image("devx/app", "a")
    oci.push_image("devx/app", "b")
    oci.push_image("devx/app", "c")  # "dev/*" does not match devx/app

    preview = retention(oci, "preview")
    assert set(by_repository(preview)) == {APP}
    app = by_repository(preview)[APP]
    tags = app["tags"]
    assert [t["tag"] for t in tags] == ["t1", "child-tag", "old"], "newest first"
    assert {t["tag"]: t["digest"] for t in tags} == {"t1": p["t1"].digest, "child-tag": p["k1"].digest,
                                                     "old": p["old"].digest}
    assert tags[0]["pushed_at_ms"] > tags[1]["pushed_at_ms"] > tags[2]["pushed_at_ms"] > 0
    assert all(isinstance(t["size"], int) for t in tags)
    # k1 lost its tag but the kept index t2 lists it: it stays. t1 goes with its signature; the old
    # index goes with its children and every referrer of them.
    gone = [p[k].digest for k in ("t1", "sig_t1", "old", "oa", "ob", "sig_old", "sbom_oa")]
    assert sorted(app["manifests"]) == sorted(gone)
    order = app["manifests"]
    for subject, referrer in (("t1", "sig_t1"), ("old", "oa"), ("old", "ob"), ("old", "sig_old"), ("oa", "sbom_oa")):
        assert order.index(p[subject].digest) < order.index(p[referrer].digest), "a subject goes before its referrers"
    assert (preview["tags"], preview["manifests"]) == (3, 7)
    assert retention(oci, "preview") == preview, "a preview changes nothing"

    run = retention(oci, "run")
    assert run == preview

    assert sorted(oci.tags(APP)) == ["t2", "t3", "v1.0"]
    for d in gone:
        assert not exists(oci, APP, d), d
    for k in ("v1", "k1", "k2", "t2", "sig_t2", "t3"):
        assert exists(oci, APP, p[k].digest), k
    r = oci.get(f"/v2/{APP}/referrers/{p['t2'].digest}")
    assert [m["digest"] for m in r.json()["manifests"]] == [p["sig_t2"].digest]
    r = oci.get_manifest(APP, "t2")
    assert r.status == 200 and r.header("Content-Type") == OCI_INDEX
    assert sorted(oci.tags("prod/app")) == ["r0", "r1", "r2", "r3"]
    assert sorted(oci.tags("devx/app")) == ["a", "b", "c"]

    assert retention(oci, "preview") == NOTHING
    assert retention(oci, "run") == NOTHING


def test_repository_filter_protect_patterns_and_keep_days(make_registry, tmp_path):
    reg = start(make_registry, tmp_path, config=RULES + """
  - repositories: ["dev/lib"]
    keep_last: 0
    keep_days: 1
""")
    oci = Client(reg)
    for tag in ("latest", "v2", "old1", "old2", "x", "y", "z"):
        oci.push_image("dev/web", tag)
    for tag in ("a", "b", "c"):
        oci.push_image("dev/lib", tag)  # pushed just now: the second rule keeps them all

    only_web = retention(oci, "preview", "dev/w*")
    assert list(by_repository(only_web)) == ["dev/web"]
    assert [t["tag"] for t in only_web["repositories"][0]["tags"]] == ["x", "old2", "old1"]
    assert retention(oci, "preview") == only_web, "dev/lib keeps every tag younger than a day"
    assert retention(oci, "run", "dev/nothing*") == NOTHING
    assert sorted(oci.tags("dev/web")) == ["latest", "old1", "old2", "v2", "x", "y", "z"]
    assert retention(oci, "run", "dev/web") == only_web
    assert sorted(oci.tags("dev/web")) == ["latest", "v2", "y", "z"]
    assert sorted(oci.tags("dev/lib")) == ["a", "b", "c"]


def test_a_manifest_another_remaining_tag_points_at_stays(make_registry, tmp_path):
    reg = start(make_registry, tmp_path, config=RULES)
    oci = Client(reg)
    shared = oci.push_image(APP, "first")
    second = oci.push_image(APP, "second")
    oci.push_image(APP, "third")
    oci.push_manifest(APP, "v9", shared.data)  # protected, on the manifest of the expiring `first`
    answer = retention(oci, "run")
    app = by_repository(answer)[APP]
    # The protected v9 is the newest push: keep_last 2 keeps it and third.
    assert [t["tag"] for t in app["tags"]] == ["second", "first"]
    assert app["manifests"] == [second.digest]
    assert exists(oci, APP, shared.digest)
    assert sorted(oci.tags(APP)) == ["third", "v9"]


def test_immutable_tags_are_never_deleted(make_registry, tmp_path):
    reg = start(make_registry, tmp_path, config="""
namespaces:
  dev:
    creation: on-push
    immutable_tags: ["rel-*"]
retention:
  - repositories: ["dev/*"]
    keep_last: 1
""")
    oci = Client(reg)
    for tag in ("rel-1", "a", "rel-2", "b"):
        oci.push_image(APP, tag)
    preview = retention(oci, "preview")
    assert [t["tag"] for t in by_repository(preview)[APP]["tags"]] == ["a"]
    assert retention(oci, "run") == preview
    assert sorted(oci.tags(APP)) == ["b", "rel-1", "rel-2"]


def test_only_administrators_and_bad_bodies(make_registry, tmp_path):
    reg = start(make_registry, tmp_path, config=RULES)
    Admin(reg).user("dev", "dev-password-123", actions=["push", "delete"], repositories=["dev/*"])
    dev = as_user(reg, "dev", "dev-password-123")
    for what in ("preview", "run"):
        assert_error(dev.post(f"/api/v1/retention/{what}", b""), 403, "DENIED")
    oci = Client(reg)
    r = oci.post("/api/v1/retention/preview", b"[1]", headers={"Content-Type": "application/json"})
    assert r.status == 400, r
    r = oci.post("/api/v1/retention/preview", b'{"repository": 5}', headers={"Content-Type": "application/json"})
    assert r.status == 400, r
    assert oci.get("/api/v1/retention/preview").status == 405


def berth(env, *args, check=True):
    proc = subprocess.run([os.environ["BERTH_BIN"], *args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          env=env, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"berth {' '.join(args)} exited {proc.returncode}: {proc.stderr}{proc.stdout}")
    return proc


def test_cli_preview_and_run(make_registry, tmp_path):
    reg = start(make_registry, tmp_path, config=RULES)
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / "xdg")}
    oci = Client(reg)
    for tag in ("a", "b", "c", "d"):
        oci.push_image(APP, tag)
    proc = subprocess.run([os.environ["BERTH_BIN"], "login", reg.url, "--password-stdin"], input=ADMIN_PASSWORD + "\n",
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr

    text = berth(env, "retention", "preview").stdout
    assert "dev/app" in text and "2 tag(s) and 2 manifest(s) would be deleted" in text, text
    as_json = json.loads(berth(env, "retention", "preview", "--repo", "dev/*", "--json").stdout)
    assert [t["tag"] for t in as_json["repositories"][0]["tags"]] == ["b", "a"]

    refused = berth(env, "retention", "run", check=False)
    assert refused.returncode == 1 and "--yes" in refused.stderr, refused.stderr
    assert sorted(oci.tags(APP)) == ["a", "b", "c", "d"]
    done = berth(env, "retention", "run", "--yes").stdout
    assert "2 tag(s) and 2 manifest(s) deleted" in done, done
    assert sorted(oci.tags(APP)) == ["c", "d"]


def test_untagged_days_deletes_what_stayed_untagged_but_not_what_a_kept_manifest_needs(make_registry, tmp_path):
    reg = start(make_registry, tmp_path, config="""
retention:
  - repositories: ["dev/*"]
    untagged_days: 0
  - repositories: ["later/*"]
    untagged_days: 1
""")
    oci = Client(reg)
    p = {}
    p["loose"] = oci.push_image(APP)  # pushed by digest
    p["v1"] = oci.push_image(APP, "v1")
    p["sig_v1"] = oci.push_artifact(APP, p["v1"], "application/vnd.example.signature")  # its subject is kept
    p["a"] = oci.push_image(APP)
    p["b"] = oci.push_image(APP)
    p["multi"] = oci.push_index(APP, [p["a"], p["b"]], tag="multi")  # a kept index keeps its children
    p["moved"] = oci.push_image(APP, "moving")
    p["sig_moved"] = oci.push_artifact(APP, p["moved"], "application/vnd.example.signature")
    p["moving"] = oci.push_image(APP, "moving")  # the tag moved away: `moved` is untagged now
    p["c1"] = oci.push_image(APP)
    p["c2"] = oci.push_image(APP)
    p["index"] = oci.push_index(APP, [p["c1"], p["c2"]])  # an untagged index goes before its children
    later = oci.push_image("later/app")

    preview = retention(oci, "preview")
    assert list(by_repository(preview)) == [APP], "later/* keeps what is untagged for less than a day"
    app = by_repository(preview)[APP]
    assert app["tags"] == []
    gone = ["loose", "moved", "sig_moved", "index", "c1", "c2"]
    assert sorted(app["manifests"]) == sorted(p[k].digest for k in gone)
    order = app["manifests"]
    for first, then in (("moved", "sig_moved"), ("index", "c1"), ("index", "c2")):
        assert order.index(p[first].digest) < order.index(p[then].digest), (first, then)
    assert (app["untagged"], preview["untagged"], preview["manifests"]) == (6, 6, 6)
    assert retention(oci, "run") == preview

    for k in gone:
        assert not exists(oci, APP, p[k].digest), k
    for k in ("v1", "sig_v1", "a", "b", "multi", "moving"):
        assert exists(oci, APP, p[k].digest), k
    assert exists(oci, "later/app", later.digest)
    # Tagged again, a manifest is no longer untagged: deleting its tag starts its time again.
    oci.push_manifest(APP, "again", p["a"].data)
    r = oci.delete(f"/v2/{APP}/manifests/multi")
    assert r.status == 202, r
    preview = retention(oci, "preview")
    assert sorted(by_repository(preview)[APP]["manifests"]) == sorted([p["multi"].digest, p["b"].digest])
    assert exists(oci, APP, p["a"].digest)


def test_the_preview_says_what_a_gc_after_the_run_frees(make_registry, tmp_path):
    reg = start(make_registry, tmp_path, config="""
gc:
  grace_minutes: 0
  interval_minutes: 0
retention:
  - repositories: ["dev/*"]
    keep_last: 1
""")
    oci = Client(reg)
    shared = oci.push_image("prod/app", "x")
    old = oci.push_image(APP, "old", config=shared.config)  # its config is linked by prod/app too
    oci.push_image(APP, "new")
    preview = retention(oci, "preview")
    freed = sum(len(b) for b in old.layers)  # the config frees nothing: prod/app keeps it
    assert by_repository(preview)[APP]["bytes_freed_by_gc"] == freed
    assert preview["bytes_freed_by_gc"] == freed
    assert retention(oci, "run") == preview
    r = oci.post("/api/v1/gc?dry_run=false", b"")
    assert r.status == 200, r
    assert r.json()["bytes"] == freed, r.json()
