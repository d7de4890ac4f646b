"""Moving a registry into S3 + PostgreSQL (docs/scale-out.md "Moving an existing registry"):
`berth migrate` copies an embedded Berth (filesystem + SQLite) and `berth import-distribution` a
Distribution (registry:2) filesystem store; then a Berth on the target serves everything byte for byte.
The target is a fresh RGW prefix and PostgreSQL database (backends.py; ctest gives the pg and rgw
fixtures); the sources are embedded, whatever BERTH_E2E_BACKEND says."""
import os
import signal
import subprocess

import pytest

import backends
import images
from authenv import Admin
from clients import clients, require  # noqa: F401 (the clients fixture)
from conftest import Registry
from e2eauth import basic
from ociclient import Client, digest_of, random_bytes

MiB = 1 << 20
pytestmark = pytest.mark.skipif(backends.selected() != "embedded",
                                reason="the sources are embedded registries; the target is S3 + PostgreSQL already")


def berth(*args, **kw):
    return subprocess.run([os.environ["BERTH_BIN"], *args], capture_output=True, text=True, timeout=300, **kw)


def migrate(source, config, data):
    return berth("migrate", "--from-data", source.data_dir, "--to-config", str(config), "--to-data", str(data))


def target_config(tmp_path):
    """A config naming a fresh S3 prefix and database, and its own data directory."""
    data = tmp_path / "target-data"
    path = tmp_path / "target.yaml"
    path.write_text(backends.new_backend(str(data)))
    return path, data


def serve_target(config, data):
    return Registry(str(data), ["--config", str(config)]).start()


def summary(out):
    """The summary's counts: {'blobs': (copied, present), ...}."""
    lines = {l.split(":", 1)[0].strip(): l.split(":", 1)[1] for l in out.splitlines() if ":" in l}
    return lines


def fill_source(registry):
    """An embedded registry with images in several repositories, an index, a referrer, an empty
    repository, a robot with a grant and a user; returns what a pull must find."""
    c = Client(registry)
    admin = Admin(registry)
    pushed = {}
    for i in range(4):
        repo = f"team/app{i}"
        img = c.push_image(repo, tag="v1", layers=2)
        pushed[(repo, "v1")] = img
    big = random_bytes(6 * MiB + 7)  # more than one S3 part
    c.push_blob("team/app0", big)
    amd = c.push_image("team/multi", layers=1)
    arm = c.push_image("team/multi", layers=1)
    index = c.push_index("team/multi", [amd, arm], tag="latest")
    sig = c.push_artifact("team/multi", index, "application/vnd.example.signature")
    untagged = c.push_image("team/app1", layers=1)  # by digest only
    admin.create_repo("team/empty")
    token = admin.robot("deployer", actions=["pull"], repositories=["team/*"])
    admin.user("dev", "dev-password-123", actions=["pull", "push"], repositories=["team/app0"])
    # Made at run time through the admin API, so kept in the stores, not in a config file.
    admin.call("PUT", "namespaces/ops", {"visibility": "public-pull", "quota_bytes": "5MiB"}, expect=201)
    rules = [{"repositories": ["team/*"], "keep_last": 3, "protect": ["v1"]}]
    admin.call("PUT", "retention/rules", {"rules": rules}, expect=200)
    audit = admin.call("GET", "audit?n=1000", expect=200).json()["entries"]
    return {"images": pushed, "big": big, "index": index, "children": [amd, arm], "sig": sig,
            "untagged": untagged, "robot_token": token, "rules": rules, "audit": audit}


def check_target(registry, src):
    c = Client(registry)
    for (repo, tag), img in src["images"].items():
        r = c.get_manifest(repo, tag)
        assert r.status == 200 and r.body == img.data, (repo, r)
        for blob in [img.config, *img.layers]:
            got = c.get(f"/v2/{repo}/blobs/{digest_of(blob)}")
            assert got.status == 200 and got.body == blob, (repo, digest_of(blob))
    assert c.get(f"/v2/team/app0/blobs/{digest_of(src['big'])}").body == src["big"]
    r = c.get_manifest("team/multi", "latest")
    assert r.status == 200 and r.body == src["index"].data
    assert r.header("Content-Type") == src["index"].media_type
    for child in src["children"]:
        assert c.get_manifest("team/multi", child.digest).body == child.data
    assert c.get_manifest("team/app1", src["untagged"].digest).body == src["untagged"].data
    referrers = c.get(f"/v2/team/multi/referrers/{src['index'].digest}").json()["manifests"]
    assert [m["digest"] for m in referrers] == [src["sig"].digest]
    assert referrers[0]["artifactType"] == "application/vnd.example.signature"
    catalog = c.get("/v2/_catalog").json()["repositories"]
    assert catalog == ["team/app0", "team/app1", "team/app2", "team/app3", "team/empty", "team/multi"]
    # The robot's token and the user's password still work, with their grants.
    robot = Client(registry, auth=basic("deployer", src["robot_token"]))
    assert robot.get_manifest("team/app2", "v1").status == 200
    assert robot.put_manifest("team/app2", "v2", src["images"][("team/app2", "v1")].data).status in (401, 403)
    dev = Client(registry, auth=basic("dev", "dev-password-123"))
    assert dev.get_manifest("team/app0", "v1").status == 200
    # The admin API's namespace with its settings, its retention rules and the audit log came along.
    admin = Admin(registry)
    ops = [n for n in admin.call("GET", "namespaces", expect=200).json()["namespaces"] if n["name"] == "ops"]
    assert len(ops) == 1 and ops[0]["visibility"] == "public-pull" and ops[0]["quota_bytes"] == 5 * MiB, ops
    rules = admin.call("GET", "retention/rules", expect=200).json()["rules"]
    assert [{k: v for k, v in r.items() if k != "source"} for r in rules] == src["rules"], rules
    entries = admin.call("GET", f"audit?n=1000&until={src['audit'][0]['time_ms']}", expect=200).json()["entries"]
    same = ("time_ms", "subject", "action", "target", "outcome")
    assert [[e[k] for k in same] for e in entries] == [[e[k] for k in same] for e in src["audit"]]


def test_migrate_copies_everything_and_a_rerun_copies_nothing(make_registry, tmp_path):
    source = make_registry()
    src = fill_source(source)
    token = Client(source).get("/token?service=berth&scope=repository:team/app0:pull").json()["token"]
    source.stop()
    config, data = target_config(tmp_path)

    done = migrate(source, config, data)
    assert done.returncode == 0, done.stderr
    counts = summary(done.stdout)
    assert counts["repositories"].split()[0] == "6"
    assert "0 already there" in counts["blobs"]
    assert "2 users, 1 robots, 3 grants, 1 namespaces" in counts["identities"], done.stdout
    assert counts["retention"].split()[0] == "1", done.stdout
    assert int(counts["audit log"].split()[0]) == len(src["audit"]), done.stdout

    again = migrate(source, config, data)
    assert again.returncode == 0, again.stderr
    counts = summary(again.stdout)
    assert counts["blobs"].split()[0] == "0", again.stdout  # nothing copied twice
    assert counts["manifests"].split()[0] == "0"
    assert counts["tags"].split()[0] == "0"
    assert "identities" not in counts and "retention" not in counts and "audit log" not in counts, again.stdout

    target = serve_target(config, data)
    try:
        check_target(target, src)
        # An access token issued by the old registry is accepted: the signing key came along.
        r = Client(target, auth=f"Bearer {token}").get_manifest("team/app0", "v1")
        assert r.status == 200, r
    finally:
        target.stop()


def test_migrate_refuses_a_directory_a_server_holds(make_registry, tmp_path):
    source = make_registry()
    Client(source).push_image("team/app", tag="v1")
    config, data = target_config(tmp_path)
    refused = migrate(source, config, data)
    assert refused.returncode == 1
    assert "in use by another Berth" in refused.stderr, refused.stderr


def test_a_blob_whose_bytes_do_not_match_its_digest_stops_the_migration(make_registry, tmp_path):
    # Among good blobs of the same repository, which are copied several at a time: the copies in
    # flight end, and the error is what the migration reports.
    source = make_registry()
    c = Client(source)
    for _ in range(20):
        c.push_blob("team/app", random_bytes(1000))
    data = random_bytes(1000)
    dgst = c.push_blob("team/app", data)
    source.stop()
    hexdigest = dgst.split(":", 1)[1]
    path = os.path.join(source.data_dir, "blobs", "sha256", hexdigest[:2], hexdigest)
    with open(path, "r+b") as f:  # one flipped byte on disk
        f.write(bytes([data[0] ^ 1]))
    config, data_dir = target_config(tmp_path)
    refused = migrate(source, config, data_dir)
    assert refused.returncode == 1
    assert f"do not hash to {dgst}" in refused.stderr and "source is damaged" in refused.stderr, refused.stderr
    target = serve_target(config, data_dir)
    try:
        assert Client(target).get(f"/v2/team/app/blobs/{dgst}").status == 404  # nothing stored under it
    finally:
        target.stop()


def test_an_interrupted_migration_finishes_when_run_again(make_registry, tmp_path):
    source = make_registry()
    c = Client(source)
    blobs = {}
    for i in range(6):
        repo = f"bulk/r{i}"
        data = random_bytes(8 * MiB + i)
        c.push_blob(repo, data)
        blobs[repo] = data
    tagged = c.push_image("bulk/r5", tag="v1")
    source.stop()
    config, data_dir = target_config(tmp_path)

    proc = subprocess.Popen([os.environ["BERTH_BIN"], "migrate", "--from-data", source.data_dir,
                             "--to-config", str(config), "--to-data", str(data_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stderr.readline()  # progress: one line per finished repository when not on a terminal
    assert first.startswith("bulk/r0: done"), first
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL  # killed midway, not finished

    done = migrate(source, config, data_dir)
    assert done.returncode == 0, done.stderr
    counts = summary(done.stdout)
    copied, present = int(counts["blobs"].split()[0]), int(counts["blobs"].split(",")[-1].split()[0])
    assert present >= 1 and copied >= 1, done.stdout  # r0 was there already; the rest came now
    target = serve_target(config, data_dir)
    try:
        t = Client(target)
        for repo, data in blobs.items():
            assert t.get(f"/v2/{repo}/blobs/{digest_of(data)}").body == data, repo
        assert t.get_manifest("bulk/r5", "v1").body == tagged.data
    finally:
        target.stop()


@require("skopeo", "docker-registry")
def test_import_distribution_keeps_digests(make_registry, clients, tmp_path):
    dist = Registry(str(tmp_path / "dist"))
    dist._start_distribution()
    multi = images.make_multiarch("imported")
    single = images.make_image({"hello.txt": b"hello from distribution\n"})
    try:
        ref = images.write_oci_layout(str(tmp_path / "multi-layout"), multi)
        clients.copy_to(ref, f"docker://{dist.host}/library/multi:1.0", "--all")
        ref = images.write_oci_layout(str(tmp_path / "single-layout"), single)
        clients.copy_to(ref, f"docker://{dist.host}/single:latest")
        clients.copy_to(ref, f"docker://{dist.host}/single:again")  # a second tag, blobs deduplicated
    finally:
        dist.stop()
    root = str(tmp_path / "dist" / "store")
    config, data = target_config(tmp_path)

    done = berth("import-distribution", "--root", root, "--config", str(config))
    assert done.returncode == 0, done.stderr
    counts = summary(done.stdout)
    assert counts["repositories"].split()[0] == "2"
    assert counts["tags"].split()[0] == "3", done.stdout
    again = berth("import-distribution", "--root", root, "--config", str(config))
    assert again.returncode == 0 and summary(again.stdout)["blobs"].split()[0] == "0", again.stdout

    target = serve_target(config, data)
    try:
        raw = clients.inspect_raw(f"docker://{target.host}/library/multi:1.0")
        assert raw == multi.manifest.data
        assert clients.inspect_raw(f"docker://{target.host}/single:again") == single.manifest.data
        out = tmp_path / "pulled"
        clients.copy_from(f"docker://{target.host}/library/multi:1.0", f"oci:{out}:x", "--all")
        for img in multi.images:
            for blob in [img.manifest, *img.blobs()]:
                path = out / "blobs" / "sha256" / blob.digest.split(":", 1)[1]
                assert path.read_bytes() == blob.data
        r = Client(target).get_manifest("library/multi", multi.digest)
        assert r.header("Content-Type") == images.OCI_INDEX
    finally:
        target.stop()
