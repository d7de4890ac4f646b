"""The referrers API, GET /v2/<name>/referrers/<digest>[?artifactType=] (end-12a/b), and OCI-Subject."""
import pytest

from ociclient import (EMPTY_BLOB, OCI_EMPTY, OCI_INDEX, OCI_MANIFEST, assert_error, descriptor,  # noqa: F401
                       digest_of, oci, random_bytes, to_json, with_query)

NAME = "conformance/referrers"
KEY = "org.opencontainers.conformance.test"
TYPE_A = "application/vnd.nhl.peanut.butter.bagel"
TYPE_B = "application/vnd.nba.strawberry.jam.croissant"
TYPE_INDEX = "application/vnd.food.stand"


def referrers(oci, subject_digest, artifact_type=None, name=NAME):
    url = f"/v2/{name}/referrers/{subject_digest}"
    if artifact_type:
        url = with_query(url, artifactType=artifact_type)
    r = oci.get(url)
    assert r.status == 200, r
    # Exactly this, without parameters: the conformance suite compares the whole header.
    assert r.header("Content-Type") == OCI_INDEX
    index = r.json()
    assert index["schemaVersion"] == 2
    assert index.get("mediaType") == OCI_INDEX
    return r, index["manifests"]


def config_artifact(oci, subject, artifact_type, annotation):
    """An image-manifest artifact whose type is its config's mediaType (conformance's "config" kind)."""
    config = random_bytes(20)
    oci.push_blob(NAME, config)
    oci.push_blob(NAME, EMPTY_BLOB)
    data = to_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(artifact_type, config),
                    "subject": descriptor(OCI_MANIFEST, subject.data), "layers": [descriptor(OCI_EMPTY, EMPTY_BLOB)],
                    "annotations": {KEY: annotation}})
    r = oci.put_manifest(NAME, digest_of(data), data)
    assert r.status == 201, r
    return data, r


def test_unknown_subject_is_an_empty_index(oci):
    oci.push_image(NAME, "v1")
    _, manifests = referrers(oci, digest_of(b"hello world"))
    assert manifests == []


def test_unknown_repository_is_an_empty_index_or_404(oci):
    # "Assuming a repository is found, this request MUST return a 200": unknown repositories may 404.
    r = oci.get(f"/v2/no/such/repo/referrers/{digest_of(b'x')}")
    assert r.status in (200, 404), r


def test_put_with_subject_answers_oci_subject(oci):
    subject = oci.push_image(NAME, "v1")
    artifact = oci.push_artifact(NAME, subject, TYPE_A)
    assert artifact.response.header("OCI-Subject") == subject.digest


def test_referrers_list_descriptors_with_artifact_type_and_annotations(oci):
    subject = oci.push_image(NAME, "v1")
    a = oci.push_artifact(NAME, subject, TYPE_A, annotations={KEY: "layer a", "org.example.other": "2"})
    b_data, _ = config_artifact(oci, subject, TYPE_B, "config b")
    _, manifests = referrers(oci, subject.digest)
    by_digest = {m["digest"]: m for m in manifests}
    assert set(by_digest) == {a.digest, digest_of(b_data)}
    assert by_digest[a.digest] == {"mediaType": OCI_MANIFEST, "digest": a.digest, "size": len(a.data),
                                   "artifactType": TYPE_A,
                                   "annotations": {KEY: "layer a", "org.example.other": "2"}}
    b = by_digest[digest_of(b_data)]
    assert b["artifactType"] == TYPE_B, "without artifactType, the config's mediaType is the type"
    assert b["size"] == len(b_data) and b["mediaType"] == OCI_MANIFEST
    assert b["annotations"] == {KEY: "config b"}


def test_artifact_without_annotations_has_none_in_its_descriptor(oci):
    subject = oci.push_image(NAME, "v1")
    a = oci.push_artifact(NAME, subject, TYPE_A)
    _, manifests = referrers(oci, subject.digest)
    assert len(manifests) == 1 and manifests[0]["digest"] == a.digest
    assert manifests[0].get("annotations") in (None, {})


def test_artifact_type_filter(oci):
    subject = oci.push_image(NAME, "v1")
    a1 = oci.push_artifact(NAME, subject, TYPE_A, annotations={KEY: "a1"})
    a2_data, _ = config_artifact(oci, subject, TYPE_A, "a2")
    oci.push_artifact(NAME, subject, TYPE_B, annotations={KEY: "b"})
    r, manifests = referrers(oci, subject.digest, TYPE_A)
    assert r.header("OCI-Filters-Applied") == "artifactType"
    assert {m["digest"] for m in manifests} == {a1.digest, digest_of(a2_data)}
    assert all(m["artifactType"] == TYPE_A for m in manifests)
    r, manifests = referrers(oci, subject.digest, "application/vnd.nobody.uses.this")
    assert r.header("OCI-Filters-Applied") == "artifactType"
    assert manifests == []
    r, manifests = referrers(oci, subject.digest)
    assert r.header("OCI-Filters-Applied") is None, "no filter asked, none claimed"
    assert len(manifests) == 3


def test_referrer_pushed_before_its_subject(oci):
    # The subject need not exist: a referrer may be pushed first, and it is listed once it does.
    subject_config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    subject_data = to_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                            "config": descriptor("application/vnd.oci.image.config.v1+json", subject_config),
                            "layers": []})
    subject_digest = digest_of(subject_data)
    artifact = oci.push_artifact(NAME, descriptor(OCI_MANIFEST, subject_data), TYPE_B)
    assert artifact.response.status == 201
    assert artifact.response.header("OCI-Subject") == subject_digest
    _, manifests = referrers(oci, subject_digest)
    assert [m["digest"] for m in manifests] == [artifact.digest]
    oci.push_blob(NAME, subject_config)
    oci.push_manifest(NAME, "late", subject_data)
    _, manifests = referrers(oci, subject_digest)
    assert [m["digest"] for m in manifests] == [artifact.digest]


def test_index_with_subject_is_a_referrer(oci):
    subject = oci.push_image(NAME, "v1")
    child = oci.push_image(NAME)
    index = oci.push_index(NAME, [child], artifactType=TYPE_INDEX,
                           subject=descriptor(OCI_MANIFEST, subject.data), annotations={KEY: "test index"})
    assert index.response.header("OCI-Subject") == subject.digest
    _, manifests = referrers(oci, subject.digest)
    assert manifests == [{"mediaType": OCI_INDEX, "digest": index.digest, "size": len(index.data),
                          "artifactType": TYPE_INDEX, "annotations": {KEY: "test index"}}]


def test_deleted_referrer_disappears(oci):
    subject = oci.push_image(NAME, "v1")
    gone = oci.push_artifact(NAME, subject, TYPE_A)
    kept = oci.push_artifact(NAME, subject, TYPE_B)
    assert oci.delete(f"/v2/{NAME}/manifests/{gone.digest}").status == 202
    _, manifests = referrers(oci, subject.digest)
    assert [m["digest"] for m in manifests] == [kept.digest]


def test_referrers_are_per_repository(oci):
    subject = oci.push_image(NAME, "v1")
    oci.push_artifact(NAME, subject, TYPE_A)
    oci.push_image("conformance/other", "v1")
    _, manifests = referrers(oci, subject.digest, name="conformance/other")
    assert manifests == []


def test_invalid_digest_is_400(oci):
    oci.push_image(NAME, "v1")
    r = oci.get(f"/v2/{NAME}/referrers/sha256:{'a' * 63}")
    assert_error(r, 400, "DIGEST_INVALID")


def test_conformance_content_discovery_referrers(oci):
    # conformance, Content Discovery / References: two referrers pushed before the subject, the
    # subject, two after, an index referrer, and one to a subject that is never pushed.
    subject_image_config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    layer = random_bytes(100)
    subject = to_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                       "config": descriptor("application/vnd.oci.image.config.v1+json", subject_image_config),
                       "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", layer)]})
    subject_desc = descriptor(OCI_MANIFEST, subject)
    missing_desc = descriptor(OCI_MANIFEST, subject + b" ")
    oci.push_blob(NAME, EMPTY_BLOB)
    blob_a, blob_b = b"NHL Peanut Butter on my NHL bagel", b"NBA Strawberry Jam on my NBA croissant"
    oci.push_blob(NAME, blob_a)

    def config_kind(blob, type_, note):
        return to_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(type_, blob),
                        "subject": subject_desc, "layers": [descriptor(OCI_EMPTY, EMPTY_BLOB)],
                        "annotations": {KEY: note}})

    def layer_kind(blob, type_, note, subj=subject_desc):
        doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": type_,
               "config": descriptor(OCI_EMPTY, EMPTY_BLOB), "subject": subj,
               "layers": [descriptor(type_, blob)]}
        if note:
            doc["annotations"] = {KEY: note}
        return to_json(doc)

    def push(data, media_type=OCI_MANIFEST, subject_digest=subject_desc["digest"]):
        r = oci.put_manifest(NAME, digest_of(data), data, media_type)
        assert 200 <= r.status < 300, r
        assert r.header("OCI-Subject") == subject_digest
        return digest_of(data)

    notes = {}
    a_config = config_kind(blob_a, TYPE_A, "test config a")
    a_layer = layer_kind(blob_a, TYPE_A, "test layer a")
    notes[push(a_config)] = "test config a"
    notes[push(a_layer)] = "test layer a"
    index = to_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "artifactType": TYPE_INDEX,
                     "manifests": [descriptor(OCI_MANIFEST, a_config), descriptor(OCI_MANIFEST, a_layer)],
                     "subject": subject_desc, "annotations": {KEY: "test index"}})
    notes[push(index, OCI_INDEX)] = "test index"
    oci.push_blob(NAME, subject_image_config)
    oci.push_blob(NAME, layer)
    oci.push_manifest(NAME, "tagtest0", subject)
    oci.push_blob(NAME, blob_b)
    notes[push(config_kind(blob_b, TYPE_B, "test config b"))] = "test config b"
    notes[push(layer_kind(blob_b, TYPE_B, "test layer b"))] = "test layer b"
    dangling = push(layer_kind(blob_b, TYPE_B, None, missing_desc), subject_digest=missing_desc["digest"])

    _, manifests = referrers(oci, digest_of(b"hello world"))
    assert manifests == []

    _, manifests = referrers(oci, subject_desc["digest"])
    assert len(manifests) == 5
    assert len({m["digest"] for m in manifests}) == 5
    for m in manifests:
        assert m["annotations"] == {KEY: notes[m["digest"]]}

    r, manifests = referrers(oci, subject_desc["digest"], TYPE_A)
    assert r.header("OCI-Filters-Applied") == "artifactType"
    assert len(manifests) == 2
    for m in manifests:
        assert m["annotations"] == {KEY: notes[m["digest"]]}

    _, manifests = referrers(oci, missing_desc["digest"])
    assert [m["digest"] for m in manifests] == [dangling]


@pytest.mark.parametrize("method", ["PUT", "DELETE", "POST"])
def test_referrers_is_read_only(oci, method):
    oci.push_image(NAME, "v1")
    r = oci.request(method, f"/v2/{NAME}/referrers/{digest_of(b'x')}", body=b"")
    assert r.status in (404, 405), r
