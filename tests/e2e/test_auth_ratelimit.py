"""Failed-login limiting over raw HTTP: failures count per (client address, account), with the real client
address from X-Forwarded-For only behind a trusted proxy; a correct password is never refused because of
failures at other accounts, nor once it has succeeded; Retry-After is the real remaining time; and the
same wrong password sent twice by one client (containerd: the OAuth2 POST, then a GET with Basic) is one
failed attempt."""
import urllib.parse

import pytest

from authenv import Admin, as_user, start
from e2eauth import ADMIN_PASSWORD, basic
from ociclient import Client, assert_error

LIMITS = """
auth:
  service: berth-e2e
  failed_login_limit: 3
  failed_login_window_seconds: 15
"""


def limited(make_registry, tmp_path, extra=""):
    return start(make_registry, tmp_path, config=LIMITS, extra=extra)


def login(reg, user, password, forwarded_for=None):
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else None
    return Client(reg, auth=basic(user, password)).request("GET", "/v2/", headers=headers)


def fail_until_held_off(reg, user, limit=3, forwarded_for=None):
    for i in range(limit):
        assert_error(login(reg, user, f"wrong-{i}", forwarded_for), 401, "UNAUTHORIZED")
    r = login(reg, user, "wrong-last", forwarded_for)
    assert_error(r, 429, "TOOMANYREQUESTS")
    return r


def test_failures_at_other_accounts_never_refuse_a_correct_password(make_registry, tmp_path):
    reg = limited(make_registry, tmp_path)
    r = fail_until_held_off(reg, "mallory")
    # The real remaining time of a 15 s window, not a constant.
    assert 1 <= int(r.header("Retry-After")) <= 15, r.header("Retry-After")
    assert "retry in" in r.json()["errors"][0]["detail"]
    fail_until_held_off(reg, "dev")
    # The admin's password, never verified before (not in the credential cache), is not refused.
    assert login(reg, "admin", ADMIN_PASSWORD).status == 200
    # Nor after a write to the identity store empties the cache.
    Admin(reg).user("carol", "carol-password-1")
    assert login(reg, "carol", "carol-password-1").status == 200
    assert_error(login(reg, "mallory", "still-wrong"), 429, "TOOMANYREQUESTS")


def test_a_password_that_succeeded_is_not_held_off_by_guesses_at_its_account(make_registry, tmp_path):
    reg = limited(make_registry, tmp_path)
    Admin(reg).user("carol", "carol-password-1")
    assert login(reg, "carol", "carol-password-1").status == 200
    Admin(reg).user("dave", "dave-password-1")  # empties the credential cache
    fail_until_held_off(reg, "carol")
    assert login(reg, "carol", "carol-password-1").status == 200
    # A password never seen to succeed waits like any other guess.
    assert_error(login(reg, "carol", "another-guess"), 429, "TOOMANYREQUESTS")


def test_behind_a_trusted_proxy_each_client_address_counts_apart(make_registry, tmp_path):
    reg = limited(make_registry, tmp_path, extra="trust_forwarded_headers: true\n")
    fail_until_held_off(reg, "admin", forwarded_for="203.0.113.9")
    # Everyone shares the proxy's address; the admin elsewhere is not locked out.
    assert login(reg, "admin", ADMIN_PASSWORD, forwarded_for="198.51.100.7").status == 200
    # The proxy appends the address it saw: what the client wrote before it changes nothing.
    r = login(reg, "admin", "another-guess", forwarded_for="192.0.2.1, 203.0.113.9")
    assert_error(r, 429, "TOOMANYREQUESTS")


def test_without_a_trusted_proxy_x_forwarded_for_is_ignored(make_registry, tmp_path):
    reg = limited(make_registry, tmp_path)
    for i in range(3):
        assert_error(login(reg, "mallory", f"wrong-{i}", forwarded_for=f"192.0.2.{i}"), 401, "UNAUTHORIZED")
    assert_error(login(reg, "mallory", "wrong-3", forwarded_for="192.0.2.99"), 429, "TOOMANYREQUESTS")


def test_the_same_wrong_password_sent_twice_is_one_failed_attempt(make_registry, tmp_path):
    reg = limited(make_registry, tmp_path)
    anon = Client(reg, auth=None)

    def oauth2(password):
        form = urllib.parse.urlencode({"grant_type": "password", "username": "admin", "password": password,
                                       "service": "berth-e2e", "client_id": "containerd-client",
                                       "scope": "repository:staging/app:pull"}).encode()
        return anon.post("/token", form, headers={"Content-Type": "application/x-www-form-urlencoded"})

    def basic_get(password):
        return Client(reg, auth=basic("admin", password)).get(
            "/token?service=berth-e2e&scope=repository:staging/app:pull")

    # containerd's way: the OAuth2 POST, then the same credentials as a GET with Basic.
    for password in ("typo-1", "typo-2"):
        assert_error(oauth2(password), 401, "UNAUTHORIZED")
        assert_error(basic_get(password), 401, "UNAUTHORIZED")
    assert_error(oauth2("typo-3"), 401, "UNAUTHORIZED")
    assert_error(basic_get("typo-4"), 429, "TOOMANYREQUESTS")
