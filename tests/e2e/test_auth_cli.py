"""The berth CLI against a running registry: login (credentials kept 0600), whoami, repo create/list/delete,
robot create/list/revoke, and `berth check` both through the API and offline (--config/--data)."""
import json
import os
import stat
import subprocess

import pytest

from authenv import MULTI_ENV, as_user, start
from e2eauth import ADMIN_PASSWORD
from ociclient import Client, assert_error


def berth(env, *args, stdin=None, check=True):
    proc = subprocess.run([os.environ["BERTH_BIN"], *args], input=stdin, capture_output=True, text=True,
                          env=env, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"berth {' '.join(args)} exited {proc.returncode}: {proc.stderr}{proc.stdout}")
    return proc


@pytest.fixture
def cli_env(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    return {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / "xdg")}


def test_login_keeps_credentials_0600_and_whoami(make_registry, tmp_path, cli_env):
    reg = start(make_registry, tmp_path)
    bad = berth(cli_env, "login", reg.url, "-u", "admin", "--password-stdin", stdin="wrong\n", check=False)
    assert bad.returncode != 0 and "invalid username or password" in bad.stderr, bad.stderr
    out = berth(cli_env, "login", reg.url, "-u", "admin", "--password-stdin", stdin=ADMIN_PASSWORD + "\n")
    assert "user:admin" in out.stdout
    path = os.path.join(cli_env["XDG_CONFIG_HOME"], "berth", "credentials.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert ADMIN_PASSWORD not in out.stdout + out.stderr
    who = berth(cli_env, "whoami")
    assert "user:admin (administrator)" in who.stdout, who.stdout


def test_repo_and_robot_lifecycle(make_registry, tmp_path, cli_env):
    reg = start(make_registry, tmp_path)
    berth(cli_env, "login", reg.url, "--password-stdin", stdin=ADMIN_PASSWORD + "\n")
    assert "created" in berth(cli_env, "repo", "create", "production/app").stdout
    assert "already exists" in berth(cli_env, "repo", "create", "production/app").stdout
    assert "production/app" in berth(cli_env, "repo", "list").stdout.split()

    out = berth(cli_env, "robot", "create", "ci", "--description", "pipeline", "--push", "production/*").stdout
    token = out.strip().splitlines()[-1]
    assert token.startswith("berth_"), out
    ci = as_user(reg, "ci", token)
    ci.push_image("production/app", "v1")
    listing = berth(cli_env, "robot", "list").stdout
    assert "ci" in listing and "active" in listing and token not in listing

    berth(cli_env, "robot", "revoke", "ci")
    assert "revoked" in berth(cli_env, "robot", "list").stdout
    assert_error(ci.get("/v2/"), 401, "UNAUTHORIZED")

    berth(cli_env, "repo", "delete", "production/app")
    assert "production/app" not in berth(cli_env, "repo", "list").stdout.split()
    err = berth(cli_env, "repo", "delete", "production/app", check=False)
    assert err.returncode == 1 and "does not exist" in err.stderr


def test_commands_need_login_and_say_so(cli_env):
    err = berth(cli_env, "repo", "list", check=False)
    assert err.returncode == 1 and "berth login" in err.stderr, err.stderr


def test_check_via_api_and_offline(make_registry, tmp_path, cli_env):
    reg = start(make_registry, tmp_path)
    berth(cli_env, "login", reg.url, "--password-stdin", stdin=ADMIN_PASSWORD + "\n")
    token = berth(cli_env, "robot", "create", "deploy").stdout.strip().splitlines()[-1]

    ok = berth(cli_env, "check", "--as", "robot:deploy", "--action", "pull", "--repo", "production/app")
    assert ok.stdout.startswith("allowed: robot:deploy may pull production/app"), ok.stdout
    assert "namespaces.production.grants[0]" in ok.stdout
    no = berth(cli_env, "check", "--as", "robot:deploy", "--action", "push", "--repo", "production/app", check=False)
    assert no.returncode == 3 and no.stdout.startswith("denied: robot:deploy may not push production/app"), no.stdout

    config = reg.config_path
    offline = berth(cli_env, "check", "--config", config, "--data", reg.data_dir, "--as", token,
                    "--action", "pull", "--repo", "production/app")
    assert offline.stdout.startswith("allowed: robot:deploy"), offline.stdout
    offline = berth(cli_env, "check", "--config", config, "--data", reg.data_dir, "--as", "anonymous",
                    "--action", "pull", "--repo", "public/tool")
    assert "public-pull" in offline.stdout
    offline = berth(cli_env, "check", "--config", config, "--data", reg.data_dir, "--as", "robot:ci",
                    "--action", "push", "--repo", "staging/app", check=False)
    assert offline.returncode == 1 and "robot:ci" in offline.stderr  # no such robot in this data directory


def test_check_denies_a_push_to_a_missing_repository_of_an_explicit_namespace(make_registry, tmp_path, cli_env):
    reg = start(make_registry, tmp_path)
    berth(cli_env, "login", reg.url, "--password-stdin", stdin=ADMIN_PASSWORD + "\n")
    berth(cli_env, "robot", "create", "ci")
    config = reg.config_path
    online = ["check", "--as", "robot:ci", "--action", "push", "--repo", "production/mindmirror"]
    offline = online + ["--config", config, "--data", reg.data_dir]
    for args in (online, offline):
        no = berth(cli_env, *args, check=False)
        assert no.returncode == 3, (args, no.stdout, no.stderr)
        assert no.stdout.startswith("denied: robot:ci may not push production/mindmirror"), no.stdout
        assert "repository production/mindmirror does not exist" in no.stdout, no.stdout
        assert "berth repo create production/mindmirror" in no.stdout, no.stdout
    # Pulling is not pushing; and once the repository exists the push is allowed.
    assert berth(cli_env, "check", "--as", "robot:ci", "--action", "pull", "--repo",
                 "production/mindmirror").returncode == 0
    berth(cli_env, "repo", "create", "production/mindmirror")
    for args in (online, offline):
        ok = berth(cli_env, *args)
        assert ok.stdout.startswith("allowed: robot:ci may push production/mindmirror"), ok.stdout
    # On-push namespaces never needed it.
    assert berth(cli_env, "check", "--as", "robot:ci", "--action", "push", "--repo", "staging/new").returncode == 0


def test_hash_password_makes_config_users(make_registry, tmp_path, cli_env):
    hashed = berth(cli_env, "hash-password", stdin="config-user-password\n").stdout.strip()
    assert hashed.startswith("$argon2id$")
    reg = start(make_registry, tmp_path, extra=f"""
users:
  - name: alice
    password_hash: "{hashed}"
""")
    alice = Client(reg, auth=None)
    from e2eauth import basic
    assert Client(reg, auth=basic("alice", "config-user-password")).get("/v2/").status == 200
    assert alice.get("/v2/").status == 401
    # With users in the config, no admin is created.
    assert not os.path.exists(os.path.join(reg.data_dir, "admin-password"))
    assert Client(reg).get("/v2/").status == 401
