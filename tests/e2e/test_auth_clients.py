"""Real clients against a private registry with token authentication: podman login then push and pull
(through /token and Bearer tokens), skopeo with --creds and with --authfile, a deploy robot that can
pull production but not push, and clients without credentials refused."""
import json
import os

import pytest

import images
from authenv import Admin, start
from clients import Clients, require
from e2eauth import ADMIN_PASSWORD, auth_json

pytestmark = require("skopeo", "podman")


def layout(tmp_path, image, name="src", tag="v1"):
    return images.write_oci_layout(str(tmp_path / name), image, tag)


@pytest.fixture
def reg(make_registry, tmp_path):
    r = start(make_registry, tmp_path)
    Admin(r).create_repo("production/app")
    return r


def anonymous_clients(tmp_path, name):
    return Clients(str(tmp_path / name), credentials=None)


def test_podman_login_then_push_and_pull_with_tokens(reg, tmp_path):
    c = anonymous_clients(tmp_path, "podman")
    tar = str(tmp_path / "rootfs.tar")
    with open(tar, "wb") as f:
        f.write(images.tar_rootfs({"etc/motd": b"token auth\n"}))
    c.podman("import", "-q", tar, "localhost/tokened:v1")
    ref = f"{reg.host}/staging/tokened:v1"
    refused = c.podman("push", "--tls-verify=false", "localhost/tokened:v1", f"docker://{ref}", check=False)
    # The anonymous token grants nothing: the blob HEAD gets 401 insufficient_scope, which podman
    # prints as "denied: requested access to the resource is denied" (as for Docker Hub).
    assert refused.returncode != 0 and "requested access to the resource is denied" in refused.stderr, refused.stderr

    c.podman("login", "--tls-verify=false", "-u", "admin", "-p", ADMIN_PASSWORD, reg.host)
    with open(c.auth_file) as f:
        assert reg.host in json.load(f)["auths"]
    c.podman("push", "--tls-verify=false", "localhost/tokened:v1", f"docker://{ref}")
    c.podman("rmi", "localhost/tokened:v1")
    c.podman("pull", "-q", "--tls-verify=false", ref)
    # Podman used token authentication: the registry issued tokens (its log says nothing of secrets).
    reg.log.flush()
    log = open(reg.log_path).read()
    assert ADMIN_PASSWORD not in log
    c.podman("logout", reg.host)
    refused = c.podman("pull", "-q", "--tls-verify=false", ref, check=False)
    assert refused.returncode != 0


def test_skopeo_with_creds_and_with_authfile(reg, tmp_path):
    c = anonymous_clients(tmp_path, "skopeo")
    img = images.make_image({"a.txt": b"creds\n"})
    src = layout(tmp_path, img)
    dest = f"docker://{reg.host}/staging/skopeo:v1"
    refused = c.skopeo("copy", "--retry-times=0", "--dest-tls-verify=false", src, dest, check=False)
    assert refused.returncode != 0
    c.skopeo("copy", "--retry-times=0", "--dest-tls-verify=false", "--dest-creds", f"admin:{ADMIN_PASSWORD}",
             src, dest)
    raw = c.skopeo("inspect", "--raw", "--tls-verify=false", "--creds", f"admin:{ADMIN_PASSWORD}", dest).stdout
    assert raw.encode() == img.manifest.data

    robot = Admin(reg).robot("reader", actions=["pull"], repositories=["staging/*"])
    authfile = tmp_path / "robot-auth.json"
    authfile.write_text(json.dumps(auth_json([reg.host], "reader", robot)))
    raw = c.skopeo("inspect", "--raw", "--tls-verify=false", "--authfile", str(authfile), dest).stdout
    assert raw.encode() == img.manifest.data
    tags = json.loads(c.skopeo("list-tags", "--tls-verify=false", "--authfile", str(authfile),
                               f"docker://{reg.host}/staging/skopeo").stdout)
    assert tags["Tags"] == ["v1"]
    # The reader cannot push.
    refused = c.skopeo("copy", "--retry-times=0", "--dest-tls-verify=false", "--dest-authfile", str(authfile),
                       src, f"docker://{reg.host}/staging/other:v1", check=False)
    assert refused.returncode != 0


def test_deploy_robot_pulls_production_but_cannot_push(reg, tmp_path):
    admin_clients = Clients(str(tmp_path / "admin"))
    img = images.make_image({"app.txt": b"production\n"})
    src = layout(tmp_path, img)
    admin_clients.copy_to(src, f"docker://{reg.host}/production/app:v1")

    deploy = Admin(reg).robot("deploy")
    c = anonymous_clients(tmp_path, "deploy")
    creds = f"deploy:{deploy}"
    c.skopeo("copy", "--retry-times=0", "--src-tls-verify=false", "--src-creds", creds,
             f"docker://{reg.host}/production/app:v1", f"oci:{tmp_path / 'pulled'}:v1")
    refused = c.skopeo("copy", "--retry-times=0", "--dest-tls-verify=false", "--dest-creds", creds,
                       src, f"docker://{reg.host}/production/app:v2", check=False)
    assert refused.returncode != 0
    err = refused.stderr.lower()
    assert "denied" in err or "unauthorized" in err, refused.stderr
    tags = json.loads(admin_clients.skopeo("list-tags", "--tls-verify=false",
                                           f"docker://{reg.host}/production/app").stdout)["Tags"]
    assert tags == ["v1"]
