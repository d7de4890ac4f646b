"""Races between clients: the same blob pushed 16 times at once, 16 manifests raced onto one tag, and the
same layer pushed into 16 repositories at once. A barrier releases all threads together."""
import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import backends
import images
from clients import expect, get_blob, get_manifest, push_blob, push_image, put_manifest

THREADS = 16


def race(fn, count=THREADS):
    """Run fn(i) for i in range(count) on count threads released together; returns the results in order."""
    barrier = threading.Barrier(count, timeout=30)

    def run(i):
        barrier.wait()
        return fn(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def copies_on_disk(data_dir, data: bytes) -> int:
    """How many files under data_dir hold exactly `data` (the storage is content-addressed and uncompressed)."""
    want = hashlib.sha256(data).digest()
    found = 0
    for root, _, files in os.walk(data_dir):
        for name in files:
            path = os.path.join(root, name)
            if os.path.getsize(path) == len(data):
                with open(path, "rb") as f:
                    found += hashlib.sha256(f.read()).digest() == want
    return found


def assert_blob(url, repo, data):
    resp = expect(get_blob(url, repo, images.sha256(data)), 200, f"GET blob in {repo}")
    assert resp.body == data


def test_same_blob_pushed_by_16_threads_is_stored_once(registry):
    blob = os.urandom(1024 * 1024 + 17)

    digests = race(lambda _: push_blob(registry.url, "race/blob", blob))

    assert digests == [images.sha256(blob)] * THREADS  # push_blob fails the thread unless 201
    assert_blob(registry.url, "race/blob", blob)
    if backends.selected() == "embedded":  # S3's dedup: the blob store contract suite
        assert copies_on_disk(registry.data_dir, blob) == 1


def test_16_manifests_raced_onto_one_tag_leave_exactly_one_intact(registry):
    imgs = [images.make_image({"shared.txt": b"same layer for all\n"}, extra_layers=[{"n.txt": b"%d\n" % i}])
            for i in range(THREADS)]
    for img in imgs:  # blobs first, so the race is purely on the tag
        for blob in img.blobs():
            push_blob(registry.url, "race/tag", blob.data)

    statuses = race(lambda i: put_manifest(registry.url, "race/tag", "latest", imgs[i].manifest.data,
                                           images.OCI_MANIFEST).status)

    assert statuses == [201] * THREADS
    resp = expect(get_manifest(registry.url, "race/tag", "latest"), 200, "GET raced tag")
    winners = [img for img in imgs if img.manifest.data == resp.body]
    assert len(winners) == 1, "the tag points at bytes no thread pushed"
    assert resp.header("docker-content-digest") == winners[0].digest
    for img in imgs:  # the losers lost the tag, not their manifests
        loser = expect(get_manifest(registry.url, "race/tag", img.digest), 200, f"GET {img.digest}")
        assert loser.body == img.manifest.data


def test_same_layer_pushed_into_16_repositories_at_once(registry):
    imgs = [images.make_image({"common.bin": b"x" * 200_000}, extra_layers=[{"repo.txt": b"%d\n" % i}])
            for i in range(THREADS)]
    repo = "race/repo-{}".format

    statuses = race(lambda i: push_image(registry.url, repo(i), imgs[i], "v1").status)

    assert statuses == [201] * THREADS
    for i, img in enumerate(imgs):
        resp = expect(get_manifest(registry.url, repo(i), "v1"), 200, f"GET {repo(i)}:v1")
        assert resp.body == img.manifest.data
        for blob in img.blobs():
            assert_blob(registry.url, repo(i), blob.data)
