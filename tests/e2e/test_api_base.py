"""The API version check, /v2/ (distribution-spec: "Determining Support", end-1)."""
from ociclient import oci  # noqa: F401  (fixture)


def test_v2_answers_200_with_api_version_header(oci):
    r = oci.get("/v2/")
    assert r.status == 200, r
    # Optional in OCI, but Docker clients test for it: Berth always sends it.
    assert r.header("Docker-Distribution-API-Version") == "registry/2.0"


def test_v2_head_answers_200_without_body(oci):
    r = oci.head("/v2/")
    assert r.status == 200, r
    assert r.body == b""


def test_v2_without_trailing_slash_is_not_an_error(oci):
    # Clients probe both "/v2" and "/v2/"; either 200 or a redirect to /v2/ is fine, never a 4xx/5xx.
    r = oci.get("/v2")
    assert r.status in (200, 301, 307, 308), r


def test_unknown_route_is_404(oci):
    # "/" is left out: registries commonly answer it as a health check.
    for path in ("/v3/", "/v2/foo/bar/unknownthing", "/v2/foo/blobs", "/v2/foo/manifests"):
        r = oci.get(path)
        assert r.status == 404, (path, r)
