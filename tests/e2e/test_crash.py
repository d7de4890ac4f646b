"""Crash safety: kill -9 the registry while pushes are in flight, restart it on the same data directory,
and check that everything it acknowledged is still there, byte for byte, and nothing it serves is corrupt.
Also: a blob upload interrupted by the crash can be resumed after the restart."""
import json
import os
import random
import threading
from urllib.parse import urlsplit

import pytest

import images
from clients import expect, get_blob, get_manifest, list_tags, push_image, request

PUSHERS = 4
REPOS = ("crash/one", "crash/two")
ACK_DEADLINE = 60


class PushStream:
    """PUSHERS threads pushing distinct small images until the server dies; records each 201 manifest PUT.

    An error before `crashing` is set is a real failure; after it, errors are the crash and end the thread.
    """

    def __init__(self, registry):
        self.url = registry.url
        self.crashing = threading.Event()
        self.acked = []  # (repo, tag, image)
        self.failures = []
        self.cond = threading.Condition()
        self.threads = [threading.Thread(target=self._push_loop, args=(n,), daemon=True) for n in range(PUSHERS)]

    def start(self):
        for t in self.threads:
            t.start()

    def _push_loop(self, n):
        rng = random.Random(n)
        for i in range(10**6):
            image = images.make_image({f"crash/{n}-{i}.txt": f"pusher {n} image {i}\n".encode()},
                                      extra_layers=[{"pad.bin": rng.randbytes(rng.randint(1, 64) * 1024)}])
            repo, tag = REPOS[i % len(REPOS)], f"p{n}-i{i}"
            try:
                resp = push_image(self.url, repo, image, tag)
                if resp.status != 201:
                    raise AssertionError(f"manifest PUT {repo}:{tag} -> {resp.status} {resp.body[:200]!r}")
            except Exception as e:  # noqa: BLE001 - the crash surfaces as any kind of connection error
                if not self.crashing.is_set():
                    self.failures.append(f"{repo}:{tag}: {e!r}")
                with self.cond:
                    self.cond.notify_all()
                return
            with self.cond:
                self.acked.append((repo, tag, image))
                self.cond.notify_all()

    def wait_for_acks(self, count):
        with self.cond:
            ok = self.cond.wait_for(lambda: len(self.acked) >= count or self.failures, timeout=ACK_DEADLINE)
        assert not self.failures, self.failures
        assert ok, f"only {len(self.acked)} pushes acknowledged within {ACK_DEADLINE}s"

    def join(self):
        for t in self.threads:
            t.join(timeout=30)
            assert not t.is_alive(), "pusher hung after the server was killed"


def assert_image_intact(url, repo, ref, manifest: bytes):
    resp = expect(get_manifest(url, repo, ref), 200, f"GET {repo}:{ref}")
    assert resp.body == manifest, f"{repo}:{ref} served different bytes"
    assert resp.header("docker-content-digest") == images.sha256(manifest)


def assert_blobs_intact(url, repo, manifest: bytes):
    doc = json.loads(manifest)
    for desc in [doc["config"], *doc["layers"]]:
        resp = expect(get_blob(url, repo, desc["digest"]), 200, f"GET blob {repo}@{desc['digest']}")
        assert images.sha256(resp.body) == desc["digest"], f"corrupt blob {desc['digest']} in {repo}"
        assert len(resp.body) == desc["size"]


def test_acknowledged_pushes_survive_kill_9(registry):
    stream = PushStream(registry)
    stream.start()
    stream.wait_for_acks(random.randint(8, 40))  # a random point in the stream; pushes are still running
    stream.crashing.set()
    registry.kill()
    stream.join()
    acked = list(stream.acked)

    registry.start()

    for repo, tag, image in acked:
        assert_image_intact(registry.url, repo, tag, image.manifest.data)
        assert_image_intact(registry.url, repo, image.digest, image.manifest.data)
        assert_blobs_intact(registry.url, repo, image.manifest.data)
    # Pushes whose 201 was lost in the crash may or may not exist, but whatever is listed must be whole.
    for repo in REPOS:
        for tag in list_tags(registry.url, repo):
            resp = expect(get_manifest(registry.url, repo, tag), 200, f"GET listed tag {repo}:{tag}")
            assert resp.header("docker-content-digest") == images.sha256(resp.body), f"corrupt {repo}:{tag}"
            assert_blobs_intact(registry.url, repo, resp.body)


def upload_path(location: str) -> str:
    """The upload URL without scheme and host: the port changes when the registry restarts."""
    parts = urlsplit(location)
    return parts.path + ("?" + parts.query if parts.query else "")


def patch_chunk(url, location, data, start):
    headers = {"Content-Type": "application/octet-stream", "Content-Range": f"{start}-{start + len(data) - 1}"}
    return expect(request(url, "PATCH", upload_path(location), data, headers), 202, "PATCH chunk")


# Distribution signs upload state with http.secret, random per start unless configured, which
# conftest's Distribution config does not set yet: the reference target cannot resume across restarts.
@pytest.mark.xfail(os.environ.get("BERTH_E2E_TARGET") == "distribution", strict=False,
                   reason="conftest's Distribution config has no fixed http.secret")
def test_upload_interrupted_by_kill_9_resumes_after_restart(registry):
    blob = os.urandom(300 * 1024)
    digest = images.sha256(blob)
    half = len(blob) // 2
    start = expect(request(registry.url, "POST", "/v2/crash/resume/blobs/uploads/"), 202, "POST upload")
    location = patch_chunk(registry.url, start.header("location"), blob[:half], 0).header("location")

    registry.kill()
    registry.start()

    status = expect(request(registry.url, "GET", upload_path(location)), 204, "GET upload status")
    assert status.header("range") == f"0-{half - 1}"
    location = patch_chunk(registry.url, status.header("location") or location, blob[half:], half).header("location")
    sep = "&" if "?" in location else "?"
    expect(request(registry.url, "PUT", f"{upload_path(location)}{sep}digest={digest}"), 201, "PUT ?digest=")

    resp = expect(get_blob(registry.url, "crash/resume", digest), 200, "GET resumed blob")
    assert resp.body == blob
