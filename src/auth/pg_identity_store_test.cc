// The PostgreSQL identity store against a real PostgreSQL (the ctest fixture `pg`): the contract
// suite, each test in a schema of its own, plus what only a shared database has: a generation that
// follows other instances' writes within its bound, names taken across instances, and the
// metadata and identity stores of several instances migrating one database at once.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "auth/identity_store_contract.h"
#include "auth/pg_identity_store.h"
#include "core/sync_wait.h"
#include "meta/pg_metadata_store.h"
#include "pg/test_schema.h"

namespace berth::auth {
namespace {

using pg::test_util::pool_on;

// A fresh schema named after the running test, dropped with the storage.
class pg_schema {
 public:
  pg_schema() {
    pg::test_util::find_server(url_);
    if (url_.empty()) return;
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    schema_ = pg::test_util::schema_for(std::string("auth/") + test->test_suite_name() + "/" + test->name());
    pg::test_util::admin_exec(url_, "DROP SCHEMA IF EXISTS " + schema_ + " CASCADE; CREATE SCHEMA " + schema_);
  }
  ~pg_schema() {
    if (!url_.empty()) pg::test_util::admin_exec(url_, "DROP SCHEMA IF EXISTS " + schema_ + " CASCADE");
  }
  pg_schema(const pg_schema&) = delete;
  pg_schema& operator=(const pg_schema&) = delete;

  bool usable() const { return !url_.empty(); }
  // A pool of another instance on the schema.
  std::shared_ptr<pg::pool> pool() const { return pool_on(url_, schema_); }
  const std::string& url() const { return url_; }
  const std::string& schema() const { return schema_; }

 private:
  std::string url_;
  std::string schema_;
};

class pg_storage final : public contract::identity_store_storage {
 public:
  std::unique_ptr<identity_store> open(blocking_pool&) override {
    if (!schema_.usable()) return nullptr;  // skipped or failed: the test body does not run
    return make_pg_identity_store(schema_.pool());
  }

 private:
  pg_schema schema_;
};

using contract::IdentityStoreContract;

INSTANTIATE_TEST_SUITE_P(Postgres, IdentityStoreContract,
                         ::testing::Values(contract::identity_store_backend{
                             "postgres", [] { return std::make_unique<pg_storage>(); }}),
                         contract::identity_store_backend::name_of);

class PgIdentityStore : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!schema_.usable()) GTEST_SKIP() << "no PostgreSQL";  // find_server() said why
  }

  pg_schema schema_;
};

// A write through one instance moves the other's generation within the documented bound (the poll
// interval and one round trip), and the other reads the change then.
TEST_F(PgIdentityStore, GenerationFollowsAnotherInstancesWritesWithinTheBound) {
  using clock = std::chrono::steady_clock;
  auto writer = make_pg_identity_store(schema_.pool());
  auto other = make_pg_identity_store(schema_.pool());
  for (int round = 0; round < 2; ++round) {
    const auto before = other->generation();
    const auto start = clock::now();
    ASSERT_TRUE(sync_wait(writer->put_user(fmt::format("u{}", round), "h")));
    const auto deadline = start + generation_poll_interval + std::chrono::seconds(2);  // a slow round trip
    while (other->generation() == before && clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));  // polls the condition; not a sync point
    }
    EXPECT_GT(other->generation(), before) << "round " << round;
    EXPECT_TRUE(sync_wait(other->find_user(fmt::format("u{}", round))).value().has_value());
  }
  // Without writes it stays put, whatever the polls read.
  const auto settled = other->generation();
  const auto quiet_until = clock::now() + generation_poll_interval * 2;
  while (clock::now() < quiet_until) {
    ASSERT_EQ(other->generation(), settled);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

TEST_F(PgIdentityStore, NamesAndGrantIdsAreSharedAcrossInstances) {
  auto a = make_pg_identity_store(schema_.pool());
  auto b = make_pg_identity_store(schema_.pool());
  const auto token = sync_wait(a->create_robot("ci", "", std::nullopt));
  ASSERT_TRUE(token);
  const auto again = sync_wait(b->create_robot("ci", "", std::nullopt));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, errc::already_exists);
  EXPECT_EQ(sync_wait(b->robot_by_token(*token)).value()->name, "ci");

  const auto g1 = sync_wait(a->add_grant("*", "pull", "x")).value();
  const auto g2 = sync_wait(b->add_grant("*", "pull", "y")).value();
  ASSERT_TRUE(sync_wait(b->delete_grant(g2)).value());
  const auto g3 = sync_wait(a->add_grant("*", "pull", "z")).value();
  EXPECT_LT(g1, g2);
  EXPECT_LT(g2, g3);  // not reused, whoever deleted it
}

// Several instances start at once on an empty database: each brings up both stores, and the
// advisory lock makes the migrations run one after the other; none fails, none runs twice.
TEST_F(PgIdentityStore, InstancesStartingTogetherMigrateBothStoresOnce) {
  constexpr int instances = 4;
  std::atomic<int> failures{0};
  std::vector<std::unique_ptr<identity_store>> identities(instances);
  std::vector<std::unique_ptr<meta::metadata_store>> metas(instances);
  {
    std::vector<std::jthread> starting;
    for (int i = 0; i < instances; ++i) {
      starting.emplace_back([&, i] {
        try {
          const auto n = static_cast<std::size_t>(i);
          if (i % 2 == 0) {
            identities[n] = make_pg_identity_store(schema_.pool());
            metas[n] = meta::make_pg_metadata_store(schema_.pool());
          } else {
            metas[n] = meta::make_pg_metadata_store(schema_.pool());
            identities[n] = make_pg_identity_store(schema_.pool());
          }
        } catch (const std::exception& e) {
          ADD_FAILURE() << e.what();
          ++failures;
        }
      });
    }
  }
  ASSERT_EQ(failures.load(), 0);
  auto versions =
      std::make_shared<pg::pool>(pg::test_util::pool_threads().get_executor(), pg::pool_config{schema_.url(), 1});
  const auto rows = sync_wait(versions->query("SELECT component, version FROM " + schema_.schema() +
                                              ".berth_schema_versions ORDER BY component"));
  ASSERT_TRUE(rows.has_value()) << rows.error().message;
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ(rows->text(0, 0), "auth");
  EXPECT_EQ(rows->text(1, 0), "meta");
  for (int i = 0; i < instances; ++i) {
    const auto n = static_cast<std::size_t>(i);
    EXPECT_TRUE(sync_wait(identities[n]->put_user(fmt::format("u{}", i), "h")));
    EXPECT_TRUE(sync_wait(metas[n]->create_repository(fmt::format("r{}", i))).value_or(false));
  }
  EXPECT_EQ(sync_wait(identities[0]->list_users()).value().size(), static_cast<std::size_t>(instances));
}

}  // namespace
}  // namespace berth::auth
