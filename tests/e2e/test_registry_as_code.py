"""Registry as code: `berth plan`, `berth apply`, `berth export` and `berth check -f` against a running
registry, through the admin API (issue #13)."""
import os
import stat
import subprocess
import textwrap

import pytest

from authenv import Admin, anonymous, as_user, start
from e2eauth import ADMIN_PASSWORD
from ociclient import Client, assert_error
from test_auth_cli import berth, cli_env  # noqa: F401 (a fixture)

REGISTRY_YAML = """\
namespaces:
  production:
    creation: explicit
repositories:
  - production/gateway
  - production/mindmirror
robots:
  - name: ci-production
    description: builds of main push here
    push: ["production/*"]
  - name: deployer
    pull: ["production/*"]
    expires_in_days: 365
grants:
  - subject: user:alice
    actions: [pull, push]
    repositories: ["staging/*"]
"""

FIRST_PLAN = [
    "+ repository production/gateway",
    "+ repository production/mindmirror",
    "+ robot ci-production: push production/*",
    "+ robot deployer: pull production/*",
    "+ grant user:alice pull,push on staging/*",
]


def changes(out):
    """The change lines of a plan's output (or of the list an apply prints when it stops)."""
    return [line.strip() for line in out.splitlines() if line.strip()[:2] in ("+ ", "~ ", "- ")]


def done(out):
    """The changes an apply made, as it reports them."""
    return [line.removesuffix(": done") for line in out.splitlines() if line.endswith(": done")]


def write(tmp_path, text, name="registry.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def logged_in(make_registry, tmp_path, cli_env, user="admin", password=ADMIN_PASSWORD):
    reg = start(make_registry, tmp_path)
    admin = Admin(reg)
    admin.user("alice", "alice-password")
    berth(cli_env, "login", reg.url, "-u", user, "--password-stdin", stdin=password + "\n")
    return reg, admin


def robots(admin):
    return {r["name"]: r for r in admin.call("GET", "robots", expect=200).json()["robots"]}


def repositories(admin):
    return [r["name"] for r in admin.call("GET", "repositories", expect=200).json()["repositories"]]


def test_plan_apply_plan_edit_prune(make_registry, tmp_path, cli_env):
    reg, admin = logged_in(make_registry, tmp_path, cli_env)
    path = write(tmp_path, REGISTRY_YAML)

    plan = berth(cli_env, "plan", "-f", path, check=False)
    assert plan.returncode == 2, plan
    assert changes(plan.stdout) == FIRST_PLAN, plan.stdout
    assert "Plan: 5 to add, 0 to change, 0 to remove." in plan.stdout
    assert repositories(admin) == []  # plan changed nothing

    refused = berth(cli_env, "apply", "-f", path, check=False)  # not a terminal, no --yes
    assert refused.returncode == 1 and "--yes" in refused.stderr, refused
    assert repositories(admin) == []

    tokens = tmp_path / "tokens"
    out = berth(cli_env, "apply", "-f", path, "--yes", "--token-dir", str(tokens))
    assert changes(out.stdout.split("\n\n")[0]) == FIRST_PLAN, out.stdout  # the plan, then what was done
    assert done(out.stdout) == FIRST_PLAN, out.stdout
    assert sorted(os.listdir(tokens)) == ["ci-production", "deployer"]
    for name in os.listdir(tokens):
        assert stat.S_IMODE(os.stat(tokens / name).st_mode) == 0o600
    ci_token = (tokens / "ci-production").read_text().strip()
    assert ci_token.startswith("berth_") and ci_token not in out.stdout and str(tokens / "ci-production") in out.stdout
    ci = as_user(reg, "ci-production", ci_token)
    ci.push_image("production/gateway", "v1")
    assert_error(ci.get("/v2/staging/web/tags/list"), 403, "DENIED")
    assert sorted(repositories(admin)) == ["production/gateway", "production/mindmirror"]
    assert robots(admin)["deployer"]["expires_at"] is not None

    again = berth(cli_env, "plan", "-f", path)
    assert again.returncode == 0 and "No changes" in again.stdout, again
    assert berth(cli_env, "apply", "-f", path, "--yes").stdout.strip() == "no changes"

    # An edit: the plan shows exactly it; a dropped repository is kept without --prune.
    edited = REGISTRY_YAML.replace('pull: ["production/*"]', 'pull: ["production/*", "staging/*"]') \
                          .replace("  - production/mindmirror\n", "")
    write(tmp_path, edited)
    plan = berth(cli_env, "plan", "-f", path, check=False)
    assert plan.returncode == 2
    assert changes(plan.stdout) == ["~ robot deployer: pull production/* → production/*, staging/*"], plan.stdout
    berth(cli_env, "apply", "-f", path, "--yes")
    assert berth(cli_env, "plan", "-f", path).returncode == 0

    # --prune removes what the file dropped, and nothing else: not the admin's own grant either.
    plan = berth(cli_env, "plan", "-f", path, "--prune", check=False)
    assert plan.returncode == 2
    assert changes(plan.stdout) == ["- repository production/mindmirror (with its manifests and tags)"], plan.stdout
    assert "kept user:admin's grants admin on *" in plan.stderr
    berth(cli_env, "apply", "-f", path, "--prune", "--yes")
    assert repositories(admin) == ["production/gateway"]
    assert {n for n, r in robots(admin).items() if r["revoked_at"] is None} == {"ci-production", "deployer"}
    assert berth(cli_env, "plan", "-f", path, "--prune").returncode == 0
    assert berth(cli_env, "whoami").stdout.startswith("user:admin (administrator)")
    ci.push_image("production/gateway", "v2")


def test_tokens_are_printed_once_without_a_token_dir(make_registry, tmp_path, cli_env):
    reg, admin = logged_in(make_registry, tmp_path, cli_env)
    path = write(tmp_path, """\
        robots:
          - name: deployer
            pull: ["production/*"]
        """)
    out = berth(cli_env, "apply", "-f", path, "--yes").stdout
    token = out.split("token of robot deployer (shown once; log in with username deployer): ")[1].split()[0]
    assert as_user(reg, "deployer", token).get("/v2/production/x/tags/list").status == 404  # allowed, no such repo


def test_the_file_is_validated_strictly_with_lines(make_registry, tmp_path, cli_env):
    reg, admin = logged_in(make_registry, tmp_path, cli_env)
    path = write(tmp_path, """\
        repositories:
          - production/Gateway
        robots:
          - name: lonely
          - name: ci
            push: ["production/*"]
            pul: ["x/*"]
        """)
    bad = berth(cli_env, "plan", "-f", path, check=False)
    assert bad.returncode == 1
    assert f"{path}:2: `production/Gateway` is not a repository name" in bad.stderr, bad.stderr
    assert f"{path}:7: unknown key `robots[].pul`" in bad.stderr, bad.stderr

    path = write(tmp_path, """\
        robots:
          - name: lonely
        grants:
          - subject: user:nobody
            actions: [pull]
            repositories: ["staging/*"]
          - subject: user:alice
            actions: [pull]
            repositories: ["staging/*"]
        """)
    bad = berth(cli_env, "apply", "-f", path, "--yes", check=False)
    assert bad.returncode == 1
    assert f"{path}:2: robot lonely has no grants" in bad.stderr, bad.stderr
    assert f"{path}:4: grant to user:nobody: no such user" in bad.stderr, bad.stderr
    assert "alice" not in bad.stderr  # alice exists
    assert robots(admin) == {}


def test_the_servers_config_decides_namespaces(make_registry, tmp_path, cli_env):
    reg, admin = logged_in(make_registry, tmp_path, cli_env)
    path = write(tmp_path, """\
        namespaces:
          production:
            creation: on-push
            immutable_tags: ["v*"]
          qa: {}
        repositories:
          - production/gateway
        """)
    for command in ("plan", "apply"):
        bad = berth(cli_env, command, "-f", path, "--yes" if command == "apply" else "--prune", check=False)
        assert bad.returncode == 1, bad
        assert (f"conflict: {path}:2: namespace production: creation is on-push in the file but explicit on the "
                "server") in bad.stderr, bad.stderr
        assert "namespace qa" not in bad.stderr  # not the config's: the API makes it
        assert (f"conflict: {path}:2: namespace production: immutable_tags is [v*] in the file but [] on the "
                "server") in bad.stderr, bad.stderr
    assert repositories(admin) == []


def test_a_namespace_of_the_file_applies_at_once_and_the_configs_stay_the_configs(make_registry, tmp_path, cli_env):
    """A namespace the server's config does not declare is made through the admin API by apply; pushes
    follow its rules at once (no restart). The config's namespace cannot be changed through the API.
    A robot's description changes in place and its token keeps working."""
    reg, admin = logged_in(make_registry, tmp_path, cli_env)
    text = """\
        namespaces:
          qa:
            visibility: public-pull
            creation: explicit
            immutable_tags: ["v*"]
        repositories:
          - qa/web
        robots:
          - name: ci
            description: first words
            push: ["qa/*"]
        """
    path = write(tmp_path, text)
    out = berth(cli_env, "apply", "-f", path, "--yes").stdout
    assert done(out)[0] == '+ namespace qa {"creation":"explicit","immutable_tags":["v*"],' \
                           '"visibility":"public-pull"}', out
    token = out.split("token of robot ci (shown once; log in with username ci): ")[1].split()[0]
    assert berth(cli_env, "plan", "-f", path).returncode == 0
    listed = {n["name"]: n for n in admin.call("GET", "namespaces", expect=200).json()["namespaces"]}
    assert listed["qa"]["source"] == "api" and listed["production"]["source"] == "config", listed

    ci = as_user(reg, "ci", token)
    r = ci.post("/v2/qa/other/blobs/uploads/", b"")  # explicit creation
    assert_error(r, 404, "NAME_UNKNOWN")
    ci.push_image("qa/web", "v1")
    assert anonymous(reg).get("/v2/qa/web/manifests/v1").status == 200  # public-pull
    other = ci.push_image("qa/web", "latest")
    moved = ci.put_manifest("qa/web", "v1", other.data)
    assert_error(moved, 403, "DENIED")
    assert "(immutable_tags of namespace qa (admin API): v*)" in moved.json()["errors"][0]["message"]
    checks = write(tmp_path, "checks:\n  - repository: qa/web\n    tag_free: v1\n  - repository: qa/web\n"
                             "    tag_free: latest\n", "checks.yaml")
    taken = berth(cli_env, "check", "-f", checks, check=False)
    assert taken.returncode == 3, taken
    assert taken.stdout.splitlines()[:2] == [
        "FAIL  tag v1 is free in qa/web: tag v1 already exists in qa/web and is immutable: tag qa/web:v1 is "
        "immutable (immutable_tags of namespace qa (admin API): v*); a push of another digest is refused, "
        f"release under a new tag ({checks}:2)",
        f"FAIL  tag latest is free in qa/web: tag latest already exists in qa/web: a push of it would replace it; "
        f"release under a new tag ({checks}:4)"], taken.stdout

    refused = admin.call("PUT", "namespaces/production", {"creation": "on-push"}, expect=409)
    assert "declared in the server's config (namespaces.production)" in refused.json()["errors"][0]["message"]
    busy = admin.call("DELETE", "namespaces/qa", expect=409)
    assert "still holds repositories (qa/web" in busy.json()["errors"][0]["message"], busy.json()

    write(tmp_path, text.replace("first words", "second words").replace("public-pull", "private"))
    plan = berth(cli_env, "plan", "-f", path, check=False)
    assert changes(plan.stdout) == ["~ namespace qa: visibility public-pull → private",
                                    '~ robot ci: description "first words" → "second words"'], plan.stdout
    assert "the server's config is authoritative for those it declares" in plan.stdout
    berth(cli_env, "apply", "-f", path, "--yes")
    assert robots(admin)["ci"]["description"] == "second words"
    assert anonymous(reg).get("/v2/qa/web/manifests/v1").status == 401  # private at once
    assert ci.get("/v2/qa/web/manifests/v1").status == 200  # the same token
    assert berth(cli_env, "plan", "-f", path).returncode == 0

    # PATCH replaces the grants of the actions it names, and leaves the rest (and the token) alone.
    admin.call("PATCH", "robots/ci", {"push": ["qa/other"], "expires_at": None}, expect=200)
    held = [g["repositories"] for g in admin.call("GET", "grants", expect=200).json()["grants"]
            if g["subject"] == "robot:ci" and "id" in g]  # stored ones, not the config's
    assert held == [["qa/other"]], held
    assert ci.post("/v2/qa/web/blobs/uploads/", b"").status == 403
    assert admin.call("PATCH", "robots/nobody", {"description": "x"}, expect=404)


def normalised_export(cli_env):
    out = berth(cli_env, "export").stdout
    return "".join(line + "\n" for line in out.splitlines() if not line.startswith("#"))


def test_export_then_apply_on_a_fresh_registry_exports_the_same(make_registry, tmp_path, cli_env):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    reg_a, admin_a = logged_in(make_registry, tmp_path / "a", cli_env)
    berth(cli_env, "apply", "-f", write(tmp_path, REGISTRY_YAML), "--yes")
    exported = normalised_export(cli_env)
    assert "production/mindmirror" in exported and "ci-production" in exported and "user:alice" in exported
    assert "user:admin" in exported  # the first-start admin's grant is state like the rest
    path = write(tmp_path, exported, "exported.yaml")
    assert berth(cli_env, "plan", "-f", path, "--prune").returncode == 0  # the export is what A holds

    reg_b, admin_b = logged_in(make_registry, tmp_path / "b", cli_env)
    plan = berth(cli_env, "plan", "-f", path, check=False)
    assert plan.returncode == 2
    berth(cli_env, "apply", "-f", path, "--yes")
    assert normalised_export(cli_env) == exported


def test_a_failure_midway_says_what_was_applied_and_a_rerun_converges(make_registry, tmp_path, cli_env):
    """The applying identity loses its rights in the middle of an apply: apply waits at the token file of
    the first new robot (a FIFO nobody reads yet), the identity is deleted, then the FIFO is read."""
    reg, admin = logged_in(make_registry, tmp_path, cli_env)
    admin.user("ops", "ops-password", actions=["admin"], repositories=["*"])
    berth(cli_env, "login", reg.url, "-u", "ops", "--password-stdin", stdin="ops-password\n")
    path = write(tmp_path, REGISTRY_YAML)
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    os.mkfifo(tokens / "ci-production")
    proc = subprocess.Popen([os.environ["BERTH_BIN"], "apply", "-f", path, "--yes", "--token-dir", str(tokens)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env)
    # Apply says when the robot exists and it is about to write the token (a FIFO: it waits for a reader).
    for line in proc.stdout:
        if line.startswith("  robot ci-production created"):
            break
    else:
        pytest.fail(f"apply ended early: {proc.communicate()}")
    admin.call("DELETE", "users/ops", expect=200)
    with open(tokens / "ci-production") as fifo:
        token = fifo.read().strip()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, (out, err)
    assert "ci-production" in robots(admin)
    assert token.startswith("berth_")
    assert "berth: apply stopped at `+ robot ci-production: push production/*`" in err, err
    assert "(partly made: 1 of its 2 API calls)" in err
    applied = err.split("applied (2):\n")[1].split("not applied")[0]
    assert changes(applied) == FIRST_PLAN[:2], err
    not_applied = err.split("not applied (3):\n")[1]
    assert changes(not_applied) == FIRST_PLAN[2:], err

    # The rerun (as an administrator) starts from what the registry holds: the robot exists, its grant does not.
    berth(cli_env, "login", reg.url, "-u", "admin", "--password-stdin", stdin=ADMIN_PASSWORD + "\n")
    plan = berth(cli_env, "plan", "-f", path, check=False)
    assert changes(plan.stdout) == ["~ robot ci-production: push (none) → production/*"] + FIRST_PLAN[3:], plan.stdout
    berth(cli_env, "apply", "-f", path, "--yes")
    assert berth(cli_env, "plan", "-f", path).returncode == 0
    as_user(reg, "ci-production", token).push_image("production/gateway", "v1")


SEED_CHECKS = """\
checks:
  - name: CI may push the gateway
    subject: robot:ci
    action: push
    repository: production/gateway
  - repository: production/gateway
    exists: true
  - repository: production/gateway
    tag_free: v1.2.0
  - token_env: CI_OIDC_TOKEN
    action: push
    repository: production/gateway
  - issuer: github
    claims: {repository: acme/shop, ref: refs/heads/main, sub: "repo:acme/shop:ref:refs/heads/main"}
    action: push
    repository: production/gateway
  - issuer: github
    claims: {repository: acme/shop, ref: refs/heads/develop, sub: "repo:acme/shop:ref:refs/heads/develop"}
    action: push
    repository: production/gateway
"""


def test_seed_story_a_deploy_whose_repository_was_never_created(make_registry, tmp_path, cli_env):
    """production is `creation: explicit`: the CI push fails with NAME_UNKNOWN and the hint until the
    repository is added to the registry file and applied; `berth check -f` shows the prerequisite
    failing, then passing. The OIDC identity of a build of main is checked through its own token."""
    from oidcenv import Issuer, federation_config
    issuer = Issuer(tmp_path)
    reg = start(make_registry, tmp_path, extra=federation_config(issuer))
    berth(cli_env, "login", reg.url, "--password-stdin", stdin=ADMIN_PASSWORD + "\n")
    path = write(tmp_path, """\
        namespaces:
          production:
            creation: explicit
        robots:
          - name: ci
            push: ["production/*"]
        """)
    out = berth(cli_env, "apply", "-f", path, "--yes").stdout
    token = out.split("token of robot ci (shown once; log in with username ci): ")[1].split()[0]
    checks = write(tmp_path, SEED_CHECKS, "checks.yaml")
    env = {**cli_env, "CI_OIDC_TOKEN": issuer.token("refs/heads/main")}

    before = berth(env, "check", "-f", checks, "--config", reg.config_path, check=False)
    assert before.returncode == 3, before
    lines = before.stdout.splitlines()
    assert lines[0].startswith("FAIL  CI may push the gateway (robot:ci may push production/gateway): "), lines
    assert "repository production/gateway does not exist" in lines[0] and f"({checks}:2)" in lines[0], lines
    assert lines[1].startswith("FAIL  repository production/gateway exists: repository production/gateway does not "
                               "exist"), lines
    assert lines[2] == "ok    tag v1.2.0 is free in production/gateway", lines
    assert lines[3].startswith("FAIL  $CI_OIDC_TOKEN may push production/gateway"), lines
    main = "oidc of github with ref=refs/heads/main repository=acme/shop sub=repo:acme/shop:ref:refs/heads/main"
    develop = ("oidc of github with ref=refs/heads/develop repository=acme/shop "
               "sub=repo:acme/shop:ref:refs/heads/develop")
    assert lines[4].startswith(f"FAIL  {main} may push production/gateway: repository production/gateway does not "
                               "exist"), lines
    assert lines[5].startswith(f"FAIL  {develop} may push production/gateway: "), lines
    assert "rules matched: develop" in lines[5], lines
    assert lines[6] == "5 of 6 checks failed", lines
    no = berth(env, "check", "--repo", "production/gateway", "--exists", check=False)
    assert no.returncode == 3 and "does not exist" in no.stdout, no

    ci = as_user(reg, "ci", token)
    r = ci.post("/v2/production/gateway/blobs/uploads/", b"")
    assert_error(r, 404, "NAME_UNKNOWN")
    assert "berth repo create production/gateway" in r.json()["errors"][0]["message"], r.json()

    write(tmp_path, open(path).read() + "repositories:\n  - production/gateway\n")
    plan = berth(cli_env, "plan", "-f", path, check=False)
    assert plan.returncode == 2 and changes(plan.stdout) == ["+ repository production/gateway"], plan.stdout
    berth(cli_env, "apply", "-f", path, "--yes")

    after = berth(env, "check", "-f", checks, "--config", reg.config_path, check=False)
    assert after.returncode == 3
    assert after.stdout.splitlines()[:-2] == [
        "ok    CI may push the gateway (robot:ci may push production/gateway)",
        "ok    repository production/gateway exists",
        "ok    tag v1.2.0 is free in production/gateway",
        "ok    $CI_OIDC_TOKEN may push production/gateway",
        f"ok    {main} may push production/gateway",
    ], after.stdout
    assert after.stdout.splitlines()[-2].startswith(f"FAIL  {develop} may push"), after.stdout  # still refused
    assert after.stdout.splitlines()[-1] == "1 of 6 checks failed"
    online = berth(env, "check", "-f", checks, check=False)  # the checks by claims asked of the registry
    assert online.stdout == after.stdout, online.stdout
    assert berth(env, "check", "--repo", "production/gateway", "--exists").returncode == 0
    ci.push_image("production/gateway", "v1.2.0")

    # Once released, the tag is no longer free: the preflight of a second release of v1.2.0 fails.
    again = berth(env, "check", "-f", checks, "--config", reg.config_path, check=False)
    assert again.returncode == 3
    assert "FAIL  tag v1.2.0 is free in production/gateway: tag v1.2.0 already exists" in again.stdout, again.stdout


def test_a_check_by_claims_asks_the_registry_which_knows_its_api_namespaces(make_registry, tmp_path, cli_env):
    """The config declares no namespace: production becomes `creation: explicit` through the admin API.
    The registry's answer for a build of main changes with it; the offline answer from the config
    cannot see it."""
    from oidcenv import Issuer, federation_config
    issuer = Issuer(tmp_path)
    reg = start(make_registry, tmp_path, config="auth:\n  service: berth-e2e\n", extra=federation_config(issuer))
    berth(cli_env, "login", reg.url, "--password-stdin", stdin=ADMIN_PASSWORD + "\n")
    checks = write(tmp_path, """\
        checks:
          - issuer: github
            claims: {repository: acme/shop, ref: refs/heads/main, sub: "repo:acme/shop:ref:refs/heads/main"}
            action: push
            repository: production/gateway
        """, "checks.yaml")
    assert berth(cli_env, "check", "-f", checks).stdout.splitlines()[-1] == "1 checks passed"

    path = write(tmp_path, """\
        namespaces:
          production:
            creation: explicit
        """)
    berth(cli_env, "apply", "-f", path, "--yes")
    online = berth(cli_env, "check", "-f", checks, check=False)
    assert online.returncode == 3, online
    assert "berth repo create production/gateway" in online.stdout.splitlines()[0], online.stdout
    offline = berth(cli_env, "check", "-f", checks, "--config", reg.config_path)
    assert offline.stdout.splitlines()[-1] == "1 checks passed"

    # Bad questions are the registry's clear errors.
    unknown = write(tmp_path, """\
        checks:
          - issuer: gitlab
            claims: {sub: x}
            action: push
            repository: production/gateway
        """, "unknown.yaml")
    out = berth(cli_env, "check", "-f", unknown, check=False)
    assert out.returncode == 3 and "gitlab" in out.stdout, out.stdout


def test_the_check_file_is_validated_with_lines(make_registry, tmp_path, cli_env):
    reg, admin = logged_in(make_registry, tmp_path, cli_env)
    checks = write(tmp_path, """\
        checks:
          - repository: production/gateway
            exist: true
        """, "checks.yaml")
    bad = berth(cli_env, "check", "-f", checks, check=False)
    assert bad.returncode == 1 and f"{checks}:3: unknown key `checks[].exist`" in bad.stderr, bad


def test_apply_at_a_terminal_asks_first(make_registry, tmp_path, cli_env):
    """At a terminal, apply shows the plan and goes ahead only on `yes`."""
    import pty
    reg, admin = logged_in(make_registry, tmp_path, cli_env)
    path = write(tmp_path, "repositories:\n  - production/gateway\n")

    def at_terminal(answer):
        leader, follower = pty.openpty()
        proc = subprocess.Popen([os.environ["BERTH_BIN"], "apply", "-f", path], stdin=follower, stdout=follower,
                                stderr=follower, env=cli_env)
        os.close(follower)
        seen = b""
        while b"Only `yes` goes ahead: " not in seen:
            chunk = os.read(leader, 4096)
            assert chunk, seen
            seen += chunk
        os.write(leader, answer + b"\n")
        try:
            while chunk := os.read(leader, 4096):
                seen += chunk
        except OSError:  # EIO: the terminal's last writer is gone
            pass
        os.close(leader)
        return proc.wait(timeout=60), seen.decode()

    code, out = at_terminal(b"y")
    assert code == 1 and "+ repository production/gateway" in out and "not applied" in out, out
    assert repositories(admin) == []
    code, out = at_terminal(b"yes")
    assert code == 0 and "+ repository production/gateway: done" in out, out
    assert repositories(admin) == ["production/gateway"]


RETENTION_YAML = """\
repositories:
  - development/app
  - staging/app
retention:
  - repositories: ["development/*"]
    keep_last: 2
    protect: ["v*"]
"""


def preview(admin):
    """What a retention run would delete now: tags by repository."""
    answer = admin.call("POST", "retention/preview", expect=200).json()
    return {r["repository"]: sorted(t["tag"] for t in r["tags"]) for r in answer["repositories"]}


def retention_rules(admin):
    return admin.call("GET", "retention/rules", expect=200).json()["rules"]


def test_retention_rules_are_applied_edited_pruned_and_exported(make_registry, tmp_path, cli_env):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    reg, admin = logged_in(make_registry, tmp_path / "a", cli_env)
    oci = Client(reg)
    for tag in ("v1", "t1", "t2", "t3"):  # oldest first
        oci.push_image("development/app", tag)
    oci.push_image("staging/app", "old")
    assert preview(admin) == {}  # no rule yet

    path = write(tmp_path, RETENTION_YAML)
    plan = berth(cli_env, "plan", "-f", path, check=False)
    assert plan.returncode == 2, plan
    assert changes(plan.stdout) == ["+ retention rule development/*: keep_last 2, protect [v*]"]
    berth(cli_env, "apply", "-f", path, "--yes")
    assert retention_rules(admin) == [
        {"repositories": ["development/*"], "keep_last": 2, "protect": ["v*"], "source": "api"}]
    # keep_last 2 keeps t3 and t2, protect keeps v1; staging/* has no rule.
    assert preview(admin) == {"development/app": ["t1"]}
    again = berth(cli_env, "plan", "-f", path, check=False)
    assert again.returncode == 0, again
    assert "No changes" in again.stdout
    assert "no changes" in berth(cli_env, "apply", "-f", path, "--yes").stdout

    edited = write(tmp_path, RETENTION_YAML.replace("keep_last: 2", "keep_last: 1"), "edited.yaml")
    plan = berth(cli_env, "plan", "-f", edited, "--prune", check=False)
    assert plan.returncode == 2, plan
    assert changes(plan.stdout) == ["~ retention rule development/*: keep_last 2 → 1"]
    berth(cli_env, "apply", "-f", edited, "--yes")
    assert preview(admin) == {"development/app": ["t1", "t2"]}
    audit = admin.call("GET", "audit?action=retention_rules_put", expect=200).json()["entries"]
    assert len(audit) == 2 and audit[0]["outcome"] == "ok" and audit[0]["subject"] == "user:admin", audit

    # A rule the file drops stays without --prune and goes with it.
    dropped = write(tmp_path, RETENTION_YAML.split("retention:")[0], "dropped.yaml")
    assert berth(cli_env, "plan", "-f", dropped, check=False).returncode == 0
    plan = berth(cli_env, "plan", "-f", dropped, "--prune", check=False)
    assert plan.returncode == 2, plan
    assert [c for c in changes(plan.stdout) if "retention" in c] == [
        "- retention rule development/*: keep_last 1, protect [v*]"]
    berth(cli_env, "apply", "-f", dropped, "--prune", "--yes")
    assert retention_rules(admin) == []
    assert preview(admin) == {}

    # Export, then apply on a fresh registry: the same rules, the same export.
    berth(cli_env, "apply", "-f", path, "--yes")
    exported = normalised_export(cli_env)
    assert "retention:\n  - repositories: [development/*]\n    keep_last: 2\n    protect: [v*]\n" in exported, exported
    exported_path = write(tmp_path, exported, "exported.yaml")
    reg_b, admin_b = logged_in(make_registry, tmp_path / "b", cli_env)
    assert berth(cli_env, "plan", "-f", exported_path, check=False).returncode == 2
    berth(cli_env, "apply", "-f", exported_path, "--yes")
    assert retention_rules(admin_b) == retention_rules(admin)
    assert berth(cli_env, "plan", "-f", exported_path, "--prune", check=False).returncode == 0
    assert normalised_export(cli_env) == exported


CONFIG_RULE = """
retention:
  - repositories: ["staging/*"]
    untagged_days: 3
"""


def test_retention_rules_through_the_api_beside_the_configs(make_registry, tmp_path, cli_env):
    reg = start(make_registry, tmp_path, extra=CONFIG_RULE)
    admin = Admin(reg)
    admin.user("alice", "alice-password")
    config_rule = {"repositories": ["staging/*"], "untagged_days": 3, "protect": [], "source": "config"}
    assert retention_rules(admin) == [config_rule]

    good = {"rules": [{"repositories": ["development/*"], "keep_last": 2}]}
    assert admin.call("PUT", "retention/rules", good, expect=200).json() == {
        "rules": [{"repositories": ["development/*"], "keep_last": 2, "protect": []}]}
    api_rule = {"repositories": ["development/*"], "keep_last": 2, "protect": [], "source": "api"}
    assert retention_rules(admin) == [config_rule, api_rule]

    # Each bad rule is refused with a message naming the rule and the field; nothing changes.
    for body, message in (
        ({"rules": [good["rules"][0], {"repositories": ["x/*"], "keep_last": -1}]},
         "`rules[1].keep_last` must be 0 to 2147483647"),
        ({"rules": [{"repositories": [], "keep_days": 1}]}, "`rules[0].repositories` needs at least one pattern"),
        ({"rules": [{"repositories": ["X/*"], "keep_days": 1}]}, "`rules[0].repositories` has `X/*`"),
        ({"rules": [{"repositories": ["x/*"]}]}, "`rules[0]` needs keep_last, keep_days or untagged_days"),
        ({"rules": [{"repositories": ["x/*"], "keep_last": "2"}]}, "`rules[0].keep_last` must be a whole number"),
        ({"rules": [{"repositories": ["x/*"], "keep_lats": 2}]}, "`rules[0]` has the unknown key `keep_lats`"),
        ({"rule": []}, "the body must be a JSON object"),
    ):
        r = admin.call("PUT", "retention/rules", body)
        assert_error(r, 400, "INVALID_ARGUMENT")
        assert message in r.json()["errors"][0]["message"], (message, r.json())
        assert retention_rules(admin) == [config_rule, api_rule]

    # Administrators only; an empty set leaves the config's rule.
    alice = as_user(reg, "alice", "alice-password")
    assert_error(alice.request("GET", "/api/v1/retention/rules"), 403, "DENIED")
    r = alice.request("PUT", "/api/v1/retention/rules", body=b'{"rules": []}',
                      headers={"Content-Type": "application/json"})
    assert_error(r, 403, "DENIED")
    assert retention_rules(admin) == [config_rule, api_rule]
    admin.call("PUT", "retention/rules", {"rules": []}, expect=200)
    assert retention_rules(admin) == [config_rule]

    # plan notes the config's rule that a file leaves out, and changes nothing for it.
    berth(cli_env, "login", reg.url, "-u", "admin", "--password-stdin", stdin=ADMIN_PASSWORD + "\n")
    path = write(tmp_path, "repositories: []\n")
    plan = berth(cli_env, "plan", "-f", path, check=False)
    assert plan.returncode == 0, plan
    assert "retention rule staging/*: untagged_days 3 is declared in the server's config" in plan.stderr
