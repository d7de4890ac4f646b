"""Namespace quotas (issue #11): a push that would take a namespace past `quota_bytes` fails with the
namespace, its use and its quota in skopeo's output, and leaves nothing listed or pullable; deleting
and collecting frees room for it; `max_repositories` refuses a repository more. Shown by
/api/v1/usage, `berth usage` and /api/v1/namespaces."""
import json
import os
import subprocess

import pytest

import images
from clients import clients, expect, get_manifest, list_tags, push_image, request, require  # noqa: F401
from e2eauth import ADMIN_PASSWORD, ADMIN_USER

pytestmark = pytest.mark.skipif(os.environ.get("BERTH_E2E_TARGET") == "distribution",
                                reason="Berth's quotas")

CONFIG = """
gc:
  grace_minutes: 0
  interval_minutes: 0
namespaces:
  dev:
    quota_bytes: 100KiB
    max_repositories: 2
"""


def layout(tmp_path, name, image):
    return images.write_oci_layout(str(tmp_path / name), image, "v1")


def image_bytes(image):
    return sum(len(b.data) for b in image.blobs()) + len(image.manifest.data)


def refused_upload(reg, repo, blob, what):
    """Uploads `blob` into `repo` in one PUT, expects 403 DENIED, and returns the error's message."""
    location = expect(request(reg.url, "POST", f"/v2/{repo}/blobs/uploads/"), 202, "start an upload").header("location")
    sep = "&" if "?" in location else "?"
    resp = request(reg.url, "PUT", f"{location}{sep}digest={blob.digest}", blob.data,
                   {"Content-Type": "application/octet-stream"})
    expect(resp, 403, what)
    error = json.loads(resp.body)["errors"][0]
    assert error["code"] == "DENIED", error
    return error["message"]


@require("skopeo")
def test_quota_refuses_the_push_then_admits_it_after_delete_and_gc(make_registry, clients, tmp_path):  # noqa: F811
    config = tmp_path / "quota.yaml"
    config.write_text(CONFIG)
    reg = make_registry(extra_args=["--config", str(config)])
    one = images.make_image({"one": os.urandom(60_000)})
    two = images.make_image({"two": os.urandom(60_000)})
    clients.copy_to(layout(tmp_path, "one", one), f"docker://{reg.host}/dev/app:v1")

    refused = clients.skopeo("copy", "--retry-times=0", "--dest-tls-verify=false", layout(tmp_path, "two", two),
                             f"docker://{reg.host}/dev/app:v2", check=False)
    assert refused.returncode != 0
    assert "namespace dev is over its quota:" in refused.stderr, refused.stderr
    assert "of 100 KiB" in refused.stderr and "(namespaces.dev.quota_bytes)" in refused.stderr, refused.stderr
    # Nothing of the refused push is listed or pullable (its bytes wait for the collector).
    assert list_tags(reg.url, "dev/app") == ["v1"]
    expect(get_manifest(reg.url, "dev/app", two.digest), 404, "the refused manifest")
    for blob in two.blobs():
        expect(request(reg.url, "HEAD", f"/v2/dev/app/blobs/{blob.digest}"), 404, "a refused blob")

    doc = json.loads(expect(request(reg.url, "GET", "/api/v1/usage?namespace=dev"), 200, "usage").body)
    dev = doc["namespaces"][0]
    assert dev["quota_bytes"] == 100 * 1024 and dev["max_repositories"] == 2
    assert dev["quota_used_bytes"] == image_bytes(one)
    assert dev["quota_percent"] == pytest.approx(100 * image_bytes(one) / (100 * 1024))
    namespaces = json.loads(expect(request(reg.url, "GET", "/api/v1/namespaces"), 200, "namespaces").body)
    assert [(n["name"], n["quota_bytes"], n["max_repositories"]) for n in namespaces["namespaces"]] == [
        ("dev", 100 * 1024, 2)]

    env = {**os.environ, "HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    berth = os.environ["BERTH_BIN"]
    subprocess.run([berth, "login", reg.url, "-u", ADMIN_USER, "--password-stdin"], input=ADMIN_PASSWORD + "\n",
                   text=True, env=env, check=True, capture_output=True)
    table = subprocess.run([berth, "usage"], env=env, check=True, capture_output=True, text=True).stdout
    assert "dev (1 repositories of 2)" in table and f"{100 * 1024}" in table and "%" in table, table

    # Delete the tag's manifest and collect: the room is back and the same push goes through.
    expect(request(reg.url, "DELETE", f"/v2/dev/app/manifests/{one.digest}"), 202, "delete v1")
    expect(request(reg.url, "POST", "/api/v1/gc?dry_run=false", timeout=120), 200, "gc")
    clients.copy_to(layout(tmp_path, "two", two), f"docker://{reg.host}/dev/app:v2")
    assert clients.inspect_raw(f"docker://{reg.host}/dev/app:v2") == two.manifest.data

    # max_repositories: dev/app and dev/b fit, dev/c is refused with the limit named.
    small = images.make_image({"small": b"s"})
    expect(push_image(reg.url, "dev/b", small, "v1"), 201, "a second repository")
    message = refused_upload(reg, "dev/c", small.blobs()[0], "a third repository")
    assert message == ("namespace dev may hold at most 2 repositories (namespaces.dev.max_repositories); "
                       "delete a repository first")
    expect(request(reg.url, "GET", "/v2/dev/c/tags/list"), 404, "the refused repository")


def test_a_quota_set_through_the_admin_api_applies_at_once_and_names_where_it_is_set(make_registry, tmp_path):
    """A namespace of the admin API (here from `berth apply`) takes quota_bytes and max_repositories as
    the config does; the metadata store enforces them from the next request, and a change of them
    too, without a restart."""
    reg = make_registry()
    env = {**os.environ, "HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    berth = os.environ["BERTH_BIN"]

    def cli(*args, check=True):
        out = subprocess.run([berth, *args], env=env, capture_output=True, text=True)
        if check:
            assert out.returncode == 0, out
        return out

    subprocess.run([berth, "login", reg.url, "-u", ADMIN_USER, "--password-stdin"], input=ADMIN_PASSWORD + "\n",
                   text=True, env=env, check=True, capture_output=True)
    registry_file = tmp_path / "registry.yaml"
    registry_file.write_text("namespaces:\n  team:\n    quota_bytes: 100KiB\n")
    assert "+ namespace team" in cli("plan", "-f", str(registry_file), check=False).stdout
    cli("apply", "-f", str(registry_file), "--yes")
    assert cli("plan", "-f", str(registry_file)).returncode == 0  # no changes

    one = images.make_image({"one": os.urandom(60_000)})
    two = images.make_image({"two": os.urandom(60_000)})
    expect(push_image(reg.url, "team/app", one, "v1"), 201, "within the quota")
    message = refused_upload(reg, "team/app", max(two.blobs(), key=lambda b: len(b.data)), "over the quota")
    assert message.startswith("namespace team is over its quota:") and "of 100 KiB" in message, message
    assert "(quota_bytes of namespace team, admin API)" in message, message
    assert list_tags(reg.url, "team/app") == ["v1"]

    # Raised through the API (as apply does): the same push fits at once.
    registry_file.write_text("namespaces:\n  team:\n    quota_bytes: 1MiB\n")
    plan = cli("plan", "-f", str(registry_file), check=False).stdout
    assert "~ namespace team: quota_bytes 102400 → 1048576" in plan, plan
    cli("apply", "-f", str(registry_file), "--yes")
    expect(push_image(reg.url, "team/app", two, "v2"), 201, "within the raised quota")
    doc = json.loads(expect(request(reg.url, "GET", "/api/v1/usage?namespace=team"), 200, "usage").body)
    assert doc["namespaces"][0]["quota_bytes"] == 1024 * 1024

    # A bad value is refused, naming the setting, and changes nothing.
    resp = request(reg.url, "PUT", "/api/v1/namespaces/team", b'{"quota_bytes":"lots"}',
                   {"Content-Type": "application/json"})
    expect(resp, 400, "a quota that is not a size")
    assert json.loads(resp.body)["errors"][0]["code"] == "INVALID_ARGUMENT"
    namespaces = json.loads(expect(request(reg.url, "GET", "/api/v1/namespaces"), 200, "namespaces").body)
    assert [(n["name"], n["quota_bytes"]) for n in namespaces["namespaces"]] == [("team", 1024 * 1024)]
