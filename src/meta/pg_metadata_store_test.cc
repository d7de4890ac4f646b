// The PostgreSQL metadata store against a real PostgreSQL (the ctest fixture `pg`): the contract
// suite, each test in a schema of its own, plus what only a shared database has: several stores
// (instances) on one schema, their start-up migrations racing, leases held across them, and the
// start-up errors.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/sync_wait.h"
#include "meta/metadata_store_contract.h"
#include "meta/pg_metadata_store.h"
#include "pg/test_schema.h"

namespace berth::meta {
namespace {

using pg::test_util::pool_on;
using pg::test_util::schema_for;

// Opens the store of `location`: a schema named after it, created on first use.
std::unique_ptr<metadata_store> open_pg(const std::string& location) {
  std::string url;
  pg::test_util::find_server(url);
  if (url.empty()) return nullptr;  // skipped or failed: the test body does not run
  const auto schema = schema_for(location);
  pg::test_util::admin_exec(url, "CREATE SCHEMA IF NOT EXISTS " + schema);
  return make_pg_metadata_store(pool_on(url, schema));
}

INSTANTIATE_TEST_SUITE_P(postgres, metadata_store_contract, ::testing::Values(metadata_backend{"postgres", open_pg}),
                         metadata_backend_name);

constexpr std::int64_t now = 1'700'000'000'000;

class pg_metadata_store_test : public ::testing::Test {
 protected:
  void SetUp() override {
    pg::test_util::find_server(url_);
    if (url_.empty()) return;
    schema_ = schema_for(::testing::UnitTest::GetInstance()->current_test_info()->name());
    pg::test_util::admin_exec(url_, "DROP SCHEMA IF EXISTS " + schema_ + " CASCADE; CREATE SCHEMA " + schema_);
  }

  // Another instance: a store with its own pool on the test's schema.
  std::unique_ptr<metadata_store> instance() { return make_pg_metadata_store(pool_on(url_, schema_)); }

  std::string url_;
  std::string schema_;
};

// What one instance writes, another reads at once: nothing is cached in a store.
TEST_F(pg_metadata_store_test, instances_see_each_others_writes) {
  auto a = instance();
  auto b = instance();
  const manifest_record m{digest_of("m"), "application/vnd.oci.image.manifest.v1+json", "m", {}, "", "", {}};
  ASSERT_TRUE(sync_wait(a->put_manifest("r", m, "latest", test_stamp)).has_value());
  const std::int64_t generation = sync_wait(a->uploads().claim(digest_of("layer"), 3)).value();
  ASSERT_TRUE(sync_wait(a->uploads().create(upload_record{"u1", "r", 0, ""}, upload_lease{1, 1}, 0)).has_value());
  ASSERT_TRUE(sync_wait(a->uploads().complete("u1", 1, digest_of("layer"), 3, generation)).value());
  EXPECT_EQ(sync_wait(b->manifest_by_tag("r", "latest")).value()->content, "m");
  EXPECT_EQ(sync_wait(b->linked_blob_size("r", digest_of("layer"))).value(), 3u);
  EXPECT_TRUE(sync_wait(b->delete_tag("r", "latest", test_stamp)).value());
  EXPECT_EQ(sync_wait(a->manifest_by_tag("r", "latest")).value(), std::nullopt);
}

// An upload one instance holds is busy for another until it is given back; the other then
// continues it, and the first one's token changes nothing any more. Reopening keeps the lease
// (unlike SQLite, whose server owns its file): another instance may be the holder.
TEST_F(pg_metadata_store_test, leases_hold_across_instances) {
  auto a = instance();
  auto b = instance();
  const upload_record rec{"u1", "r", 0, ""};
  ASSERT_TRUE(sync_wait(a->uploads().create(rec, upload_lease{1, now + 60'000}, now)).has_value());
  a = instance();  // an instance restarting does not end the others' leases
  EXPECT_EQ(sync_wait(b->uploads().acquire("r", "u1", upload_lease{2, now + 60'000}, now)).error().code,
            errc::upload_busy);
  const upload_record progress{"u1", "r", 5, "state"};
  EXPECT_TRUE(sync_wait(a->uploads().update(progress, 1, 0, now)).value());
  EXPECT_EQ(sync_wait(b->uploads().acquire("r", "u1", upload_lease{2, now + 60'000}, now)).value(), progress);
  const std::int64_t generation = sync_wait(b->uploads().claim(digest_of("blob"), 5)).value();
  EXPECT_FALSE(sync_wait(a->uploads().complete("u1", 1, digest_of("blob"), 5, generation)).value());
  EXPECT_TRUE(sync_wait(b->uploads().complete("u1", 2, digest_of("blob"), 5, generation)).value());
  EXPECT_EQ(sync_wait(a->linked_blob_size("r", digest_of("blob"))).value(), 5u);
}

// Instances starting together on an empty schema: the advisory lock lets one create the tables
// and the others find them; none fails.
TEST_F(pg_metadata_store_test, instances_starting_together_migrate_once) {
  constexpr int n = 6;
  std::vector<std::unique_ptr<metadata_store>> stores(n);
  std::atomic<int> failures{0};
  {
    std::vector<std::jthread> starting;
    for (int i = 0; i < n; ++i) {
      starting.emplace_back([&, i] {
        try {
          stores[static_cast<std::size_t>(i)] = instance();
        } catch (const std::exception& e) {
          ADD_FAILURE() << e.what();
          ++failures;
        }
      });
    }
  }
  ASSERT_EQ(failures.load(), 0);
  for (int i = 0; i < n; ++i) {
    ASSERT_TRUE(sync_wait(stores[static_cast<std::size_t>(i)]->create_repository(fmt::format("r{}", i))).value());
  }
  EXPECT_EQ(sync_wait(stores[0]->list_repositories("", 100)).value().size(), static_cast<std::size_t>(n));
}

TEST_F(pg_metadata_store_test, refuses_a_newer_schema) {
  instance();
  pg::test_util::admin_exec(url_, "UPDATE " + schema_ + ".berth_schema_versions SET version = 99");
  try {
    instance();
    FAIL() << "a newer schema was used";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("version 99"), std::string::npos) << e.what();
  }
}

// Image manifests stored before the upgrade that records platforms at push time are listed until
// their config blobs are read (lifecycle::read_platforms); an index has its platforms already.
TEST_F(pg_metadata_store_test, upgrading_lists_the_image_manifests_whose_platforms_are_unread) {
  auto store = instance();
  const manifest_record image{digest_of("i"), "application/vnd.oci.image.manifest.v1+json", "i", {}, "", "", {}};
  const manifest_record index{digest_of("x"), "application/vnd.oci.image.index.v1+json", "x", {}, "", "", {}};
  ASSERT_TRUE(sync_wait(store->put_manifest("r", image, "latest", test_stamp)).has_value());
  ASSERT_TRUE(sync_wait(store->put_manifest("r", index, "multi", test_stamp)).has_value());
  EXPECT_TRUE(sync_wait(store->tags().platforms_unread(10)).value().empty());  // pushed with their platforms
  store.reset();
  // Back to the version before platforms_unread, and before the retention rules' table that came after it.
  pg::test_util::admin_exec(url_, "DROP TABLE " + schema_ + ".retention_rules; ALTER TABLE " + schema_ +
                                      ".manifests DROP COLUMN platforms_unread; UPDATE " + schema_ +
                                      ".berth_schema_versions SET version = version - 2 WHERE component = 'meta'");
  store = instance();
  const auto unread = sync_wait(store->tags().platforms_unread(10)).value();
  ASSERT_EQ(unread.size(), 1u);
  EXPECT_EQ(unread[0].repository, "r");
  EXPECT_EQ(unread[0].dgst, image.dgst);
  EXPECT_EQ(unread[0].media_type, image.media_type);
  EXPECT_EQ(unread[0].content, "i");
  ASSERT_TRUE(sync_wait(store->tags().set_platforms("r", image.dgst, {"linux/s390x"})).has_value());
  EXPECT_TRUE(sync_wait(store->tags().platforms_unread(10)).value().empty());
  EXPECT_EQ(sync_wait(store->manifest_by_digest("r", image.dgst)).value()->platforms,
            std::vector<std::string>{"linux/s390x"});
}

// A session of its own on the test's schema, for transactions the store's API cannot interleave.
class session {
 public:
  session(const std::string& url, const std::string& schema) : c_(PQconnectdb(url.c_str())) {
    if (PQstatus(c_) != CONNECTION_OK) throw std::runtime_error(PQerrorMessage(c_));
    exec("SET search_path TO " + schema);
  }
  session(const session&) = delete;
  session& operator=(const session&) = delete;
  ~session() { PQfinish(c_); }

  // The first column of the first row (empty when none); throws when the statement fails.
  std::string exec(const std::string& sql) {
    PGresult* r = PQexec(c_, sql.c_str());
    const auto status = PQresultStatus(r);
    std::string value = status == PGRES_TUPLES_OK && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "";
    PQclear(r);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) throw std::runtime_error(sql + ": " + PQerrorMessage(c_));
    return value;
  }

 private:
  PGconn* c_;
};

// Two transactions delete a manifest's last two tags at once: whichever commits second sees the
// other's deletion, and the manifest is untagged from then on (each used to see the other's tag
// still there, and neither set the time, so `untagged_days` never took it). The second delete must
// wait for the first transaction: the test commits that one once the second has finished (the bug)
// or is seen waiting on a lock (the fix), so the outcome never depends on timing.
TEST_F(pg_metadata_store_test, concurrent_deletes_of_the_last_two_tags_leave_the_manifest_untagged) {
  auto store = instance();
  const manifest_record m{digest_of("m"), "application/vnd.oci.image.manifest.v1+json", "m", {}, "", "", {}};
  ASSERT_TRUE(sync_wait(store->put_manifest("r", m, "a", test_stamp)).has_value());
  ASSERT_TRUE(sync_wait(store->put_manifest("r", m, "b", test_stamp)).has_value());
  ASSERT_TRUE(sync_wait(store->tags().untagged("r")).value().empty());

  session first(url_, schema_), second(url_, schema_), watcher(url_, schema_);
  const std::string second_pid = second.exec("SELECT pg_backend_pid()");
  first.exec("BEGIN");
  first.exec("DELETE FROM tags WHERE name = 'a'");
  std::atomic<bool> done{false};
  std::jthread other([&] {
    second.exec("DELETE FROM tags WHERE name = 'b'");
    done = true;
  });
  while (!done && watcher.exec("SELECT wait_event_type FROM pg_stat_activity WHERE pid = " + second_pid) != "Lock") {
  }
  first.exec("COMMIT");
  other.join();
  const auto untagged = sync_wait(store->tags().untagged("r")).value();
  ASSERT_EQ(untagged.size(), 1u);
  EXPECT_EQ(untagged[0].dgst, m.dgst);
}

// How many of the test database's sessions wait on a lock in a statement on manifests.
constexpr const char* waiting_on_manifests =
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND "
    "query LIKE '%manifests%'";

// A tag set on a manifest while it is being deleted with a guard is judged, not deleted unseen: the
// deletion waits for the transaction that sets the tag (its foreign key check holds the manifest's
// row), then sees the tag, and an immutable one refuses it. Without the deletion's own lock and
// re-read, its cascade would have deleted the immutable tag.
TEST_F(pg_metadata_store_test, a_tag_set_during_a_guarded_deletion_is_judged) {
  auto store = instance();
  const manifest_record m{digest_of("m"), "application/vnd.oci.image.manifest.v1+json", "m", {}, "", "", {}};
  ASSERT_TRUE(sync_wait(store->put_manifest("r", m, std::nullopt, test_stamp)).has_value());

  session pusher(url_, schema_), watcher(url_, schema_);
  pusher.exec("BEGIN");
  pusher.exec("INSERT INTO tags(repo_id, name, digest, updated_at) SELECT id, 'v1', '" + m.dgst.str() +
              "', 0 FROM repositories WHERE name = 'r'");
  std::atomic<bool> done{false};
  result<bool> deleted;
  std::jthread deleting([&] {
    const delete_guard immutable_v1{.tags = [](std::string_view tag) {
      return tag == "v1" ? std::optional<std::string>("tag r:v1 is immutable") : std::nullopt;
    }};
    deleted = sync_wait(store->delete_manifest("r", m.dgst, test_stamp, immutable_v1));
    done = true;
  });
  while (!done && watcher.exec(waiting_on_manifests) == "0") {
  }
  pusher.exec("COMMIT");
  deleting.join();
  ASSERT_FALSE(deleted.has_value());
  EXPECT_EQ(deleted.error().code, errc::denied);
  EXPECT_EQ(sync_wait(store->manifest_by_tag("r", "v1")).value()->dgst, m.dgst);
}

// An index stored while a manifest it lists is being deleted (delete_guard::keep_needed locks that
// row first) waits for the deletion: put_manifest locks the manifests it references, so the
// deletion's check cannot miss an index committing meanwhile, and an index is never stored listing a
// manifest that is gone. Here the deletion commits first: the index is refused.
TEST_F(pg_metadata_store_test, storing_an_index_waits_for_the_deletion_of_its_child) {
  auto store = instance();
  const manifest_record child{digest_of("child"), "application/vnd.oci.image.manifest.v1+json", "child", {}, "", "", {}};
  const manifest_record index{digest_of("index"), "application/vnd.oci.image.index.v1+json", "index", {}, "", "",
                              {child.dgst}};
  ASSERT_TRUE(sync_wait(store->put_manifest("r", child, std::nullopt, test_stamp)).has_value());

  session deleter(url_, schema_), watcher(url_, schema_);
  deleter.exec("BEGIN");
  deleter.exec("SELECT 1 FROM manifests WHERE digest = '" + child.dgst.str() + "' FOR UPDATE");
  std::atomic<bool> done{false};
  result<void> stored;
  std::jthread pushing([&] {
    stored = sync_wait(store->put_manifest("r", index, "v1", test_stamp));
    done = true;
  });
  while (!done && watcher.exec(waiting_on_manifests) == "0") {
  }
  deleter.exec("DELETE FROM manifests WHERE digest = '" + child.dgst.str() + "'");
  deleter.exec("COMMIT");
  pushing.join();
  ASSERT_FALSE(stored.has_value());
  EXPECT_EQ(stored.error().code, errc::manifest_blob_unknown);
  EXPECT_EQ(sync_wait(store->manifest_by_digest("r", index.dgst)).value(), std::nullopt);
}

// Start-up names the server and the cause, never the password.
TEST_F(pg_metadata_store_test, start_up_errors_name_the_server_not_the_password) {
  using namespace std::chrono_literals;
  const auto fails_with = [](const std::string& conninfo) -> std::string {
    auto pool =
        std::make_shared<pg::pool>(pg::test_util::pool_threads().get_executor(), pg::pool_config{conninfo, 1, 5s, 30s});
    try {
      make_pg_metadata_store(pool);
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "(no error)";
  };
  const auto refused = fails_with("postgresql://berth:s3cret-pw@127.0.0.1:1/registry");
  EXPECT_NE(refused.find("127.0.0.1:1/registry"), std::string::npos) << refused;
  EXPECT_NE(refused.find("refused"), std::string::npos) << refused;
  EXPECT_EQ(refused.find("s3cret-pw"), std::string::npos) << refused;

  const auto no_database = fails_with(url_ + "_absent");
  EXPECT_NE(no_database.find("does not exist"), std::string::npos) << no_database;
}

}  // namespace
}  // namespace berth::meta
