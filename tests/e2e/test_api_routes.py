"""The route table through the HTTP API: what no endpoint answers is 404 NOT_FOUND (after the
credentials the path's area asks for), a method a route does not answer is 405, and paths outside
/v2, /token and /api/v1 are not Berth's."""
from authenv import anonymous
from ociclient import assert_error, oci  # noqa: F401 (fixture)


def test_unknown_endpoints_are_404_and_unknown_methods_405(registry, oci):
    assert_error(oci.get("/v2/team/app/nothing/here"), 404, "NOT_FOUND")
    assert_error(oci.get("/api/v1/nothing"), 404, "NOT_FOUND")
    assert_error(oci.get("/api/v1/whoami/x"), 404, "NOT_FOUND")
    assert_error(oci.get("/api/v1/grants/1"), 405, "UNSUPPORTED")
    assert_error(oci.post("/v2/_catalog"), 405, "UNSUPPORTED")
    assert_error(oci.request("PATCH", "/v2/team/app/manifests/v1", body=b"x"), 405, "UNSUPPORTED")
    assert_error(anonymous(registry).get("/token/other"), 404, "NOT_FOUND")
    assert_error(anonymous(registry).request("DELETE", "/token"), 405, "UNSUPPORTED")
    for path in ("/", "/v2x/", "/health/unknown", "/api/v2/users", "/tokens"):
        assert_error(oci.get(path), 404, "NOT_FOUND")


def test_without_credentials_unknown_v2_and_admin_paths_are_challenged_first(registry):
    r = anonymous(registry).get("/v2/team/app/nothing/here")
    assert_error(r, 401, "UNAUTHORIZED")
    assert r.header("WWW-Authenticate").startswith("Bearer ")
    r = anonymous(registry).get("/api/v1/nothing")
    assert_error(r, 401, "UNAUTHORIZED")
    assert r.header("WWW-Authenticate").startswith("Basic ")
