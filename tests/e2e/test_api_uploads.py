"""Blob uploads: POST/PATCH/PUT/GET/DELETE on /v2/<name>/blobs/uploads/ (end-4a/4b, 5, 6, 13, 14)."""
import re
import socket

from e2eauth import basic
from ociclient import (OCTET, assert_error, digest_of, oci, path_of, random_bytes,  # noqa: F401
                       with_query)

NAME = "conformance/uploads"
DUMMY = digest_of(b"hello world")


def chunk_headers(start, data):
    return {"Content-Type": OCTET, "Content-Range": f"{start}-{start + len(data) - 1}"}


def assert_blob(oci, name, data):
    r = oci.get(f"/v2/{name}/blobs/{digest_of(data)}")
    assert r.status == 200, r
    assert r.body == data


def assert_created_blob(r, name, data):
    """A finished upload: 201 with a Location that pulls the blob."""
    assert r.status == 201, r
    assert path_of(r.header("Location")) == f"/v2/{name}/blobs/{digest_of(data)}"
    assert r.header("Docker-Content-Digest") in (None, digest_of(data))


# ---- sessions ---------------------------------------------------------------------------------------

def test_post_opens_a_session_with_location_and_uuid(oci):
    r = oci.post(f"/v2/{NAME}/blobs/uploads/", b"")
    assert r.status == 202, r
    location = r.header("Location")
    assert location and path_of(location).startswith(f"/v2/{NAME}/blobs/uploads/"), r
    uuid = r.header("Docker-Upload-UUID")
    assert uuid and uuid in location, "the Location carries the session id"
    other = oci.post(f"/v2/{NAME}/blobs/uploads/", b"")
    assert other.header("Location") != location, "every POST opens its own session"


def test_get_upload_reports_progress_204(oci):
    location = oci.start_upload(NAME)
    data = random_bytes(300)
    r = oci.patch(location, data, headers={"Content-Type": OCTET})
    assert r.status == 202, r
    status = oci.get(r.header("Location"))
    assert status.status == 204, status
    assert status.body == b""
    assert status.header("Range") == "0-299"
    assert status.header("Location")
    assert status.header("Docker-Upload-UUID") and status.header("Docker-Upload-UUID") in location


def test_delete_upload_is_204_then_unknown(oci):
    location = oci.start_upload(NAME)
    r = oci.patch(location, b"abc", headers={"Content-Type": OCTET})
    location = r.header("Location")
    r = oci.delete(location)
    assert r.status == 204, r
    assert_error(oci.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(oci.patch(location, b"def", headers={"Content-Type": OCTET}), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(oci.put(with_query(location, digest=digest_of(b"abc"))), 404, "BLOB_UPLOAD_UNKNOWN")
    assert oci.head(f"/v2/{NAME}/blobs/{digest_of(b'abc')}").status == 404


def test_unknown_session_is_404_blob_upload_unknown(oci):
    oci.start_upload(NAME)
    url = f"/v2/{NAME}/blobs/uploads/00000000-0000-4000-8000-000000000000"
    assert_error(oci.get(url), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(oci.patch(url, b"x", headers={"Content-Type": OCTET}), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(oci.put(with_query(url, digest=digest_of(b"x")), b"x"), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(oci.delete(url), 404, "BLOB_UPLOAD_UNKNOWN")


def test_session_of_repo_a_is_unknown_through_repo_b(oci):
    location = path_of(oci.start_upload("team/a"))
    oci.start_upload("team/b")
    through_b = location.replace("/v2/team/a/", "/v2/team/b/", 1)
    data = b"smuggled"
    assert_error(oci.patch(through_b, data, headers={"Content-Type": OCTET}), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(oci.put(with_query(through_b, digest=digest_of(data)), data), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(oci.get(through_b), 404, "BLOB_UPLOAD_UNKNOWN")
    assert oci.head(f"/v2/team/b/blobs/{digest_of(data)}").status == 404
    # The session itself is untouched and still works in its own repository.
    r = oci.put(with_query(location, digest=digest_of(data)), data, headers={"Content-Type": OCTET})
    assert_created_blob(r, "team/a", data)


def test_finished_session_is_gone(oci):
    location = oci.start_upload(NAME)
    data = random_bytes(10)
    r = oci.put(with_query(location, digest=digest_of(data)), data, headers={"Content-Type": OCTET})
    assert r.status == 201, r
    assert_error(oci.get(location), 404, "BLOB_UPLOAD_UNKNOWN")


# ---- monolithic ---------------------------------------------------------------------------------------

def test_post_then_put_monolithic(oci):
    data = random_bytes(2048)
    location = oci.start_upload(NAME)
    r = oci.put(with_query(location, digest=digest_of(data)), data, headers={"Content-Type": OCTET})
    assert_created_blob(r, NAME, data)
    assert_blob(oci, NAME, data)


def test_single_post_with_digest_creates_the_blob(oci):
    # The spec lets a registry answer 202 and fall back to POST-then-PUT; Berth supports the single
    # POST, so it must answer 201 with the blob's Location.
    data = random_bytes(4096)
    r = oci.post(with_query(f"/v2/{NAME}/blobs/uploads/", digest=digest_of(data)), data,
                 headers={"Content-Type": OCTET})
    assert_created_blob(r, NAME, data)
    assert_blob(oci, NAME, data)


def test_conformance_push_monolithic(oci):
    # conformance, Push / Blob Upload Monolithic, with the statuses it accepts.
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"author":"x"}'
    dgst = digest_of(config)
    assert oci.get(f"/v2/{NAME}/blobs/{DUMMY}").status == 404
    r = oci.post(with_query(f"/v2/{NAME}/blobs/uploads/", digest=dgst), config, headers={"Content-Type": OCTET})
    assert r.header("Location")
    assert r.status in (201, 202), r
    assert oci.get(f"/v2/{NAME}/blobs/{dgst}").status == (404 if r.status == 202 else 200)
    r = oci.post(f"/v2/{NAME}/blobs/uploads/")
    assert r.status == 202, r
    r = oci.put(with_query(r.header("Location"), digest=dgst), config, headers={"Content-Type": OCTET})
    assert r.header("Location") and r.status == 201, r
    assert oci.get(f"/v2/{NAME}/blobs/{dgst}").status == 200


def test_put_with_wrong_digest_is_400_digest_invalid(oci):
    data = random_bytes(100)
    wrong = digest_of(b"something else")
    location = oci.start_upload(NAME)
    assert_error(oci.put(with_query(location, digest=wrong), data, headers={"Content-Type": OCTET}),
                 400, "DIGEST_INVALID")
    assert oci.head(f"/v2/{NAME}/blobs/{wrong}").status == 404
    assert oci.head(f"/v2/{NAME}/blobs/{digest_of(data)}").status == 404


def test_single_post_with_wrong_digest_is_400_digest_invalid(oci):
    data = random_bytes(100)
    wrong = digest_of(b"something else")
    r = oci.post(with_query(f"/v2/{NAME}/blobs/uploads/", digest=wrong), data, headers={"Content-Type": OCTET})
    assert_error(r, 400, "DIGEST_INVALID")
    assert oci.head(f"/v2/{NAME}/blobs/{wrong}").status == 404


def test_put_without_digest_is_400(oci):
    location = oci.start_upload(NAME)
    r = oci.put(location, b"data", headers={"Content-Type": OCTET})
    assert_error(r, 400, "DIGEST_INVALID", "BLOB_UPLOAD_INVALID")


def test_put_with_malformed_digest_is_400_digest_invalid(oci):
    location = oci.start_upload(NAME)
    r = oci.put(with_query(location, digest="sha256:nothex"), b"data", headers={"Content-Type": OCTET})
    assert_error(r, 400, "DIGEST_INVALID")


def test_uploading_an_existing_blob_again_is_fine(oci):
    data = random_bytes(64)
    oci.push_blob(NAME, data)
    oci.push_blob(NAME, data)
    assert_blob(oci, NAME, data)


def test_body_shorter_than_content_length_creates_nothing(oci, registry):
    # The client announces 1000 bytes, sends 10 and half-closes: the blob must not exist afterwards,
    # and if the registry answers at all, it answers 400 (never 2xx, never 5xx).
    data = random_bytes(1000)
    location = path_of(oci.start_upload(NAME))
    target = with_query(location, digest=digest_of(data))
    host, port = registry.host.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(f"PUT {target} HTTP/1.1\r\nHost: {registry.host}\r\nContent-Type: {OCTET}\r\n"
                  f"Authorization: {basic()}\r\n"
                  f"Content-Length: {len(data)}\r\n\r\n".encode() + data[:10])
        s.shutdown(socket.SHUT_WR)
        reply = b""
        try:
            while chunk := s.recv(65536):
                reply += chunk
        except (ConnectionResetError, socket.timeout):
            pass
    if reply:
        status = int(reply.split(b" ", 2)[1])
        assert status == 400, reply[:300]
    assert oci.head(f"/v2/{NAME}/blobs/{digest_of(data)}").status == 404
    assert oci.get("/v2/").status == 200


# ---- streamed (PATCH without Content-Range) -----------------------------------------------------------

def test_streamed_patch_with_content_length(oci):
    part1, part2 = random_bytes(1000), random_bytes(500)
    location = oci.start_upload(NAME)
    r = oci.patch(location, part1, headers={"Content-Type": OCTET})
    assert r.status == 202, r
    assert r.header("Location")
    assert r.header("Range") == "0-999"
    r = oci.patch(r.header("Location"), part2, headers={"Content-Type": OCTET})
    assert r.status == 202, r
    assert r.header("Range") == "0-1499"
    r = oci.put(with_query(r.header("Location"), digest=digest_of(part1 + part2)))
    assert_created_blob(r, NAME, part1 + part2)
    assert_blob(oci, NAME, part1 + part2)


def test_streamed_patch_with_chunked_transfer_encoding(oci):
    pieces = [random_bytes(n) for n in (1, 4096, 70000, 3)]
    data = b"".join(pieces)
    location = oci.start_upload(NAME)
    r = oci.request("PATCH", location, headers={"Content-Type": OCTET}, chunks=pieces)
    assert r.status == 202, r
    assert r.header("Range") == f"0-{len(data) - 1}"
    r = oci.put(with_query(r.header("Location"), digest=digest_of(data)))
    assert_created_blob(r, NAME, data)
    assert_blob(oci, NAME, data)


def test_put_with_chunked_transfer_encoding(oci):
    pieces = [random_bytes(n) for n in (10, 20000)]
    data = b"".join(pieces)
    location = oci.start_upload(NAME)
    r = oci.request("PUT", with_query(location, digest=digest_of(data)), headers={"Content-Type": OCTET},
                    chunks=pieces)
    assert_created_blob(r, NAME, data)
    assert_blob(oci, NAME, data)


def test_conformance_push_streamed(oci):
    # conformance, Push / Blob Upload Streamed: PATCH with the blob and no Content-Range is 202,
    # then an empty PUT with the digest is 201 with a Location.
    blob = random_bytes(42)
    r = oci.post(f"/v2/{NAME}/blobs/uploads/")
    assert r.header("Location")
    r = oci.patch(r.header("Location"), blob, headers={"Content-Type": OCTET})
    assert r.status == 202, r
    r = oci.put(with_query(r.header("Location"), digest=digest_of(blob)), headers={"Content-Type": OCTET})
    assert r.status == 201, r
    assert r.header("Location")


# ---- chunked (PATCH with Content-Range) ---------------------------------------------------------------

def test_conformance_push_chunked(oci):
    # conformance, Push / Blob Upload Chunked, step by step with its exact expectations.
    blob = random_bytes(42)
    chunk1, chunk2 = blob[:22], blob[22:]
    r = oci.post(f"/v2/{NAME}/blobs/uploads/", headers={"Content-Length": "0"})
    assert r.header("Location")
    r = oci.patch(r.header("Location"), chunk2, headers=chunk_headers(22, chunk2))
    assert r.status == 416, "a chunk that does not start at the current offset is out of order"

    first = oci.post(f"/v2/{NAME}/blobs/uploads/", headers={"Content-Length": "0"})
    assert first.header("Location")
    r = oci.patch(first.header("Location"), chunk1, headers=chunk_headers(0, chunk1))
    assert r.status == 202, r
    assert r.header("Range") == "0-21"

    r = oci.patch(first.header("Location"), chunk1, headers=chunk_headers(0, chunk1))
    assert r.status == 416, "retrying the first chunk is out of order"

    r = oci.get(first.header("Location"))
    assert r.status == 204, r
    assert r.header("Location")
    assert r.header("Range") == "0-21"

    r = oci.patch(r.header("Location"), chunk2, headers=chunk_headers(22, chunk2))
    assert r.status == 202, r
    assert r.header("Range") == "0-41"
    assert r.header("Location")

    r = oci.put(with_query(r.header("Location"), digest=digest_of(blob)),
                headers={"Content-Length": "0", "Content-Type": OCTET})
    assert r.status == 201, r
    assert r.header("Location")
    assert_blob(oci, NAME, blob)


def test_final_chunk_in_the_put(oci):
    # The last chunk may travel in the closing PUT, with its Content-Range.
    blob = random_bytes(5000)
    location = oci.start_upload(NAME)
    r = oci.patch(location, blob[:3000], headers=chunk_headers(0, blob[:3000]))
    assert r.status == 202, r
    r = oci.put(with_query(r.header("Location"), digest=digest_of(blob)), blob[3000:],
                headers=chunk_headers(3000, blob[3000:]))
    assert_created_blob(r, NAME, blob)
    assert_blob(oci, NAME, blob)


def test_many_chunks_of_a_larger_blob(oci):
    blob = random_bytes(3 * 1024 * 1024 + 17)
    step = 1024 * 1024
    location = oci.start_upload(NAME)
    for start in range(0, len(blob), step):
        chunk = blob[start:start + step]
        r = oci.patch(location, chunk, headers=chunk_headers(start, chunk))
        assert r.status == 202, r
        assert r.header("Range") == f"0-{start + len(chunk) - 1}"
        location = r.header("Location")
    r = oci.put(with_query(location, digest=digest_of(blob)))
    assert_created_blob(r, NAME, blob)
    assert_blob(oci, NAME, blob)


def test_content_range_not_matching_content_length_is_rejected(oci):
    # Content-Range says 10 bytes, the body (and Content-Length) says 5. The spec gives no status for
    # a self-contradicting chunk; 400 or 416 are both fair, and the session must not move.
    location = oci.start_upload(NAME)
    r = oci.patch(location, b"12345", headers={"Content-Type": OCTET, "Content-Range": "0-9"})
    assert r.status in (400, 416), r
    r = oci.patch(location, b"12345", headers=chunk_headers(0, b"12345"))
    assert r.status == 202, r
    assert r.header("Range") == "0-4"


def test_malformed_content_range_is_rejected(oci):
    location = oci.start_upload(NAME)
    # "bytes 0-4/*" and "bytes=0-4" are accepted on purpose (RFC 9110 spelling); these are not ranges.
    for bad in ("0-", "4-0", "abc", "0-4/3"):
        r = oci.patch(location, b"12345", headers={"Content-Type": OCTET, "Content-Range": bad})
        assert r.status in (400, 416), (bad, r)


def test_range_header_format_on_patch(oci):
    location = oci.start_upload(NAME)
    r = oci.patch(location, b"x" * 7, headers=chunk_headers(0, b"x" * 7))
    assert re.fullmatch(r"0-\d+", r.header("Range") or ""), r
