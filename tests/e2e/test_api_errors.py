"""The error model across the API: the JSON envelope, invalid names, unknown routes, wrong methods."""
import os

import pytest

from ociclient import OCTET, SPEC_ERROR_CODES, assert_error, digest_of, oci, with_query  # noqa: F401

NAME = "conformance/errors"
DUMMY = digest_of(b"hello world")


def test_every_spec_error_is_a_full_envelope(oci):
    oci.push_image(NAME, "v1")
    cases = [
        (oci.get(f"/v2/{NAME}/blobs/{DUMMY}"), 404, "BLOB_UNKNOWN"),
        (oci.get(f"/v2/{NAME}/manifests/absent"), 404, "MANIFEST_UNKNOWN"),
        (oci.get("/v2/no/such/repo/tags/list"), 404, "NAME_UNKNOWN"),
        (oci.get(f"/v2/{NAME}/blobs/sha256:{'0' * 63}"), 400, "DIGEST_INVALID"),
        (oci.get(f"/v2/{NAME}/blobs/uploads/00000000-0000-4000-8000-000000000000"), 404, "BLOB_UPLOAD_UNKNOWN"),
        (oci.put(f"/v2/{NAME}/manifests/bad", b"not json",
                 headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"}), 400, "MANIFEST_INVALID"),
    ]
    for response, status, code in cases:
        assert response.status == status, response
        assert response.header("Content-Type").startswith("application/json"), response
        doc = response.json()
        assert list(doc) == ["errors"], doc
        first = doc["errors"][0]
        assert first["code"] == code, doc
        assert isinstance(first.get("message", ""), str)
        assert set(first) <= {"code", "message", "detail"}, first
        assert all(e["code"] in SPEC_ERROR_CODES for e in doc["errors"]), doc


INVALID_NAMES = [
    "Uppercase/repo",
    "a/../b",
    "..",
    "a//b",
    "a/./b",
    "-leading/dash",
    "trailing-/dash",
    "a" * 256,
    "%2e%2e",
    "%2e%2e/%2e%2e/escape",
    "a/%2e%2e/%2e%2e/escape",
    "white%20space",
]


def snapshot_outside(data_dir):
    """Every path under the data directory's parent that is not inside the data directory."""
    root = os.path.dirname(os.path.abspath(data_dir))
    inside = os.path.abspath(data_dir)
    found = set()
    for here, dirs, files in os.walk(root):
        if os.path.abspath(here).startswith(inside):
            continue
        found.update(os.path.join(here, f) for f in dirs + files)
    return {p for p in found if not os.path.abspath(p).startswith(inside)}


def test_invalid_names_are_400_or_404_and_touch_nothing_outside(oci, registry):
    # One registry for every name (a fresh one each would dominate the suite's run time); the
    # failures are collected so one report names every offending name and request.
    before = snapshot_outside(registry.data_dir)
    blob = b"payload"
    failures = []
    for name in INVALID_NAMES:
        attempts = [
            oci.get(f"/v2/{name}/tags/list"),
            oci.get(f"/v2/{name}/manifests/latest"),
            oci.get(f"/v2/{name}/blobs/{DUMMY}"),
            oci.post(f"/v2/{name}/blobs/uploads/"),
            oci.post(with_query(f"/v2/{name}/blobs/uploads/", digest=digest_of(blob)), blob,
                     headers={"Content-Type": OCTET}),
            oci.put(f"/v2/{name}/manifests/latest", b"{}",
                    headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"}),
            oci.delete(f"/v2/{name}/blobs/{DUMMY}"),
        ]
        for r in attempts:
            if r.status not in (400, 404) or (r.status == 400 and r.error_codes()[0] != "NAME_INVALID"):
                failures.append((name[:40], r.status, r.body[:80]))
    assert not failures, failures
    assert snapshot_outside(registry.data_dir) == before, "a request escaped the data directory"
    assert oci.get("/v2/").status == 200


def test_longest_valid_name_works(oci):
    name = "/".join(["a" * 63, "b" * 63, "c" * 63, "d" * 63])  # 255 characters
    assert len(name) == 255
    image = oci.push_image(name, "v1", layers=0)
    assert oci.get_manifest(name, "v1").body == image.data


def test_unknown_routes_under_a_repository_are_404(oci):
    oci.push_image(NAME, "v1")
    for path in (f"/v2/{NAME}/unknown/thing", f"/v2/{NAME}/tags", f"/v2/{NAME}/blobs/",
                 f"/v2/{NAME}/tags/list/extra"):
        r = oci.get(path)
        assert r.status == 404, (path, r)
        if "json" in (r.header("Content-Type") or ""):
            r.error_codes()


@pytest.mark.parametrize("method,path", [
    ("PATCH", f"/v2/{NAME}/manifests/v1"),
    ("POST", f"/v2/{NAME}/manifests/v1"),
    ("POST", f"/v2/{NAME}/tags/list"),
    ("DELETE", f"/v2/{NAME}/tags/list"),
    ("PUT", f"/v2/{NAME}/blobs/{DUMMY}"),
    ("PATCH", f"/v2/{NAME}/blobs/{DUMMY}"),
    ("DELETE", "/v2/_catalog"),
])
def test_wrong_method_is_405(oci, method, path):
    oci.push_image(NAME, "v1")
    r = oci.request(method, path, body=b"")
    assert r.status == 405, r
    if "json" in (r.header("Content-Type") or ""):
        r.error_codes()


def test_server_survives_garbage(oci, registry):
    import socket
    host, port = registry.host.rsplit(":", 1)
    for garbage in (b"\x00\x01\x02 nonsense\r\n\r\n", b"GET /v2/ HTTP/9.9\r\n\r\n",
                    b"GET /v2/" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"):
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(garbage)
            s.shutdown(socket.SHUT_WR)
            try:
                reply = s.recv(100)
            except (ConnectionResetError, socket.timeout):
                reply = b""
        if reply:
            status = int(reply.split(b" ", 2)[1])
            assert 400 <= status < 500 or status == 505, reply
    assert oci.get("/v2/").status == 200
