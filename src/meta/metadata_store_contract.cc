#include "meta/metadata_store_contract.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <iterator>
#include <limits>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/sha256_state.h"
#include "core/sync_wait.h"
#include "core/test_await.h"
#include "core/unix_time.h"

namespace berth::meta {

void metadata_store_contract::SetUp() {
  std::string pattern = (std::filesystem::temp_directory_path() / "berth-meta-contract-XXXXXX").string();
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  location_ = pattern;
  store_ = GetParam().open(location_);
}

void metadata_store_contract::TearDown() {
  store_.reset();
  std::filesystem::remove_all(location_);
}

void metadata_store_contract::reopen() {
  store_.reset();
  store_ = GetParam().open(location_);
}

namespace {

using test_util::await_all;
using strings = std::vector<std::string>;

digest d(std::string_view seed) { return digest_of(seed); }

manifest_record manifest(std::string content, std::vector<digest> references = {},
                         std::optional<digest> subject = std::nullopt, std::string artifact_type = "") {
  return manifest_record{digest_of(content), "application/vnd.oci.image.manifest.v1+json", std::move(content),
                         std::move(subject),  std::move(artifact_type),
                         "",                 std::move(references), 0, {}};
}

// Links `d` into `repo` as an upload does: claim, then complete an upload record.
awaitable<result<void>> link(metadata_store& m, std::string_view repo, const digest& d, std::uint64_t size) {
  static std::atomic<int> uploads{0};
  auto& u = m.uploads();
  const upload_record r{fmt::format("link-{}", uploads++), std::string(repo), 0, ""};
  auto generation = co_await u.claim(d, size);
  if (!generation) co_return std::unexpected(generation.error());
  auto created = co_await u.create(r, upload_lease{1, std::numeric_limits<std::int64_t>::max()}, 0);
  if (!created) co_return created;
  auto completed = co_await u.complete(r.id, 1, d, size, *generation);
  if (!completed) co_return std::unexpected(completed.error());
  EXPECT_TRUE(*completed);
  co_return result<void>{};
}

std::vector<digest> sorted(std::vector<digest> ds) {
  std::sort(ds.begin(), ds.end());
  return ds;
}

// ---- not found, links, manifests, tags ----

TEST_P(metadata_store_contract, empty_store_answers_not_found) {
  auto& m = *store_;
  EXPECT_EQ(sync_wait(m.list_repositories("", 10)).value(), strings{});
  EXPECT_EQ(sync_wait(m.list_tags("a/b", "", 10)).value(), std::nullopt);
  EXPECT_EQ(sync_wait(m.manifest_by_tag("a/b", "latest")).value(), std::nullopt);
  EXPECT_EQ(sync_wait(m.manifest_by_digest("a/b", d("x"))).value(), std::nullopt);
  EXPECT_EQ(sync_wait(m.linked_blob_size("a/b", d("x"))).value(), std::nullopt);
  EXPECT_EQ(sync_wait(m.delete_manifest("a/b", d("x"), test_stamp)).value(), false);
  EXPECT_EQ(sync_wait(m.delete_tag("a/b", "latest", test_stamp)).value(), false);
  EXPECT_EQ(sync_wait(m.unlink_blob("a/b", d("x"))).value(), false);
  EXPECT_FALSE(sync_wait(m.repository_exists("a/b")).value());
  EXPECT_FALSE(sync_wait(m.delete_repository("a/b")).value());
  EXPECT_TRUE(sync_wait(m.repositories_with_blob(d("x"), 10)).value().empty());
  EXPECT_TRUE(sync_wait(m.referrers("a/b", d("x"), std::nullopt)).value().empty());
}

TEST_P(metadata_store_contract, probe_answers) {
  EXPECT_TRUE(sync_wait(store_->probe()).has_value());
  EXPECT_EQ(sync_wait(store_->list_repositories("", 10)).value(), strings{});
}

TEST_P(metadata_store_contract, blob_links_are_per_repository_and_idempotent) {
  auto& m = *store_;
  ASSERT_TRUE(sync_wait(link(m, "a/b", d("one"), 11)).has_value());
  ASSERT_TRUE(sync_wait(link(m, "a/b", d("one"), 11)).has_value());  // idempotent
  ASSERT_TRUE(sync_wait(link(m, "c", d("two"), 22)).has_value());

  EXPECT_EQ(sync_wait(m.linked_blob_size("a/b", d("one"))).value(), 11u);
  EXPECT_EQ(sync_wait(m.linked_blob_size("a/b", d("two"))).value(), std::nullopt);  // linked elsewhere only
  EXPECT_EQ(sync_wait(m.linked_blob_size("c", d("two"))).value(), 22u);

  const digest asked[] = {d("three"), d("one"), d("two")};
  EXPECT_EQ(sync_wait(m.missing_blobs("a/b", asked)).value(), (std::vector<digest>{d("three"), d("two")}));
  EXPECT_EQ(sync_wait(m.missing_blobs("nowhere", asked)).value(), std::vector<digest>(std::begin(asked), std::end(asked)));

  EXPECT_EQ(sync_wait(m.unlink_blob("a/b", d("one"))).value(), true);
  EXPECT_EQ(sync_wait(m.unlink_blob("a/b", d("one"))).value(), false);
  EXPECT_EQ(sync_wait(m.linked_blob_size("a/b", d("one"))).value(), std::nullopt);
}

TEST_P(metadata_store_contract, linking_creates_the_repository) {
  auto& m = *store_;
  ASSERT_TRUE(sync_wait(link(m, "a/b", d("one"), 1)).has_value());
  EXPECT_TRUE(sync_wait(m.repository_exists("a/b")).value());
  EXPECT_EQ(sync_wait(m.list_tags("a/b", "", 10)).value(), strings{});  // exists, no tags
  EXPECT_EQ(sync_wait(m.list_repositories("", 10)).value(), strings{"a/b"});
}

TEST_P(metadata_store_contract, manifest_round_trip_is_byte_exact) {
  auto& m = *store_;
  auto rec = manifest(std::string("{\"a\":1}\0binary\xff", 15), {d("layer"), d("config")}, d("subject"), "x/sig");
  rec.annotations_json = R"({"k":"v"})";
  for (const digest& ref : rec.references) ASSERT_TRUE(sync_wait(link(m, "a/b", ref, 1)).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("a/b", rec, "v1", test_stamp)).has_value());

  for (auto got : {sync_wait(m.manifest_by_digest("a/b", rec.dgst)).value(), sync_wait(m.manifest_by_tag("a/b", "v1")).value()}) {
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->dgst, rec.dgst);
    EXPECT_EQ(got->media_type, rec.media_type);
    EXPECT_EQ(got->content, rec.content);
    EXPECT_EQ(got->subject, rec.subject);
    EXPECT_EQ(got->artifact_type, "x/sig");
    EXPECT_EQ(got->annotations_json, rec.annotations_json);
    EXPECT_EQ(sorted(got->references), sorted(rec.references));
  }
  EXPECT_EQ(sync_wait(m.manifest_by_digest("other", rec.dgst)).value(), std::nullopt);
  EXPECT_EQ(sync_wait(m.manifest_by_tag("a/b", "v2")).value(), std::nullopt);
}

TEST_P(metadata_store_contract, manifest_without_tag) {
  auto& m = *store_;
  const auto rec = manifest("untagged");
  ASSERT_TRUE(sync_wait(m.put_manifest("a/b", rec, std::nullopt, test_stamp)).has_value());
  EXPECT_TRUE(sync_wait(m.manifest_by_digest("a/b", rec.dgst)).value().has_value());
  EXPECT_EQ(sync_wait(m.list_tags("a/b", "", 10)).value(), strings{});
}

TEST_P(metadata_store_contract, tag_moves) {
  auto& m = *store_;
  const auto one = manifest("one");
  const auto two = manifest("two");
  ASSERT_TRUE(sync_wait(m.put_manifest("r", one, "latest", test_stamp)).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("r", two, "latest", test_stamp)).has_value());
  EXPECT_EQ(sync_wait(m.manifest_by_tag("r", "latest")).value()->dgst, two.dgst);
  // Pushing a stored digest again only moves the tag back.
  ASSERT_TRUE(sync_wait(m.put_manifest("r", one, "latest", test_stamp)).has_value());
  EXPECT_EQ(sync_wait(m.manifest_by_tag("r", "latest")).value()->dgst, one.dgst);
  EXPECT_EQ(sync_wait(m.list_tags("r", "", 10)).value(), strings{"latest"});
}

TEST_P(metadata_store_contract, same_digest_again_keeps_content) {
  auto& m = *store_;
  auto first = manifest("content", {d("layer")});
  ASSERT_TRUE(sync_wait(link(m, "r", d("layer"), 1)).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("r", first, "a", test_stamp)).has_value());
  auto again = first;
  again.media_type = "changed";
  again.references = {d("other")};
  ASSERT_TRUE(sync_wait(m.put_manifest("r", again, "b", test_stamp)).has_value());

  auto got = sync_wait(m.manifest_by_tag("r", "b")).value();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->media_type, first.media_type);
  EXPECT_EQ(got->references, first.references);
  EXPECT_EQ(sync_wait(m.list_tags("r", "", 10)).value(), (strings{"a", "b"}));
}

TEST_P(metadata_store_contract, missing_manifests) {
  auto& m = *store_;
  const auto rec = manifest("held");
  ASSERT_TRUE(sync_wait(m.put_manifest("r", rec, std::nullopt, test_stamp)).has_value());
  const digest asked[] = {d("absent"), rec.dgst};
  EXPECT_EQ(sync_wait(m.missing_manifests("r", asked)).value(), std::vector<digest>{d("absent")});
  EXPECT_EQ(sync_wait(m.missing_manifests("other", asked)).value(), (std::vector<digest>{d("absent"), rec.dgst}));
}

TEST_P(metadata_store_contract, delete_manifest_removes_tags_and_references) {
  auto& m = *store_;
  auto rec = manifest("doomed", {d("layer")});
  const auto kept = manifest("kept");
  ASSERT_TRUE(sync_wait(link(m, "r", d("layer"), 1)).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("r", rec, "a", test_stamp)).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("r", rec, "b", test_stamp)).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("r", kept, "c", test_stamp)).has_value());

  EXPECT_EQ(sync_wait(m.delete_manifest("r", rec.dgst, test_stamp)).value(), true);
  EXPECT_EQ(sync_wait(m.delete_manifest("r", rec.dgst, test_stamp)).value(), false);
  EXPECT_EQ(sync_wait(m.manifest_by_digest("r", rec.dgst)).value(), std::nullopt);
  EXPECT_EQ(sync_wait(m.list_tags("r", "", 10)).value(), strings{"c"});

  // Stored afresh without references: any left over from before would show up here.
  rec.references.clear();
  ASSERT_TRUE(sync_wait(m.put_manifest("r", rec, std::nullopt, test_stamp)).has_value());
  EXPECT_TRUE(sync_wait(m.manifest_by_digest("r", rec.dgst)).value()->references.empty());
}

// A guard judges every tag on the manifest in the deletion's transaction: one message refuses the
// whole deletion (DENIED, with the message) and nothing is deleted; a guard that objects to nothing
// lets it go, and an untagged manifest never asks it.
TEST_P(metadata_store_contract, a_tag_guard_refuses_deleting_a_manifest) {
  auto& m = *store_;
  const auto rec = manifest("guarded");
  const auto loose = manifest("loose");
  ASSERT_TRUE(sync_wait(m.put_manifest("r", rec, "v1", test_stamp)).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("r", rec, "dev", test_stamp)).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("r", loose, std::nullopt, test_stamp)).has_value());
  strings judged;
  const delete_guard immutable_v{.tags = [&](std::string_view tag) -> std::optional<std::string> {
    judged.emplace_back(tag);
    if (tag.starts_with("v")) return fmt::format("tag r:{} is immutable", tag);
    return std::nullopt;
  }};
  const auto refused = sync_wait(m.delete_manifest("r", rec.dgst, test_stamp, immutable_v));
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, errc::denied);
  EXPECT_EQ(refused.error().detail, "tag r:v1 is immutable");
  EXPECT_NE(std::find(judged.begin(), judged.end(), "v1"), judged.end());
  EXPECT_NE(sync_wait(m.manifest_by_digest("r", rec.dgst)).value(), std::nullopt);
  EXPECT_EQ(sync_wait(m.list_tags("r", "", 10)).value(), (strings{"dev", "v1"}));

  judged.clear();
  EXPECT_TRUE(sync_wait(m.delete_manifest("r", loose.dgst, test_stamp, immutable_v)).value());
  EXPECT_TRUE(judged.empty());
  ASSERT_TRUE(sync_wait(m.delete_tag("r", "v1", test_stamp)).value());
  EXPECT_TRUE(sync_wait(m.delete_manifest("r", rec.dgst, test_stamp, immutable_v)).value());
  EXPECT_EQ(judged, strings{"dev"});
  EXPECT_EQ(sync_wait(m.list_tags("r", "", 10)).value(), strings{});
}

// keep_needed refuses, in the deletion's transaction, a manifest that another manifest of the
// repository lists (an index's child) and a referrer whose subject the repository holds, until
// that one is gone. Another repository's manifests never count; without it, a child goes (OCI).
TEST_P(metadata_store_contract, keep_needed_refuses_deleting_what_a_manifest_needs) {
  auto& m = *store_;
  const auto child = manifest("child");
  const auto index = manifest("index", {child.dgst});
  const auto subject = manifest("subject");
  const auto sig = manifest("signature", {}, subject.dgst, "application/vnd.example.sig");
  for (const auto* rec : {&child, &index, &subject, &sig})
    ASSERT_TRUE(sync_wait(m.put_manifest("r", *rec, std::nullopt, test_stamp)).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("other", child, std::nullopt, test_stamp)).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("other", sig, std::nullopt, test_stamp)).has_value());
  const delete_guard needed{.keep_needed = true};

  for (const auto& [rec, by] : {std::pair{&child, &index}, std::pair{&sig, &subject}}) {
    const auto refused = sync_wait(m.delete_manifest("r", rec->dgst, test_stamp, needed));
    ASSERT_FALSE(refused.has_value());
    EXPECT_EQ(refused.error().code, errc::denied);
    EXPECT_EQ(refused.error().detail, fmt::format("manifest {} still needs it", by->dgst.str()));
    EXPECT_TRUE(sync_wait(m.manifest_by_digest("r", rec->dgst)).value().has_value());
  }
  EXPECT_TRUE(sync_wait(m.delete_manifest("other", child.dgst, test_stamp, needed)).value());
  EXPECT_TRUE(sync_wait(m.delete_manifest("other", sig.dgst, test_stamp, needed)).value());

  EXPECT_TRUE(sync_wait(m.delete_manifest("r", index.dgst, test_stamp, needed)).value());
  EXPECT_TRUE(sync_wait(m.delete_manifest("r", child.dgst, test_stamp, needed)).value());
  EXPECT_TRUE(sync_wait(m.delete_manifest("r", subject.dgst, test_stamp, needed)).value());
  EXPECT_TRUE(sync_wait(m.delete_manifest("r", sig.dgst, test_stamp, needed)).value());

  ASSERT_TRUE(sync_wait(m.put_manifest("r", child, std::nullopt, test_stamp)).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("r", index, "v1", test_stamp)).has_value());
  EXPECT_TRUE(sync_wait(m.delete_manifest("r", child.dgst, test_stamp)).value());
}

TEST_P(metadata_store_contract, delete_tag_keeps_manifest) {
  auto& m = *store_;
  const auto rec = manifest("m");
  ASSERT_TRUE(sync_wait(m.put_manifest("r", rec, "t", test_stamp)).has_value());
  EXPECT_EQ(sync_wait(m.delete_tag("r", "t", test_stamp)).value(), true);
  EXPECT_EQ(sync_wait(m.delete_tag("r", "t", test_stamp)).value(), false);
  EXPECT_EQ(sync_wait(m.manifest_by_tag("r", "t")).value(), std::nullopt);
  EXPECT_TRUE(sync_wait(m.manifest_by_digest("r", rec.dgst)).value().has_value());
}

// ---- listings: byte order and paging ----

TEST_P(metadata_store_contract, list_tags_in_byte_order_with_paging) {
  auto& m = *store_;
  const auto rec = manifest("m");
  // Byte order: upper case before lower case, '-' < '.' < '_'.
  for (const char* tag : {"b", "a_", "a.", "Z", "a-", "c"}) ASSERT_TRUE(sync_wait(m.put_manifest("r", rec, tag, test_stamp)).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("other", rec, "zzz", test_stamp)).has_value());

  EXPECT_EQ(sync_wait(m.list_tags("r", "", 100)).value(), (strings{"Z", "a-", "a.", "a_", "b", "c"}));
  EXPECT_EQ(sync_wait(m.list_tags("r", "", 0)).value(), strings{});
  EXPECT_EQ(sync_wait(m.list_tags("r", "", 2)).value(), (strings{"Z", "a-"}));
  EXPECT_EQ(sync_wait(m.list_tags("r", "a-", 2)).value(), (strings{"a.", "a_"}));
  EXPECT_EQ(sync_wait(m.list_tags("r", "a_", 100)).value(), (strings{"b", "c"}));
  EXPECT_EQ(sync_wait(m.list_tags("r", "a", 1)).value(), strings{"a-"});  // `last` need not be a tag
  EXPECT_EQ(sync_wait(m.list_tags("r", "c", 10)).value(), strings{});
  EXPECT_EQ(sync_wait(m.list_tags("r", "zz", 10)).value(), strings{});
  EXPECT_EQ(sync_wait(m.list_tags("r", "", SIZE_MAX)).value()->size(), 6u);
}

TEST_P(metadata_store_contract, list_repositories_in_byte_order_with_paging) {
  auto& m = *store_;
  for (const char* repo : {"b/x", "a", "b", "A"}) ASSERT_TRUE(sync_wait(link(m, repo, d("x"), 1)).has_value());
  EXPECT_EQ(sync_wait(m.list_repositories("", 10)).value(), (strings{"A", "a", "b", "b/x"}));
  EXPECT_EQ(sync_wait(m.list_repositories("", 0)).value(), strings{});
  EXPECT_EQ(sync_wait(m.list_repositories("a", 1)).value(), strings{"b"});
  EXPECT_EQ(sync_wait(m.list_repositories("b", 10)).value(), strings{"b/x"});
  EXPECT_EQ(sync_wait(m.list_repositories("c", 10)).value(), strings{});
}

// `last` comes from the client unchecked: any bytes (invalid UTF-8, NUL) order as bytes do.
TEST_P(metadata_store_contract, last_may_be_any_bytes) {
  auto& m = *store_;
  const auto rec = manifest("m");
  for (const char* tag : {"a", "a-", "a_b", "b"}) ASSERT_TRUE(sync_wait(m.put_manifest("r", rec, tag, test_stamp)).has_value());
  EXPECT_EQ(sync_wait(m.list_tags("r", "a\xff\xfe", 10)).value(), strings{"b"});
  EXPECT_EQ(sync_wait(m.list_tags("r", std::string("a\0z", 3), 10)).value(), (strings{"a-", "a_b", "b"}));
  EXPECT_EQ(sync_wait(m.list_tags("r", "\xc3\xa9", 10)).value(), strings{});
  EXPECT_EQ(sync_wait(m.list_repositories("q\x80", 10)).value(), strings{"r"});
  EXPECT_EQ(sync_wait(m.list_repositories("r\x80", 10)).value(), strings{});
}

// Walking pages with `last` visits every tag exactly once, in order, whatever the page size.
TEST_P(metadata_store_contract, paging_visits_every_tag_once) {
  auto& m = *store_;
  const auto rec = manifest("m");
  strings all;
  for (int i = 0; i < 120; ++i) all.push_back(fmt::format("t{:03}", (i * 37) % 120));
  await_all(static_cast<int>(all.size()), 2, [&](int i) -> awaitable<void> {
    auto r = co_await m.put_manifest("r", rec, all[static_cast<std::size_t>(i)], test_stamp);
    EXPECT_TRUE(r.has_value());
  });
  std::sort(all.begin(), all.end());
  for (std::size_t page : {1u, 7u, 119u, 120u, 1000u}) {
    strings seen;
    std::string last;
    for (;;) {
      auto got = sync_wait(m.list_tags("r", last, page)).value().value();
      seen.insert(seen.end(), got.begin(), got.end());
      if (got.size() < page) break;
      last = got.back();
    }
    EXPECT_EQ(seen, all) << page;
  }
}

// ---- repositories, referrers ----

TEST_P(metadata_store_contract, create_and_delete_repository) {
  auto& m = *store_;
  EXPECT_FALSE(sync_wait(m.repository_exists("prod/app")).value());
  EXPECT_TRUE(sync_wait(m.create_repository("prod/app")).value());
  EXPECT_FALSE(sync_wait(m.create_repository("prod/app")).value());
  EXPECT_TRUE(sync_wait(m.repository_exists("prod/app")).value());
  EXPECT_EQ(sync_wait(m.list_repositories("", 10)).value(), strings{"prod/app"});
  EXPECT_EQ(sync_wait(m.list_tags("prod/app", "", 10)).value(), strings{});

  const auto rec = manifest("{}");
  ASSERT_TRUE(sync_wait(link(m, "prod/app", d("layer"), 5)).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("prod/app", rec, "v1", test_stamp)).has_value());
  EXPECT_TRUE(sync_wait(m.link_blob("other", d("layer"), 5)).value());  // a mount
  EXPECT_EQ(sync_wait(m.repositories_with_blob(d("layer"), 10)).value(), (strings{"other", "prod/app"}));
  EXPECT_EQ(sync_wait(m.repositories_with_blob(d("layer"), 1)).value(), strings{"other"});

  EXPECT_TRUE(sync_wait(m.delete_repository("prod/app")).value());
  EXPECT_FALSE(sync_wait(m.delete_repository("prod/app")).value());
  EXPECT_FALSE(sync_wait(m.repository_exists("prod/app")).value());
  EXPECT_FALSE(sync_wait(m.manifest_by_tag("prod/app", "v1")).value());
  EXPECT_EQ(sync_wait(m.linked_blob_size("prod/app", d("layer"))).value(), std::nullopt);
  EXPECT_EQ(sync_wait(m.repositories_with_blob(d("layer"), 10)).value(), strings{"other"});
}

TEST_P(metadata_store_contract, contents_are_listed_in_digest_order_with_paging) {
  auto& m = *store_;
  EXPECT_TRUE(sync_wait(m.list_blob_links("a/b", "", 10)).value().empty());
  EXPECT_TRUE(sync_wait(m.list_manifests("a/b", "", 10)).value().empty());
  std::vector<digest> links{d("l1"), d("l2"), d("l3")};
  for (std::size_t i = 0; i < links.size(); ++i) {
    ASSERT_TRUE(sync_wait(link(m, "a/b", links[i], 10 + i)).has_value());
  }
  ASSERT_TRUE(sync_wait(link(m, "other", d("l4"), 4)).has_value());
  const auto tagged = manifest("tagged");
  const auto untagged = manifest("untagged");
  ASSERT_TRUE(sync_wait(m.put_manifest("a/b", tagged, "v1", test_stamp)).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("a/b", untagged, std::nullopt, test_stamp)).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("other", manifest("elsewhere"), std::nullopt, test_stamp)).has_value());

  std::vector<digest> seen;
  std::string last;
  for (;;) {
    auto page = sync_wait(m.list_blob_links("a/b", last, 2)).value();
    if (page.empty()) break;
    ASSERT_LE(page.size(), 2u);
    for (const auto& l : page) {
      seen.push_back(l.dgst);
      const auto at = std::find(links.begin(), links.end(), l.dgst);
      ASSERT_NE(at, links.end());
      EXPECT_EQ(l.size, 10u + static_cast<std::uint64_t>(at - links.begin()));
    }
    last = page.back().dgst.str();
  }
  EXPECT_EQ(seen, sorted(links));
  EXPECT_EQ(sync_wait(m.list_manifests("a/b", "", 10)).value(), sorted({tagged.dgst, untagged.dgst}));
  const auto first = sorted({tagged.dgst, untagged.dgst}).front();
  EXPECT_EQ(sync_wait(m.list_manifests("a/b", first.str(), 10)).value().size(), 1u);
  EXPECT_EQ(sync_wait(m.list_manifests("a/b", "", 1)).value(), std::vector<digest>{first});
}

TEST_P(metadata_store_contract, referrers_of_a_subject) {
  auto& m = *store_;
  const digest subject = d("subject");
  const auto sig = manifest("sig", {}, subject, "application/sig");
  auto sbom = manifest("sbom", {}, subject, "application/sbom");
  sbom.annotations_json = R"({"org.example":"1"})";
  const auto unrelated = manifest("unrelated", {}, d("elsewhere"), "application/sig");
  for (const auto& rec : {sig, sbom, unrelated}) ASSERT_TRUE(sync_wait(m.put_manifest("r", rec, std::nullopt, test_stamp)).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("other", sig, std::nullopt, test_stamp)).has_value());
  ASSERT_TRUE(sync_wait(m.delete_manifest("other", sig.dgst, test_stamp)).value());  // other repositories never count

  auto all = sync_wait(m.referrers("r", subject, std::nullopt)).value();
  ASSERT_EQ(all.size(), 2u);
  std::sort(all.begin(), all.end(), [](const referrer& a, const referrer& b) { return a.dgst < b.dgst; });
  const auto& got_sbom = all[0].dgst == sbom.dgst ? all[0] : all[1];
  EXPECT_EQ(got_sbom.dgst, sbom.dgst);
  EXPECT_EQ(got_sbom.media_type, sbom.media_type);
  EXPECT_EQ(got_sbom.size, sbom.content.size());
  EXPECT_EQ(got_sbom.artifact_type, "application/sbom");
  EXPECT_EQ(got_sbom.annotations_json, sbom.annotations_json);

  auto sigs = sync_wait(m.referrers("r", subject, "application/sig")).value();
  ASSERT_EQ(sigs.size(), 1u);
  EXPECT_EQ(sigs[0].dgst, sig.dgst);
  EXPECT_TRUE(sync_wait(m.referrers("r", subject, "application/none")).value().empty());
  EXPECT_TRUE(sync_wait(m.referrers("other", subject, std::nullopt)).value().empty());
}

// ---- durability and concurrency ----

TEST_P(metadata_store_contract, data_survives_reopen) {
  const auto rec = manifest("persisted", {d("layer")});
  ASSERT_TRUE(sync_wait(link(*store_, "r", d("layer"), 5)).has_value());
  ASSERT_TRUE(sync_wait(store_->put_manifest("r", rec, "v1", test_stamp)).has_value());
  ASSERT_TRUE(sync_wait(store_->create_repository("empty")).value());
  reopen();
  EXPECT_EQ(sync_wait(store_->linked_blob_size("r", d("layer"))).value(), 5u);
  auto got = sync_wait(store_->manifest_by_tag("r", "v1")).value();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->content, rec.content);
  EXPECT_EQ(got->references, rec.references);
  EXPECT_TRUE(sync_wait(store_->repository_exists("empty")).value());
}

TEST_P(metadata_store_contract, concurrent_writers_all_commit) {
  constexpr int repos = 8;
  constexpr int per_repo = 25;
  auto& m = *store_;
  await_all(repos * per_repo, 4, [&](int i) -> awaitable<void> {
    const auto tag = fmt::format("t{}", i);
    auto r = co_await m.put_manifest(fmt::format("r{}", i % repos), manifest(tag), tag, test_stamp);
    EXPECT_TRUE(r.has_value());
  });
  reopen();
  EXPECT_EQ(sync_wait(store_->list_repositories("", 100)).value().size(), static_cast<std::size_t>(repos));
  for (int r = 0; r < repos; ++r) {
    EXPECT_EQ(sync_wait(store_->list_tags(fmt::format("r{}", r), "", 100)).value()->size(),
              static_cast<std::size_t>(per_repo));
  }
}

// Links, unlinks, manifest puts and deletes racing on the same rows: every call gets an answer that
// is true of some order of the calls, and the end state is the one every order leads to.
TEST_P(metadata_store_contract, parallel_link_put_and_delete) {
  auto& m = *store_;
  constexpr int n = 32;
  const auto shared = manifest("shared", {d("layer")});
  ASSERT_TRUE(sync_wait(link(m, "r", d("layer"), 1)).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("r", shared, "keep", test_stamp)).has_value());
  ASSERT_TRUE(sync_wait(link(m, "r", d("layer-to-drop"), 1)).has_value());
  std::atomic<int> created{0};
  std::atomic<int> deleted{0};
  std::atomic<int> unlinked{0};
  await_all(n, 4, [&](int i) -> awaitable<void> {
    // Everyone links the same blob (idempotent under a race) and a blob of their own.
    const digest same_digest = d("same");
    auto same = co_await link(m, "r", same_digest, 4);
    EXPECT_TRUE(same.has_value());
    const digest own_digest = d(fmt::format("own{}", i));
    auto own = co_await link(m, "r", own_digest, static_cast<std::uint64_t>(i));
    EXPECT_TRUE(own.has_value());
    if (i % 2 == 0) {
      auto gone = co_await m.unlink_blob("r", d(fmt::format("own{}", i)));
      EXPECT_TRUE(gone.value_or(false));
    }
    // Everyone unlinks the same blob: exactly one finds it.
    auto u = co_await m.unlink_blob("r", d("layer-to-drop"));
    if (u.value_or(false)) ++unlinked;
    // Exactly one creator, exactly one deleter.
    auto c = co_await m.create_repository("contested");
    if (c.value_or(false)) ++created;
    auto del = co_await m.delete_manifest("r", shared.dgst, test_stamp);
    if (del.value_or(false)) ++deleted;
  });
  EXPECT_EQ(created.load(), 1);
  EXPECT_EQ(deleted.load(), 1);
  EXPECT_EQ(unlinked.load(), 1);
  EXPECT_EQ(sync_wait(m.linked_blob_size("r", d("same"))).value(), 4u);
  for (int i = 0; i < n; ++i) {
    const auto size = sync_wait(m.linked_blob_size("r", d(fmt::format("own{}", i)))).value();
    if (i % 2 == 0) {
      EXPECT_EQ(size, std::nullopt) << i;
    } else {
      EXPECT_EQ(size, static_cast<std::uint64_t>(i));
    }
  }
  EXPECT_EQ(sync_wait(m.manifest_by_tag("r", "keep")).value(), std::nullopt);
  EXPECT_EQ(sync_wait(m.list_tags("r", "", 10)).value(), strings{});
}

// Callers validate tags, so an empty one is a bad call the store rejects; whatever batch it lands
// in, the writes around it must still commit.
TEST_P(metadata_store_contract, failing_write_does_not_affect_concurrent_ones) {
  constexpr int n = 8;
  auto& m = *store_;
  await_all(n, 4, [&](int i) -> awaitable<void> {
    const auto name = fmt::format("m{}", i);
    auto r = co_await m.put_manifest("r", manifest(name), i == 3 ? std::string_view() : std::string_view(name), test_stamp);
    if (i == 3) {
      EXPECT_FALSE(r.has_value());
      if (!r) {
        EXPECT_EQ(r.error().code, errc::internal);
        EXPECT_EQ(r.error().detail.find("sqlite"), std::string::npos);  // no backend message leaks
      }
    } else {
      EXPECT_TRUE(r.has_value());
    }
  });
  EXPECT_EQ(sync_wait(m.list_tags("r", "", 100)).value()->size(), static_cast<std::size_t>(n - 1));
  // The failed call rolled back entirely, manifest included.
  EXPECT_EQ(sync_wait(m.manifest_by_digest("r", manifest("m3").dgst)).value(), std::nullopt);
}

// ---- upload records and leases ----

constexpr std::int64_t kNow = 1'700'000'000'000;
constexpr std::int64_t kMinute = 60'000;

upload_record upload(std::string id, std::string repo = "team/app", std::uint64_t size = 0) {
  sha256_state h;
  h.update(std::string(size, 'x'));
  return upload_record{std::move(id), std::move(repo), size, h.save()};
}

upload_lease lease(std::int64_t token, std::int64_t until = kNow + kMinute) { return upload_lease{token, until}; }

TEST_P(metadata_store_contract, upload_records_belong_to_their_repository) {
  auto& u = store_->uploads();
  const auto rec = upload("u1");
  ASSERT_TRUE(sync_wait(u.create(rec, upload_lease{}, kNow)).has_value());
  EXPECT_EQ(sync_wait(u.find("u1")).value(), rec);
  EXPECT_EQ(sync_wait(u.find("u2")).value(), std::nullopt);
  EXPECT_EQ(sync_wait(u.acquire("team/other", "u1", lease(1), kNow)).value(), std::nullopt);
  EXPECT_EQ(sync_wait(u.acquire("team/app", "u2", lease(1), kNow)).value(), std::nullopt);
  // An upload is not a repository until its blob is linked.
  EXPECT_FALSE(sync_wait(store_->repository_exists("team/app")).value());
  // Ids are unique.
  EXPECT_FALSE(sync_wait(u.create(upload("u1", "team/other"), upload_lease{}, kNow)).has_value());
}

TEST_P(metadata_store_contract, a_held_upload_is_busy_until_released) {
  auto& u = store_->uploads();
  ASSERT_TRUE(sync_wait(u.create(upload("u1"), lease(1), kNow)).has_value());
  auto busy = sync_wait(u.acquire("team/app", "u1", lease(2), kNow));
  ASSERT_FALSE(busy.has_value());
  EXPECT_EQ(busy.error().code, errc::upload_busy);
  // The holder saves progress and lets go; the next request takes it with what was saved.
  const auto progress = upload("u1", "team/app", 300);
  EXPECT_TRUE(sync_wait(u.update(progress, 1, 0, kNow)).value());
  EXPECT_EQ(sync_wait(u.acquire("team/app", "u1", lease(2), kNow)).value(), progress);
  EXPECT_FALSE(sync_wait(u.acquire("team/app", "u1", lease(3), kNow)).has_value());
}

TEST_P(metadata_store_contract, an_expired_lease_is_taken_over_and_its_holder_changes_nothing) {
  auto& u = store_->uploads();
  ASSERT_TRUE(sync_wait(u.create(upload("u1"), lease(1, kNow + kMinute), kNow)).has_value());
  EXPECT_FALSE(sync_wait(u.acquire("team/app", "u1", lease(2), kNow + kMinute - 1)).has_value());
  ASSERT_TRUE(sync_wait(u.acquire("team/app", "u1", lease(2, kNow + 3 * kMinute), kNow + kMinute)).value());
  // The old holder comes back: every change it tries is refused.
  EXPECT_FALSE(sync_wait(u.update(upload("u1", "team/app", 99), 1, kNow + 5 * kMinute, kNow + 2 * kMinute)).value());
  EXPECT_FALSE(sync_wait(u.remove("u1", 1)).value());
  EXPECT_FALSE(sync_wait(u.complete("u1", 1, d("blob"), 5, 0)).value());
  EXPECT_EQ(sync_wait(u.find("u1")).value()->size, 0u);
  EXPECT_EQ(sync_wait(store_->linked_blob_size("team/app", d("blob"))).value(), std::nullopt);
  // The new holder renews its lease and is still the one holding it after the first would have expired.
  EXPECT_TRUE(sync_wait(u.update(upload("u1", "team/app", 10), 2, kNow + 10 * kMinute, kNow + 2 * kMinute)).value());
  EXPECT_FALSE(sync_wait(u.acquire("team/app", "u1", lease(3), kNow + 5 * kMinute)).has_value());
  // A released lease is not the holder's any more either.
  EXPECT_TRUE(sync_wait(u.update(upload("u1", "team/app", 10), 2, 0, kNow + 5 * kMinute)).value());
  EXPECT_FALSE(sync_wait(u.update(upload("u1", "team/app", 20), 2, 0, kNow + 5 * kMinute)).value());
  EXPECT_FALSE(sync_wait(u.remove("u1", 2)).value());
}

TEST_P(metadata_store_contract, complete_links_the_blob_and_forgets_the_upload) {
  auto& u = store_->uploads();
  ASSERT_TRUE(sync_wait(u.create(upload("u1", "team/app"), lease(7), kNow)).has_value());
  const std::int64_t generation = sync_wait(u.claim(d("blob"), 5)).value();
  EXPECT_FALSE(sync_wait(u.complete("u1", 8, d("blob"), 5, generation)).value());  // not the holder
  EXPECT_TRUE(sync_wait(u.complete("u1", 7, d("blob"), 5, generation)).value());
  EXPECT_EQ(sync_wait(store_->linked_blob_size("team/app", d("blob"))).value(), 5u);
  EXPECT_TRUE(sync_wait(store_->repository_exists("team/app")).value());
  EXPECT_EQ(sync_wait(u.find("u1")).value(), std::nullopt);
  EXPECT_FALSE(sync_wait(u.complete("u1", 7, d("blob"), 5, generation)).value());
  reopen();
  EXPECT_EQ(sync_wait(store_->linked_blob_size("team/app", d("blob"))).value(), 5u);
}

TEST_P(metadata_store_contract, remove_takes_the_lease) {
  auto& u = store_->uploads();
  ASSERT_TRUE(sync_wait(u.create(upload("u1"), upload_lease{}, kNow)).has_value());
  EXPECT_FALSE(sync_wait(u.remove("u1", 1)).value());  // nobody holds it
  ASSERT_TRUE(sync_wait(u.acquire("team/app", "u1", lease(1), kNow)).value());
  EXPECT_TRUE(sync_wait(u.remove("u1", 1)).value());
  EXPECT_EQ(sync_wait(u.find("u1")).value(), std::nullopt);
  EXPECT_EQ(sync_wait(u.acquire("team/app", "u1", lease(2), kNow)).value(), std::nullopt);
}

TEST_P(metadata_store_contract, idle_lists_unheld_uploads_oldest_first) {
  auto& u = store_->uploads();
  ASSERT_TRUE(sync_wait(u.create(upload("new"), upload_lease{}, kNow)).has_value());
  ASSERT_TRUE(sync_wait(u.create(upload("old"), upload_lease{}, kNow - 50 * kMinute)).has_value());
  ASSERT_TRUE(sync_wait(u.create(upload("older"), upload_lease{}, kNow - 60 * kMinute)).has_value());
  ASSERT_TRUE(sync_wait(u.create(upload("held"), lease(1, kNow + kMinute), kNow - 70 * kMinute)).has_value());
  const auto ids = [&](std::int64_t before, std::size_t n) {
    strings out;
    const auto idle = sync_wait(u.idle(before, kNow, n)).value();
    for (const auto& r : idle) out.push_back(r.id);
    return out;
  };
  EXPECT_EQ(ids(kNow - 30 * kMinute, 10), (strings{"older", "old"}));
  EXPECT_EQ(ids(kNow - 30 * kMinute, 1), strings{"older"});
  EXPECT_EQ(ids(kNow - 55 * kMinute, 10), strings{"older"});
  EXPECT_EQ(ids(kNow + 1, 10), (strings{"older", "old", "new"}));
  // Saving progress makes an upload recent again.
  ASSERT_TRUE(sync_wait(u.acquire("team/app", "older", lease(2), kNow)).value());
  EXPECT_TRUE(sync_wait(u.update(upload("older", "team/app", 1), 2, 0, kNow)).value());
  EXPECT_EQ(ids(kNow - 30 * kMinute, 10), strings{"old"});
}

TEST_P(metadata_store_contract, upload_records_survive_reopen) {
  const auto rec = upload("u1", "team/app", 4096);
  ASSERT_TRUE(sync_wait(store_->uploads().create(upload("u1"), lease(1), kNow)).has_value());
  ASSERT_TRUE(sync_wait(store_->uploads().update(rec, 1, 0, kNow)).value());
  reopen();
  EXPECT_EQ(sync_wait(store_->uploads().find("u1")).value(), rec);
}

TEST_P(metadata_store_contract, concurrent_acquires_admit_exactly_one) {
  auto& u = store_->uploads();
  ASSERT_TRUE(sync_wait(u.create(upload("u1"), upload_lease{}, kNow)).has_value());
  std::atomic<int> admitted{0};
  std::atomic<int> busy{0};
  await_all(16, 4, [&](int i) -> awaitable<void> {
    auto r = co_await u.acquire("team/app", "u1", lease(i + 1), kNow);
    if (r && *r) ++admitted;
    if (!r && r.error().code == errc::upload_busy) ++busy;
  });
  EXPECT_EQ(admitted.load(), 1);
  EXPECT_EQ(busy.load(), 15);
}

// ---- tag records, history, promotion (tag_records.h) ----

manifest_record sized(std::string content, std::uint64_t total, std::vector<std::string> platforms,
                      std::vector<digest> references = {}, std::optional<digest> subject = std::nullopt) {
  auto rec = manifest(std::move(content), std::move(references), std::move(subject));
  rec.total_size = total;
  rec.platforms = std::move(platforms);
  return rec;
}

strings names(const std::vector<tag_record>& records) {
  strings out;
  for (const auto& r : records) out.push_back(r.name);
  return out;
}

std::vector<digest> history_digests(tag_records& t, std::string_view repo, std::string_view tag) {
  std::vector<digest> out;
  const auto history = sync_wait(t.tag_history(repo, tag)).value();
  for (const auto& e : history) out.push_back(e.dgst);
  return out;
}

TEST_P(metadata_store_contract, a_tag_records_who_when_size_platforms_and_its_history) {
  auto& m = *store_;
  auto& t = m.tags();
  const auto one = sized("one", 1234, {"linux/amd64", "linux/arm64/v8"});
  const auto two = sized("two", 99, {});
  const push_stamp alice{"user:alice", 2'000, ""};
  const push_stamp ci{"robot:ci", 3'000, ""};
  ASSERT_TRUE(sync_wait(m.put_manifest("r", one, "v1", alice)).has_value());
  auto records = sync_wait(t.tag_list("r", tag_sort::name, false, "", 10)).value().value();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].name, "v1");
  EXPECT_EQ(records[0].dgst, one.dgst);
  EXPECT_EQ(records[0].media_type, one.media_type);
  EXPECT_EQ(records[0].pushed_at_ms, 2'000);
  EXPECT_EQ(records[0].pushed_by, "user:alice");
  EXPECT_EQ(records[0].size, 1234u);
  EXPECT_EQ(records[0].platforms, (strings{"linux/amd64", "linux/arm64/v8"}));
  // The manifest keeps its size and platforms too.
  auto stored = sync_wait(m.manifest_by_tag("r", "v1")).value().value();
  EXPECT_EQ(stored.total_size, 1234u);
  EXPECT_EQ(stored.platforms, one.platforms);

  // The same digest again (a CI retry) changes nothing: neither the record nor the history.
  ASSERT_TRUE(sync_wait(m.put_manifest("r", one, "v1", ci)).has_value());
  records = sync_wait(t.tag_list("r", tag_sort::name, false, "", 10)).value().value();
  EXPECT_EQ(records[0].pushed_by, "user:alice");
  EXPECT_EQ(records[0].pushed_at_ms, 2'000);
  EXPECT_EQ(history_digests(t, "r", "v1"), std::vector<digest>{one.dgst});

  ASSERT_TRUE(sync_wait(m.put_manifest("r", two, "v1", ci)).has_value());
  const auto history = sync_wait(t.tag_history("r", "v1")).value();
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[0].dgst, two.dgst);  // newest first
  EXPECT_EQ(history[0].by, "robot:ci");
  EXPECT_EQ(history[0].at_ms, 3'000);
  EXPECT_EQ(history[0].source, "");
  EXPECT_EQ(history[1].dgst, one.dgst);
  EXPECT_EQ(history[1].by, "user:alice");
  EXPECT_EQ(sync_wait(t.tags_on("r", two.dgst)).value(), strings{"v1"});
  EXPECT_EQ(sync_wait(t.tags_on("r", one.dgst)).value(), strings{});

  // The history outlives the tag, and survives a reopen; it goes with the repository.
  ASSERT_TRUE(sync_wait(m.delete_tag("r", "v1", test_stamp)).value());
  reopen();
  EXPECT_EQ(history_digests(store_->tags(), "r", "v1"), (std::vector<digest>{two.dgst, one.dgst}));
  ASSERT_TRUE(sync_wait(store_->delete_repository("r")).value());
  EXPECT_TRUE(sync_wait(store_->tags().tag_history("r", "v1")).value().empty());
  EXPECT_EQ(sync_wait(store_->tags().tag_list("r", tag_sort::time, true, "", 10)).value(), std::nullopt);
}

TEST_P(metadata_store_contract, tags_list_by_time_or_name_in_either_order_with_paging) {
  auto& m = *store_;
  auto& t = m.tags();
  const auto rec = manifest("m");
  // Pushed at 3, 1, 2, 2 (a tie is broken by name).
  const std::pair<const char*, std::int64_t> pushes[] = {{"a", 3}, {"b", 1}, {"c", 2}, {"d", 2}};
  for (const auto& [tag, at] : pushes) {
    const push_stamp stamp{"user:x", at, ""};
    ASSERT_TRUE(sync_wait(m.put_manifest("r", rec, tag, stamp)).has_value());
  }
  const auto list = [&](tag_sort sort, bool desc, std::string_view last, std::size_t n) {
    return names(sync_wait(t.tag_list("r", sort, desc, last, n)).value().value());
  };
  EXPECT_EQ(list(tag_sort::time, true, "", 10), (strings{"a", "d", "c", "b"}));
  EXPECT_EQ(list(tag_sort::time, false, "", 10), (strings{"b", "c", "d", "a"}));
  EXPECT_EQ(list(tag_sort::name, false, "", 10), (strings{"a", "b", "c", "d"}));
  EXPECT_EQ(list(tag_sort::name, true, "", 10), (strings{"d", "c", "b", "a"}));
  // Pages follow on from the last tag of the previous one.
  EXPECT_EQ(list(tag_sort::time, true, "", 2), (strings{"a", "d"}));
  EXPECT_EQ(list(tag_sort::time, true, "d", 2), (strings{"c", "b"}));
  EXPECT_EQ(list(tag_sort::time, false, "c", 10), (strings{"d", "a"}));
  EXPECT_EQ(list(tag_sort::name, true, "c", 10), (strings{"b", "a"}));
  EXPECT_EQ(list(tag_sort::name, false, "b", 1), strings{"c"});
  EXPECT_EQ(sync_wait(t.tag_list("other", tag_sort::time, true, "", 10)).value(), std::nullopt);
}

TEST_P(metadata_store_contract, repository_summaries_count_tags_size_and_last_push) {
  auto& m = *store_;
  ASSERT_TRUE(sync_wait(link(m, "prod/app", d("layer"), 1000)).has_value());
  const auto rec = manifest("m", {d("layer")});
  const push_stamp early{"user:x", 5'000, ""};
  const push_stamp late{"user:x", 9'000, ""};
  ASSERT_TRUE(sync_wait(m.put_manifest("prod/app", rec, "a", early)).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("prod/app", rec, "b", late)).has_value());
  ASSERT_TRUE(sync_wait(m.create_repository("prod/empty")).value());
  ASSERT_TRUE(sync_wait(m.create_repository("production")).value());
  ASSERT_TRUE(sync_wait(m.create_repository("staging/app")).value());
  const auto summaries = sync_wait(m.tags().repository_summaries("prod/")).value();
  ASSERT_EQ(summaries.size(), 2u);
  EXPECT_EQ(summaries[0].name, "prod/app");
  EXPECT_EQ(summaries[0].tags, 2u);
  EXPECT_EQ(summaries[0].size, 1000u + rec.content.size());
  EXPECT_EQ(summaries[0].last_push_ms, 9'000);
  EXPECT_EQ(summaries[1].name, "prod/empty");
  EXPECT_EQ(summaries[1].tags, 0u);
  EXPECT_EQ(summaries[1].last_push_ms, 0);
  EXPECT_EQ(sync_wait(m.tags().repository_summaries("")).value().size(), 4u);
}

// A multi-arch index with a signature: promotion brings the children, the referrer and their blobs
// (links, not copies), and nothing else of the source.
TEST_P(metadata_store_contract, promotion_links_the_index_children_referrers_and_blobs) {
  auto& m = *store_;
  auto& t = m.tags();
  for (const char* blob : {"cfg", "amd64", "arm64", "sig-blob", "unrelated-blob"})
    ASSERT_TRUE(sync_wait(link(m, "staging/app", d(blob), 10)).has_value());
  const auto amd = sized("amd", 100, {"linux/amd64"}, {d("cfg"), d("amd64")});
  const auto arm = sized("arm", 100, {"linux/arm64"}, {d("cfg"), d("arm64")});
  const auto index = sized("index", 250, {"linux/amd64", "linux/arm64"}, {amd.dgst, arm.dgst});
  const auto sig = sized("sig", 20, {}, {d("sig-blob")}, index.dgst);
  const auto unrelated = sized("unrelated", 20, {}, {d("unrelated-blob")});
  for (const auto& rec : {amd, arm, index, sig, unrelated})
    ASSERT_TRUE(sync_wait(m.put_manifest("staging/app", rec, std::nullopt, test_stamp)).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("staging/app", index, "sha-1", test_stamp)).has_value());

  const push_stamp promoter{"user:release", 7'000, "staging/app:sha-1"};
  auto p = sync_wait(t.promote("prod/app", "latest", "staging/app", index.dgst, promoter)).value();
  ASSERT_TRUE(p.has_value());
  EXPECT_TRUE(p->moved);
  EXPECT_EQ(p->previous, std::nullopt);

  EXPECT_EQ(sync_wait(m.manifest_by_tag("prod/app", "latest")).value().value().dgst, index.dgst);
  for (const auto& rec : {amd, arm, index, sig}) {
    auto got = sync_wait(m.manifest_by_digest("prod/app", rec.dgst)).value();
    ASSERT_TRUE(got.has_value()) << rec.content;
    EXPECT_EQ(got->content, rec.content);
    EXPECT_EQ(sorted(got->references), sorted(rec.references));
    EXPECT_EQ(got->total_size, rec.total_size);
  }
  EXPECT_EQ(sync_wait(m.manifest_by_digest("prod/app", unrelated.dgst)).value(), std::nullopt);
  const std::vector<digest> blobs{d("cfg"), d("amd64"), d("arm64"), d("sig-blob")};
  EXPECT_TRUE(sync_wait(m.missing_blobs("prod/app", blobs)).value().empty());
  EXPECT_EQ(sync_wait(m.linked_blob_size("prod/app", d("unrelated-blob"))).value(), std::nullopt);
  const auto refs = sync_wait(m.referrers("prod/app", index.dgst, std::nullopt)).value();
  ASSERT_EQ(refs.size(), 1u);
  EXPECT_EQ(refs[0].dgst, sig.dgst);

  auto records = sync_wait(t.tag_list("prod/app", tag_sort::time, true, "", 10)).value().value();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].pushed_by, "user:release");
  EXPECT_EQ(records[0].size, 250u);
  const auto history = sync_wait(t.tag_history("prod/app", "latest")).value();
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(history[0].source, "staging/app:sha-1");

  // Idempotent: promoting what is there changes nothing.
  p = sync_wait(t.promote("prod/app", "latest", "staging/app", index.dgst, promoter)).value();
  ASSERT_TRUE(p.has_value());
  EXPECT_FALSE(p->moved);
  EXPECT_EQ(p->previous, index.dgst);
  EXPECT_EQ(sync_wait(t.tag_history("prod/app", "latest")).value().size(), 1u);

  // Rollback within one repository: the tag moves back, the history says from where.
  const std::string source = "prod/app@" + amd.dgst.str();
  const push_stamp rollback{"user:release", 8'000, source};
  p = sync_wait(t.promote("prod/app", "latest", "prod/app", amd.dgst, rollback)).value();
  ASSERT_TRUE(p.has_value());
  EXPECT_TRUE(p->moved);
  EXPECT_EQ(p->previous, index.dgst);
  EXPECT_EQ(history_digests(t, "prod/app", "latest"), (std::vector<digest>{amd.dgst, index.dgst}));

  // Unknown sources change nothing.
  EXPECT_EQ(sync_wait(t.promote("prod/app", "latest", "staging/app", d("nothing"), promoter)).value(), std::nullopt);
  EXPECT_EQ(sync_wait(t.promote("prod/new", "latest", "nowhere/app", index.dgst, promoter)).value(), std::nullopt);
  EXPECT_FALSE(sync_wait(m.repository_exists("prod/new")).value());
  EXPECT_EQ(sync_wait(m.manifest_by_tag("prod/app", "latest")).value().value().dgst, amd.dgst);
}

// Concurrent promotions onto one tag: one digest wins, and the history's newest entry is it.
TEST_P(metadata_store_contract, concurrent_promotions_leave_a_consistent_history) {
  auto& m = *store_;
  std::vector<manifest_record> recs;
  for (int i = 0; i < 8; ++i) {
    recs.push_back(manifest(fmt::format("build-{}", i)));
    ASSERT_TRUE(sync_wait(m.put_manifest("staging/app", recs.back(), std::nullopt, test_stamp)).has_value());
  }
  std::atomic<int> moved{0};
  await_all(8, 4, [&](int i) -> awaitable<void> {
    const push_stamp stamp{"robot:ci", 1'000 + i, "staging/app"};
    auto p = co_await m.tags().promote("prod/app", "latest", "staging/app", recs[static_cast<std::size_t>(i)].dgst,
                                       stamp);
    EXPECT_TRUE(p.has_value() && p->has_value());
    if (p && *p && (*p)->moved) ++moved;
  });
  EXPECT_EQ(moved.load(), 8);
  const auto current = sync_wait(m.manifest_by_tag("prod/app", "latest")).value().value().dgst;
  const auto history = history_digests(m.tags(), "prod/app", "latest");
  ASSERT_EQ(history.size(), 8u);
  EXPECT_EQ(history.front(), current);
}

// ---- garbage collection (blob_records.h) ----

constexpr std::int64_t kHour = 3600 * 1000;

std::vector<digest> digests(const std::vector<blob_entry>& entries) {
  std::vector<digest> out;
  for (const auto& e : entries) out.push_back(e.dgst);
  return out;
}

TEST_P(metadata_store_contract, put_manifest_refuses_references_that_are_not_linked) {
  auto& m = *store_;
  const auto rec = manifest("needs-layer", {d("layer")});
  EXPECT_EQ(sync_wait(m.put_manifest("r", rec, "v1", test_stamp)).error().code, errc::manifest_blob_unknown);
  EXPECT_FALSE(sync_wait(m.repository_exists("r")).value());  // nothing half-stored
  ASSERT_TRUE(sync_wait(link(m, "r", d("layer"), 3)).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("r", rec, "v1", test_stamp)).has_value());
  // An index may list a manifest of the repository instead of a linked blob.
  ASSERT_TRUE(sync_wait(m.put_manifest("r", manifest("index", {rec.dgst}), "all", test_stamp)).has_value());
}

TEST_P(metadata_store_contract, mounts_need_a_repository_that_links_the_blob) {
  auto& m = *store_;
  EXPECT_FALSE(sync_wait(m.link_blob("to", d("nowhere"), 1)).value());
  EXPECT_FALSE(sync_wait(m.repository_exists("to")).value());
  ASSERT_TRUE(sync_wait(link(m, "from", d("layer"), 1)).has_value());
  EXPECT_TRUE(sync_wait(m.link_blob("to", d("layer"), 1)).value());
  EXPECT_EQ(sync_wait(m.linked_blob_size("to", d("layer"))).value(), 1u);
}

TEST_P(metadata_store_contract, the_sweep_removes_only_old_links_no_manifest_needs) {
  auto& m = *store_;
  auto& b = m.blobs();
  ASSERT_TRUE(sync_wait(link(m, "r", d("needed"), 10)).has_value());
  ASSERT_TRUE(sync_wait(link(m, "r", d("loose"), 20)).has_value());
  ASSERT_TRUE(sync_wait(link(m, "other", d("needed"), 10)).has_value());  // needed in r only
  ASSERT_TRUE(sync_wait(m.put_manifest("r", manifest("m", {d("needed")}), "v1", test_stamp)).has_value());

  // Within the grace window nothing goes.
  auto young = sync_wait(b.sweep_links(kHour)).value();
  EXPECT_EQ(young.links, 0u);
  const auto estimated = sync_wait(b.estimate(0)).value();
  EXPECT_EQ(estimated.links, 2u);
  EXPECT_EQ(estimated.link_bytes, 30u);
  EXPECT_EQ(estimated.blobs, 1u);  // loose; needed is kept by r's manifest
  EXPECT_EQ(estimated.bytes, 20u);

  const auto swept = sync_wait(b.sweep_links(0)).value();
  EXPECT_EQ(swept.links, 2u);
  EXPECT_EQ(swept.link_bytes, 30u);
  EXPECT_EQ(sync_wait(m.linked_blob_size("r", d("needed"))).value(), 10u);
  EXPECT_EQ(sync_wait(m.linked_blob_size("r", d("loose"))).value(), std::nullopt);
  EXPECT_EQ(sync_wait(m.linked_blob_size("other", d("needed"))).value(), std::nullopt);
  EXPECT_EQ(sync_wait(b.sweep_links(0)).value().links, 0u);
}

// More unneeded links than a sweep takes in one batch, in two repositories, around a needed one:
// every unneeded one goes, once, and the needed one stays.
TEST_P(metadata_store_contract, the_sweep_takes_every_batch) {
  auto& m = *store_;
  constexpr int per_repo = 260;  // 519 unneeded: past a batch of 500, across the two
  for (const char* repo : {"a", "b"}) {
    for (int i = 0; i < per_repo; ++i) {
      ASSERT_TRUE(sync_wait(link(m, repo, d(fmt::format("{}{}", repo, i)), 1)).has_value());
    }
  }
  ASSERT_TRUE(sync_wait(m.put_manifest("b", manifest("m", {d("b7")}), "v1", test_stamp)).has_value());
  const auto swept = sync_wait(m.blobs().sweep_links(0)).value();
  EXPECT_EQ(swept.links, 2u * per_repo - 1);
  EXPECT_EQ(swept.link_bytes, 2u * per_repo - 1);
  EXPECT_EQ(sync_wait(m.linked_blob_size("b", d("b7"))).value(), 1u);
  EXPECT_EQ(sync_wait(m.blobs().sweep_links(0)).value().links, 0u);
}

TEST_P(metadata_store_contract, unreferenced_blobs_are_marked_then_forgotten) {
  auto& m = *store_;
  auto& b = m.blobs();
  ASSERT_TRUE(sync_wait(link(m, "r", d("kept"), 1)).has_value());
  ASSERT_TRUE(sync_wait(link(m, "r", d("gone"), 2)).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("r", manifest("m", {d("kept")}), "v1", test_stamp)).has_value());
  EXPECT_TRUE(sync_wait(m.unlink_blob("r", d("gone"))).value());

  EXPECT_TRUE(sync_wait(b.unreferenced(kHour, "", 10)).value().empty());  // used within the hour
  const auto candidates = sync_wait(b.unreferenced(0, "", 10)).value();
  ASSERT_EQ(digests(candidates), std::vector<digest>{d("gone")});
  EXPECT_EQ(candidates[0].size, 2u);
  EXPECT_TRUE(sync_wait(b.unreferenced(0, d("gone").str(), 10)).value().empty());  // paging

  const digest both[] = {d("kept"), d("gone")};
  EXPECT_TRUE(sync_wait(b.mark_for_deletion(both, kHour)).value().empty());
  EXPECT_EQ(digests(sync_wait(b.mark_for_deletion(both, 0)).value()), std::vector<digest>{d("gone")});
  EXPECT_EQ(digests(sync_wait(b.marked(10)).value()), std::vector<digest>{d("gone")});
  EXPECT_TRUE(sync_wait(b.unreferenced(0, "", 10)).value().empty());
  // While marked, it can be neither claimed nor mounted.
  EXPECT_EQ(sync_wait(m.uploads().claim(d("gone"), 2)).error().code, errc::unavailable);
  EXPECT_FALSE(sync_wait(m.link_blob("r", d("gone"), 2)).value());

  reopen();  // a collector killed here: the next run finds the mark
  auto& again = store_->blobs();
  EXPECT_EQ(digests(sync_wait(again.marked(10)).value()), std::vector<digest>{d("gone")});
  const digest gone[] = {d("gone")};
  EXPECT_EQ(sync_wait(again.forget(gone)).value().size(), 1u);
  EXPECT_TRUE(sync_wait(again.forget(gone)).value().empty());  // another collector was first
  EXPECT_TRUE(sync_wait(again.marked(10)).value().empty());
  // Pushed again: a fresh life.
  ASSERT_TRUE(sync_wait(link(*store_, "r", d("gone"), 2)).has_value());
  EXPECT_EQ(sync_wait(store_->linked_blob_size("r", d("gone"))).value(), 2u);
}

// An upload claimed the blob and committed (deduplicated against bytes already stored); the
// collector marked it before the upload linked it: the link must fail, as the bytes are going.
TEST_P(metadata_store_contract, a_claim_overtaken_by_a_deletion_cannot_link) {
  auto& m = *store_;
  auto& u = m.uploads();
  const std::int64_t generation = sync_wait(u.claim(d("blob"), 4)).value();
  ASSERT_TRUE(sync_wait(u.create(upload_record{"u1", "r", 0, ""}, upload_lease{1, kHour}, 0)).has_value());
  const digest ds[] = {d("blob")};
  ASSERT_EQ(sync_wait(m.blobs().mark_for_deletion(ds, 0)).value().size(), 1u);
  EXPECT_EQ(sync_wait(u.complete("u1", 1, d("blob"), 4, generation)).error().code, errc::unavailable);
  EXPECT_EQ(sync_wait(m.linked_blob_size("r", d("blob"))).value(), std::nullopt);
  EXPECT_TRUE(sync_wait(u.find("u1")).value().has_value());  // nothing changed
  ASSERT_EQ(sync_wait(m.blobs().forget(ds)).value().size(), 1u);
  // The client pushes again: a new claim, a new generation, and the link holds.
  const std::int64_t again = sync_wait(u.claim(d("blob"), 4)).value();
  EXPECT_TRUE(sync_wait(u.complete("u1", 1, d("blob"), 4, again)).value());
  EXPECT_EQ(sync_wait(m.linked_blob_size("r", d("blob"))).value(), 4u);
  // A stale generation of a live record is refused too.
  ASSERT_TRUE(sync_wait(u.create(upload_record{"u2", "r", 0, ""}, upload_lease{1, kHour}, 0)).has_value());
  EXPECT_EQ(sync_wait(u.complete("u2", 1, d("blob"), 4, generation)).error().code, errc::unavailable);
}

// adopt records only the digests without a record, as used now: a linked blob, a claimed one and
// one being deleted keep theirs; what it recorded goes like any blob nothing links.
TEST_P(metadata_store_contract, adopt_records_only_blobs_without_a_record) {
  auto& m = *store_;
  auto& b = m.blobs();
  ASSERT_TRUE(sync_wait(link(m, "r", d("linked"), 1)).has_value());
  ASSERT_TRUE(sync_wait(m.uploads().claim(d("claimed"), 2)).has_value());
  ASSERT_TRUE(sync_wait(m.uploads().claim(d("deleting"), 3)).has_value());
  const digest deleting[] = {d("deleting")};
  ASSERT_EQ(sync_wait(b.mark_for_deletion(deleting, 0)).value().size(), 1u);
  const blob_entry stored[] = {{d("linked"), 1}, {d("claimed"), 2}, {d("deleting"), 3}, {d("orphan"), 4}};
  const auto adopted = sync_wait(b.adopt(stored)).value();
  ASSERT_EQ(adopted.size(), 1u);
  EXPECT_EQ(adopted[0].dgst, d("orphan"));
  EXPECT_EQ(adopted[0].size, 4u);
  EXPECT_TRUE(sync_wait(b.adopt(stored)).value().empty());

  EXPECT_TRUE(sync_wait(b.unreferenced(3'600'000, "", 10)).value().empty());  // used now
  const digest orphan[] = {d("orphan")};
  EXPECT_EQ(digests(sync_wait(b.mark_for_deletion(orphan, 0)).value()), std::vector<digest>{d("orphan")});
  EXPECT_EQ(sync_wait(m.uploads().claim(d("orphan"), 4)).error().code, errc::unavailable);
}

// Links and marks race: every blob ends either linked (and not marked) or marked (and not linked).
TEST_P(metadata_store_contract, concurrent_links_and_marks_never_both_win) {
  auto& m = *store_;
  constexpr int n = 24;
  std::vector<digest> all;
  for (int i = 0; i < n; ++i) {
    all.push_back(d(fmt::format("race{}", i)));
    ASSERT_TRUE(sync_wait(link(m, "src", all.back(), 1)).has_value());
  }
  EXPECT_EQ(sync_wait(m.blobs().sweep_links(0)).value().links, static_cast<std::uint64_t>(n));
  await_all(2 * n, 4, [&](int i) -> awaitable<void> {
    const digest& target = all[static_cast<std::size_t>(i / 2)];
    if (i % 2 == 0) {
      auto r = co_await link(m, "dst", target, 1);
      if (!r) {
        EXPECT_EQ(r.error().code, errc::unavailable);
      }
    } else {
      const digest one[] = {target};
      auto marked = co_await m.blobs().mark_for_deletion(one, 0);
      EXPECT_TRUE(marked.has_value());
    }
  });
  const auto marked = digests(sync_wait(m.blobs().marked(SIZE_MAX)).value());
  for (const digest& x : all) {
    const bool linked = sync_wait(m.linked_blob_size("dst", x)).value().has_value();
    const bool is_marked = std::find(marked.begin(), marked.end(), x) != marked.end();
    EXPECT_NE(linked, is_marked) << x.str();
  }
}

TEST_P(metadata_store_contract, usage_per_namespace_and_repository_counts_shared_blobs_once) {
  auto& m = *store_;
  for (const char* repo : {"prod/app", "prod/db", "dev/app"}) {
    ASSERT_TRUE(sync_wait(link(m, repo, d("base"), 100)).has_value());
  }
  ASSERT_TRUE(sync_wait(link(m, "prod/app", d("app"), 10)).has_value());
  ASSERT_TRUE(sync_wait(link(m, "production/x", d("x"), 7)).has_value());  // not in namespace prod
  ASSERT_TRUE(sync_wait(m.put_manifest("prod/app", manifest("m1", {d("base"), d("app")}), "v1", test_stamp)).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("prod/app", manifest("m2", {d("base")}), "v2", test_stamp)).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("prod/app", manifest("m2", {d("base")}), "latest", test_stamp)).has_value());

  const auto all = sync_wait(m.usage("")).value();
  EXPECT_EQ(all.stored_bytes, 117u);
  ASSERT_EQ(all.namespaces.size(), 3u);
  EXPECT_EQ(all.namespaces[0].name, "dev");
  EXPECT_EQ(all.namespaces[1].name, "prod");
  EXPECT_EQ(all.namespaces[2].name, "production");

  const auto prod = sync_wait(m.usage("prod")).value();
  ASSERT_EQ(prod.namespaces.size(), 1u);
  const auto& ns = prod.namespaces[0];
  EXPECT_EQ(ns.stored_bytes, 110u);  // base once, app
  ASSERT_EQ(ns.repositories.size(), 2u);
  EXPECT_EQ(ns.repositories[0].name, "prod/app");
  EXPECT_EQ(ns.repositories[0].tags, 3u);
  EXPECT_EQ(ns.repositories[0].manifests, 2u);
  EXPECT_EQ(ns.repositories[0].logical_bytes, 110u);
  EXPECT_EQ(ns.repositories[1].name, "prod/db");
  EXPECT_EQ(ns.repositories[1].logical_bytes, 100u);
  EXPECT_TRUE(sync_wait(m.usage("nowhere")).value().namespaces.empty());
}

TEST_P(metadata_store_contract, namespace_counters_list_every_namespace_in_order) {
  auto& m = *store_;
  EXPECT_TRUE(sync_wait(m.namespace_counters()).value().empty());
  for (const char* repo : {"prod/app", "prod/db", "dev/app"}) {
    ASSERT_TRUE(sync_wait(link(m, repo, d("base"), 100)).has_value());
  }
  ASSERT_TRUE(sync_wait(m.put_manifest("prod/app", manifest("m1", {d("base")}), "v1", test_stamp)).has_value());
  ASSERT_TRUE(sync_wait(m.create_repository("empty/one")).value());
  ASSERT_TRUE(sync_wait(link(m, "gone/app", d("x"), 7)).has_value());
  ASSERT_TRUE(sync_wait(m.delete_repository("gone/app")).value());

  const auto all = sync_wait(m.namespace_counters()).value();
  ASSERT_EQ(all.size(), 4u);
  const auto expect = [&](std::size_t i, std::string_view name, std::uint64_t repositories, std::uint64_t bytes) {
    EXPECT_EQ(all[i].name, name);
    EXPECT_EQ(all[i].counts.repositories, repositories) << name;
    EXPECT_EQ(all[i].counts.bytes, bytes) << name;
  };
  expect(0, "dev", 1, 100);
  expect(1, "empty", 1, 0);
  expect(2, "gone", 0, 0);  // its repositories deleted: at zero, still listed
  expect(3, "prod", 2, 102);  // base once, and the manifest's 2 bytes
  // What usage() reports of the namespace, from the same counters.
  const auto prod = sync_wait(m.usage("prod")).value().namespaces.at(0);
  EXPECT_EQ(prod.stored_bytes + prod.manifest_bytes, all[3].counts.bytes);
}

// ---- quotas (quota.h) ----

using bytes_pair = std::pair<std::uint64_t, std::uint64_t>;

// The namespace's counters as usage() reports them: distinct blob bytes, manifest bytes.
bytes_pair namespace_bytes_of(metadata_store& m, std::string_view ns) {
  const auto report = sync_wait(m.usage(ns)).value();
  if (report.namespaces.empty()) return {0, 0};
  return {report.namespaces[0].stored_bytes, report.namespaces[0].manifest_bytes};
}

TEST_P(metadata_store_contract, namespace_counters_follow_every_change_counting_each_blob_once) {
  auto& m = *store_;
  ASSERT_TRUE(sync_wait(link(m, "dev/a", d("base"), 100)).has_value());
  ASSERT_TRUE(sync_wait(link(m, "dev/a", d("base"), 100)).has_value());  // again: no change
  ASSERT_TRUE(sync_wait(link(m, "dev/b", d("base"), 100)).has_value());  // shared: counted once
  ASSERT_TRUE(sync_wait(m.link_blob("dev/c", d("base"), 100)).value());  // a mount, also once
  ASSERT_TRUE(sync_wait(link(m, "dev/b", d("own"), 7)).has_value());
  ASSERT_TRUE(sync_wait(link(m, "ops/a", d("base"), 100)).has_value());  // another namespace
  const auto rec = manifest("m1", {d("base")});
  ASSERT_TRUE(sync_wait(m.put_manifest("dev/a", rec, "v1", test_stamp)).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("dev/a", rec, "v2", test_stamp)).has_value());  // stored once
  EXPECT_EQ(namespace_bytes_of(m, "dev"), bytes_pair(107, 2));
  EXPECT_EQ(namespace_bytes_of(m, "ops"), bytes_pair(100, 0));

  EXPECT_TRUE(sync_wait(m.unlink_blob("dev/b", d("base"))).value());  // still in dev/a and dev/c
  EXPECT_EQ(namespace_bytes_of(m, "dev").first, 107u);
  EXPECT_TRUE(sync_wait(m.delete_manifest("dev/a", rec.dgst, test_stamp)).value());
  EXPECT_EQ(namespace_bytes_of(m, "dev"), bytes_pair(107, 0));
  // The sweep deletes both remaining links of `base` in dev in one statement: counted off once.
  EXPECT_EQ(sync_wait(m.blobs().sweep_links(0)).value().links, 4u);
  EXPECT_EQ(namespace_bytes_of(m, "dev"), bytes_pair(0, 0));
  EXPECT_EQ(namespace_bytes_of(m, "ops").first, 0u);

  ASSERT_TRUE(sync_wait(link(m, "dev/a", d("base"), 100)).has_value());
  ASSERT_TRUE(sync_wait(link(m, "dev/b", d("base"), 100)).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("dev/b", manifest("m2", {d("base")}), "v1", test_stamp)).has_value());
  EXPECT_TRUE(sync_wait(m.delete_repository("dev/b")).value());
  EXPECT_EQ(namespace_bytes_of(m, "dev"), bytes_pair(100, 0));
  reopen();
  EXPECT_EQ(namespace_bytes_of(*store_, "dev").first, 100u);
}

TEST_P(metadata_store_contract, a_change_past_the_quota_is_refused_and_leaves_nothing) {
  auto& m = *store_;
  m.set_limits({{"dev", namespace_limit{100, std::nullopt}}});
  ASSERT_TRUE(sync_wait(link(m, "dev/a", d("base"), 60)).has_value());
  ASSERT_TRUE(sync_wait(link(m, "dev/b", d("base"), 60)).has_value());  // counted once: still 60
  ASSERT_TRUE(sync_wait(link(m, "ops/a", d("big"), 50)).has_value());   // no quota there

  // An upload's completion: refused, nothing linked, the upload record kept.
  auto& u = m.uploads();
  ASSERT_TRUE(sync_wait(u.create(upload_record{"over", "dev/a", 0, ""}, upload_lease{1, std::numeric_limits<std::int64_t>::max()}, 0)).has_value());
  const auto generation = sync_wait(u.claim(d("layer"), 50)).value();
  const auto refused = sync_wait(u.complete("over", 1, d("layer"), 50, generation));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, errc::denied);
  EXPECT_EQ(refused.error().detail,
            "namespace dev is over its quota: 60 B used of 100 B, this push needs 50 B more "
            "(namespaces.dev.quota_bytes); delete tags or run berth retention, then berth gc");
  EXPECT_EQ(sync_wait(m.linked_blob_size("dev/a", d("layer"))).value(), std::nullopt);
  EXPECT_TRUE(sync_wait(u.find("over")).value().has_value());

  // A mount, a manifest, a promotion: each refused whole.
  EXPECT_EQ(sync_wait(m.link_blob("dev/a", d("big"), 50)).error().code, errc::denied);
  EXPECT_EQ(sync_wait(m.linked_blob_size("dev/a", d("big"))).value(), std::nullopt);
  const auto bulky = manifest(std::string(41, 'm'), {d("base")});
  EXPECT_EQ(sync_wait(m.put_manifest("dev/a", bulky, "v1", test_stamp)).error().code, errc::denied);
  EXPECT_EQ(sync_wait(m.manifest_by_digest("dev/a", bulky.dgst)).value(), std::nullopt);
  EXPECT_EQ(sync_wait(m.list_tags("dev/a", "", 10)).value(), strings{});
  const auto ops_image = manifest("ops-image", {d("big")});
  ASSERT_TRUE(sync_wait(m.put_manifest("ops/a", ops_image, "v1", test_stamp)).has_value());
  EXPECT_EQ(sync_wait(m.tags().promote("dev/c", "v1", "ops/a", ops_image.dgst, test_stamp)).error().code,
            errc::denied);
  EXPECT_FALSE(sync_wait(m.repository_exists("dev/c")).value());

  // What fits still goes in, up to the quota exactly; freeing room lets the refused push through.
  ASSERT_TRUE(sync_wait(m.put_manifest("dev/a", manifest(std::string(40, 'm'), {d("base")}), "v1", test_stamp))
                  .has_value());
  EXPECT_EQ(namespace_bytes_of(m, "dev"), bytes_pair(60, 40));
  ASSERT_TRUE(sync_wait(m.delete_tag("dev/a", "v1", test_stamp)).value());
  EXPECT_TRUE(sync_wait(m.delete_manifest("dev/a", manifest(std::string(40, 'm')).dgst, test_stamp)).value());
  EXPECT_TRUE(sync_wait(m.unlink_blob("dev/b", d("base"))).value());
  EXPECT_EQ(sync_wait(u.complete("over", 1, d("layer"), 50, generation)).error().code, errc::denied);  // 60 + 50
  EXPECT_TRUE(sync_wait(m.unlink_blob("dev/a", d("base"))).value());
  EXPECT_TRUE(sync_wait(u.complete("over", 1, d("layer"), 50, generation)).value());
  EXPECT_EQ(namespace_bytes_of(m, "dev").first, 50u);
}

TEST_P(metadata_store_contract, a_repository_past_max_repositories_is_refused) {
  auto& m = *store_;
  m.set_limits({{"dev", namespace_limit{std::nullopt, 2}}});
  ASSERT_TRUE(sync_wait(link(m, "dev/a", d("x"), 1)).has_value());
  ASSERT_TRUE(sync_wait(m.create_repository("dev/b")).value());
  const auto refused = sync_wait(m.create_repository("dev/c"));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, errc::denied);
  EXPECT_EQ(refused.error().detail,
            "namespace dev may hold at most 2 repositories (namespaces.dev.max_repositories); delete a repository first");
  EXPECT_EQ(sync_wait(m.put_manifest("dev/c", manifest("m"), "v1", test_stamp)).error().code, errc::denied);
  EXPECT_EQ(sync_wait(m.link_blob("dev/c", d("x"), 1)).error().code, errc::denied);
  EXPECT_FALSE(sync_wait(m.repository_exists("dev/c")).value());
  ASSERT_TRUE(sync_wait(m.put_manifest("dev/b", manifest("m"), "v1", test_stamp)).has_value());  // exists: fine
  ASSERT_TRUE(sync_wait(m.create_repository("ops/c")).value());
  EXPECT_TRUE(sync_wait(m.delete_repository("dev/b")).value());
  EXPECT_TRUE(sync_wait(m.create_repository("dev/c")).value());
}

// Concurrent pushes cannot both slip past: of 16 links of 10 bytes into a quota of 55, exactly 5 commit.
TEST_P(metadata_store_contract, concurrent_pushes_never_pass_the_quota_together) {
  auto& m = *store_;
  m.set_limits({{"dev", namespace_limit{55, std::nullopt}}});
  std::atomic<int> linked{0}, denied{0};
  await_all(16, 8, [&](int i) -> awaitable<void> {
    auto r = co_await link(m, fmt::format("dev/r{}", i % 4), d(fmt::format("layer-{}", i)), 10);
    if (r) ++linked;
    if (!r && r.error().code == errc::denied) ++denied;
  });
  EXPECT_EQ(linked.load(), 5);
  EXPECT_EQ(denied.load(), 11);
  EXPECT_EQ(namespace_bytes_of(m, "dev").first, 50u);
}

// ---- immutable tags (push_stamp::immutable) ----

TEST_P(metadata_store_contract, an_immutable_tag_never_moves_whichever_push_comes_first) {
  auto& m = *store_;
  const push_stamp fixed{"user:test", 1'000'000, "", "tag r:v1 is immutable"};
  const auto a = manifest("a"), b = manifest("b");
  ASSERT_TRUE(sync_wait(m.put_manifest("r", a, "v1", fixed)).has_value());
  const auto moved = sync_wait(m.put_manifest("r", b, "v1", fixed));
  ASSERT_FALSE(moved);
  EXPECT_EQ(moved.error().code, errc::denied);
  EXPECT_EQ(moved.error().detail, "tag r:v1 is immutable");
  EXPECT_EQ(sync_wait(m.manifest_by_digest("r", b.dgst)).value(), std::nullopt);  // nothing half-stored
  EXPECT_TRUE(sync_wait(m.put_manifest("r", a, "v1", fixed)).has_value());      // the same digest: no move
  EXPECT_EQ(sync_wait(m.put_manifest("r", b, std::nullopt, fixed)).has_value(), true);
  EXPECT_EQ(sync_wait(m.tags().promote("r", "v1", "r", b.dgst, fixed)).error().code, errc::denied);
  EXPECT_EQ(sync_wait(m.manifest_by_tag("r", "v1")).value()->dgst, a.dgst);
  EXPECT_EQ(history_digests(m.tags(), "r", "v1"), std::vector<digest>{a.dgst});

  // Concurrent first pushes of a new immutable tag with different digests: one wins, the rest are refused.
  std::atomic<int> stored{0}, denied{0};
  await_all(8, 8, [&](int i) -> awaitable<void> {
    const push_stamp stamp{"user:test", 1'000'000, "", "immutable"};
    auto r = co_await m.put_manifest("r", manifest(fmt::format("race-{}", i)), "v2", stamp);
    if (r) ++stored;
    if (!r && r.error().code == errc::denied) ++denied;
  });
  EXPECT_EQ(stored.load(), 1);
  EXPECT_EQ(denied.load(), 7);
  EXPECT_EQ(history_digests(m.tags(), "r", "v2").size(), 1u);
}

TEST_P(metadata_store_contract, gc_runs_are_logged_newest_first) {
  auto& b = store_->blobs();
  EXPECT_TRUE(sync_wait(b.runs(10)).value().empty());
  ASSERT_TRUE(sync_wait(b.record_run(gc_run{1000, 5, true, gc_counts{0, 1, 2, 3, 4}})).has_value());
  ASSERT_TRUE(sync_wait(b.record_run(gc_run{2000, 6, false, gc_counts{0, 5, 6, 7, 8}})).has_value());
  const auto runs = sync_wait(b.runs(1)).value();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].started_ms, 2000);
  EXPECT_EQ(runs[0].duration_ms, 6);
  EXPECT_FALSE(runs[0].dry_run);
  EXPECT_EQ(runs[0].counts.links, 5u);
  EXPECT_EQ(runs[0].counts.link_bytes, 6u);
  EXPECT_EQ(runs[0].counts.blobs, 7u);
  EXPECT_EQ(runs[0].counts.bytes, 8u);
  EXPECT_TRUE(sync_wait(b.runs(10)).value()[1].dry_run);
  ASSERT_TRUE(sync_wait(b.record_run(gc_run{3000, 7, true, gc_counts{}})).has_value());
  const auto collections = sync_wait(b.runs(1, true)).value();
  ASSERT_EQ(collections.size(), 1u);
  EXPECT_EQ(collections[0].started_ms, 2000);
  EXPECT_EQ(sync_wait(b.runs(1)).value()[0].started_ms, 3000);
}

// ---- webhook outbox ----

// Webhook "all" takes every event in prod/*, "pushes" only pushes.
void route_test_events(webhook_records& w) {
  w.route_events([](std::string_view type, std::string_view repo) {
    strings out;
    if (repo.starts_with("prod/")) out.emplace_back("all");
    if (repo.starts_with("prod/") && type == event_push) out.emplace_back("pushes");
    return out;
  });
}

TEST_P(metadata_store_contract, changes_add_a_delivery_per_subscribed_webhook_in_their_transaction) {
  auto& m = *store_;
  auto& w = m.webhooks();
  const auto rec = manifest("{\"webhook\":1}");
  ASSERT_TRUE(sync_wait(m.put_manifest("prod/app", rec, "before-routing", test_stamp)).has_value());
  route_test_events(w);
  const push_stamp pusher{"robot:ci", 5'000, ""};
  ASSERT_TRUE(sync_wait(m.put_manifest("prod/app", rec, "v1", pusher)).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("dev/app", rec, "v1", pusher)).has_value());  // no webhook wants it
  // A refused push records nothing.
  const auto broken = manifest("{\"broken\":1}", {d("missing-layer")});
  EXPECT_FALSE(sync_wait(m.put_manifest("prod/app", broken, "v2", pusher)).has_value());

  auto pushes = sync_wait(w.deliveries("pushes", false, 0, 10)).value();
  ASSERT_EQ(pushes.size(), 1u);
  auto all = sync_wait(w.deliveries("all", false, 0, 10)).value();
  ASSERT_EQ(all.size(), 1u);
  const auto& p = pushes[0];
  EXPECT_EQ(p.webhook, "pushes");
  EXPECT_EQ(p.event_id, all[0].event_id);  // one event, two deliveries
  EXPECT_NE(p.id, all[0].id);
  EXPECT_EQ(p.event_id.size(), 32u);
  EXPECT_EQ(p.event, "push");
  EXPECT_EQ(p.at_ms, 5'000);
  EXPECT_EQ(p.repository, "prod/app");
  EXPECT_EQ(p.tag, "v1");
  EXPECT_EQ(p.digest, rec.dgst.str());
  EXPECT_EQ(p.media_type, rec.media_type);
  EXPECT_EQ(p.size, rec.content.size());
  EXPECT_EQ(p.actor, "robot:ci");
  EXPECT_EQ(p.source, "");
  EXPECT_EQ(p.state, delivery_state::pending);
  EXPECT_EQ(p.attempts, 0);
  EXPECT_EQ(p.next_at_ms, 5'000);

  const push_stamp promoter{"user:release", 6'000, "prod/app:v1"};
  ASSERT_TRUE(sync_wait(m.tags().promote("prod/live", "current", "prod/app", rec.dgst, promoter)).value());
  const push_stamp retention{.by = "system:retention", .at_ms = 7'000, .cause = change_cause::retention};
  ASSERT_TRUE(sync_wait(m.delete_tag("prod/app", "v1", retention)).value());
  const push_stamp deleter{"user:alice", 8'000, ""};
  ASSERT_TRUE(sync_wait(m.delete_manifest("prod/live", rec.dgst, deleter)).value());
  EXPECT_FALSE(sync_wait(m.delete_manifest("prod/live", rec.dgst, deleter)).value());  // gone: no event

  all = sync_wait(w.deliveries("all", false, 0, 10)).value();  // newest first
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0].event, "delete");
  EXPECT_EQ(all[0].repository, "prod/live");
  EXPECT_EQ(all[0].tag, "");
  EXPECT_EQ(all[0].digest, rec.dgst.str());
  EXPECT_EQ(all[0].media_type, rec.media_type);
  EXPECT_EQ(all[0].size, rec.content.size());
  EXPECT_EQ(all[0].actor, "user:alice");
  EXPECT_EQ(all[1].event, "retention");
  EXPECT_EQ(all[1].tag, "v1");
  EXPECT_EQ(all[1].digest, rec.dgst.str());
  EXPECT_EQ(all[1].media_type, rec.media_type);
  EXPECT_EQ(all[2].event, "promote");
  EXPECT_EQ(all[2].repository, "prod/live");
  EXPECT_EQ(all[2].tag, "current");
  EXPECT_EQ(all[2].source, "prod/app:v1");
  EXPECT_EQ(all[2].size, rec.content.size());
  EXPECT_EQ(all[2].actor, "user:release");
  // Paging: below an id.
  const auto older = sync_wait(w.deliveries("all", false, all[1].id, 10)).value();
  ASSERT_EQ(older.size(), 2u);
  EXPECT_EQ(older[0].id, all[2].id);
  EXPECT_TRUE(sync_wait(w.deliveries("nobody", false, 0, 10)).value().empty());
}

TEST_P(metadata_store_contract, deliveries_are_claimed_with_a_lease_and_retried_when_due) {
  auto& m = *store_;
  auto& w = m.webhooks();
  route_test_events(w);
  for (int i = 0; i < 3; ++i) {
    const push_stamp at{"robot:ci", 1'000 + i, ""};
    ASSERT_TRUE(sync_wait(m.put_manifest("prod/app", manifest(fmt::format("{{\"n\":{}}}", i)), "v", at)).has_value());
  }
  // 6 deliveries (3 events x 2 webhooks), due from 1000 on; a bounded claim takes the oldest due.
  EXPECT_TRUE(sync_wait(w.claim_deliveries(999, 60'000, 10)).value().empty());
  auto first = sync_wait(w.claim_deliveries(10'000, 60'000, 4)).value();
  ASSERT_EQ(first.size(), 4u);
  EXPECT_EQ(first[0].at_ms, 1'000);
  auto rest = sync_wait(w.claim_deliveries(10'000, 60'000, 10)).value();
  ASSERT_EQ(rest.size(), 2u);  // the leased ones are not handed out again
  EXPECT_TRUE(sync_wait(w.claim_deliveries(20'000, 60'000, 10)).value().empty());
  // A lease that ended (its sender died) hands the delivery out again.
  EXPECT_EQ(sync_wait(w.claim_deliveries(70'001, 60'000, 10)).value().size(), 6u);

  const webhook_delivery d = first[0];  // a copy: `first` grows below
  const delivery_attempt failed{delivery_state::pending, 503, "HTTP 503", 200'000, 80'000};
  ASSERT_TRUE(sync_wait(w.finish_delivery(d.id, failed)).value());
  EXPECT_FALSE(sync_wait(w.finish_delivery(987'654, failed)).value());
  first.insert(first.end(), rest.begin(), rest.end());
  for (const auto& other : first) {
    if (other.id == d.id) continue;
    const delivery_attempt ok{delivery_state::delivered, 204, "", 80'000, 80'000};
    ASSERT_TRUE(sync_wait(w.finish_delivery(other.id, ok)).value());
  }
  // Not due before next_at, whatever the lease.
  EXPECT_TRUE(sync_wait(w.claim_deliveries(199'999, 1, 10)).value().empty());
  const auto again = sync_wait(w.claim_deliveries(200'000, 1, 10)).value();
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].id, d.id);
  EXPECT_EQ(again[0].attempts, 1);
  EXPECT_EQ(again[0].status, 503u);
  EXPECT_EQ(again[0].last_error, "HTTP 503");

  // Given up: never claimed again, listed as failed; a redelivery makes it due now.
  const delivery_attempt gave_up{delivery_state::failed, 0, "connection refused", 0, 300'000};
  ASSERT_TRUE(sync_wait(w.finish_delivery(d.id, gave_up)).value());
  EXPECT_TRUE(sync_wait(w.claim_deliveries(1'000'000, 1, 10)).value().empty());
  auto failed_list = sync_wait(w.deliveries(d.webhook, true, 0, 10)).value();
  ASSERT_EQ(failed_list.size(), 1u);
  EXPECT_EQ(failed_list[0].id, d.id);
  EXPECT_EQ(failed_list[0].state, delivery_state::failed);
  EXPECT_EQ(failed_list[0].attempts, 2);
  EXPECT_EQ(failed_list[0].updated_at_ms, 300'000);
  ASSERT_TRUE(sync_wait(w.redeliver(d.id, 2'000'000)).value());
  EXPECT_FALSE(sync_wait(w.redeliver(987'654, 2'000'000)).value());
  const auto redelivered = sync_wait(w.claim_deliveries(2'000'000, 1, 10)).value();
  ASSERT_EQ(redelivered.size(), 1u);
  EXPECT_EQ(redelivered[0].id, d.id);
  EXPECT_EQ(redelivered[0].event_id, d.event_id);
}

TEST_P(metadata_store_contract, concurrent_claims_never_hand_out_a_delivery_twice) {
  auto& m = *store_;
  route_test_events(m.webhooks());
  for (int i = 0; i < 20; ++i)
    ASSERT_TRUE(sync_wait(m.put_manifest("prod/app", manifest(fmt::format("{{\"c\":{}}}", i)), std::nullopt,
                                         test_stamp))
                    .has_value());
  std::mutex mutex;
  std::vector<std::int64_t> ids;  // guarded by mutex
  test_util::await_all(8, 4, [&](int) -> awaitable<void> {
    auto got = co_await m.webhooks().claim_deliveries(2'000'000, 60'000, 7);
    EXPECT_TRUE(got.has_value());
    std::lock_guard lock(mutex);
    for (const auto& x : got.value_or(std::vector<webhook_delivery>{})) ids.push_back(x.id);
  });
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids.size(), 40u);
  EXPECT_EQ(std::adjacent_find(ids.begin(), ids.end()), ids.end());
}

TEST_P(metadata_store_contract, finished_deliveries_are_pruned_after_their_retention_pending_never) {
  auto& m = *store_;
  auto& w = m.webhooks();
  route_test_events(w);
  for (int i = 0; i < 4; ++i) {
    const push_stamp at{"robot:ci", 1'000, ""};
    ASSERT_TRUE(sync_wait(m.put_manifest("prod/app", manifest(fmt::format("{{\"p\":{}}}", i)), "v", at)).has_value());
  }
  // Of the 4 deliveries to "pushes": delivered at 10 s, given up at 20 s, failed once (still pending)
  // at 5 s, never tried (pending since 1 s).
  auto claimed = sync_wait(w.claim_deliveries(2'000, 60'000, 10)).value();
  std::vector<std::int64_t> ids;
  for (const auto& x : claimed) {
    if (x.webhook == "pushes") ids.push_back(x.id);
  }
  ASSERT_EQ(ids.size(), 4u);
  ASSERT_TRUE(sync_wait(w.finish_delivery(ids[0], {delivery_state::delivered, 204, "", 0, 10'000})).value());
  ASSERT_TRUE(sync_wait(w.finish_delivery(ids[1], {delivery_state::failed, 0, "refused", 0, 20'000})).value());
  ASSERT_TRUE(sync_wait(w.finish_delivery(ids[2], {delivery_state::pending, 503, "HTTP 503", 9'000'000, 5'000})).value());
  const auto listed = [&] {
    const auto got = sync_wait(w.deliveries("pushes", false, 0, 10)).value();
    std::vector<std::int64_t> out;
    for (const auto& x : got) out.push_back(x.id);
    std::sort(out.begin(), out.end());
    return out;
  };

  EXPECT_EQ(sync_wait(w.prune_deliveries(10'000)).value(), 0u);  // none finished before 10 s
  EXPECT_EQ(sync_wait(w.prune_deliveries(10'001)).value(), 1u);  // the delivered one
  EXPECT_EQ(listed(), (std::vector<std::int64_t>{ids[1], ids[2], ids[3]}));
  // Much later: the given-up one goes; the pending ones (tried or not) stay, as do the other
  // webhook's, pending too.
  EXPECT_EQ(sync_wait(w.prune_deliveries(1'000'000'000)).value(), 1u);
  EXPECT_EQ(listed(), (std::vector<std::int64_t>{ids[2], ids[3]}));
  EXPECT_EQ(sync_wait(w.deliveries("all", false, 0, 10)).value().size(), 4u);
  // A redelivered one is pending again: kept.
  ASSERT_TRUE(sync_wait(w.finish_delivery(ids[3], {delivery_state::delivered, 200, "", 0, 30'000})).value());
  ASSERT_TRUE(sync_wait(w.redeliver(ids[3], 40'000)).value());
  EXPECT_EQ(sync_wait(w.prune_deliveries(1'000'000'000)).value(), 0u);
  EXPECT_EQ(listed(), (std::vector<std::int64_t>{ids[2], ids[3]}));
}

TEST_P(metadata_store_contract, undelivered_events_survive_a_reopen) {
  route_test_events(store_->webhooks());
  ASSERT_TRUE(sync_wait(store_->put_manifest("prod/app", manifest("{\"durable\":1}"), "v1", test_stamp)).has_value());
  reopen();
  EXPECT_EQ(sync_wait(store_->webhooks().claim_deliveries(2'000'000, 60'000, 10)).value().size(), 2u);
}

audit_entry audit_at(std::int64_t at_ms, std::string subject, std::string action, std::string repository) {
  return audit_entry{0,           at_ms,  std::move(subject), "192.0.2.1", std::move(action), repository,
                     repository + ":v1", "ok", 201, ""};
}

std::vector<std::int64_t> audit_times(const std::vector<audit_entry>& entries) {
  std::vector<std::int64_t> out;
  for (const auto& e : entries) out.push_back(e.at_ms);
  return out;
}

TEST_P(metadata_store_contract, audit_entries_round_trip_newest_first) {
  auto& a = store_->audit();
  EXPECT_TRUE(sync_wait(a.list(audit_query{})).value().empty());
  const std::vector<audit_entry> batch = {
      audit_at(1000, "user:alice", "manifest_push", "team/app"),
      audit_entry{0, 2000, "anonymous", "2001:db8::1", "login", "", "user:bob", "failed", 401,
                  "quote \" backslash \\ comma , brace } unicode \xc3\xa9"},
  };
  ASSERT_TRUE(sync_wait(a.append(batch)).has_value());
  ASSERT_TRUE(sync_wait(a.append(std::span<const audit_entry>())).has_value());
  const auto all = sync_wait(a.list(audit_query{})).value();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_GT(all[0].id, all[1].id);
  const audit_entry& e = all[0];
  EXPECT_EQ(e.at_ms, 2000);
  EXPECT_EQ(e.subject, "anonymous");
  EXPECT_EQ(e.address, "2001:db8::1");
  EXPECT_EQ(e.action, "login");
  EXPECT_EQ(e.repository, "");
  EXPECT_EQ(e.target, "user:bob");
  EXPECT_EQ(e.outcome, "failed");
  EXPECT_EQ(e.status, 401u);
  EXPECT_EQ(e.detail, batch[1].detail);
  EXPECT_EQ(all[1].repository, "team/app");
  EXPECT_EQ(all[1].target, "team/app:v1");
  EXPECT_EQ(all[1].status, 201u);
  reopen();
  EXPECT_EQ(sync_wait(store_->audit().list(audit_query{})).value().size(), 2u);
}

TEST_P(metadata_store_contract, audit_filters_and_pages) {
  auto& a = store_->audit();
  std::vector<audit_entry> batch;
  for (int i = 1; i <= 6; ++i) {
    batch.push_back(audit_at(i * 1000, i % 2 ? "user:alice" : "robot:ci", i <= 3 ? "manifest_push" : "tag_delete",
                             i % 3 ? "team/app" : "prod/db"));
  }
  ASSERT_TRUE(sync_wait(a.append(batch)).has_value());
  using times = std::vector<std::int64_t>;
  const auto query = [&](audit_query q) { return audit_times(sync_wait(a.list(q)).value()); };
  EXPECT_EQ(query({.until_ms = 10'000}), (times{6000, 5000, 4000, 3000, 2000, 1000}));
  EXPECT_EQ(query({.repository = "prod/db"}), (times{6000, 3000}));
  EXPECT_EQ(query({.repository = "team"}), times{});
  EXPECT_EQ(query({.subject = "robot:ci"}), (times{6000, 4000, 2000}));
  EXPECT_EQ(query({.action = "tag_delete"}), (times{6000, 5000, 4000}));
  EXPECT_EQ(query({.subject = "user:alice", .action = "manifest_push"}), (times{3000, 1000}));
  EXPECT_EQ(query({.since_ms = 2000, .until_ms = 4000}), (times{4000, 3000, 2000}));
  // Paging by id: each page starts before the last id of the previous one.
  auto first = sync_wait(a.list({.n = 4})).value();
  ASSERT_EQ(audit_times(first), (times{6000, 5000, 4000, 3000}));
  EXPECT_EQ(query({.before_id = first.back().id, .n = 4}), (times{2000, 1000}));
  EXPECT_EQ(query({.repository = "team/app", .before_id = first[1].id, .n = 2}), (times{4000, 2000}));
  // Times past 2^31 ms (January 1970 + 25 days), as every real one is.
  const std::int64_t now = 1'796'000'000'000;
  ASSERT_TRUE(sync_wait(a.append(std::vector{audit_at(now, "user:bob", "gc_run", "")})).has_value());
  EXPECT_EQ(query({.since_ms = now - 1, .until_ms = now + 1}), times{now});
  EXPECT_EQ(query({.subject = "user:bob", .until_ms = now - 1}), times{});
}

TEST_P(metadata_store_contract, audit_prune_deletes_older_entries) {
  auto& a = store_->audit();
  const std::vector<audit_entry> batch = {audit_at(1000, "user:a", "gc_run", ""), audit_at(2000, "user:a", "gc_run", ""),
                                          audit_at(3000, "user:a", "gc_run", "")};
  ASSERT_TRUE(sync_wait(a.append(batch)).has_value());
  EXPECT_EQ(sync_wait(a.prune(2500)).value(), 2u);
  EXPECT_EQ(sync_wait(a.prune(2500)).value(), 0u);
  EXPECT_EQ(audit_times(sync_wait(a.list(audit_query{})).value()), std::vector<std::int64_t>{3000});
}

// ---- untagged manifests (tag_records::untagged) and what deleting frees (blob_records) ----

std::vector<digest> untagged_digests(const std::vector<untagged_manifest>& u) {
  std::vector<digest> out;
  for (const auto& x : u) out.push_back(x.dgst);
  return out;
}

// The database's clock stamps the times: the test allows it a second of difference from ours.
constexpr std::int64_t clock_slack_ms = 1000;

TEST_P(metadata_store_contract, a_manifest_is_untagged_from_its_push_by_digest_or_when_its_last_tag_left) {
  auto& m = *store_;
  auto& t = m.tags();
  const auto one = manifest("one");
  const auto two = manifest("two");
  const auto loose = manifest("loose");
  const auto subject = manifest("subject-of-sig");
  const auto sig = manifest("sig", {}, subject.dgst, "application/vnd.example.sig");
  const auto orphan_sig = manifest("orphan-sig", {}, d("absent"), "application/vnd.example.sig");
  const std::int64_t pushed = unix_millis();
  ASSERT_TRUE(sync_wait(m.put_manifest("r", loose, std::nullopt, test_stamp)).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("r", one, "a", test_stamp)).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("r", one, "b", test_stamp)).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("r", two, "c", test_stamp)).has_value());
  auto u = sync_wait(t.untagged("r")).value();
  ASSERT_EQ(untagged_digests(u), std::vector<digest>{loose.dgst});
  const std::int64_t loose_since = u[0].since_ms;
  EXPECT_GE(loose_since, pushed - clock_slack_ms);
  EXPECT_LE(loose_since, unix_millis() + clock_slack_ms);
  EXPECT_FALSE(u[0].referrer);

  // Deleting one of two tags leaves it tagged; deleting the last one untags it from then.
  ASSERT_TRUE(sync_wait(m.delete_tag("r", "a", test_stamp)).value());
  EXPECT_EQ(untagged_digests(sync_wait(t.untagged("r")).value()), std::vector<digest>{loose.dgst});
  const std::int64_t deleted = unix_millis();
  ASSERT_TRUE(sync_wait(m.delete_tag("r", "b", test_stamp)).value());
  u = sync_wait(t.untagged("r")).value();
  EXPECT_EQ(untagged_digests(u), sorted({loose.dgst, one.dgst}));
  for (const auto& x : u) {
    if (x.dgst == loose.dgst) {
      EXPECT_EQ(x.since_ms, loose_since);  // untagged before: its time stays
    } else {
      EXPECT_GE(x.since_ms, deleted - clock_slack_ms);
    }
  }

  // A tag moved by a push untags the manifest it left and tags the one it points at now.
  ASSERT_TRUE(sync_wait(m.put_manifest("r", one, "c", test_stamp)).has_value());
  EXPECT_EQ(untagged_digests(sync_wait(t.untagged("r")).value()), sorted({loose.dgst, two.dgst}));
  // Tagged again, by a retag (promotion within the repository) or a push: no longer untagged.
  ASSERT_TRUE(sync_wait(t.promote("r", "back", "r", two.dgst, test_stamp)).value().has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("r", loose, "v1", test_stamp)).has_value());
  EXPECT_TRUE(sync_wait(t.untagged("r")).value().empty());
  // A tag moved away by a promotion from elsewhere untags what it left.
  ASSERT_TRUE(sync_wait(m.put_manifest("src", two, "x", test_stamp)).has_value());
  ASSERT_TRUE(sync_wait(t.promote("r", "v1", "src", two.dgst, test_stamp)).value().has_value());
  u = sync_wait(t.untagged("r")).value();
  ASSERT_EQ(untagged_digests(u), std::vector<digest>{loose.dgst});
  const std::int64_t promoted_since = u[0].since_ms;

  // A referrer says whether its subject is a manifest of the repository.
  for (const auto& rec : {subject, sig, orphan_sig})
    ASSERT_TRUE(sync_wait(m.put_manifest("refs", rec, std::nullopt, test_stamp)).has_value());
  u = sync_wait(t.untagged("refs")).value();
  EXPECT_EQ(u.size(), 3u);
  for (const auto& x : u) EXPECT_EQ(x.referrer, x.dgst == sig.dgst) << x.dgst.str();
  EXPECT_TRUE(sync_wait(t.untagged("nowhere")).value().empty());

  // The times are stored.
  reopen();
  u = sync_wait(store_->tags().untagged("r")).value();
  ASSERT_EQ(u.size(), 1u);
  EXPECT_EQ(u[0].since_ms, promoted_since);
}

TEST_P(metadata_store_contract, deleting_frees_the_bytes_no_repository_keeps_each_once) {
  auto& m = *store_;
  for (const char* repo : {"a/app", "b/app"}) ASSERT_TRUE(sync_wait(link(m, repo, d("base"), 100)).has_value());
  ASSERT_TRUE(sync_wait(link(m, "a/app", d("own"), 10)).has_value());
  ASSERT_TRUE(sync_wait(link(m, "a/app", d("shared-in-repo"), 7)).has_value());
  const auto m1 = manifest("m1", {d("base"), d("own"), d("shared-in-repo")});
  const auto m2 = manifest("m2-longer", {d("shared-in-repo")});
  const auto mb = manifest("mb", {d("base")});
  ASSERT_TRUE(sync_wait(m.put_manifest("a/app", m1, "v1", test_stamp)).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("a/app", m2, "v2", test_stamp)).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("b/app", mb, "v1", test_stamp)).has_value());
  const auto freed = [&](std::vector<repository_manifest> deleted) {
    std::vector<std::pair<std::string, std::uint64_t>> out;
    const auto got = sync_wait(m.blobs().freed_by_deleting(deleted)).value();
    for (const auto& r : got) out.emplace_back(r.repository, r.bytes);
    return out;
  };
  using bytes = std::vector<std::pair<std::string, std::uint64_t>>;
  // base is linked by b/app too and shared-in-repo referenced by m2: only own goes.
  EXPECT_EQ(freed({{"a/app", m1.dgst}}), (bytes{{"a/app", 10}}));
  EXPECT_EQ(freed({{"a/app", m1.dgst}, {"a/app", m2.dgst}}),
            (bytes{{"a/app", 10 + 7}}));
  // Both repositories lose base: it counts once, for the first.
  EXPECT_EQ(freed({{"b/app", mb.dgst}, {"a/app", m1.dgst}}),
            (bytes{{"a/app", 100 + 10}, {"b/app", 0}}));
  // A link without a manifest still keeps its blob; absent manifests and repositories free nothing.
  ASSERT_TRUE(sync_wait(link(m, "c/app", d("own"), 10)).has_value());
  EXPECT_EQ(freed({{"a/app", m1.dgst}, {"a/app", d("absent")}, {"x/y", m1.dgst}}), (bytes{{"a/app", 0}}));
  EXPECT_TRUE(freed({}).empty());
  // Nothing changed.
  EXPECT_EQ(sync_wait(m.tags().untagged("a/app")).value().size(), 0u);
  EXPECT_TRUE(sync_wait(m.manifest_by_digest("a/app", m1.dgst)).value().has_value());
}

}  // namespace
// ---- retention rules (retention_rules.h) ----

TEST_P(metadata_store_contract, retention_rules_are_replaced_as_a_whole_and_kept_in_order) {
  auto& r = store_->retention_rules();
  EXPECT_TRUE(sync_wait(r.rules()).value().empty());
  const std::vector<retention_rule> rules = {
      {.repositories = {"dev/*", "staging/app"}, .keep_last = 3, .keep_days = 0, .protect = {"latest", "v*"}},
      {.repositories = {"*"}, .untagged_days = 7},
      {.repositories = {"ci/\"quoted\"", "a,b{c}"}, .keep_last = 0, .keep_days = 2'000'000'000},
  };
  ASSERT_TRUE(sync_wait(r.replace_rules(rules)).has_value());
  EXPECT_EQ(sync_wait(r.rules()).value(), rules);
  const auto held = sync_wait(r.rules()).value();
  EXPECT_EQ(held[0].keep_days, 0);  // 0 is a value, not "unset"
  EXPECT_FALSE(held[1].keep_last);
  EXPECT_TRUE(held[1].protect.empty());
  reopen();
  EXPECT_EQ(sync_wait(store_->retention_rules().rules()).value(), rules);
  const std::vector<retention_rule> fewer = {rules[1]};
  ASSERT_TRUE(sync_wait(store_->retention_rules().replace_rules(fewer)).has_value());
  EXPECT_EQ(sync_wait(store_->retention_rules().rules()).value(), fewer);
  ASSERT_TRUE(sync_wait(store_->retention_rules().replace_rules({})).has_value());
  EXPECT_TRUE(sync_wait(store_->retention_rules().rules()).value().empty());
}

// Replacements racing each other: the rules end as one of the sets given, never a mix of two.
TEST_P(metadata_store_contract, concurrent_retention_rule_replacements_leave_one_whole_set) {
  auto& r = store_->retention_rules();
  constexpr int n = 16;
  const auto set_of = [](int i) {
    return std::vector<retention_rule>{{.repositories = {fmt::format("r{}/*", i)}, .keep_last = i},
                                       {.repositories = {fmt::format("r{}/x", i)}, .keep_days = i}};
  };
  await_all(n, 4, [&](int i) -> awaitable<void> {
    const auto rules = set_of(i);
    auto done = co_await r.replace_rules(rules);
    EXPECT_TRUE(done.has_value());
  });
  const auto held = sync_wait(r.rules()).value();
  ASSERT_EQ(held.size(), 2u);
  EXPECT_EQ(held, set_of(static_cast<int>(held[0].keep_last.value_or(-1))));
}

}  // namespace berth::meta
