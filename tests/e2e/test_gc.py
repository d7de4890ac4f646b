"""Online garbage collection (issue #11): what nothing references is freed, exactly; what anything
references survives, also while pushes and pulls go on and when the collector is killed mid-sweep.

On the filesystem backend the files under blobs/ and the rows of berth.db are checked; on S3 +
PostgreSQL (BERTH_E2E_BACKEND=s3pg) the registry's answers and the collector's reports are."""
import hashlib
import json
import os
import pty
import random
import sqlite3
import subprocess
import threading
import time

import pytest

import backends
import images
from clients import expect, get_blob, get_manifest, push_blob, push_image, request
from e2eauth import ADMIN_PASSWORD, ADMIN_USER

pytestmark = pytest.mark.skipif(os.environ.get("BERTH_E2E_TARGET") == "distribution",
                                reason="Berth's admin API")

EMBEDDED = backends.selected() == "embedded"


def write_config(tmp_path, grace_minutes):
    config = tmp_path / "gc.yaml"
    config.write_text(f"gc:\n  grace_minutes: {grace_minutes}\n  interval_minutes: 0\n")
    return config


def gc_registry(make_registry, tmp_path, grace_minutes=0):
    return make_registry(extra_args=["--config", str(write_config(tmp_path, grace_minutes))])


def collect(registry, dry_run=False):
    resp = expect(request(registry.url, "POST", f"/api/v1/gc?dry_run={'true' if dry_run else 'false'}", timeout=300),
                  200, "POST /api/v1/gc")
    return json.loads(resp.body)


def blob_file(registry, digest):
    algorithm, hexdigest = digest.split(":")
    return os.path.join(registry.data_dir, "blobs", algorithm, hexdigest[:2], hexdigest)


def stored_files(registry):
    root = os.path.join(registry.data_dir, "blobs")
    return {f"{alg}:{name}" for alg in os.listdir(root) for sub in os.listdir(os.path.join(root, alg))
            for name in os.listdir(os.path.join(root, alg, sub))}


def blob_rows(registry):
    with sqlite3.connect(f"file:{registry.data_dir}/berth.db?mode=ro", uri=True) as db:
        return {row[0] for row in db.execute("SELECT digest FROM blobs")}


def assert_pulls(registry, repo, image):
    resp = expect(get_manifest(registry.url, repo, image.digest), 200, f"GET {repo}@{image.digest}")
    assert resp.body == image.manifest.data
    for blob in image.blobs():
        got = expect(get_blob(registry.url, repo, blob.digest), 200, f"GET blob {repo}@{blob.digest}")
        assert got.body == blob.data, f"{repo}: blob {blob.digest} differs"


def delete_manifest(registry, repo, digest):
    expect(request(registry.url, "DELETE", f"/v2/{repo}/manifests/{digest}"), 202, f"DELETE {repo}@{digest}")


def test_gc_frees_exactly_the_unreferenced_bytes(make_registry, tmp_path):
    registry = gc_registry(make_registry, tmp_path)
    shared = {"shared.bin": os.urandom(50_000)}
    one = images.make_image({"one.txt": b"one"}, extra_layers=[shared])
    two = images.make_image({"two.txt": b"two"}, extra_layers=[shared])
    expect(push_image(registry.url, "gc/one", one, "v1"), 201, "push one")
    expect(push_image(registry.url, "gc/two", two, "v1"), 201, "push two")
    kept = {b.digest for b in two.blobs()}
    garbage = {b.digest: len(b.data) for b in one.blobs() if b.digest not in kept}
    assert len(garbage) == 2 and len(kept) == 3  # one's config and own layer; the shared layer stays

    assert collect(registry)["blobs"] == 0  # everything is referenced
    delete_manifest(registry, "gc/one", one.digest)

    preview = collect(registry, dry_run=True)
    assert (preview["blobs"], preview["bytes"]) == (len(garbage), sum(garbage.values()))
    assert preview["links"] == 3  # gc/one's links: its config, its layer, the shared layer
    if EMBEDDED:
        assert all(os.path.exists(blob_file(registry, d)) for d in garbage)  # a dry run changes nothing

    run = collect(registry)
    assert (run["blobs"], run["bytes"], run["links"]) == (len(garbage), sum(garbage.values()), 3)
    assert run["dry_run"] is False and run["duration_ms"] >= 0
    assert_pulls(registry, "gc/two", two)
    for d in garbage:
        expect(request(registry.url, "HEAD", f"/v2/gc/one/blobs/{d}"), 404, "HEAD a collected blob")
    if EMBEDDED:
        assert stored_files(registry) == kept
        assert blob_rows(registry) == kept

    again = collect(registry)
    assert (again["blobs"], again["links"]) == (0, 0)
    runs = json.loads(expect(request(registry.url, "GET", "/api/v1/gc"), 200, "GET /api/v1/gc").body)["runs"]
    assert [r["dry_run"] for r in runs[:3]] == [False, False, True]
    assert runs[1]["bytes"] == sum(garbage.values())

    # Collected bytes pushed again are stored afresh.
    expect(push_image(registry.url, "gc/one", one, "v1"), 201, "push one again")
    assert_pulls(registry, "gc/one", one)


def test_a_blob_shared_by_two_repositories_survives_deleting_one(make_registry, tmp_path):
    registry = gc_registry(make_registry, tmp_path)
    image = images.make_image({"app": os.urandom(20_000)})
    expect(push_image(registry.url, "team/a", image, "v1"), 201, "push a")
    expect(push_image(registry.url, "team/b", image, "v1"), 201, "push b")
    expect(request(registry.url, "DELETE", "/api/v1/repositories/team/a"), 200, "delete team/a")
    run = collect(registry)
    assert run["blobs"] == 0
    assert_pulls(registry, "team/b", image)
    if EMBEDDED:
        assert stored_files(registry) == {b.digest for b in image.blobs()}


def test_the_grace_window_protects_a_fresh_upload(make_registry, tmp_path):
    registry = gc_registry(make_registry, tmp_path, grace_minutes=60)
    image = images.make_image({"fresh": os.urandom(10_000)})
    for blob in image.blobs():  # uploaded; the manifest has not arrived yet
        push_blob(registry.url, "gc/fresh", blob.data)
    assert collect(registry, dry_run=True)["blobs"] == 0
    run = collect(registry)
    assert (run["blobs"], run["links"]) == (0, 0)
    expect(push_image(registry.url, "gc/fresh", image, "v1"), 201, "manifest after the collection")
    assert_pulls(registry, "gc/fresh", image)


def blob_key(digest):
    algorithm, hexdigest = digest.split(":")
    return f"blobs/{algorithm}/{hexdigest[:2]}/{hexdigest}"


def plant(registry, data):
    """Stores `data` straight into the blob store, unknown to the metadata store (as a registry from
    before garbage collection, or an older version's crash, left bytes); returns its digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if EMBEDDED:
        os.makedirs(os.path.dirname(blob_file(registry, digest)), exist_ok=True)
        with open(blob_file(registry, digest), "wb") as f:
            f.write(data)
    else:
        assert backends.s3_object(registry.backend, "PUT", blob_key(digest), data) == 200
    return digest


def planted(registry, digest):
    if EMBEDDED:
        return os.path.exists(blob_file(registry, digest))
    return backends.s3_object(registry.backend, "GET", blob_key(digest)) == 200


def test_bytes_stored_without_a_record_are_collected(make_registry, tmp_path):
    """A collection lists the blob store and records the bytes nothing knows, as used now: they go
    once the grace window has passed (0 here: in the same collection). Planted bytes that a push
    then uses are linked and stay."""
    registry = gc_registry(make_registry, tmp_path)
    orphan = os.urandom(30_000)
    orphan_digest = plant(registry, orphan)
    image = images.make_image({"layer": os.urandom(20_000)})
    layer = image.layers[0]
    assert plant(registry, layer.data) == layer.digest
    expect(push_image(registry.url, "gc/planted", image, "v1"), 201, "push over planted bytes")

    run = collect(registry)
    assert (run["blobs"], run["bytes"]) == (1, len(orphan))
    assert not planted(registry, orphan_digest)
    assert planted(registry, layer.digest)
    assert_pulls(registry, "gc/planted", image)
    assert collect(registry)["blobs"] == 0


def test_only_administrators_collect(make_registry, tmp_path):
    registry = gc_registry(make_registry, tmp_path)
    expect(request(registry.url, "POST", "/api/v1/gc", auth=None), 401, "anonymous POST /api/v1/gc")
    resp = request(registry.url, "POST", "/api/v1/gc?dry_run=maybe")
    assert resp.status == 400


def test_berth_gc_on_a_terminal_estimates_then_collects(make_registry, tmp_path):
    """`berth gc` on a terminal (a pseudo-terminal here): the estimate first, then the run, whose
    answer it prints; GET /api/v1/gc lists no run in flight once it is done."""
    registry = gc_registry(make_registry, tmp_path)
    image = images.make_image({"gone": os.urandom(30_000)})
    expect(push_image(registry.url, "gc/tty", image, "v1"), 201, "push")
    delete_manifest(registry, "gc/tty", image.digest)
    env = {**os.environ, "HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    berth = os.environ["BERTH_BIN"]
    subprocess.run([berth, "login", registry.url, "-u", ADMIN_USER, "--password-stdin"],
                   input=ADMIN_PASSWORD + "\n", text=True, env=env, check=True, capture_output=True)
    pid, fd = pty.fork()
    if pid == 0:  # the child: berth gc with the pseudo-terminal as its stdout and stderr
        os.execve(berth, [berth, "gc"], env)
    out = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    text = out.decode()
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "estimating garbage" in text, text
    assert f"freed {len(image.blobs())} blob(s)" in text, text
    doc = json.loads(expect(request(registry.url, "GET", "/api/v1/gc"), 200, "GET /api/v1/gc").body)
    assert doc["running"] == []
    assert [r["dry_run"] for r in doc["runs"][:2]] == [False, True]  # the run, after its estimate


CLIENTS = 16
RUN_SECONDS = 20
POOL = 6  # layers shared between clients, some of them only ever in abandoned pushes


def test_collection_in_a_loop_while_16_clients_push_and_pull(make_registry, tmp_path):
    """A grace window of 3 s, so that pushes mostly complete while the blobs of abandoned pushes
    (layers of a small pool that other clients push at the same time) are collected under them.
    Whatever was acknowledged must pull byte-exact; a push the collector overtook may fail
    (MANIFEST_BLOB_UNKNOWN, 503), never corrupt anything. Afterwards, with the window at 0, one run
    leaves nothing unreferenced."""
    registry = gc_registry(make_registry, tmp_path, grace_minutes=0.05)
    pool = [{"pool.bin": bytes([n]) * 30_000} for n in range(POOL)]
    acked, failures, errors = [], [], []
    lock = threading.Lock()
    deadline = time.monotonic() + RUN_SECONDS
    stop = threading.Event()

    def client(n):
        rng = random.Random(n)
        i = 0
        while time.monotonic() < deadline:
            i += 1
            image = images.make_image({f"c{n}/{i}": os.urandom(rng.randint(1, 8) * 1024)},
                                      extra_layers=[rng.choice(pool)])
            repo, tag = f"load/c{n % 4}", f"c{n}-{i}"
            try:
                if rng.random() < 0.25:  # abandoned: blobs without a manifest, garbage at once
                    for blob in image.blobs():
                        push_blob(registry.url, repo, blob.data)
                    continue
                resp = push_image(registry.url, repo, image, tag)
            except AssertionError as e:  # a blob upload the collector overtook (503): the client retries
                if "got 503" not in str(e):
                    with lock:
                        errors.append(f"client {n}: {e}")
                    return
                with lock:
                    failures.append(503)
                continue
            with lock:
                if resp.status == 201:
                    acked.append((repo, image))
                elif resp.status == 400 and b"MANIFEST_BLOB_UNKNOWN" in resp.body:  # a link swept first
                    failures.append(400)
                else:
                    errors.append(f"client {n}: manifest PUT {resp.status} {resp.body[:200]!r}")
                    return
                earlier = rng.choice(acked) if acked else None
            if earlier:
                try:
                    assert_pulls(registry, *earlier)
                except AssertionError as e:
                    with lock:
                        errors.append(f"client {n}: acknowledged image lost: {e}")
                    return

    runs = []

    def collector():
        while not stop.is_set():
            runs.append(collect(registry))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    gc_thread = threading.Thread(target=collector)
    gc_thread.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    gc_thread.join()
    assert not errors, errors[:5]
    assert len(acked) > CLIENTS, f"only {len(acked)} pushes acknowledged ({len(failures)} overtaken)"
    print(f"{len(acked)} pushes acknowledged, {len(failures)} overtaken, {len(runs)} collections, "
          f"{sum(r['blobs'] for r in runs)} blobs freed")

    for repo, image in acked:
        assert_pulls(registry, repo, image)
    assert sum(r["blobs"] for r in runs) > 0, "the collector freed nothing while the clients ran"
    write_config(tmp_path, 0)
    registry.restart()
    collect(registry)
    left = collect(registry, dry_run=True)
    assert (left["blobs"], left["links"]) == (0, 0), left
    if EMBEDDED:
        referenced = {b.digest for _, image in acked for b in image.blobs()}
        assert stored_files(registry) == referenced
        assert blob_rows(registry) == referenced


def test_kill_9_during_a_collection(make_registry, tmp_path):
    registry = gc_registry(make_registry, tmp_path)
    keep = images.make_image({"keep": os.urandom(30_000)})
    expect(push_image(registry.url, "crash/keep", keep, "v1"), 201, "push keep")
    garbage = [push_blob(registry.url, "crash/garbage", os.urandom(512) + bytes([n % 256, n // 256]))
               for n in range(600 if EMBEDDED else 150)]  # S3: each push and delete is several requests
    expect(request(registry.url, "DELETE", "/api/v1/repositories/crash/garbage"), 200, "delete crash/garbage")

    def collect_until_killed():
        try:
            request(registry.url, "POST", "/api/v1/gc", timeout=300)
        except OSError:  # the kill
            pass

    threading.Thread(target=collect_until_killed, daemon=True).start()
    if EMBEDDED:  # killed once the sweep has begun deleting files
        total = len(stored_files(registry))
        while len(stored_files(registry)) == total:
            pass
    else:
        time.sleep(random.uniform(0, 0.5))  # a random instant of the sweep, not a synchronisation
    registry.kill()
    registry.start()

    if EMBEDDED:  # the start-up finished what the killed run had marked: no digest is refused meanwhile
        with sqlite3.connect(f"file:{registry.data_dir}/berth.db?mode=ro", uri=True) as db:
            assert db.execute("SELECT count(*) FROM blobs WHERE deleting != 0").fetchone()[0] == 0
    assert_pulls(registry, "crash/keep", keep)
    collect(registry)  # finishes the job
    left = collect(registry, dry_run=True)
    assert (left["blobs"], left["links"]) == (0, 0)
    assert_pulls(registry, "crash/keep", keep)
    if EMBEDDED:
        assert stored_files(registry) == {b.digest for b in keep.blobs()}
        assert blob_rows(registry) == {b.digest for b in keep.blobs()}
    for d in garbage[:5]:
        expect(request(registry.url, "HEAD", f"/v2/crash/keep/blobs/{d}"), 404, "HEAD collected")
