"""Blob reads and deletes: GET/HEAD/DELETE /v2/<name>/blobs/<digest> (end-2, end-10), with Range."""
from ociclient import (OCI_LAYER, assert_error, digest_of, oci, random_bytes)  # noqa: F401

NAME = "conformance/blobs"
DUMMY = digest_of(b"hello world")  # the conformance suite's "nonexistent" digest


def test_get_returns_exact_bytes_and_headers(oci):
    data = random_bytes(3000)
    dgst = oci.push_blob(NAME, data)
    r = oci.get(f"/v2/{NAME}/blobs/{dgst}")
    assert r.status == 200, r
    assert r.body == data
    assert r.header("Content-Length") == str(len(data))
    assert r.header("Docker-Content-Digest") == dgst
    assert r.header("Content-Type"), "a blob GET names a Content-Type"


def test_head_returns_headers_and_no_body(oci):
    data = random_bytes(1234)
    dgst = oci.push_blob(NAME, data)
    r = oci.head(f"/v2/{NAME}/blobs/{dgst}")
    assert r.status == 200, r
    assert r.body == b""
    assert r.header("Content-Length") == str(len(data))
    assert r.header("Docker-Content-Digest") == dgst
    assert r.header("Content-Type")


def test_conformance_pull_blobs(oci):
    # conformance, Pull / Pull blobs: HEAD and GET of a missing blob are 404, of an existing one 200,
    # and a Docker-Content-Digest, when present, names the blob.
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    dgst = oci.push_blob(NAME, config)
    assert oci.head(f"/v2/{NAME}/blobs/{DUMMY}").status == 404
    r = oci.head(f"/v2/{NAME}/blobs/{dgst}")
    assert r.status == 200
    assert r.header("Docker-Content-Digest") in (None, dgst)
    assert oci.get(f"/v2/{NAME}/blobs/{DUMMY}").status == 404
    assert oci.get(f"/v2/{NAME}/blobs/{dgst}").status == 200


def test_unknown_blob_is_404_blob_unknown(oci):
    oci.push_blob(NAME, b"something so the repository exists")
    assert_error(oci.get(f"/v2/{NAME}/blobs/{DUMMY}"), 404, "BLOB_UNKNOWN")
    r = oci.head(f"/v2/{NAME}/blobs/{DUMMY}")
    assert r.status == 404 and r.body == b""


def test_blob_in_unknown_repository_is_404(oci):
    r = oci.get(f"/v2/no/such/repo/blobs/{DUMMY}")
    assert r.status == 404, r
    assert r.error_codes()[0] in ("BLOB_UNKNOWN", "NAME_UNKNOWN")


def test_malformed_digest_is_400_digest_invalid(oci):
    oci.push_blob(NAME, b"x")
    # sha256 with 63 hex digits: digest-shaped, but not a valid sha256 digest.
    assert_error(oci.get(f"/v2/{NAME}/blobs/sha256:{'a' * 63}"), 400, "DIGEST_INVALID")
    # Unknown algorithm.
    r = oci.get(f"/v2/{NAME}/blobs/md5:{'a' * 32}")
    assert r.status in (400, 404), r
    if r.status == 400:
        assert r.error_codes()[0] in ("DIGEST_INVALID", "UNSUPPORTED")


def test_blob_of_repo_a_is_not_readable_through_repo_b(oci):
    data = random_bytes(100)
    dgst = oci.push_blob("team/a", data)
    oci.push_blob("team/b", b"repo b exists")
    assert_error(oci.get(f"/v2/team/b/blobs/{dgst}"), 404, "BLOB_UNKNOWN")
    assert oci.head(f"/v2/team/b/blobs/{dgst}").status == 404
    assert oci.get(f"/v2/team/a/blobs/{dgst}").body == data


def test_range_request_returns_206_with_content_range(oci):
    data = random_bytes(1000)
    dgst = oci.push_blob(NAME, data)
    url = f"/v2/{NAME}/blobs/{dgst}"
    r = oci.get(url, headers={"Range": "bytes=100-199"})
    assert r.status == 206, r
    assert r.body == data[100:200]
    assert r.header("Content-Range") == "bytes 100-199/1000"
    assert r.header("Content-Length") == "100"

    r = oci.get(url, headers={"Range": "bytes=900-"})  # open-ended: resuming a pull
    assert r.status == 206 and r.body == data[900:]
    assert r.header("Content-Range") == "bytes 900-999/1000"

    r = oci.get(url, headers={"Range": "bytes=-10"})  # suffix
    assert r.status == 206 and r.body == data[-10:]
    assert r.header("Content-Range") == "bytes 990-999/1000"

    r = oci.get(url, headers={"Range": "bytes=990-5000"})  # end past the size is clamped
    assert r.status == 206 and r.body == data[990:]
    assert r.header("Content-Range") == "bytes 990-999/1000"


def test_blob_of_several_read_pieces_is_exact_across_their_boundaries(oci):
    # Without a file to send (S3), the server reads 4 MiB pieces, each two 2 MiB GETs at once, and
    # fetches the next while it sends the last: reads across their boundaries come back byte-exact.
    mib = 1 << 20
    data = random_bytes(5 * mib + 123)
    dgst = oci.push_blob(NAME, data)
    url = f"/v2/{NAME}/blobs/{dgst}"
    r = oci.get(url)
    assert r.status == 200 and r.body == data
    for first, last in [(2 * mib - 1, 4 * mib), (1, 2 * mib), (4 * mib - 1, len(data) - 1)]:
        r = oci.get(url, headers={"Range": f"bytes={first}-{last}"})
        assert r.status == 206 and r.body == data[first:last + 1], (first, last)


def test_unsatisfiable_range_is_416(oci):
    data = random_bytes(1000)
    dgst = oci.push_blob(NAME, data)
    r = oci.get(f"/v2/{NAME}/blobs/{dgst}", headers={"Range": "bytes=1000-1100"})
    assert r.status == 416, r
    assert r.header("Content-Range") == "bytes */1000"
    assert not r.truncated, "the 416's body must match its Content-Length"


def test_delete_blob_is_202_then_404(oci):
    # conformance, Content Management / Blob delete (202, then GET 404).
    data = random_bytes(500)
    dgst = oci.push_blob(NAME, data)
    r = oci.delete(f"/v2/{NAME}/blobs/{dgst}")
    assert r.status == 202, r
    assert_error(oci.get(f"/v2/{NAME}/blobs/{dgst}"), 404, "BLOB_UNKNOWN")
    assert oci.head(f"/v2/{NAME}/blobs/{dgst}").status == 404
    assert_error(oci.delete(f"/v2/{NAME}/blobs/{dgst}"), 404, "BLOB_UNKNOWN")


def test_delete_in_one_repository_keeps_the_blob_in_another(oci):
    data = random_bytes(500)
    dgst = oci.push_blob("team/a", data)
    oci.push_blob("team/b", data)
    assert oci.delete(f"/v2/team/a/blobs/{dgst}").status == 202
    assert oci.get(f"/v2/team/a/blobs/{dgst}").status == 404
    r = oci.get(f"/v2/team/b/blobs/{dgst}")
    assert r.status == 200 and r.body == data


def test_empty_blob_round_trips(oci):
    dgst = oci.push_blob(NAME, b"")
    assert dgst == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    r = oci.get(f"/v2/{NAME}/blobs/{dgst}")
    assert r.status == 200 and r.body == b""
    assert r.header("Content-Length") == "0"
