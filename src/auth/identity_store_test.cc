// The SQLite identity store: the contract suite, plus what only SQLite has (the file, its schema,
// and a writer that can be made to wait).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "auth/identity_store.h"
#include "auth/identity_store_contract.h"
#include "core/sync_wait.h"
#include "meta/sqlite_db.h"
#include "meta/test_temp_dir.h"

namespace berth::auth {
namespace {

class sqlite_storage final : public contract::identity_store_storage {
 public:
  std::unique_ptr<identity_store> open(blocking_pool& pool) override {
    return make_sqlite_identity_store(dir_.file("auth.db"), pool);
  }

 private:
  meta::test_util::temp_dir dir_;
};

using contract::IdentityStoreContract;

INSTANTIATE_TEST_SUITE_P(SQLite, IdentityStoreContract,
                         ::testing::Values(contract::identity_store_backend{
                             "sqlite", [] { return std::make_unique<sqlite_storage>(); }}),
                         contract::identity_store_backend::name_of);

using meta::sqlite::connection;

TEST(AccountName, Grammar) {
  EXPECT_TRUE(valid_account_name("admin"));
  EXPECT_TRUE(valid_account_name("ci-bot.2"));
  EXPECT_FALSE(valid_account_name(""));
  EXPECT_FALSE(valid_account_name("Admin"));
  EXPECT_FALSE(valid_account_name("-x"));
  EXPECT_FALSE(valid_account_name("a:b"));
  EXPECT_FALSE(valid_account_name("../x"));
  EXPECT_FALSE(valid_account_name(std::string(65, 'a')));
}

class SqliteIdentityStore : public ::testing::Test {
 protected:
  // A second connection on the same file, as another process would have.
  connection raw() {
    auto db = connection::open(path_, connection::mode::read_write);
    if (!db) throw std::runtime_error("cannot open auth.db");
    return std::move(*db);
  }

  meta::test_util::temp_dir dir_;
  std::string path_ = dir_.file("auth.db");
  blocking_pool pool_{2};
  std::unique_ptr<identity_store> store_ = make_sqlite_identity_store(path_, pool_);
};

TEST_F(SqliteIdentityStore, KeepsOnlyTheHashOfARobotToken) {
  auto token = sync_wait(store_->create_robot("ci", "", std::nullopt));
  ASSERT_TRUE(token);
  auto db = raw();
  auto st = db.prepare("SELECT token_hash FROM robots WHERE name = 'ci'");
  ASSERT_TRUE(st.step().value_or(false));
  EXPECT_EQ(st.text(0), robot_token_hash(*token));
  EXPECT_EQ(st.text(0).find(token->substr(robot_token_prefix.size())), std::string_view::npos);
}

TEST_F(SqliteIdentityStore, RefusesANewerSchemaNamingTheFile) {
  store_.reset();
  ASSERT_TRUE(raw().exec("PRAGMA user_version = 99"));
  try {
    make_sqlite_identity_store(path_, pool_);
    FAIL() << "a newer auth.db was opened";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path_), std::string::npos) << e.what();
  }
}

// auth.db as the first release wrote it (schema version 1): grant ids were plain rowids.
TEST_F(SqliteIdentityStore, MigratesVersionOneKeepingEverythingAndStopsReusingGrantIds) {
  store_.reset();
  std::filesystem::remove(path_);
  {
    auto db = raw();
    ASSERT_TRUE(db.exec(R"sql(
CREATE TABLE users (name TEXT PRIMARY KEY, password_hash TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE robots (name TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE, description TEXT NOT NULL,
                     expires_at INTEGER, revoked_at INTEGER, created_at INTEGER NOT NULL);
CREATE TABLE grants (id INTEGER PRIMARY KEY, subject TEXT NOT NULL, actions TEXT NOT NULL,
                     repository TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE INDEX grants_by_subject ON grants(subject);
INSERT INTO users VALUES ('alice', '$argon2id$a', 1);
INSERT INTO grants VALUES (1, 'user:alice', 'pull', 'a/*', 1), (7, '*', 'pull', 'pub/*', 1);
PRAGMA user_version = 1;
)sql"));
  }
  store_ = make_sqlite_identity_store(path_, pool_);
  EXPECT_EQ(sync_wait(store_->find_user("alice")).value()->password_hash, "$argon2id$a");
  auto grants = sync_wait(store_->grants(std::nullopt)).value();
  ASSERT_EQ(grants.size(), 2u);
  EXPECT_EQ(grants[1].id, 7);
  EXPECT_EQ(grants[1].repository, "pub/*");
  ASSERT_EQ(sync_wait(store_->grants(std::string_view("user:alice"))).value().size(), 1u);

  ASSERT_TRUE(sync_wait(store_->delete_grant(7)).value());
  EXPECT_EQ(sync_wait(store_->add_grant("*", "pull", "x")).value(), 8);
}

// While a write waits for the database (here: another connection holds the write lock, until the
// store's busy timeout of 5 s gives up), reads and generation() go on: they would stall for the
// whole wait if they shared the writer's connection or mutex.
TEST_F(SqliteIdentityStore, ReadsAndGenerationDoNotWaitForAWrite) {
  ASSERT_TRUE(sync_wait(store_->put_user("alice", "h")));
  const auto generation = store_->generation();
  auto other = raw();
  ASSERT_TRUE(other.exec("BEGIN IMMEDIATE; INSERT INTO users VALUES ('held', 'h', 0);"));

  std::atomic<bool> writing{true};
  result<void> blocked;
  std::jthread writer([&] {
    blocked = sync_wait(store_->put_user("bob", "h"));
    writing = false;
  });
  using clock = std::chrono::steady_clock;
  clock::duration slowest{};
  int rounds = 0;
  while (writing.load()) {
    const auto start = clock::now();
    EXPECT_EQ(store_->generation(), generation);
    auto alice = sync_wait(store_->find_user("alice"));
    EXPECT_TRUE(alice && *alice);
    slowest = std::max(slowest, clock::now() - start);
    ++rounds;
  }
  writer.join();
  EXPECT_FALSE(blocked);  // it did wait for the lock, the whole time the loop ran
  EXPECT_GT(rounds, 0);
  EXPECT_LT(slowest, std::chrono::seconds(1));
  EXPECT_EQ(store_->generation(), generation);  // a failed write changes nothing

  ASSERT_TRUE(other.exec("ROLLBACK"));
  ASSERT_TRUE(sync_wait(store_->put_user("bob", "h")));
  EXPECT_GT(store_->generation(), generation);
}

}  // namespace
}  // namespace berth::auth
