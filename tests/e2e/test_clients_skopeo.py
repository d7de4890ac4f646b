"""skopeo against the registry: copies both ways, inspect, tags, delete, multi-arch, format conversion,
digest references and cross-repository copies. Images are generated offline by images.py."""
import json
import os

import images
from clients import (clients, expect, get_blob, get_manifest, request,  # noqa: F401 (fixture)
                     require)

pytestmark = require("skopeo")


def layout(tmp_path, image, name="src", tag="v1"):
    return images.write_oci_layout(str(tmp_path / name), image, tag)


def pull_to_layout(clients, tmp_path, ref, name="out"):
    """Copy `ref` from the registry into a fresh OCI layout; returns (manifest bytes, {digest: bytes})."""
    clients.copy_from(ref, f"oci:{tmp_path / name}:pulled")
    return images.read_oci_layout(str(tmp_path / name), "pulled")


def assert_blobs_served(registry, repo, image):
    for blob in image.blobs():
        resp = expect(get_blob(registry.url, repo, blob.digest), 200, f"GET blob {blob.digest}")
        assert images.sha256(resp.body) == blob.digest


def test_copy_to_registry_and_back_keeps_every_digest(registry, clients, tmp_path):
    img = images.make_image({"etc/hello.txt": b"round trip\n"}, extra_layers=[{"opt/two.txt": b"2\n"}])
    clients.copy_to(layout(tmp_path, img), f"docker://{registry.host}/e2e/roundtrip:v1")

    manifest, blobs = pull_to_layout(clients, tmp_path, f"docker://{registry.host}/e2e/roundtrip:v1")

    assert manifest == img.manifest.data
    for blob in img.blobs():
        assert images.sha256(blobs[blob.digest]) == blob.digest
    resp = expect(get_manifest(registry.url, "e2e/roundtrip", "v1"), 200, "GET manifest")
    assert resp.header("docker-content-digest") == img.digest


def test_inspect_reports_the_pushed_image(registry, clients, tmp_path):
    img = images.make_image({"inspect.txt": b"inspect me\n"}, arch="arm64")
    ref = f"docker://{registry.host}/e2e/inspect:v1"
    clients.copy_to(layout(tmp_path, img), ref)

    assert clients.inspect_raw(ref) == img.manifest.data
    info = clients.inspect(ref)
    assert info["Digest"] == img.digest
    assert info["Architecture"] == "arm64"
    assert info["Layers"] == [l.digest for l in img.layers]


def test_list_tags_shows_each_pushed_tag(registry, clients, tmp_path):
    src = layout(tmp_path, images.make_image({"tags.txt": b"tags\n"}))
    for tag in ("v1", "v2", "latest"):
        clients.copy_to(src, f"docker://{registry.host}/e2e/tags:{tag}")

    out = json.loads(clients.skopeo("list-tags", "--tls-verify=false", f"docker://{registry.host}/e2e/tags").stdout)

    assert sorted(out["Tags"]) == ["latest", "v1", "v2"]


def test_delete_by_digest_makes_the_image_unreachable(registry, clients, tmp_path):
    img = images.make_image({"delete.txt": b"delete me\n"})
    clients.copy_to(layout(tmp_path, img), f"docker://{registry.host}/e2e/delete:v1")
    by_digest = f"docker://{registry.host}/e2e/delete@{img.digest}"
    assert clients.inspect_raw(by_digest) == img.manifest.data

    clients.skopeo("delete", "--tls-verify=false", by_digest)

    for ref in (by_digest, f"docker://{registry.host}/e2e/delete:v1"):
        assert clients.skopeo("inspect", "--tls-verify=false", "--raw", ref, check=False).returncode != 0
    assert get_manifest(registry.url, "e2e/delete", img.digest).status == 404


def test_copy_all_pushes_every_platform_of_an_index(registry, clients, tmp_path):
    idx = images.make_multiarch("skopeo-all")
    clients.copy_to(layout(tmp_path, idx), f"docker://{registry.host}/e2e/multi:v1", "--all")

    assert clients.inspect_raw(f"docker://{registry.host}/e2e/multi:v1") == idx.manifest.data
    for child in idx.images:
        assert clients.inspect_raw(f"docker://{registry.host}/e2e/multi@{child.digest}") == child.manifest.data
        assert_blobs_served(registry, "e2e/multi", child)


def test_format_v2s2_is_stored_with_the_docker_media_type(registry, clients, tmp_path):
    img = images.make_image({"v2s2.txt": b"docker format\n"})
    clients.copy_to(layout(tmp_path, img), f"docker://{registry.host}/e2e/v2s2:v1", "--format", "v2s2")

    resp = expect(get_manifest(registry.url, "e2e/v2s2", "v1"), 200, "GET manifest")
    assert resp.header("content-type") == images.DOCKER_MANIFEST
    body = json.loads(resp.body)
    assert body["mediaType"] == images.DOCKER_MANIFEST
    assert resp.header("docker-content-digest") == images.sha256(resp.body)
    # The layer is the same gzip bytes, only relabelled: it must still be served under its digest.
    assert [l["digest"] for l in body["layers"]] == [l.digest for l in img.layers]
    assert_blobs_served(registry, "e2e/v2s2", img)


def test_copy_by_digest_reference_both_ways(registry, clients, tmp_path):
    img = images.make_image({"digest-ref.txt": b"by digest\n"})
    clients.copy_to(layout(tmp_path, img), f"docker://{registry.host}/e2e/bydigest@{img.digest}")

    manifest, blobs = pull_to_layout(clients, tmp_path, f"docker://{registry.host}/e2e/bydigest@{img.digest}")

    assert manifest == img.manifest.data
    assert set(blobs) >= {b.digest for b in img.blobs()}
    # Pushed by digest only: no tag may have been invented.
    resp = request(registry.url, "GET", "/v2/e2e/bydigest/tags/list")
    assert resp.status == 404 or not (json.loads(resp.body).get("tags") or [])


def test_copy_between_repositories_of_one_registry(registry, clients, tmp_path):
    img = images.make_image({"mount.txt": b"cross repo\n"}, extra_layers=[{"big.bin": os.urandom(256 * 1024)}])
    clients.copy_to(layout(tmp_path, img), f"docker://{registry.host}/team-a/app:v1")

    copy = clients.skopeo("--debug", "copy", "--retry-times=0", "--src-tls-verify=false", "--dest-tls-verify=false",
                          f"docker://{registry.host}/team-a/app:v1", f"docker://{registry.host}/team-b/app:v1")

    # skopeo knows team-a has the layers (its blob-info cache saw the first push), so it mounts them.
    assert copy.stderr.count("mount OK") >= len(img.layers), copy.stderr

    manifest, blobs = pull_to_layout(clients, tmp_path, f"docker://{registry.host}/team-b/app:v1")
    assert manifest == img.manifest.data
    assert_blobs_served(registry, "team-b/app", img)
    assert_blobs_served(registry, "team-a/app", img)


def test_inspect_of_a_missing_tag_fails(registry, clients):
    proc = clients.skopeo("inspect", "--tls-verify=false", f"docker://{registry.host}/e2e/none:nope", check=False)
    assert proc.returncode != 0
    assert "manifest unknown" in proc.stderr.lower() or "not found" in proc.stderr.lower()


def test_sync_mirrors_every_tag_of_a_repository_into_another_registry(registry, make_registry, clients, tmp_path):
    # How a team moves off another registry: `skopeo sync` lists the source repository's tags and
    # copies each image, multi-arch indexes included, under the destination's namespace.
    single = {tag: images.make_image({"etc/release": tag.encode()}) for tag in ("v1", "v2")}
    for tag, img in single.items():
        clients.copy_to(layout(tmp_path, img, name=tag, tag=tag), f"docker://{registry.host}/team/app:{tag}")
    index = images.make_multiarch("sync", arches=("amd64", "arm64"))
    clients.copy_to(layout(tmp_path, index, name="multi", tag="multi"), f"docker://{registry.host}/team/app:multi",
                    "--all")
    mirror = make_registry()

    clients.skopeo("sync", "--retry-times=0", "--all", "--src-tls-verify=false", "--dest-tls-verify=false",
                   "--src", "docker", "--dest", "docker", f"{registry.host}/team/app", f"{mirror.host}/prod")

    listed = json.loads(expect(request(mirror.url, "GET", "/v2/prod/app/tags/list"), 200, "tags").body)
    assert sorted(listed["tags"]) == ["multi", "v1", "v2"]
    for tag, img in [*single.items(), ("multi", index)]:
        resp = expect(get_manifest(mirror.url, "prod/app", tag), 200, f"GET manifest {tag}")
        assert resp.header("docker-content-digest") == img.digest, tag
    for img in [*single.values(), *index.images]:
        assert_blobs_served(mirror, "prod/app", img)
