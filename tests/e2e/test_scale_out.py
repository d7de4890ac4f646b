"""Several Berth instances on one S3 bucket and one PostgreSQL database (docs/scale-out.md): whatever one
instance accepted, the other serves; an upload and a login move between them. Runs with
BERTH_E2E_BACKEND=s3pg (ctest's e2e.s3pg.scale_out); on the embedded backends there is nothing to share."""
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


@pytest.fixture
def pair(tmp_path):
    """Two instances on the same backends and signing key, each with its own data directory."""
    config = tmp_path / "berth.yaml"
    config.write_text(f"auth:\n  signing_key_file: {tmp_path / 'token-signing-key.pem'}\n")
    for instance in ("a", "b"):
        (tmp_path / instance).mkdir()
    first = Registry(str(tmp_path / "a" / "data"), ["--config", str(config)])
    first.start()
    second = Registry(str(tmp_path / "b" / "data"), ["--config", str(config)])
    second.backend = first.backend
    second.start()
    yield first, second
    second.stop()
    first.stop()


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


@require("skopeo")
def test_skopeo_copies_between_instances(pair, clients):
    a, b = pair
    Client(a).push_image("team/copied", tag="v1", layers=3)
    clients.copy_to(f"docker://{a.host}/team/copied:v1", f"docker://{b.host}/team/copy:v1",
                    "--src-tls-verify=false")
    assert Client(a).tags("team/copy") == ["v1"]
