"""What the admin API and the token endpoint answer when a request is wrong: each refusal is a code of
the one error table (core/error.cc) with that code's status, never a per-call status on a borrowed
OCI code."""
import json

from ociclient import Client, assert_error


def admin_call(registry, method, path, doc=None, body=None):
    if doc is not None:
        body = json.dumps(doc).encode()
    return Client(registry).request(method, "/api/v1/" + path, body=body,
                                    headers={"Content-Type": "application/json"} if body is not None else None)


def stored_grant_ids(registry):
    r = admin_call(registry, "GET", "grants")
    assert r.status == 200, r
    return [g["id"] for g in r.json()["grants"] if "id" in g]


def test_a_grant_id_must_be_a_whole_number(registry):
    r = admin_call(registry, "POST", "grants", {"subject": "user:dev", "actions": ["pull"], "repositories": ["a/*"]})
    assert r.status == 201, r
    (grant,) = r.json()["ids"]
    for bad in (f"{grant}abc", f"{grant}.0", f"+{grant}", f"%20{grant}", f"0x{grant}", "-1", "99999999999999999999"):
        found = assert_error(admin_call(registry, "DELETE", f"grants/{bad}"), 400, "INVALID_ARGUMENT")
        assert grant in stored_grant_ids(registry), f"DELETE grants/{bad} removed grant {grant}"
        assert found == ["INVALID_ARGUMENT"]
    assert admin_call(registry, "DELETE", f"grants/{grant}").status == 200
    assert grant not in stored_grant_ids(registry)
    assert_error(admin_call(registry, "DELETE", f"grants/{grant}"), 404, "NOT_FOUND")


def test_an_oversized_admin_body_is_payload_too_large_not_a_manifest(registry):
    r = admin_call(registry, "POST", "users", body=b'{"name":"big","password":"' + b"x" * (70 * 1024) + b'"}')
    assert_error(r, 413, "PAYLOAD_TOO_LARGE")
    assert b"manifest" not in r.body.lower(), r.body


def test_an_oversized_token_form_is_payload_too_large_not_a_manifest(registry):
    r = Client(registry).request("POST", "/token", body=b"grant_type=password&password=" + b"x" * (70 * 1024),
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_error(r, 413, "PAYLOAD_TOO_LARGE")
    assert b"manifest" not in r.body.lower(), r.body


def test_admin_refusals_carry_their_own_codes(registry):
    assert_error(admin_call(registry, "POST", "users", {"name": "Bad Name", "password": "long enough"}),
                 400, "INVALID_ARGUMENT")
    assert_error(admin_call(registry, "POST", "users", {"name": "short", "password": "x"}), 400, "INVALID_ARGUMENT")
    assert_error(admin_call(registry, "POST", "users", body=b"[1, 2]"), 400, "INVALID_ARGUMENT")
    assert_error(admin_call(registry, "DELETE", "users/nobody"), 404, "NOT_FOUND")
    assert_error(admin_call(registry, "POST", "grants", {"subject": "user:dev", "actions": ["fly"],
                                                         "repositories": ["a/*"]}), 400, "INVALID_ARGUMENT")
    assert_error(admin_call(registry, "POST", "grants", {"actions": ["pull"], "repositories": ["a/*"]}),
                 400, "INVALID_ARGUMENT")
    assert_error(admin_call(registry, "GET", "check?action=fly&repository=a/b"), 400, "INVALID_ARGUMENT")
    assert_error(admin_call(registry, "GET", "nothing-here"), 404, "NOT_FOUND")

    assert admin_call(registry, "POST", "robots", {"name": "ci"}).status == 201
    assert_error(admin_call(registry, "POST", "robots", {"name": "ci"}), 409, "ALREADY_EXISTS")
    assert admin_call(registry, "DELETE", "robots/ci").status == 200
    assert_error(admin_call(registry, "DELETE", "robots/ci"), 404, "NOT_FOUND")
    assert_error(admin_call(registry, "POST", "robots", {"name": "ci"}), 409, "ALREADY_EXISTS")


def test_a_robot_description_is_one_line_of_text(registry):
    for bad in ("nul\u0000inside", "two\nlines", "x" * 1025):
        r = admin_call(registry, "POST", "robots", {"name": "ci", "description": bad})
        assert_error(r, 400, "INVALID_ARGUMENT")
        assert "description" in r.json()["errors"][0]["message"]
    r = admin_call(registry, "POST", "robots", {"name": "ci", "description": "builds of main — pushes to production/*"})
    assert r.status == 201, r
    (robot,) = [x for x in admin_call(registry, "GET", "robots").json()["robots"] if x["name"] == "ci"]
    assert robot["description"] == "builds of main — pushes to production/*"
