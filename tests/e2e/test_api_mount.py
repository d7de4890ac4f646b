"""Cross-repository blob mounts: POST /v2/<name>/blobs/uploads/?mount=<digest>[&from=<other>] (end-11)."""
from ociclient import OCTET, assert_error, digest_of, oci, path_of, random_bytes, with_query  # noqa: F401

SOURCE = "conformance/source"
TARGET = "conformance/crossmount"
DUMMY = digest_of(b"hello world")


def mount(oci, digest, source=None, target=TARGET):
    params = {"mount": digest} if source is None else {"mount": digest, "from": source}
    return oci.post(with_query(f"/v2/{target}/blobs/uploads/", **params))


def test_mount_from_a_repository_holding_the_blob_is_201(oci):
    data = random_bytes(777)
    dgst = oci.push_blob(SOURCE, data)
    r = mount(oci, dgst, SOURCE)
    assert r.status == 201, r
    assert path_of(r.header("Location")) == f"/v2/{TARGET}/blobs/{dgst}"
    assert r.header("Docker-Content-Digest") == dgst
    got = oci.get(r.header("Location"))
    assert got.status == 200 and got.body == data
    # The source keeps its copy.
    assert oci.get(f"/v2/{SOURCE}/blobs/{dgst}").body == data


def test_mount_survives_deleting_the_blob_from_the_source(oci):
    data = random_bytes(100)
    dgst = oci.push_blob(SOURCE, data)
    assert mount(oci, dgst, SOURCE).status == 201
    assert oci.delete(f"/v2/{SOURCE}/blobs/{dgst}").status == 202
    r = oci.get(f"/v2/{TARGET}/blobs/{dgst}")
    assert r.status == 200 and r.body == data


def test_mount_from_a_repository_without_the_blob_opens_an_upload(oci):
    data = random_bytes(100)
    dgst = oci.push_blob("conformance/elsewhere", data)
    oci.push_blob(SOURCE, b"the source exists but lacks the blob")
    r = mount(oci, dgst, SOURCE)
    assert r.status == 202, r
    location = r.header("Location")
    assert path_of(location).startswith(f"/v2/{TARGET}/blobs/uploads/")
    # The blob was not mounted...
    assert oci.head(f"/v2/{TARGET}/blobs/{dgst}").status == 404
    # ...and the answer is an ordinary session the client can upload through.
    done = oci.put(with_query(location, digest=dgst), data, headers={"Content-Type": OCTET})
    assert done.status == 201, done
    assert oci.get(f"/v2/{TARGET}/blobs/{dgst}").body == data


def test_mount_from_an_unknown_repository_opens_an_upload(oci):
    r = mount(oci, DUMMY, "no/such/repository")
    assert r.status == 202, r
    assert path_of(r.header("Location")).startswith(f"/v2/{TARGET}/blobs/uploads/")


def test_mount_of_a_deleted_blob_opens_an_upload(oci):
    dgst = oci.push_blob(SOURCE, b"soon gone")
    assert oci.delete(f"/v2/{SOURCE}/blobs/{dgst}").status == 202
    r = mount(oci, dgst, SOURCE)
    assert r.status == 202, r
    assert oci.head(f"/v2/{TARGET}/blobs/{dgst}").status == 404


def test_mount_without_from_of_an_unknown_blob_opens_an_upload(oci):
    # conformance: "Cross-mounting of a blob without the from argument should yield session id".
    r = mount(oci, DUMMY)
    assert r.status == 202, r
    assert r.header("Location")


def test_mount_without_from_finds_the_blob_anywhere(oci):
    # Berth runs with automatic cross-mounting (OCI_AUTOMATIC_CROSSMOUNT=1 in the conformance suite):
    # "mount" alone mounts a blob that any repository holds.
    data = random_bytes(300)
    dgst = oci.push_blob(SOURCE, data)
    r = mount(oci, dgst)
    assert r.status == 201, r
    assert path_of(r.header("Location")) == f"/v2/{TARGET}/blobs/{dgst}"
    assert oci.get(f"/v2/{TARGET}/blobs/{dgst}").body == data


def test_conformance_push_cross_mount(oci):
    # conformance, Push / Cross-Repository Blob Mount, with the automatic cross-mount enabled.
    blob = random_bytes(42)
    dgst = oci.push_blob(SOURCE, blob)
    r = mount(oci, DUMMY)
    assert r.status == 202 and r.header("Location"), r
    r = mount(oci, dgst, SOURCE)
    assert r.status in (201, 202), r
    if r.status == 201:
        assert path_of(r.header("Location")) == f"/v2/{TARGET}/blobs/{dgst}"
        assert oci.get(r.header("Location")).status == 200
        assert mount(oci, dgst).status == 201  # without from, automatic cross-mount
    else:
        assert path_of(r.header("Location")).startswith(f"/v2/{TARGET}/blobs/uploads/")
        raise AssertionError("Berth must mount a blob the source repository holds (201)")


def test_mount_with_a_malformed_digest_is_not_a_mount(oci):
    oci.push_blob(SOURCE, b"x")
    r = mount(oci, "sha256:nothex", SOURCE)
    assert r.status in (202, 400), r
    if r.status == 400:
        assert_error(r, 400, "DIGEST_INVALID")
