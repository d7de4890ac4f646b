"""Several Berth instances on one S3 bucket and one PostgreSQL database (docs/scale-out.md): whatever one
instance accepted, the others serve; an upload, a tag and a login move between them; one killed mid-push
loses nothing that was acknowledged. Runs with
BERTH_E2E_BACKEND=s3pg (ctest's e2e.s3pg.scale_out); on the embedded backends there is nothing to share."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import backends
from authenv import Admin
from clients import clients, require  # noqa: F401 (the clients fixture)
from conftest import Registry
from e2eauth import basic
from ociclient import Client, digest_of, random_bytes, with_query

pytestmark = pytest.mark.skipif(backends.selected() == "embedded",
                                reason="instances share S3 and PostgreSQL only (BERTH_E2E_BACKEND=s3pg)")

MiB = 1 << 20


def instances(tmp_path, count):
    """`count` instances on the same backends and signing key, each with its own data directory;
    stopped when the test ends."""
    config = tmp_path / "berth.yaml"
    config.write_text(f"auth:\n  signing_key_file: {tmp_path / 'token-signing-key.pem'}\n")
    started = []
    try:
        for i in range(count):
            (tmp_path / str(i)).mkdir()
            r = Registry(str(tmp_path / str(i) / "data"), ["--config", str(config)])
            if started:
                r.backend = started[0].backend
            started.append(r.start())
        yield started
    finally:
        for r in started:
            r.stop()


@pytest.fixture
def pair(tmp_path):
    yield from instances(tmp_path, 2)


@pytest.fixture
def trio(tmp_path):
    yield from instances(tmp_path, 3)


def test_a_push_to_one_instance_is_pulled_from_the_other(pair):
    a, b = Client(pair[0]), Client(pair[1])
    image = a.push_image("team/app", tag="v1", layers=2)
    r = b.get("/v2/team/app/manifests/v1", headers={"Accept": image.media_type})
    assert r.status == 200, r
    assert r.body == image.data
    for layer in image.layers:
        got = b.get(f"/v2/team/app/blobs/{digest_of(layer)}")
        assert got.status == 200 and got.body == layer
    assert b.tags("team/app") == ["v1"]
    assert b.get("/v2/_catalog").json()["repositories"] == ["team/app"]
    # A delete on one is seen by the other.
    assert b.delete(f"/v2/team/app/manifests/{image.digest}").status == 202
    assert a.get(f"/v2/team/app/manifests/{image.digest}").status == 404


def test_a_chunked_upload_begun_on_one_instance_is_finished_on_the_other(pair):
    a, b = Client(pair[0]), Client(pair[1])
    data = random_bytes(7 * MiB + 12345)  # more than one 5 MiB part, and a tail
    location = a.start_upload("team/big")
    first = 6 * MiB
    r = a.patch(location, data[:first], headers={"Content-Type": "application/octet-stream",
                                                  "Content-Range": f"0-{first - 1}"})
    assert r.status == 202, r
    location = r.header("Location")
    # The other instance knows where the upload stands, and takes the rest.
    status = b.get(location)
    assert status.status == 204, status
    assert status.header("Range") == f"0-{first - 1}"
    r = b.patch(location, data[first:], headers={"Content-Type": "application/octet-stream",
                                                  "Content-Range": f"{first}-{len(data) - 1}"})
    assert r.status == 202, r
    r = a.put(with_query(r.header("Location"), digest=digest_of(data)))
    assert r.status == 201, r
    got = b.get(f"/v2/team/big/blobs/{digest_of(data)}")
    assert got.status == 200 and got.body == data


def test_a_token_and_a_user_from_one_instance_work_on_the_other(pair):
    a = Client(pair[0])
    Admin(pair[0]).user("carol", "carol-password-1", actions=["pull", "push"], repositories=["carol/*"])
    carol_b = Client(pair[1], auth=basic("carol", "carol-password-1"))
    assert carol_b.push_image("carol/app", tag="v1").response.status == 201
    # A bearer token issued by one instance is accepted by the other (one signing key).
    token = a.get("/token?service=berth&scope=repository:carol/app:pull",
                  headers={"Authorization": basic("carol", "carol-password-1")})
    assert token.status == 200, token
    bearer = Client(pair[1], auth="Bearer " + token.json()["token"])
    assert bearer.get("/v2/carol/app/manifests/v1",
                      headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}).status == 200


def test_a_namespace_made_through_one_instance_rules_the_other(pair):
    """The other instance's policy follows the identity generation it polls (every second): no restart."""
    a, b = Client(pair[0]), Client(pair[1])
    assert b.post("/v2/fresh/one/blobs/uploads/", b"").status == 202
    Admin(pair[0]).call("PUT", "namespaces/fresh", {"creation": "explicit"}, expect=201)
    assert a.post("/v2/fresh/two/blobs/uploads/", b"").status == 404  # at once where it was made
    deadline = time.monotonic() + 10
    while (r := b.post("/v2/fresh/three/blobs/uploads/", b"")).status == 202 and time.monotonic() < deadline:
        time.sleep(0.1)  # polls the other instance until its generation poll (1 s) has seen the change
    assert r.status == 404 and "namespace fresh creates repositories explicitly" in r.json()["errors"][0]["message"], r


def test_a_quota_set_through_one_instance_is_enforced_by_the_other(pair):
    """Each instance's metadata store takes the admin API's quotas from the policy it rebuilds when the
    identity generation moves (polled every second): no restart."""
    a, b = Client(pair[0]), Client(pair[1])
    Admin(pair[0]).call("PUT", "namespaces/capped", {"max_repositories": 1}, expect=201)
    a.push_blob("capped/one", random_bytes(100))

    def upload(n):
        location = b.start_upload(f"capped/n{n}")
        data = random_bytes(100)
        return b.put(with_query(location, digest=digest_of(data)), data,
                     headers={"Content-Type": "application/octet-stream"})

    deadline = time.monotonic() + 10
    n = 0
    while (r := upload(n)).status == 201 and time.monotonic() < deadline:
        n += 1
        time.sleep(0.1)  # until the other instance's generation poll (1 s) has seen the quota
    assert r.status == 403, r
    error = r.json()["errors"][0]
    assert error["code"] == "DENIED" and error["message"] == (
        "namespace capped may hold at most 1 repositories (max_repositories of namespace capped, admin API); "
        "delete a repository first"), error


@require("skopeo")
def test_skopeo_copies_between_instances(pair, clients):
    a, b = pair
    Client(a).push_image("team/copied", tag="v1", layers=3)
    clients.copy_to(f"docker://{a.host}/team/copied:v1", f"docker://{b.host}/team/copy:v1",
                    "--src-tls-verify=false")
    assert Client(a).tags("team/copy") == ["v1"]


def test_a_chunked_upload_spread_over_three_instances(trio):
    a, b, c = (Client(r) for r in trio)
    data = random_bytes(11 * MiB + 7)
    cuts = [0, 5 * MiB + 3, 9 * MiB, len(data)]
    location = a.start_upload("team/spread")
    for client, start, end in zip((a, b, c), cuts, cuts[1:]):
        r = client.patch(location, data[start:end], headers={"Content-Type": "application/octet-stream",
                                                             "Content-Range": f"{start}-{end - 1}"})
        assert r.status == 202, r
        assert r.header("Range") == f"0-{end - 1}"
        location = r.header("Location")
    r = b.put(with_query(location, digest=digest_of(data)))
    assert r.status == 201, r
    for client in (a, b, c):
        got = client.get(f"/v2/team/spread/blobs/{digest_of(data)}")
        assert got.status == 200 and got.body == data


def test_one_tag_pushed_through_three_instances_at_once_ends_consistent(trio):
    clients = [Client(r) for r in trio]
    images = [client.push_image("team/race", layers=1) for client in clients]  # by digest: blobs in place
    barrier = threading.Barrier(3, timeout=30)

    def push(i):
        barrier.wait()
        return clients[i].put_manifest("team/race", "latest", images[i].data, images[i].media_type).status

    with ThreadPoolExecutor(3) as pool:
        assert list(pool.map(push, range(3))) == [201] * 3
    seen = {client.get("/v2/team/race/manifests/latest", headers={"Accept": images[0].media_type}).body
            for client in clients}
    assert len(seen) == 1, "instances disagree on the tag"
    assert seen.pop() in {image.data for image in images}, "the tag points at bytes nobody pushed"
    for image in images:  # the losers lost the tag, not their manifests
        for client in clients:
            assert client.get(f"/v2/team/race/manifests/{image.digest}",
                              headers={"Accept": image.media_type}).status == 200


def test_kill_9_of_one_instance_mid_push_loses_nothing_acknowledged(trio):
    a, b, doomed = Client(trio[0]), Client(trio[1]), Client(trio[2], timeout=30)
    kept = [doomed.push_image("team/kept", tag=f"v{i}", layers=2) for i in range(3)]
    data = random_bytes(12 * MiB)
    location = doomed.start_upload("team/cut")
    conn = doomed.begin("PATCH", location, {"Content-Type": "application/octet-stream",
                                             "Content-Length": str(len(data))})
    conn.send(data[:9 * MiB])  # the instance is receiving (and storing) this upload when it dies
    trio[2].kill()
    conn.close()
    for client in (a, b):
        for i, image in enumerate(kept):
            r = client.get(f"/v2/team/kept/manifests/v{i}", headers={"Accept": image.media_type})
            assert r.status == 200 and r.body == image.data
            for layer in image.layers:
                assert client.get(f"/v2/team/kept/blobs/{digest_of(layer)}").body == layer
    # The blob it never acknowledged is not there, and pushing it again through another instance works.
    assert a.head(f"/v2/team/cut/blobs/{digest_of(data)}").status == 404
    assert a.push_blob("team/cut", data) == digest_of(data)
    assert b.get(f"/v2/team/cut/blobs/{digest_of(data)}").body == data
