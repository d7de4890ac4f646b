"""What real clients print when a push is refused. podman, skopeo and docker print an error's `code:
message` and never its `detail`, and only the status of a refused HEAD or token request (a push starts
with a token request and a HEAD on each blob). So the message names what a user must know, tokens are
always issued (cut down to what the policy allows), and a refused HEAD on a blob answers "not found", so
that the client goes on to the upload's POST, whose refusal it prints:
- a missing repository in an `explicit` namespace: the repository and the `berth repo create` command;
- a push refused by policy: the identity, the repository and the grants or federation rules that did
  not allow it (also for an identity that may pull, whose refusal comes at the upload's POST);
- containerd's ctr prints only the status of any refusal (its error type drops the body), but stops at
  the second try when the challenge says insufficient_scope.
Each test keeps the outputs in its assertion messages; README.md "What clients print when refused"
quotes them."""
import os
import shutil

import pytest

import images
from authenv import MULTI_ENV, Admin, start
from clients import Clients, Containerd, require
from oidcenv import Issuer, federation_config

pytestmark = require("skopeo", "podman")

DEVELOP = "oidc:repo:acme/shop:ref:refs/heads/develop"


@pytest.fixture
def issuer(tmp_path):
    return Issuer(tmp_path)


@pytest.fixture
def reg(make_registry, tmp_path, issuer):
    r = start(make_registry, tmp_path, extra=federation_config(issuer))
    Admin(r).create_repo("production/shop")
    return r


def anonymous_clients(tmp_path):
    return Clients(str(tmp_path / "clients"), credentials=None)


def podman_push(c, tmp_path, ref, creds):
    tar = tmp_path / "rootfs.tar"
    if not tar.exists():
        tar.write_bytes(images.tar_rootfs({"etc/motd": b"refused\n"}))
        c.podman("import", "-q", str(tar), "localhost/refused:v1")
    return c.podman("push", "--tls-verify=false", "--creds", creds, "localhost/refused:v1", f"docker://{ref}",
                    check=False)


def skopeo_copy(c, tmp_path, ref, creds):
    layout = tmp_path / "layout"
    src = images.write_oci_layout(str(layout), images.make_image({"a.txt": b"refused\n"}), "v1")
    return c.skopeo("copy", "--retry-times=0", "--dest-tls-verify=false", "--dest-creds", creds, src,
                    f"docker://{ref}", check=False)


def printed(proc):
    return proc.stderr + proc.stdout


@pytest.mark.parametrize("client", ["podman", "skopeo"])
def test_a_missing_repository_in_an_explicit_namespace_names_the_command(reg, tmp_path, client):
    ci = Admin(reg).robot("ci")
    c = anonymous_clients(tmp_path)
    push = podman_push if client == "podman" else skopeo_copy
    out = push(c, tmp_path, f"{reg.host}/production/mindmirror:v1", f"ci:{ci}")
    assert out.returncode != 0
    text = printed(out)
    assert "name unknown: repository production/mindmirror does not exist" in text, text
    assert "create it with: berth repo create production/mindmirror" in text, text


@pytest.mark.parametrize("client", ["podman", "skopeo"])
def test_a_push_refused_by_the_policy_names_identity_repository_and_rules(reg, tmp_path, issuer, client):
    c = anonymous_clients(tmp_path)
    push = podman_push if client == "podman" else skopeo_copy
    # May neither pull nor push production.
    out = push(c, tmp_path, f"{reg.host}/production/shop:dev", f"oidc:{issuer.token('refs/heads/develop')}")
    assert out.returncode != 0
    text = printed(out)
    assert f"denied: {DEVELOP} may not push production/shop: no grant allows it" in text, text
    assert "github" in text and "rules matched: develop" in text, text  # skopeo's log escapes the quotes
    # May pull but not push.
    deploy = Admin(reg).robot("deploy")
    out = push(c, tmp_path, f"{reg.host}/production/shop:deploy", f"deploy:{deploy}")
    assert out.returncode != 0
    text = printed(out)
    assert "denied: robot:deploy may not push production/shop: no grant allows it" in text, text


def test_a_pull_only_identity_still_pulls_with_the_clients(reg, tmp_path):
    Clients(str(tmp_path / "admin")).copy_to(
        images.write_oci_layout(str(tmp_path / "src"), images.make_image({"b.txt": b"pull\n"}), "v1"),
        f"docker://{reg.host}/production/shop:v1")
    deploy = Admin(reg).robot("deploy")
    c = anonymous_clients(tmp_path)
    c.skopeo("copy", "--retry-times=0", "--src-tls-verify=false", "--src-creds", f"deploy:{deploy}",
             f"docker://{reg.host}/production/shop:v1", f"oci:{tmp_path / 'pulled'}:v1")
    c.podman("pull", "-q", "--tls-verify=false", "--creds", f"deploy:{deploy}", f"{reg.host}/production/shop:v1")


@pytest.fixture
def containerd():
    if os.geteuid() != 0 or shutil.which("containerd") is None or shutil.which("ctr") is None:
        pytest.skip("containerd's ctr needs root and the containerd package")
    daemon = Containerd()
    yield daemon
    daemon.stop()


def test_ctr_stops_at_insufficient_scope_and_prints_only_statuses(reg, issuer, containerd):
    ref = f"{reg.host}/production/shop:v1"
    containerd.import_image(images.make_image({"c.txt": b"ctr\n"}), f"{reg.host}/production/shop", "v1")
    # Anonymous, on a private repository: the anonymous token grants nothing, the challenge says
    # insufficient_scope, and ctr gives up at the second try instead of the sixth.
    out = containerd.ctr("images", "pull", "--plain-http", "--http-dump", ref, check=False)
    assert out.returncode != 0
    text = printed(out)
    assert "insufficient_scope" in text, text
    assert text.count("HEAD /v2/production/shop/manifests/v1") == 2, text
    # A push refused by the policy: ctr prints the token endpoint's status only.
    out = containerd.ctr("images", "push", "--plain-http", "--user", f"oidc:{issuer.token('refs/heads/develop')}",
                         ref, check=False)
    assert out.returncode != 0
    assert "403 Forbidden" in printed(out), printed(out)
    # ... while `berth check` says why (test_auth_cli.py, test_auth_oidc.py).

