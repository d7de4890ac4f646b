#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "meta/metadata_store.h"
#include "meta/sqlite_db.h"
#include "meta/test_temp_dir.h"

namespace berth::meta {
namespace {

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

class sqlite_metadata_store_test : public ::testing::Test {
 protected:
  std::string path() const { return dir_.file("meta.db"); }
  void reopen() {
    store_.reset();
    store_ = make_sqlite_metadata_store(path());
  }

  test_util::temp_dir dir_;
  std::unique_ptr<metadata_store> store_ = make_sqlite_metadata_store(path());
};

TEST_F(sqlite_metadata_store_test, empty_store) {
  EXPECT_EQ(store_->list_repositories("", 10).value(), strings{});
  EXPECT_EQ(store_->list_tags("a/b", "", 10).value(), std::nullopt);
  EXPECT_EQ(store_->manifest_by_tag("a/b", "latest").value(), std::nullopt);
  EXPECT_EQ(store_->manifest_by_digest("a/b", d("x")).value(), std::nullopt);
  EXPECT_EQ(store_->any_blob_size(d("x")).value(), std::nullopt);
  EXPECT_EQ(store_->delete_manifest("a/b", d("x")).value(), false);
  EXPECT_EQ(store_->delete_tag("a/b", "latest").value(), false);
  EXPECT_EQ(store_->unlink_blob("a/b", d("x")).value(), false);
  EXPECT_TRUE(store_->referrers("a/b", d("x"), std::nullopt).value().empty());
}

TEST_F(sqlite_metadata_store_test, blob_links) {
  ASSERT_TRUE(store_->link_blob("a/b", d("one"), 11).has_value());
  ASSERT_TRUE(store_->link_blob("a/b", d("one"), 11).has_value());  // idempotent
  ASSERT_TRUE(store_->link_blob("c", d("two"), 22).has_value());

  EXPECT_EQ(store_->linked_blob_size("a/b", d("one")).value(), 11u);
  EXPECT_EQ(store_->linked_blob_size("a/b", d("two")).value(), std::nullopt);  // linked elsewhere only
  EXPECT_EQ(store_->any_blob_size(d("two")).value(), 22u);
  EXPECT_EQ(store_->any_blob_size(d("three")).value(), std::nullopt);

  const digest asked[] = {d("three"), d("one"), d("two")};
  EXPECT_EQ(store_->missing_blobs("a/b", asked).value(), (std::vector<digest>{d("three"), d("two")}));
  EXPECT_EQ(store_->missing_blobs("nowhere", asked).value(), std::vector<digest>(std::begin(asked), std::end(asked)));

  EXPECT_EQ(store_->unlink_blob("a/b", d("one")).value(), true);
  EXPECT_EQ(store_->unlink_blob("a/b", d("one")).value(), false);
  EXPECT_EQ(store_->linked_blob_size("a/b", d("one")).value(), std::nullopt);
}

TEST_F(sqlite_metadata_store_test, linking_creates_the_repository) {
  ASSERT_TRUE(store_->link_blob("a/b", d("one"), 1).has_value());
  EXPECT_EQ(store_->list_tags("a/b", "", 10).value(), strings{});  // exists, no tags
  EXPECT_EQ(store_->list_repositories("", 10).value(), strings{"a/b"});
}

TEST_F(sqlite_metadata_store_test, manifest_round_trip) {
  auto m = manifest(std::string("{\"a\":1}\0binary\xff", 15), {d("layer"), d("config")}, d("subject"), "x/sig");
  m.annotations_json = R"({"k":"v"})";
  ASSERT_TRUE(store_->put_manifest("a/b", m, "v1").has_value());

  for (auto got : {store_->manifest_by_digest("a/b", m.dgst).value(), store_->manifest_by_tag("a/b", "v1").value()}) {
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->dgst, m.dgst);
    EXPECT_EQ(got->media_type, m.media_type);
    EXPECT_EQ(got->content, m.content);
    EXPECT_EQ(got->subject, m.subject);
    EXPECT_EQ(got->artifact_type, "x/sig");
    EXPECT_EQ(got->annotations_json, m.annotations_json);
    EXPECT_EQ(sorted(got->references), sorted(m.references));
  }
  EXPECT_EQ(store_->manifest_by_digest("other", m.dgst).value(), std::nullopt);
  EXPECT_EQ(store_->manifest_by_tag("a/b", "v2").value(), std::nullopt);
}

TEST_F(sqlite_metadata_store_test, manifest_without_tag) {
  const auto m = manifest("untagged");
  ASSERT_TRUE(store_->put_manifest("a/b", m, std::nullopt).has_value());
  EXPECT_TRUE(store_->manifest_by_digest("a/b", m.dgst).value().has_value());
  EXPECT_EQ(store_->list_tags("a/b", "", 10).value(), strings{});
}

TEST_F(sqlite_metadata_store_test, tag_moves) {
  const auto one = manifest("one");
  const auto two = manifest("two");
  ASSERT_TRUE(store_->put_manifest("r", one, "latest").has_value());
  ASSERT_TRUE(store_->put_manifest("r", two, "latest").has_value());
  EXPECT_EQ(store_->manifest_by_tag("r", "latest").value()->dgst, two.dgst);
  // Pushing a stored digest again only moves the tag back.
  ASSERT_TRUE(store_->put_manifest("r", one, "latest").has_value());
  EXPECT_EQ(store_->manifest_by_tag("r", "latest").value()->dgst, one.dgst);
  EXPECT_EQ(store_->list_tags("r", "", 10).value(), strings{"latest"});
}

TEST_F(sqlite_metadata_store_test, same_digest_again_keeps_content) {
  auto first = manifest("content", {d("layer")});
  ASSERT_TRUE(store_->put_manifest("r", first, "a").has_value());
  auto again = first;
  again.media_type = "changed";
  again.references = {d("other")};
  ASSERT_TRUE(store_->put_manifest("r", again, "b").has_value());

  auto got = store_->manifest_by_tag("r", "b").value();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->media_type, first.media_type);
  EXPECT_EQ(got->references, first.references);
  EXPECT_EQ(store_->list_tags("r", "", 10).value(), (strings{"a", "b"}));
}

TEST_F(sqlite_metadata_store_test, missing_manifests) {
  const auto m = manifest("held");
  ASSERT_TRUE(store_->put_manifest("r", m, std::nullopt).has_value());
  const digest asked[] = {d("absent"), m.dgst};
  EXPECT_EQ(store_->missing_manifests("r", asked).value(), std::vector<digest>{d("absent")});
  EXPECT_EQ(store_->missing_manifests("other", asked).value(), (std::vector<digest>{d("absent"), m.dgst}));
}

TEST_F(sqlite_metadata_store_test, delete_manifest_removes_tags_and_references) {
  auto m = manifest("doomed", {d("layer")});
  const auto kept = manifest("kept");
  ASSERT_TRUE(store_->put_manifest("r", m, "a").has_value());
  ASSERT_TRUE(store_->put_manifest("r", m, "b").has_value());
  ASSERT_TRUE(store_->put_manifest("r", kept, "c").has_value());

  EXPECT_EQ(store_->delete_manifest("r", m.dgst).value(), true);
  EXPECT_EQ(store_->delete_manifest("r", m.dgst).value(), false);
  EXPECT_EQ(store_->manifest_by_digest("r", m.dgst).value(), std::nullopt);
  EXPECT_EQ(store_->list_tags("r", "", 10).value(), strings{"c"});

  // Stored afresh without references: any left over from before would show up here.
  m.references.clear();
  ASSERT_TRUE(store_->put_manifest("r", m, std::nullopt).has_value());
  EXPECT_TRUE(store_->manifest_by_digest("r", m.dgst).value()->references.empty());
}

TEST_F(sqlite_metadata_store_test, delete_tag_keeps_manifest) {
  const auto m = manifest("m");
  ASSERT_TRUE(store_->put_manifest("r", m, "t").has_value());
  EXPECT_EQ(store_->delete_tag("r", "t").value(), true);
  EXPECT_EQ(store_->delete_tag("r", "t").value(), false);
  EXPECT_EQ(store_->manifest_by_tag("r", "t").value(), std::nullopt);
  EXPECT_TRUE(store_->manifest_by_digest("r", m.dgst).value().has_value());
}

TEST_F(sqlite_metadata_store_test, list_tags_pagination) {
  const auto m = manifest("m");
  // Byte order: upper case before lower case, '-' < '.' < '_'.
  for (const char* tag : {"b", "a_", "a.", "Z", "a-", "c"}) ASSERT_TRUE(store_->put_manifest("r", m, tag).has_value());
  ASSERT_TRUE(store_->put_manifest("other", m, "zzz").has_value());

  EXPECT_EQ(store_->list_tags("r", "", 100).value(), (strings{"Z", "a-", "a.", "a_", "b", "c"}));
  EXPECT_EQ(store_->list_tags("r", "", 0).value(), strings{});
  EXPECT_EQ(store_->list_tags("r", "", 2).value(), (strings{"Z", "a-"}));
  EXPECT_EQ(store_->list_tags("r", "a-", 2).value(), (strings{"a.", "a_"}));
  EXPECT_EQ(store_->list_tags("r", "a_", 100).value(), (strings{"b", "c"}));
  EXPECT_EQ(store_->list_tags("r", "a", 1).value(), strings{"a-"});  // `last` need not be a tag
  EXPECT_EQ(store_->list_tags("r", "c", 10).value(), strings{});
  EXPECT_EQ(store_->list_tags("r", "zz", 10).value(), strings{});
  EXPECT_EQ(store_->list_tags("r", "", SIZE_MAX).value()->size(), 6u);
}

TEST_F(sqlite_metadata_store_test, list_repositories_pagination) {
  for (const char* repo : {"b/x", "a", "b", "A"}) ASSERT_TRUE(store_->link_blob(repo, d("x"), 1).has_value());
  EXPECT_EQ(store_->list_repositories("", 10).value(), (strings{"A", "a", "b", "b/x"}));
  EXPECT_EQ(store_->list_repositories("", 0).value(), strings{});
  EXPECT_EQ(store_->list_repositories("a", 1).value(), strings{"b"});
  EXPECT_EQ(store_->list_repositories("b", 10).value(), strings{"b/x"});
  EXPECT_EQ(store_->list_repositories("c", 10).value(), strings{});
}

TEST_F(sqlite_metadata_store_test, create_and_delete_repository) {
  EXPECT_FALSE(store_->repository_exists("prod/app").value());
  EXPECT_TRUE(store_->create_repository("prod/app").value());
  EXPECT_FALSE(store_->create_repository("prod/app").value());
  EXPECT_TRUE(store_->repository_exists("prod/app").value());
  EXPECT_EQ(store_->list_repositories("", 10).value(), strings{"prod/app"});
  EXPECT_EQ(store_->list_tags("prod/app", "", 10).value(), strings{});

  const auto m = manifest("{}");
  ASSERT_TRUE(store_->link_blob("prod/app", d("layer"), 5).has_value());
  ASSERT_TRUE(store_->put_manifest("prod/app", m, "v1").has_value());
  ASSERT_TRUE(store_->link_blob("other", d("layer"), 5).has_value());
  EXPECT_EQ(store_->repositories_with_blob(d("layer"), 10).value(), (strings{"other", "prod/app"}));
  EXPECT_EQ(store_->repositories_with_blob(d("layer"), 1).value(), strings{"other"});

  EXPECT_TRUE(store_->delete_repository("prod/app").value());
  EXPECT_FALSE(store_->delete_repository("prod/app").value());
  EXPECT_FALSE(store_->repository_exists("prod/app").value());
  EXPECT_FALSE(store_->manifest_by_tag("prod/app", "v1").value());
  EXPECT_EQ(store_->repositories_with_blob(d("layer"), 10).value(), strings{"other"});
}

TEST_F(sqlite_metadata_store_test, referrers) {
  const digest subject = d("subject");
  const auto sig = manifest("sig", {}, subject, "application/sig");
  auto sbom = manifest("sbom", {}, subject, "application/sbom");
  sbom.annotations_json = R"({"org.example":"1"})";
  const auto unrelated = manifest("unrelated", {}, d("elsewhere"), "application/sig");
  for (const auto& m : {sig, sbom, unrelated}) ASSERT_TRUE(store_->put_manifest("r", m, std::nullopt).has_value());
  ASSERT_TRUE(store_->put_manifest("other", sig, std::nullopt).has_value());
  ASSERT_TRUE(store_->delete_manifest("other", sig.dgst).value());  // other repositories never count

  auto all = store_->referrers("r", subject, std::nullopt).value();
  ASSERT_EQ(all.size(), 2u);
  std::sort(all.begin(), all.end(), [](const referrer& a, const referrer& b) { return a.dgst < b.dgst; });
  const auto& got_sbom = all[0].dgst == sbom.dgst ? all[0] : all[1];
  EXPECT_EQ(got_sbom.dgst, sbom.dgst);
  EXPECT_EQ(got_sbom.media_type, sbom.media_type);
  EXPECT_EQ(got_sbom.size, sbom.content.size());
  EXPECT_EQ(got_sbom.artifact_type, "application/sbom");
  EXPECT_EQ(got_sbom.annotations_json, sbom.annotations_json);

  auto sigs = store_->referrers("r", subject, "application/sig").value();
  ASSERT_EQ(sigs.size(), 1u);
  EXPECT_EQ(sigs[0].dgst, sig.dgst);
  EXPECT_TRUE(store_->referrers("r", subject, "application/none").value().empty());
  EXPECT_TRUE(store_->referrers("other", subject, std::nullopt).value().empty());
}

TEST_F(sqlite_metadata_store_test, data_survives_reopen) {
  const auto m = manifest("persisted", {d("layer")});
  ASSERT_TRUE(store_->link_blob("r", d("layer"), 5).has_value());
  ASSERT_TRUE(store_->put_manifest("r", m, "v1").has_value());
  reopen();
  EXPECT_EQ(store_->linked_blob_size("r", d("layer")).value(), 5u);
  auto got = store_->manifest_by_tag("r", "v1").value();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->content, m.content);
  EXPECT_EQ(got->references, m.references);
}

// WAL is what lets readers run on their own snapshot while the writer commits.
TEST_F(sqlite_metadata_store_test, database_is_in_wal_mode) {
  ASSERT_TRUE(store_->link_blob("r", d("x"), 1).has_value());
  EXPECT_TRUE(std::filesystem::exists(path() + "-wal"));  // a rollback journal would leave none
}

TEST_F(sqlite_metadata_store_test, refuses_a_newer_schema) {
  store_.reset();
  {
    auto db = sqlite::connection::open(path(), sqlite::connection::mode::read_write);
    ASSERT_TRUE(db.has_value());
    ASSERT_TRUE(db->exec("PRAGMA user_version = 99").has_value());
  }
  EXPECT_THROW(make_sqlite_metadata_store(path()), std::runtime_error);
}

TEST_F(sqlite_metadata_store_test, concurrent_writers_all_commit) {
  constexpr int threads = 8;
  constexpr int per_thread = 25;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([this, t] {
      for (int i = 0; i < per_thread; ++i) {
        const auto tag = fmt::format("t{}-{}", t, i);
        EXPECT_TRUE(store_->put_manifest(fmt::format("r{}", t), manifest(tag), tag).has_value());
      }
    });
  }
  for (auto& w : workers) w.join();
  reopen();
  EXPECT_EQ(store_->list_repositories("", 100).value().size(), static_cast<std::size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    EXPECT_EQ(store_->list_tags(fmt::format("r{}", t), "", 100).value()->size(),
              static_cast<std::size_t>(per_thread));
  }
}

// Callers validate tags, so an empty one is a bad call the schema rejects; whatever batch it lands
// in, the writes around it must still commit.
TEST_F(sqlite_metadata_store_test, failing_write_does_not_affect_concurrent_ones) {
  constexpr int threads = 8;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([this, t] {
      const auto name = fmt::format("m{}", t);
      auto r = store_->put_manifest("r", manifest(name), t == 3 ? std::string_view() : std::string_view(name));
      if (t == 3) {
        ASSERT_FALSE(r.has_value());
        EXPECT_EQ(r.error().code, errc::internal);
        EXPECT_EQ(r.error().detail.find("sqlite"), std::string::npos);  // no backend message leaks
      } else {
        EXPECT_TRUE(r.has_value());
      }
    });
  }
  for (auto& w : workers) w.join();
  EXPECT_EQ(store_->list_tags("r", "", 100).value()->size(), static_cast<std::size_t>(threads - 1));
  // The failed call rolled back entirely, manifest included.
  EXPECT_EQ(store_->manifest_by_digest("r", manifest("m3").dgst).value(), std::nullopt);
}

double thread_cpu_micros() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

// Prints figures; timings are not asserted (they depend on the disk and on sanitizers).
TEST_F(sqlite_metadata_store_test, prints_timings) {
  using clock = std::chrono::steady_clock;
  auto micros = [](clock::duration d, int n) { return std::chrono::duration<double, std::micro>(d).count() / n; };

  constexpr int sequential = 100;
  auto start = clock::now();
  for (int i = 0; i < sequential; ++i) {
    ASSERT_TRUE(store_->put_manifest("bench", manifest(fmt::format("s{}", i), {d("l")}), "latest").has_value());
  }
  const double put_one = micros(clock::now() - start, sequential);

  constexpr int threads = 8;
  constexpr int per_thread = 50;
  start = clock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([this, t] {
      for (int i = 0; i < per_thread; ++i) {
        const auto name = fmt::format("c{}-{}", t, i);
        EXPECT_TRUE(store_->put_manifest("bench", manifest(name, {d("l")}), name).has_value());
      }
    });
  }
  for (auto& w : workers) w.join();
  const double put_many = micros(clock::now() - start, threads * per_thread);

  // CPU time too: on a busy machine wall time mostly measures other processes.
  constexpr int lookups = 20000;
  const double cpu_start = thread_cpu_micros();
  start = clock::now();
  for (int i = 0; i < lookups; ++i) ASSERT_TRUE(store_->manifest_by_tag("bench", "latest").value().has_value());
  const double by_tag = micros(clock::now() - start, lookups);
  const double by_tag_cpu = (thread_cpu_micros() - cpu_start) / lookups;

  std::printf("[ figures  ] durable put_manifest+tag, 1 caller: %.1f us/op\n", put_one);
  std::printf("[ figures  ] durable put_manifest+tag, %d callers: %.1f us/op (wall / ops)\n", threads, put_many);
  std::printf("[ figures  ] manifest_by_tag: %.2f us/op wall, %.2f us/op CPU\n", by_tag, by_tag_cpu);
}

}  // namespace
}  // namespace berth::meta
