#include "meta/metadata_store_contract.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <iterator>
#include <string>
#include <vector>

#include "core/sha256_state.h"
#include "core/sync_wait.h"
#include "core/test_await.h"

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
                         "",                 std::move(references)};
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
  EXPECT_EQ(sync_wait(m.delete_manifest("a/b", d("x"))).value(), false);
  EXPECT_EQ(sync_wait(m.delete_tag("a/b", "latest")).value(), false);
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
  ASSERT_TRUE(sync_wait(m.link_blob("a/b", d("one"), 11)).has_value());
  ASSERT_TRUE(sync_wait(m.link_blob("a/b", d("one"), 11)).has_value());  // idempotent
  ASSERT_TRUE(sync_wait(m.link_blob("c", d("two"), 22)).has_value());

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
  ASSERT_TRUE(sync_wait(m.link_blob("a/b", d("one"), 1)).has_value());
  EXPECT_TRUE(sync_wait(m.repository_exists("a/b")).value());
  EXPECT_EQ(sync_wait(m.list_tags("a/b", "", 10)).value(), strings{});  // exists, no tags
  EXPECT_EQ(sync_wait(m.list_repositories("", 10)).value(), strings{"a/b"});
}

TEST_P(metadata_store_contract, manifest_round_trip_is_byte_exact) {
  auto& m = *store_;
  auto rec = manifest(std::string("{\"a\":1}\0binary\xff", 15), {d("layer"), d("config")}, d("subject"), "x/sig");
  rec.annotations_json = R"({"k":"v"})";
  ASSERT_TRUE(sync_wait(m.put_manifest("a/b", rec, "v1")).has_value());

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
  ASSERT_TRUE(sync_wait(m.put_manifest("a/b", rec, std::nullopt)).has_value());
  EXPECT_TRUE(sync_wait(m.manifest_by_digest("a/b", rec.dgst)).value().has_value());
  EXPECT_EQ(sync_wait(m.list_tags("a/b", "", 10)).value(), strings{});
}

TEST_P(metadata_store_contract, tag_moves) {
  auto& m = *store_;
  const auto one = manifest("one");
  const auto two = manifest("two");
  ASSERT_TRUE(sync_wait(m.put_manifest("r", one, "latest")).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("r", two, "latest")).has_value());
  EXPECT_EQ(sync_wait(m.manifest_by_tag("r", "latest")).value()->dgst, two.dgst);
  // Pushing a stored digest again only moves the tag back.
  ASSERT_TRUE(sync_wait(m.put_manifest("r", one, "latest")).has_value());
  EXPECT_EQ(sync_wait(m.manifest_by_tag("r", "latest")).value()->dgst, one.dgst);
  EXPECT_EQ(sync_wait(m.list_tags("r", "", 10)).value(), strings{"latest"});
}

TEST_P(metadata_store_contract, same_digest_again_keeps_content) {
  auto& m = *store_;
  auto first = manifest("content", {d("layer")});
  ASSERT_TRUE(sync_wait(m.put_manifest("r", first, "a")).has_value());
  auto again = first;
  again.media_type = "changed";
  again.references = {d("other")};
  ASSERT_TRUE(sync_wait(m.put_manifest("r", again, "b")).has_value());

  auto got = sync_wait(m.manifest_by_tag("r", "b")).value();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->media_type, first.media_type);
  EXPECT_EQ(got->references, first.references);
  EXPECT_EQ(sync_wait(m.list_tags("r", "", 10)).value(), (strings{"a", "b"}));
}

TEST_P(metadata_store_contract, missing_manifests) {
  auto& m = *store_;
  const auto rec = manifest("held");
  ASSERT_TRUE(sync_wait(m.put_manifest("r", rec, std::nullopt)).has_value());
  const digest asked[] = {d("absent"), rec.dgst};
  EXPECT_EQ(sync_wait(m.missing_manifests("r", asked)).value(), std::vector<digest>{d("absent")});
  EXPECT_EQ(sync_wait(m.missing_manifests("other", asked)).value(), (std::vector<digest>{d("absent"), rec.dgst}));
}

TEST_P(metadata_store_contract, delete_manifest_removes_tags_and_references) {
  auto& m = *store_;
  auto rec = manifest("doomed", {d("layer")});
  const auto kept = manifest("kept");
  ASSERT_TRUE(sync_wait(m.put_manifest("r", rec, "a")).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("r", rec, "b")).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("r", kept, "c")).has_value());

  EXPECT_EQ(sync_wait(m.delete_manifest("r", rec.dgst)).value(), true);
  EXPECT_EQ(sync_wait(m.delete_manifest("r", rec.dgst)).value(), false);
  EXPECT_EQ(sync_wait(m.manifest_by_digest("r", rec.dgst)).value(), std::nullopt);
  EXPECT_EQ(sync_wait(m.list_tags("r", "", 10)).value(), strings{"c"});

  // Stored afresh without references: any left over from before would show up here.
  rec.references.clear();
  ASSERT_TRUE(sync_wait(m.put_manifest("r", rec, std::nullopt)).has_value());
  EXPECT_TRUE(sync_wait(m.manifest_by_digest("r", rec.dgst)).value()->references.empty());
}

TEST_P(metadata_store_contract, delete_tag_keeps_manifest) {
  auto& m = *store_;
  const auto rec = manifest("m");
  ASSERT_TRUE(sync_wait(m.put_manifest("r", rec, "t")).has_value());
  EXPECT_EQ(sync_wait(m.delete_tag("r", "t")).value(), true);
  EXPECT_EQ(sync_wait(m.delete_tag("r", "t")).value(), false);
  EXPECT_EQ(sync_wait(m.manifest_by_tag("r", "t")).value(), std::nullopt);
  EXPECT_TRUE(sync_wait(m.manifest_by_digest("r", rec.dgst)).value().has_value());
}

// ---- listings: byte order and paging ----

TEST_P(metadata_store_contract, list_tags_in_byte_order_with_paging) {
  auto& m = *store_;
  const auto rec = manifest("m");
  // Byte order: upper case before lower case, '-' < '.' < '_'.
  for (const char* tag : {"b", "a_", "a.", "Z", "a-", "c"}) ASSERT_TRUE(sync_wait(m.put_manifest("r", rec, tag)).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("other", rec, "zzz")).has_value());

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
  for (const char* repo : {"b/x", "a", "b", "A"}) ASSERT_TRUE(sync_wait(m.link_blob(repo, d("x"), 1)).has_value());
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
  for (const char* tag : {"a", "a-", "a_b", "b"}) ASSERT_TRUE(sync_wait(m.put_manifest("r", rec, tag)).has_value());
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
    auto r = co_await m.put_manifest("r", rec, all[static_cast<std::size_t>(i)]);
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
  ASSERT_TRUE(sync_wait(m.link_blob("prod/app", d("layer"), 5)).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("prod/app", rec, "v1")).has_value());
  ASSERT_TRUE(sync_wait(m.link_blob("other", d("layer"), 5)).has_value());
  EXPECT_EQ(sync_wait(m.repositories_with_blob(d("layer"), 10)).value(), (strings{"other", "prod/app"}));
  EXPECT_EQ(sync_wait(m.repositories_with_blob(d("layer"), 1)).value(), strings{"other"});

  EXPECT_TRUE(sync_wait(m.delete_repository("prod/app")).value());
  EXPECT_FALSE(sync_wait(m.delete_repository("prod/app")).value());
  EXPECT_FALSE(sync_wait(m.repository_exists("prod/app")).value());
  EXPECT_FALSE(sync_wait(m.manifest_by_tag("prod/app", "v1")).value());
  EXPECT_EQ(sync_wait(m.linked_blob_size("prod/app", d("layer"))).value(), std::nullopt);
  EXPECT_EQ(sync_wait(m.repositories_with_blob(d("layer"), 10)).value(), strings{"other"});
}

TEST_P(metadata_store_contract, referrers_of_a_subject) {
  auto& m = *store_;
  const digest subject = d("subject");
  const auto sig = manifest("sig", {}, subject, "application/sig");
  auto sbom = manifest("sbom", {}, subject, "application/sbom");
  sbom.annotations_json = R"({"org.example":"1"})";
  const auto unrelated = manifest("unrelated", {}, d("elsewhere"), "application/sig");
  for (const auto& rec : {sig, sbom, unrelated}) ASSERT_TRUE(sync_wait(m.put_manifest("r", rec, std::nullopt)).has_value());
  ASSERT_TRUE(sync_wait(m.put_manifest("other", sig, std::nullopt)).has_value());
  ASSERT_TRUE(sync_wait(m.delete_manifest("other", sig.dgst)).value());  // other repositories never count

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
  ASSERT_TRUE(sync_wait(store_->link_blob("r", d("layer"), 5)).has_value());
  ASSERT_TRUE(sync_wait(store_->put_manifest("r", rec, "v1")).has_value());
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
    auto r = co_await m.put_manifest(fmt::format("r{}", i % repos), manifest(tag), tag);
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
  ASSERT_TRUE(sync_wait(m.put_manifest("r", shared, "keep")).has_value());
  ASSERT_TRUE(sync_wait(m.link_blob("r", d("layer-to-drop"), 1)).has_value());
  std::atomic<int> created{0};
  std::atomic<int> deleted{0};
  std::atomic<int> unlinked{0};
  await_all(n, 4, [&](int i) -> awaitable<void> {
    // Everyone links the same blob (idempotent under a race) and a blob of their own.
    auto same = co_await m.link_blob("r", d("same"), 4);
    EXPECT_TRUE(same.has_value());
    auto own = co_await m.link_blob("r", d(fmt::format("own{}", i)), static_cast<std::uint64_t>(i));
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
    auto del = co_await m.delete_manifest("r", shared.dgst);
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
    auto r = co_await m.put_manifest("r", manifest(name), i == 3 ? std::string_view() : std::string_view(name));
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
  EXPECT_FALSE(sync_wait(u.complete("u1", 1, d("blob"), 5)).value());
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
  EXPECT_FALSE(sync_wait(u.complete("u1", 8, d("blob"), 5)).value());  // not the holder
  EXPECT_TRUE(sync_wait(u.complete("u1", 7, d("blob"), 5)).value());
  EXPECT_EQ(sync_wait(store_->linked_blob_size("team/app", d("blob"))).value(), 5u);
  EXPECT_TRUE(sync_wait(store_->repository_exists("team/app")).value());
  EXPECT_EQ(sync_wait(u.find("u1")).value(), std::nullopt);
  EXPECT_FALSE(sync_wait(u.complete("u1", 7, d("blob"), 5)).value());
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

}  // namespace
}  // namespace berth::meta
