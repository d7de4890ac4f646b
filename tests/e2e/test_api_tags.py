"""Tag listing: GET /v2/<name>/tags/list[?n=&last=] (end-8a, end-8b)."""
from ociclient import assert_error, next_link, oci  # noqa: F401

NAME = "conformance/tags"
# In byte order, which is also the spec's lexical order for these (all lowercase) tags.
TAGS = sorted(["1.0", "1.0.1", "2.0", "alpha", "beta", "latest", "rc-1", "v1", "v1_0", "zeta"])


def push_tags(oci, tags=TAGS):
    image = oci.push_image(NAME, tags[0])
    for tag in tags[1:]:
        oci.push_manifest(NAME, tag, image.data)
    return image


def test_list_all_in_lexical_order(oci):
    push_tags(oci, list(reversed(TAGS)))  # pushed out of order on purpose
    r = oci.get(f"/v2/{NAME}/tags/list")
    assert r.status == 200, r
    assert r.header("Content-Type").startswith("application/json")
    assert r.json() == {"name": NAME, "tags": TAGS}
    assert r.header("Link") is None


def test_n_limits_and_link_points_to_the_rest(oci):
    push_tags(oci)
    r = oci.get(f"/v2/{NAME}/tags/list?n=3")
    assert r.status == 200, r
    assert r.json()["tags"] == TAGS[:3]
    link = next_link(r)
    assert link and link.startswith(f"/v2/{NAME}/tags/list?")


def test_following_link_walks_every_tag_once(oci):
    push_tags(oci)
    seen, url, pages = [], f"/v2/{NAME}/tags/list?n=4", 0
    while url:
        r = oci.get(url)
        assert r.status == 200, r
        page = r.json()["tags"]
        assert 0 < len(page) <= 4
        seen += page
        url = next_link(r)
        pages += 1
        assert pages <= len(TAGS), "pagination does not terminate"
    assert seen == TAGS
    assert pages == 3


def test_last_starts_after_the_given_tag(oci):
    push_tags(oci)
    r = oci.get(f"/v2/{NAME}/tags/list?n=3&last=beta")
    assert r.status == 200, r
    i = TAGS.index("beta")
    assert r.json()["tags"] == TAGS[i + 1:i + 4]
    r = oci.get(f"/v2/{NAME}/tags/list?last=rc-1")  # n is optional with last
    assert r.status == 200, r
    assert r.json()["tags"] == TAGS[TAGS.index("rc-1") + 1:]


def test_last_need_not_be_an_existing_tag(oci):
    push_tags(oci)
    r = oci.get(f"/v2/{NAME}/tags/list?last=b")  # between "alpha" and "beta"
    assert r.status == 200, r
    assert r.json()["tags"] == [t for t in TAGS if t > "b"]


def test_n_larger_than_the_count_returns_all_without_link(oci):
    push_tags(oci)
    r = oci.get(f"/v2/{NAME}/tags/list?n=1000")
    assert r.status == 200, r
    assert r.json()["tags"] == TAGS
    assert r.header("Link") is None


def test_exactly_n_remaining_has_no_dangling_empty_page(oci):
    push_tags(oci)
    r = oci.get(f"/v2/{NAME}/tags/list?n={len(TAGS)}")
    assert r.json()["tags"] == TAGS
    link = next_link(r)
    if link:  # a Link to an empty page is wasteful but legal; it must then be empty
        assert oci.get(link).json()["tags"] in ([], None)


def test_n_zero_is_an_empty_list_without_link(oci):
    push_tags(oci)
    r = oci.get(f"/v2/{NAME}/tags/list?n=0")
    assert r.status == 200, r
    assert r.json()["tags"] == []
    assert r.header("Link") is None


def test_conformance_content_discovery_tags(oci):
    # conformance, Content Discovery / listing tags: n = half the tags gives exactly that many; with
    # last = the final one of that page, at most n come back and never `last` itself.
    push_tags(oci, ["test0", "test1", "test2", "test3"])
    tags = oci.tags(NAME)
    half = len(tags) // 2
    page = oci.get(f"/v2/{NAME}/tags/list?n={half}").json()["tags"]
    assert len(page) == half
    r = oci.get(f"/v2/{NAME}/tags/list?n={half}&last={page[-1]}")
    assert r.status == 200
    rest = r.json()["tags"]
    assert len(rest) <= half and page[-1] not in rest


def test_untagged_repository_lists_no_tags(oci):
    oci.push_image(NAME, tag=None)  # pushed by digest only
    r = oci.get(f"/v2/{NAME}/tags/list")
    assert r.status == 200, r
    assert r.json()["tags"] in ([], None)


def test_unknown_repository_is_404_name_unknown(oci):
    assert_error(oci.get("/v2/no/such/repo/tags/list"), 404, "NAME_UNKNOWN")


def test_tags_are_per_repository(oci):
    push_tags(oci)
    oci.push_image("conformance/other", "only-here")
    assert oci.tags("conformance/other") == ["only-here"]
    assert "only-here" not in oci.tags(NAME)


def test_nonsense_n_is_a_client_error_or_ignored(oci):
    # The spec does not say; what matters is that it is never a server error or a crash.
    push_tags(oci)
    for bad in ("-1", "abc", "99999999999999999999999"):
        r = oci.get(f"/v2/{NAME}/tags/list?n={bad}")
        assert r.status in (200, 400), (bad, r)
        if r.status == 400:
            r.error_codes()
