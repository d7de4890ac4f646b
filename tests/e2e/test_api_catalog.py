"""The repository catalog: GET /v2/_catalog[?n=&last=] (a Docker API that OCI registries keep)."""
from ociclient import next_link, oci  # noqa: F401

REPOS = sorted(["a/one", "a/two", "b", "b-c/d", "b.c", "b_c", "library/ubuntu", "z/z/z"])


def push_repos(oci, names=REPOS):
    for name in names:
        oci.push_image(name, "latest", layers=0)


def test_catalog_lists_repositories_in_lexical_order(oci):
    push_repos(oci, list(reversed(REPOS)))
    r = oci.get("/v2/_catalog")
    assert r.status == 200, r
    assert r.json()["repositories"] == REPOS


def test_empty_registry_has_an_empty_catalog(oci):
    r = oci.get("/v2/_catalog")
    assert r.status == 200, r
    assert r.json()["repositories"] in ([], None)


def test_catalog_pagination_follows_link_to_the_end(oci):
    push_repos(oci)
    seen, url, pages = [], "/v2/_catalog?n=3", 0
    while url:
        r = oci.get(url)
        assert r.status == 200, r
        page = r.json()["repositories"]
        assert 0 < len(page) <= 3
        seen += page
        url = next_link(r)
        pages += 1
        assert pages <= len(REPOS)
    assert seen == REPOS
    assert pages == 3


def test_catalog_last(oci):
    push_repos(oci)
    r = oci.get("/v2/_catalog?n=2&last=b")
    assert r.status == 200, r
    i = REPOS.index("b")
    assert r.json()["repositories"] == REPOS[i + 1:i + 3]
    assert next_link(r)


def test_catalog_n_zero_is_empty_without_link(oci):
    push_repos(oci)
    r = oci.get("/v2/_catalog?n=0")
    assert r.status == 200, r
    assert r.json()["repositories"] == []
    assert r.header("Link") is None


def test_repository_with_only_blobs_or_deleted_manifests_does_not_break_the_catalog(oci):
    push_repos(oci, ["kept"])
    oci.push_blob("blobs/only", b"a blob and nothing else")
    image = oci.push_image("emptied", "x", layers=0)
    oci.delete(f"/v2/emptied/manifests/{image.digest}")
    r = oci.get("/v2/_catalog")
    assert r.status == 200, r
    repos = r.json()["repositories"]
    assert "kept" in repos
    assert repos == sorted(repos)
