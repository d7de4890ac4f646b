"""Manifests: PUT/GET/HEAD/DELETE /v2/<name>/manifests/<reference> (end-3, end-7, end-9)."""
import json

import pytest

from ociclient import (ACCEPT_ALL, DOCKER_LIST, DOCKER_MANIFEST, EMPTY_BLOB, OCI_CONFIG, OCI_EMPTY,  # noqa: F401
                       OCI_INDEX, OCI_LAYER, OCI_MANIFEST, SPEC_ERROR_CODES, assert_error, descriptor,
                       digest_of, oci, path_of, random_bytes, to_json)

NAME = "conformance/manifests"
MiB = 1024 * 1024


def assert_served(oci, name, reference, image):
    """GET and HEAD of `reference` serve exactly what was pushed, with its type and digest."""
    r = oci.get_manifest(name, reference)
    assert r.status == 200, r
    assert r.body == image.data, "the registry must store the manifest byte for byte"
    assert r.header("Content-Type") == image.media_type
    assert r.header("Docker-Content-Digest") == image.digest
    assert r.header("Content-Length") == str(len(image.data))
    h = oci.get_manifest(name, reference, method="HEAD")
    assert h.status == 200, h
    assert h.body == b""
    assert h.header("Content-Type") == image.media_type
    assert h.header("Docker-Content-Digest") == image.digest
    assert h.header("Content-Length") == str(len(image.data))


def assert_created(image, name):
    r = image.response
    assert r.status == 201, r
    assert r.header("Location"), "a pushed manifest has a pullable Location"
    assert r.header("Docker-Content-Digest") == image.digest


# ---- push and pull, every manifest type ------------------------------------------------------------

@pytest.mark.parametrize("media_type", [OCI_MANIFEST, DOCKER_MANIFEST])
def test_image_manifest_by_tag_and_by_digest(oci, media_type):
    image = oci.push_image(NAME, "v1", manifest_type=media_type)
    assert_created(image, NAME)
    assert_served(oci, NAME, "v1", image)
    assert_served(oci, NAME, image.digest, image)
    # The Location pulls the manifest.
    r = oci.request("GET", image.response.header("Location"), headers={"Accept": ACCEPT_ALL})
    assert r.status == 200 and r.body == image.data


def test_push_by_digest(oci):
    image = oci.push_image(NAME, tag=None)
    assert_created(image, NAME)
    assert_served(oci, NAME, image.digest, image)
    assert "v1" not in oci.tags(NAME) if oci.get(f"/v2/{NAME}/tags/list").status == 200 else True


@pytest.mark.parametrize("media_type,child_type", [(OCI_INDEX, OCI_MANIFEST), (DOCKER_LIST, DOCKER_MANIFEST)])
def test_index_and_manifest_list(oci, media_type, child_type):
    children = [oci.push_image(NAME, manifest_type=child_type) for _ in range(2)]
    index = oci.push_index(NAME, children, tag="multi", media_type=media_type)
    assert_created(index, NAME)
    assert_served(oci, NAME, "multi", index)
    assert_served(oci, NAME, index.digest, index)


def test_nested_index(oci):
    # conformance: "Registry should accept a manifest upload with nested image index".
    child = oci.push_image(NAME)
    inner = oci.push_index(NAME, [child])
    outer = to_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "artifactType": "application/vnd.food.stand",
                     "manifests": [descriptor(OCI_INDEX, inner.data)],
                     "annotations": {"org.opencontainers.conformance.test": "test index"}})
    r = oci.put_manifest(NAME, digest_of(outer), outer, OCI_INDEX)
    assert r.status == 201, r


def test_artifact_manifest_with_empty_config(oci):
    oci.push_blob(NAME, EMPTY_BLOB)
    payload = random_bytes(50)
    oci.push_blob(NAME, payload)
    data = to_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.sbom.v1",
                    "config": descriptor(OCI_EMPTY, EMPTY_BLOB),
                    "layers": [descriptor("application/spdx+json", payload)],
                    "annotations": {"org.example": "yes"}})
    r = oci.push_manifest(NAME, "sbom", data)
    assert r.header("Docker-Content-Digest") == digest_of(data)
    got = oci.get_manifest(NAME, "sbom")
    assert got.status == 200 and got.body == data
    assert got.header("Content-Type") == OCI_MANIFEST


def test_artifact_with_custom_config_media_type(oci):
    # conformance: "manifest upload with custom config/mediaType (as artifact type)".
    config = b"NHL Peanut Butter on my NHL bagel"
    oci.push_blob(NAME, config)
    oci.push_blob(NAME, EMPTY_BLOB)
    data = to_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": descriptor("application/vnd.nhl.peanut.butter.bagel", config),
                    "layers": [descriptor(OCI_EMPTY, EMPTY_BLOB)]})
    assert oci.put_manifest(NAME, digest_of(data), data).status == 201


def test_manifest_without_media_type_field_and_with_unknown_fields(oci):
    # conformance's "manifest upload with no layers": no mediaType field, no layers, and a config
    # descriptor carrying "data" and a field no spec defines. All of it must be accepted as is.
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
                         "author": "empty layer"}).encode()
    oci.push_blob(NAME, config)
    import base64
    data = to_json({"schemaVersion": 2,
                    "config": {**descriptor(OCI_CONFIG, config), "data": base64.b64encode(config).decode(),
                               "newUnspecifiedField": base64.b64encode(b"hello world").decode()},
                    "layers": []})
    r = oci.put_manifest(NAME, "emptylayer", data, OCI_MANIFEST)
    assert r.status == 201, r
    got = oci.get_manifest(NAME, "emptylayer")
    assert got.status == 200 and got.body == data


def test_content_type_parameters_are_ignored(oci):
    image = oci.push_image(NAME, "plain")
    r = oci.put_manifest(NAME, "withparams", image.data, OCI_MANIFEST + "; charset=utf-8")
    assert r.status == 201, r
    got = oci.get_manifest(NAME, "withparams")
    assert got.status == 200 and got.body == image.data
    assert got.header("Content-Type") == OCI_MANIFEST


def test_conformance_push_manifest_under_four_tags(oci):
    # conformance, Push / Manifest Upload: the same manifest under test0..test3, each 201 + Location.
    image = oci.push_image(NAME, "first")
    for i in range(4):
        r = oci.put_manifest(NAME, f"test{i}", image.data)
        assert r.status == 201, r
        assert r.header("Location")
    assert oci.get_manifest(NAME, image.digest).status == 200
    assert set(oci.tags(NAME)) >= {"test0", "test1", "test2", "test3"}


def test_retagging_moves_the_tag(oci):
    first = oci.push_image(NAME, "latest")
    second = oci.push_image(NAME, "latest")
    assert_served(oci, NAME, "latest", second)
    assert_served(oci, NAME, first.digest, first)


def test_pushing_the_same_manifest_twice_is_fine(oci):
    image = oci.push_image(NAME, "again")
    r = oci.put_manifest(NAME, "again", image.data)
    assert r.status == 201, r
    assert r.header("Docker-Content-Digest") == image.digest


# ---- pull failures ----------------------------------------------------------------------------------

def test_conformance_pull_missing_manifest(oci):
    # conformance, Pull: ".INVALID_MANIFEST_NAME" is not even a valid tag, yet must be a plain 404.
    oci.push_image(NAME, "present")
    for method in ("HEAD", "GET"):
        assert oci.get_manifest(NAME, ".INVALID_MANIFEST_NAME", method=method).status == 404


def test_unknown_manifest_is_404_manifest_unknown(oci):
    oci.push_image(NAME, "present")
    assert_error(oci.get_manifest(NAME, "absent"), 404, "MANIFEST_UNKNOWN")
    assert_error(oci.get_manifest(NAME, digest_of(b"nothing")), 404, "MANIFEST_UNKNOWN")
    r = oci.get_manifest(NAME, "absent", method="HEAD")
    assert r.status == 404 and r.body == b""


def test_manifest_of_unknown_repository_is_404(oci):
    r = oci.get_manifest("no/such/repo", "latest")
    assert r.status == 404, r
    assert r.error_codes()[0] in ("MANIFEST_UNKNOWN", "NAME_UNKNOWN")


def test_manifest_of_repo_a_is_not_readable_through_repo_b(oci):
    image = oci.push_image("team/a", "v1")
    oci.push_image("team/b", "v1")
    assert_error(oci.get_manifest("team/b", image.digest), 404, "MANIFEST_UNKNOWN")


# ---- push failures ----------------------------------------------------------------------------------

def test_missing_layer_is_manifest_blob_unknown(oci):
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    oci.push_blob(NAME, config)
    data = to_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, config),
                    "layers": [descriptor(OCI_LAYER, b"never pushed")]})
    # The spec names the code, not the status: Distribution answers 400, the endpoint table 404.
    assert_error(oci.put_manifest(NAME, "broken", data), (400, 404), "MANIFEST_BLOB_UNKNOWN")
    assert oci.get_manifest(NAME, "broken").status == 404


def test_missing_config_is_manifest_blob_unknown(oci):
    layer = random_bytes(10)
    oci.push_blob(NAME, layer)
    data = to_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, b"{}{}"),
                    "layers": [descriptor(OCI_LAYER, layer)]})
    assert_error(oci.put_manifest(NAME, "broken", data), (400, 404), "MANIFEST_BLOB_UNKNOWN")


def test_blob_of_another_repository_is_manifest_blob_unknown(oci):
    image = oci.push_image("team/a", "v1")
    assert_error(oci.put_manifest("team/b", "v1", image.data), (400, 404), "MANIFEST_BLOB_UNKNOWN")


def test_index_with_missing_child_is_manifest_blob_unknown(oci):
    ghost = to_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, b"{}"),
                     "layers": []})
    data = to_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor(OCI_MANIFEST, ghost)]})
    assert_error(oci.put_manifest(NAME, "broken", data, OCI_INDEX), (400, 404), "MANIFEST_BLOB_UNKNOWN")


def test_invalid_json_is_manifest_invalid(oci):
    oci.push_image(NAME, "present")
    for body in (b"blablabla", b'{"schemaVersion": 2, "mediaType": ', b"[]"):
        assert_error(oci.put_manifest(NAME, "bad", body), 400, "MANIFEST_INVALID")
    assert oci.get_manifest(NAME, "bad").status == 404


def test_media_type_differing_from_content_type_is_manifest_invalid(oci):
    image = oci.push_image(NAME, "good")  # an OCI image manifest with "mediaType" in the body
    assert_error(oci.put_manifest(NAME, "mismatch", image.data, OCI_INDEX), 400, "MANIFEST_INVALID")
    assert oci.get_manifest(NAME, "mismatch").status == 404


def test_manifest_over_4_mib_is_413(oci):
    config = b"{}"
    oci.push_blob(NAME, config)
    base = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, config), "layers": []}
    filler = 4 * MiB + 1 - len(to_json({**base, "annotations": {"pad": ""}}))
    data = to_json({**base, "annotations": {"pad": "x" * filler}})
    assert len(data) == 4 * MiB + 1
    r = oci.put_manifest(NAME, "huge", data)
    assert_error(r, 413, "MANIFEST_INVALID")
    assert oci.get_manifest(NAME, "huge").status == 404


def test_manifest_just_under_4_mib_is_accepted(oci):
    # "Client and registry implementations SHOULD expect to be able to support manifest pushes of at
    # least 4 megabytes."
    config = b"{}"
    oci.push_blob(NAME, config)
    base = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, config), "layers": []}
    filler = 4 * MiB - len(to_json({**base, "annotations": {"pad": ""}}))
    data = to_json({**base, "annotations": {"pad": "x" * filler}})
    assert len(data) == 4 * MiB
    assert oci.put_manifest(NAME, "big", data).status == 201
    assert oci.get_manifest(NAME, "big").body == data


def test_put_by_digest_not_matching_the_body_is_digest_invalid(oci):
    image = oci.push_image(NAME, "good")
    wrong = digest_of(image.data + b" ")
    assert_error(oci.put_manifest(NAME, wrong, image.data), 400, "DIGEST_INVALID")
    assert oci.get_manifest(NAME, wrong).status == 404


def test_conformance_error_body_for_bad_digest_reference(oci):
    # conformance, Pull / Error codes: 400 or 404, and a 400 carries an OCI error code.
    r = oci.put_manifest(NAME, "sha256:totallywrong", b"blablabla")
    assert r.status in (400, 404), r
    if r.status == 400:
        assert r.error_codes()[0] in SPEC_ERROR_CODES


@pytest.mark.parametrize("tag", ["-leadingdash", ".leadingdot", "a" * 129, "has%20space", "bad+plus"])
def test_invalid_tag_is_400(oci, tag):
    image = oci.push_image(NAME, "good")
    assert_error(oci.put_manifest(NAME, tag, image.data), 400, "TAG_INVALID", "MANIFEST_INVALID")


def test_longest_valid_tag_is_accepted(oci):
    tag = "_" + "a.b-C" * 25 + "x" * 2  # 128 characters, every allowed character class
    assert len(tag) == 128
    image = oci.push_image(NAME, tag)
    assert_served(oci, NAME, tag, image)


# ---- delete -----------------------------------------------------------------------------------------

def test_delete_by_digest_removes_the_manifest_and_its_tags(oci):
    image = oci.push_image(NAME, "one")
    oci.push_manifest(NAME, "two", image.data)
    keep = oci.push_image(NAME, "keep")
    r = oci.delete(f"/v2/{NAME}/manifests/{image.digest}")
    assert r.status == 202, r
    assert_error(oci.get_manifest(NAME, image.digest), 404, "MANIFEST_UNKNOWN")
    assert_error(oci.get_manifest(NAME, "one"), 404, "MANIFEST_UNKNOWN")
    assert_error(oci.get_manifest(NAME, "two"), 404, "MANIFEST_UNKNOWN")
    assert oci.tags(NAME) == ["keep"]
    assert_served(oci, NAME, "keep", keep)
    assert_error(oci.delete(f"/v2/{NAME}/manifests/{image.digest}"), 404, "MANIFEST_UNKNOWN")


def test_delete_by_tag_removes_only_the_tag(oci):
    image = oci.push_image(NAME, "one")
    oci.push_manifest(NAME, "two", image.data)
    r = oci.delete(f"/v2/{NAME}/manifests/one")
    assert r.status == 202, r
    assert_error(oci.get_manifest(NAME, "one"), 404, "MANIFEST_UNKNOWN")
    assert_served(oci, NAME, image.digest, image)
    assert_served(oci, NAME, "two", image)
    assert oci.tags(NAME) == ["two"]
    assert_error(oci.delete(f"/v2/{NAME}/manifests/one"), 404, "MANIFEST_UNKNOWN")


def test_conformance_content_management(oci):
    # conformance, Content Management: tag delete (202, or 400 UNSUPPORTED / 405), digest delete
    # (202 or 404), the tag list shrinks, then the config blob delete is 202 and its GET 404.
    image = oci.push_image(NAME, "tagtest0")
    before = len(oci.tags(NAME))
    r = oci.delete(f"/v2/{NAME}/manifests/tagtest0")
    assert r.status in (202, 400, 405), r
    if r.status == 400:
        assert r.error_codes()[0] == "UNSUPPORTED"
    r = oci.delete(f"/v2/{NAME}/manifests/{image.digest}")
    assert r.status in (202, 404), r
    assert oci.get_manifest(NAME, image.digest).status in (404, 200)
    r = oci.get(f"/v2/{NAME}/tags/list")
    assert r.status == 200, r
    assert len(r.json().get("tags") or []) < before
    config = digest_of(image.config)
    assert oci.delete(f"/v2/{NAME}/blobs/{config}").status == 202
    assert oci.delete(f"/v2/{NAME}/blobs/{digest_of(image.layers[0])}").status in (202, 404, 405)
    assert oci.get(f"/v2/{NAME}/blobs/{config}").status == 404


def test_unknown_manifest_delete_is_404(oci):
    oci.push_image(NAME, "present")
    assert_error(oci.delete(f"/v2/{NAME}/manifests/{digest_of(b'nothing')}"), 404, "MANIFEST_UNKNOWN")
    assert_error(oci.delete(f"/v2/{NAME}/manifests/absent"), 404, "MANIFEST_UNKNOWN")
