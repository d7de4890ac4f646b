"""podman against the registry: push an image built offline, pull it into a fresh storage root, and a
multi-arch manifest list pushed with `podman manifest push --all` then pulled per architecture."""
import json
import os

import images
from clients import Clients, clients, expect, get_blob, get_manifest, require  # noqa: F401 (fixture)

pytestmark = require("podman")

ARCHES = ("amd64", "arm64")


def import_rootfs(clients, files, name, arch="amd64"):
    """`podman import` a tar of `files` as the local image `name`."""
    tar = os.path.join(clients.root, "".join(c if c.isalnum() else "_" for c in name) + ".tar")
    with open(tar, "wb") as f:
        f.write(images.tar_rootfs(files))
    clients.podman("import", "-q", "--arch", arch, "--os", "linux", tar, name)


def read_from_image(clients, ref, path):
    """The bytes of `path` inside the local image `ref` (mounted read-only, no container run)."""
    root = clients.podman("image", "mount", ref).stdout.strip()
    try:
        with open(os.path.join(root, path), "rb") as f:
            return f.read()
    finally:
        clients.podman("image", "unmount", ref)


def image_field(clients, ref, field):
    return clients.podman("image", "inspect", "--format", "{{." + field + "}}", ref).stdout.strip()


def test_push_then_pull_into_fresh_storage_keeps_id_and_content(registry, clients, tmp_path):
    import_rootfs(clients, {"etc/motd": b"pushed by podman\n"}, "localhost/podman-push:v1")
    image_id = image_field(clients, "localhost/podman-push:v1", "Id")
    digest_file = tmp_path / "digest"
    clients.podman("push", "--tls-verify=false", "--digestfile", str(digest_file),
                   "localhost/podman-push:v1", f"docker://{registry.host}/e2e/podman:v1")
    pushed_digest = digest_file.read_text().strip()
    resp = expect(get_manifest(registry.url, "e2e/podman", "v1"), 200, "GET manifest")
    assert resp.header("docker-content-digest") == pushed_digest == images.sha256(resp.body)

    fresh = Clients(str(tmp_path / "fresh"))
    ref = f"{registry.host}/e2e/podman:v1"
    fresh.podman("pull", "-q", "--tls-verify=false", ref)

    assert image_field(fresh, ref, "Id") == image_id
    assert read_from_image(fresh, ref, "etc/motd") == b"pushed by podman\n"


def push_manifest_list(registry, clients, repo):
    """Import one image per arch, group them in a manifest list, `manifest push --all`; returns the ref."""
    clients.podman("manifest", "create", "localhost/multi:v1")
    for arch in ARCHES:
        name = f"localhost/multi-{arch}:v1"
        import_rootfs(clients, {"arch.txt": f"{arch}\n".encode()}, name, arch)
        clients.podman("manifest", "add", "localhost/multi:v1", f"containers-storage:{name}")
    ref = f"{registry.host}/{repo}:v1"
    clients.podman("manifest", "push", "--all", "--tls-verify=false", "localhost/multi:v1", f"docker://{ref}")
    return ref


def test_manifest_push_all_uploads_every_child(registry, clients):
    push_manifest_list(registry, clients, "e2e/list")

    resp = expect(get_manifest(registry.url, "e2e/list", "v1"), 200, "GET index")
    index = json.loads(resp.body)
    assert sorted(d["platform"]["architecture"] for d in index["manifests"]) == sorted(ARCHES)
    for desc in index["manifests"]:
        child = expect(get_manifest(registry.url, "e2e/list", desc["digest"]), 200, f"GET child {desc['digest']}")
        assert images.sha256(child.body) == desc["digest"]
        assert len(child.body) == desc["size"]
        manifest = json.loads(child.body)
        for blob in [manifest["config"], *manifest["layers"]]:
            got = expect(get_blob(registry.url, "e2e/list", blob["digest"]), 200, f"GET blob {blob['digest']}")
            assert images.sha256(got.body) == blob["digest"]


def test_pull_with_arch_picks_that_platform_from_the_list(registry, clients, tmp_path):
    ref = push_manifest_list(registry, clients, "e2e/arch")

    for arch in ARCHES:
        fresh = Clients(str(tmp_path / f"fresh-{arch}"))
        fresh.podman("pull", "-q", "--tls-verify=false", "--arch", arch, ref)
        assert image_field(fresh, ref, "Architecture") == arch
        assert read_from_image(fresh, ref, "arch.txt") == f"{arch}\n".encode()
