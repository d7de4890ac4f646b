"""The route table and the error model through the HTTP API: every endpoint's refusal has its own
code and status (never an OCI code borrowed for another meaning), integer path parameters parse
strictly, and what no endpoint answers is 404 NOT_FOUND or 405."""
from authenv import Admin, anonymous
from ociclient import assert_error, oci  # noqa: F401 (fixture)


def test_a_grant_id_with_trailing_characters_is_400_and_deletes_nothing(registry):
    admin = Admin(registry)
    ids = admin.call("POST", "grants", {"subject": "user:nobody", "actions": ["pull"],
                                        "repositories": ["team/*"]}, expect=201).json()["ids"]
    for bad in (f"{ids[0]}abc", f"+{ids[0]}", "0x1", "-1", "0", "99999999999999999999999"):
        assert_error(admin.call("DELETE", f"grants/{bad}"), 400, "INVALID_ARGUMENT")
    stored = [g for g in admin.call("GET", "grants", expect=200).json()["grants"] if g.get("id") == ids[0]]
    assert stored, "the grant was deleted by a malformed id"
    admin.call("DELETE", f"grants/{ids[0]}", expect=200)
    assert_error(admin.call("DELETE", f"grants/{ids[0]}"), 404, "NOT_FOUND")


def test_oversized_admin_and_token_bodies_are_413_payload_too_large(registry, oci):
    big = b'{"name":"' + b"a" * (70 * 1024) + b'"}'
    r = oci.request("POST", "/api/v1/users", body=big, headers={"Content-Type": "application/json"})
    assert_error(r, 413, "PAYLOAD_TOO_LARGE")
    r = anonymous(registry).request("POST", "/token", body=b"grant_type=password&x=" + b"a" * (70 * 1024),
                                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_error(r, 413, "PAYLOAD_TOO_LARGE")


def test_a_manifest_past_the_limit_is_still_manifest_invalid_413(oci):
    r = oci.request("PUT", "/v2/team/app/manifests/big", body=b"{" + b" " * (5 * 1024 * 1024) + b"}",
                    headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert_error(r, 413, "MANIFEST_INVALID")


def test_admin_refusals_have_their_own_codes(registry):
    admin = Admin(registry)
    admin.robot("twice")
    assert_error(admin.call("POST", "robots", {"name": "twice"}), 409, "ALREADY_EXISTS")
    assert_error(admin.call("POST", "robots", {"name": "Bad Name"}), 400, "INVALID_ARGUMENT")
    assert_error(admin.call("DELETE", "users/nobody"), 404, "NOT_FOUND")
    assert_error(admin.call("DELETE", "robots/nobody"), 404, "NOT_FOUND")
    assert_error(admin.call("GET", "check?action=fly&repository=a"), 400, "INVALID_ARGUMENT")
    r = admin.client.request("POST", "/api/v1/users", body=b"[1]", headers={"Content-Type": "application/json"})
    assert_error(r, 400, "INVALID_ARGUMENT")


def test_unknown_endpoints_are_404_and_unknown_methods_405(registry, oci):
    assert_error(oci.get("/v2/team/app/nothing/here"), 404, "NOT_FOUND")
    assert_error(oci.get("/api/v1/nothing"), 404, "NOT_FOUND")
    assert_error(oci.get("/api/v1/grants/1"), 405, "UNSUPPORTED")
    assert_error(oci.post("/v2/_catalog"), 405, "UNSUPPORTED")
    assert_error(anonymous(registry).get("/token/other"), 404, "NOT_FOUND")
    for path in ("/", "/v2x/", "/health/unknown", "/api/v2/users"):
        assert_error(oci.get(path), 404, "NOT_FOUND")
    # Without credentials, an unknown /v2 or admin path is challenged first, as every route is.
    assert_error(anonymous(registry).get("/v2/team/app/nothing/here"), 401, "UNAUTHORIZED")
    assert_error(anonymous(registry).get("/api/v1/nothing"), 401, "UNAUTHORIZED")
