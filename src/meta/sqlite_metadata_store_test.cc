// The SQLite metadata store: the contract suite, plus what only SQLite does (WAL, schema versions,
// readers that never wait for the writer, leases that end when the database is reopened).
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "core/sync_wait.h"
#include "core/unix_time.h"
#include "core/test_await.h"
#include "meta/metadata_store.h"
#include "meta/metadata_store_contract.h"
#include "meta/sqlite_db.h"
#include "meta/test_temp_dir.h"

namespace berth::meta {
namespace {


std::string db_path(const std::string& location) { return (std::filesystem::path(location) / "berth.db").string(); }

INSTANTIATE_TEST_SUITE_P(sqlite, metadata_store_contract,
                         ::testing::Values(metadata_backend{"sqlite",
                                                            [](const std::string& location) {
                                                              return make_sqlite_metadata_store(db_path(location));
                                                            }}),
                         metadata_backend_name);

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

// WAL is what lets readers run on their own snapshot while the writer commits.
TEST_F(sqlite_metadata_store_test, database_is_in_wal_mode) {
  ASSERT_TRUE(sync_wait(store_->link_blob("r", digest_of("x"), 1)).has_value());
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

// What version 5 added (quota counters), taken away again: the file is as version 4 wrote it.
constexpr const char* undo_quota =
    "DROP TRIGGER repository_counted; DROP TRIGGER repository_uncounted; DROP TRIGGER link_counted; "
    "DROP TRIGGER link_uncounted; DROP TRIGGER manifest_counted; DROP TRIGGER manifest_uncounted; "
    "DROP TABLE namespace_usage; PRAGMA user_version = 4";
// What version 6 added (the webhook outbox), taken away again: the file is as version 5 wrote it.
constexpr const char* undo_webhooks = "DROP TABLE webhook_deliveries; PRAGMA user_version = 5";
// What version 7 added (the audit log), taken away again: the file is as version 6 wrote it.
constexpr const char* undo_audit = "DROP TABLE audit_log; PRAGMA user_version = 6";
// What version 11 added (the API's retention rules), taken away again: the file is as version 10 wrote it.
constexpr const char* undo_retention_rules = "DROP TABLE retention_rules; PRAGMA user_version = 10";
// What version 10 added (unread platforms), taken away again: the file is as version 9 wrote it.
constexpr const char* undo_platforms_unread =
    "DROP INDEX manifests_platforms_unread; ALTER TABLE manifests DROP COLUMN platforms_unread; PRAGMA user_version = 9";
// What version 9 added (the outbox's pruning index), taken away again: the file is as version 8 wrote it.
constexpr const char* undo_outbox_pruning = "DROP INDEX webhook_deliveries_finished; PRAGMA user_version = 8";
// What version 8 added (untagged times), taken away again: the file is as version 7 wrote it.
constexpr const char* undo_untagged =
    "DROP TRIGGER manifest_untagged; DROP TRIGGER tag_set; DROP TRIGGER tag_moved; DROP TRIGGER tag_removed; "
    "DROP INDEX manifests_untagged; ALTER TABLE manifests DROP COLUMN untagged_since; PRAGMA user_version = 7";

// What version 4 added (garbage collection), taken away again: the file is as version 3 wrote it.
constexpr const char* undo_gc =
    "DROP TABLE blobs; DROP TABLE gc_runs; ALTER TABLE blob_links DROP COLUMN linked_at; PRAGMA user_version = 3";

// What version 3 added (the lifecycle), taken away again: the file is as version 2 wrote it.
constexpr const char* undo_lifecycle =
    "DROP TABLE tag_history; DROP INDEX tags_by_time; ALTER TABLE tags DROP COLUMN pushed_at; "
    "ALTER TABLE tags DROP COLUMN pushed_by; ALTER TABLE manifests DROP COLUMN total_size; "
    "ALTER TABLE manifests DROP COLUMN platforms; PRAGMA user_version = 2";

// A registry upgraded to tag records: every tag gets its time (when it was last set), "unknown" as
// its pusher and one history entry; each manifest its size (an index: with its children's) and an
// index its platforms, without a re-push.
TEST_F(sqlite_metadata_store_test, upgrading_fills_the_tag_records) {
  const std::string child = R"({"schemaVersion":2,"config":{}})";
  const std::string index =
      R"({"schemaVersion":2,"manifests":[{"digest":"x","platform":{"os":"linux","architecture":"arm64","variant":"v8"}},)"
      R"({"platform":{"os":"unknown","architecture":"unknown"}},{"platform":{"os":"linux","architecture":"amd64"}}]})";
  const manifest_record c{digest_of(child), "application/vnd.oci.image.manifest.v1+json", child, {}, "", "",
                          {digest_of("layer")}, 0, {}};
  const manifest_record i{digest_of(index), "application/vnd.oci.image.index.v1+json", index, {}, "", "",
                          {c.dgst}, 0, {}};
  const std::int64_t generation = sync_wait(store_->uploads().claim(digest_of("layer"), 1000)).value();
  ASSERT_TRUE(sync_wait(store_->uploads().create(upload_record{"u1", "r", 0, ""}, upload_lease{1, 1}, 0)).has_value());
  ASSERT_TRUE(sync_wait(store_->uploads().complete("u1", 1, digest_of("layer"), 1000, generation)).value());
  ASSERT_TRUE(sync_wait(store_->put_manifest("r", c, std::nullopt, test_stamp)).has_value());
  ASSERT_TRUE(sync_wait(store_->put_manifest("r", i, "latest", test_stamp)).has_value());
  store_.reset();
  {
    auto db = sqlite::connection::open(path(), sqlite::connection::mode::read_write);
    ASSERT_TRUE(db.has_value());
    ASSERT_TRUE(db->exec(undo_retention_rules).has_value());
    ASSERT_TRUE(db->exec(undo_platforms_unread).has_value());
    ASSERT_TRUE(db->exec(undo_outbox_pruning).has_value());
    ASSERT_TRUE(db->exec(undo_untagged).has_value());
    ASSERT_TRUE(db->exec(undo_audit).has_value());
    ASSERT_TRUE(db->exec(undo_webhooks).has_value());
    ASSERT_TRUE(db->exec(undo_quota).has_value());
    ASSERT_TRUE(db->exec(undo_gc).has_value());
    ASSERT_TRUE(db->exec(undo_lifecycle).has_value());
    ASSERT_TRUE(db->exec("UPDATE tags SET updated_at = 1700000000").has_value());
  }
  const std::int64_t upgraded_ms = unix_millis();
  reopen();
  // Untagged manifests (the index's child) count from the upgrade, so a retention run deletes none at once.
  const auto untagged = sync_wait(store_->tags().untagged("r")).value();
  ASSERT_EQ(untagged.size(), 1u);
  EXPECT_EQ(untagged[0].dgst, c.dgst);
  EXPECT_GE(untagged[0].since_ms, upgraded_ms - 1000);
  auto records = sync_wait(store_->tags().tag_list("r", tag_sort::time, true, "", 10)).value().value();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].pushed_at_ms, 1'700'000'000'000);
  EXPECT_EQ(records[0].pushed_by, "unknown");
  EXPECT_EQ(records[0].size, index.size() + child.size() + 1000);
  EXPECT_EQ(records[0].platforms, (std::vector<std::string>{"linux/arm64/v8", "linux/amd64"}));
  const auto history = sync_wait(store_->tags().tag_history("r", "latest")).value();
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(history[0].dgst, i.dgst);
  // The image manifest waits for its config blob to be read (lifecycle::read_platforms); the index not.
  const auto unread = sync_wait(store_->tags().platforms_unread(10)).value();
  ASSERT_EQ(unread.size(), 1u);
  EXPECT_EQ(unread[0].repository, "r");
  EXPECT_EQ(unread[0].dgst, c.dgst);
  EXPECT_EQ(unread[0].content, child);
  ASSERT_TRUE(sync_wait(store_->tags().set_platforms("r", c.dgst, {"linux/s390x"})).has_value());
  EXPECT_TRUE(sync_wait(store_->tags().platforms_unread(10)).value().empty());
  EXPECT_EQ(sync_wait(store_->manifest_by_digest("r", c.dgst)).value()->platforms,
            std::vector<std::string>{"linux/s390x"});
  // The quota counters start from what is stored.
  const auto usage = sync_wait(store_->usage("r")).value();
  ASSERT_EQ(usage.namespaces.size(), 1u);
  EXPECT_EQ(usage.namespaces[0].stored_bytes, 1000u);
  EXPECT_EQ(usage.namespaces[0].manifest_bytes, index.size() + child.size());
}

// A version-1 file (before upload records and garbage collection) with a link: after the
// migration the link has a blob record, so it can be mounted and, once unlinked, collected.
TEST_F(sqlite_metadata_store_test, migrates_a_version_1_database) {
  store_.reset();
  {
    auto db = sqlite::connection::open(path(), sqlite::connection::mode::read_write);
    ASSERT_TRUE(db.has_value());
    ASSERT_TRUE(db->exec(undo_retention_rules).has_value());
    ASSERT_TRUE(db->exec(undo_platforms_unread).has_value());
    ASSERT_TRUE(db->exec(undo_outbox_pruning).has_value());
    ASSERT_TRUE(db->exec(undo_untagged).has_value());
    ASSERT_TRUE(db->exec(undo_audit).has_value());
    ASSERT_TRUE(db->exec(undo_webhooks).has_value());
    ASSERT_TRUE(db->exec(undo_quota).has_value());
    ASSERT_TRUE(db->exec(undo_gc).has_value());
    ASSERT_TRUE(db->exec(undo_lifecycle).has_value());
    const std::string downgrade = "DROP TABLE uploads; "
                                  "INSERT INTO repositories(id, name) VALUES (1, 'r'); "
                                  "INSERT INTO blob_links(repo_id, digest, size) VALUES (1, '" +
                                  digest_of("x").str() + "', 1); PRAGMA user_version = 1";
    ASSERT_TRUE(db->exec(downgrade.c_str()).has_value());
  }
  reopen();
  EXPECT_EQ(sync_wait(store_->linked_blob_size("r", digest_of("x"))).value(), 1u);
  const upload_record rec{"u1", "r", 0, ""};
  EXPECT_TRUE(sync_wait(store_->uploads().create(rec, upload_lease{}, 1)).has_value());
  EXPECT_EQ(sync_wait(store_->uploads().find("u1")).value(), rec);
  EXPECT_TRUE(sync_wait(store_->link_blob("mounted", digest_of("x"), 1)).value());
  EXPECT_TRUE(sync_wait(store_->blobs().unreferenced(60'000, "", 10)).value().empty());  // a fresh grace window
  ASSERT_TRUE(sync_wait(store_->delete_repository("r")).value());
  ASSERT_TRUE(sync_wait(store_->delete_repository("mounted")).value());
  EXPECT_EQ(sync_wait(store_->blobs().unreferenced(0, "", 10)).value().size(), 1u);
}

// One process owns the database, so a lease found when it opens belongs to a process that died:
// the upload must be usable at once, not after the lease runs out.
TEST_F(sqlite_metadata_store_test, reopening_ends_every_lease) {
  constexpr std::int64_t now = 1'700'000'000'000;
  const upload_record rec{"u1", "r", 0, ""};
  ASSERT_TRUE(sync_wait(store_->uploads().create(rec, upload_lease{1, now + 3'600'000}, now)).has_value());
  EXPECT_EQ(sync_wait(store_->uploads().acquire("r", "u1", upload_lease{2, now + 1}, now)).error().code, errc::upload_busy);
  reopen();
  EXPECT_EQ(sync_wait(store_->uploads().acquire("r", "u1", upload_lease{2, now + 1}, now)).value(), rec);
  // The dead holder's token is worth nothing now.
  EXPECT_FALSE(sync_wait(store_->uploads().remove("u1", 1)).value());
}

// `berth check` opens the database beside a running server: the server's uploads stay held.
TEST_F(sqlite_metadata_store_test, another_process_keeps_the_leases) {
  constexpr std::int64_t now = 1'700'000'000'000;
  const upload_record rec{"u1", "r", 0, ""};
  ASSERT_TRUE(sync_wait(store_->uploads().create(rec, upload_lease{1, now + 3'600'000}, now)).has_value());
  auto beside = make_sqlite_metadata_store(path(), upload_leases::keep);
  EXPECT_EQ(sync_wait(beside->uploads().acquire("r", "u1", upload_lease{2, now + 1}, now)).error().code,
            errc::upload_busy);
  EXPECT_EQ(sync_wait(store_->uploads().acquire("r", "u1", upload_lease{2, now + 1}, now)).error().code,
            errc::upload_busy);
}

// Reads complete inline on the caller's thread from their own snapshot: a write stuck behind a lock
// (here another connection's open transaction) holds up neither the reads nor the caller's thread.
TEST_F(sqlite_metadata_store_test, reads_do_not_wait_for_the_writer) {
  const auto m = manifest_record{digest_of("m"), "application/vnd.oci.image.manifest.v1+json", "m", {}, "", "", {}, 0, {}};
  ASSERT_TRUE(sync_wait(store_->put_manifest("r", m, "latest", test_stamp)).has_value());

  auto other = sqlite::connection::open(path(), sqlite::connection::mode::read_write);
  ASSERT_TRUE(other.has_value());
  ASSERT_TRUE(other->exec("BEGIN IMMEDIATE").has_value());  // holds the write lock

  boost::asio::io_context ioc;
  std::atomic<bool> written{false};
  boost::asio::co_spawn(
      ioc,
      [&]() -> boost::asio::awaitable<void> {
        auto r = co_await store_->put_manifest("r", m, "moved", test_stamp);
        EXPECT_TRUE(r.has_value());
        written = true;
      },
      boost::asio::detached);
  ioc.poll();  // starts the write: it is now queued on the writer, which waits for the lock

  for (int i = 0; i < 100; ++i) {
    auto got = sync_wait(store_->manifest_by_tag("r", "latest"));
    ASSERT_TRUE(got.has_value() && got->has_value());
  }
  ioc.poll();
  EXPECT_FALSE(written.load()) << "the write was meant to be stuck while the reads ran";
  EXPECT_EQ(sync_wait(store_->list_tags("r", "", 10)).value(), std::vector<std::string>{"latest"});

  ASSERT_TRUE(other->exec("COMMIT").has_value());
  ioc.run();  // returns once the write has completed
  EXPECT_TRUE(written.load());
  EXPECT_EQ(sync_wait(store_->list_tags("r", "", 10)).value(), (std::vector<std::string>{"latest", "moved"}));
}

}  // namespace
}  // namespace berth::meta
