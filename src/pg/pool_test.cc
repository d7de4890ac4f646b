// pg::pool against a real PostgreSQL 15, started by tests/servers/pg.sh (a ctest fixture). Each test
// runs the pool on an io_context of its own and uses tables named after itself.
#include "pg/pool.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <thread>

#include "core/test_server_env.h"

namespace berth::pg {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

class PgTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto env = test_util::read_server_env("BERTH_TEST_PG_ENV", "pg.sh");
    if (!env.failure.empty()) FAIL() << env.failure;
    if (!env.skip.empty()) GTEST_SKIP() << env.skip;
    url_ = env["DATABASE_URL"];
    table_ = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (auto& c : table_) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }

  pool_config config(std::size_t max_connections = 4) const {
    return pool_config{url_ + "?application_name=" + table_, max_connections, 5s, 30s};
  }

  // Runs `task` on the test's io_context until everything it started is done.
  template <class T>
  T run(asio::awaitable<T> task) {
    std::optional<T> out;
    asio::co_spawn(io_, [&]() -> asio::awaitable<void> { out.emplace(co_await std::move(task)); },
                   [](std::exception_ptr e) {
                     if (e) std::rethrow_exception(e);
                   });
    io_.restart();
    io_.run();
    return std::move(*out);
  }

  rows must(pool& p, std::string_view sql, params args = {}) {
    auto r = run(p.query(sql, std::move(args)));
    EXPECT_TRUE(r.has_value()) << sql << ": " << r.error().message;
    return r.value();
  }

  asio::io_context io_;
  std::string url_;
  std::string table_;
};

TEST_F(PgTest, ParametersAndResults) {
  pool p(io_.get_executor(), config());
  ASSERT_TRUE(run(p.exec("DROP TABLE IF EXISTS " + table_ + "; CREATE TABLE " + table_ +
                         " (k text PRIMARY KEY, n bigint, b bytea)")));
  const std::string binary("a\0b\xff\x01", 5);
  const auto inserted = must(p, "INSERT INTO " + table_ + " VALUES ($1, $2, $3), ($4, $5, $6)",
                             {"one", 1, param::bytes(binary), "two", std::nullopt, std::nullopt});
  EXPECT_EQ(inserted.affected(), 2u);

  const auto r = must(p, "SELECT k, n, b FROM " + table_ + " ORDER BY k");
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r.columns(), 3u);
  EXPECT_EQ(r.text(0, 0), "one");
  EXPECT_EQ(r.int64(0, 1), 1);
  EXPECT_EQ(r.bytes(0, 2), binary);
  EXPECT_EQ(r.text(1, 0), "two");
  EXPECT_TRUE(r.is_null(1, 1));
  EXPECT_EQ(r.int64(1, 1), std::nullopt);
  EXPECT_EQ(r.bytes(1, 2), std::nullopt);
  EXPECT_EQ(must(p, "UPDATE " + table_ + " SET n = n + 1 WHERE k = $1", {"one"}).affected(), 1u);
}

TEST_F(PgTest, ErrorsAreMapped) {
  pool p(io_.get_executor(), config());
  ASSERT_TRUE(run(p.exec("DROP TABLE IF EXISTS " + table_ + "_child, " + table_ + "; CREATE TABLE " + table_ +
                         " (k text PRIMARY KEY); CREATE TABLE " + table_ + "_child (k text REFERENCES " + table_ +
                         ")")));
  must(p, "INSERT INTO " + table_ + " VALUES ($1)", {"a"});
  const auto duplicate = run(p.query("INSERT INTO " + table_ + " VALUES ($1)", {"a"}));
  ASSERT_FALSE(duplicate.has_value());
  EXPECT_EQ(duplicate.error().code, errc::already_exists);
  EXPECT_EQ(duplicate.error().sqlstate, "23505");

  const auto orphan = run(p.query("INSERT INTO " + table_ + "_child VALUES ($1)", {"nope"}));
  ASSERT_FALSE(orphan.has_value());
  EXPECT_EQ(orphan.error().code, errc::constraint);

  const auto syntax = run(p.query("SELEC 1"));
  ASSERT_FALSE(syntax.has_value());
  EXPECT_EQ(syntax.error().code, errc::failed);
  EXPECT_EQ(syntax.error().sqlstate, "42601");
  // What passes is busy, not a bug: a write on a read-only server (a standby after a failover), a
  // statement cancelled by its timeout.
  const auto read_only = run(p.exec("BEGIN READ ONLY; INSERT INTO " + table_ + " VALUES ('b'); COMMIT"));
  ASSERT_FALSE(read_only.has_value());
  EXPECT_EQ(read_only.error().code, errc::busy);
  EXPECT_EQ(read_only.error().sqlstate, "25006");
  const auto cancelled = run(p.exec("BEGIN; SET LOCAL statement_timeout = 10; SELECT pg_sleep(5); COMMIT"));
  ASSERT_FALSE(cancelled.has_value());
  EXPECT_EQ(cancelled.error().code, errc::busy);
  EXPECT_EQ(cancelled.error().sqlstate, "57014");
  EXPECT_EQ(code_for_sqlstate("53100"), errc::busy);  // disk full
  // The failures did not cost the connections.
  EXPECT_EQ(must(p, "SELECT 1").int64(0, 0), 1);
}

TEST_F(PgTest, StatementsArePreparedOncePerConnection) {
  pool p(io_.get_executor(), config(1));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(must(p, "SELECT $1::int + 1", {i}).int64(0, 0), i + 1);
  // This session holds the one above and the count itself.
  EXPECT_EQ(must(p, "SELECT count(*) FROM pg_prepared_statements").int64(0, 0), 2);
  EXPECT_EQ(p.open_connections(), 1u);
}

TEST_F(PgTest, Transactions) {
  pool p(io_.get_executor(), config(2));
  ASSERT_TRUE(run(p.exec("DROP TABLE IF EXISTS " + table_ + "; CREATE TABLE " + table_ + " (k text PRIMARY KEY)")));
  const std::string count = "SELECT count(*) FROM " + table_;
  const std::string insert = "INSERT INTO " + table_ + " VALUES ($1)";

  auto rolled_back = run(p.begin());
  ASSERT_TRUE(rolled_back.has_value());
  ASSERT_TRUE(run(rolled_back->query(insert, {"a"})));
  EXPECT_EQ(must(p, count).int64(0, 0), 0);  // not visible outside before commit
  ASSERT_TRUE(run(rolled_back->rollback()));
  EXPECT_EQ(must(p, count).int64(0, 0), 0);

  auto committed = run(p.begin());
  ASSERT_TRUE(committed.has_value());
  ASSERT_TRUE(run(committed->query(insert, {"a"})));
  ASSERT_TRUE(run(committed->query(insert, {"b"})));
  ASSERT_TRUE(run(committed->commit()));
  EXPECT_EQ(must(p, count).int64(0, 0), 2);

  // A failed statement dooms the transaction: commit() rolls back and reports it.
  auto doomed = run(p.begin());
  ASSERT_TRUE(doomed.has_value());
  ASSERT_TRUE(run(doomed->query(insert, {"c"})));
  const auto duplicate = run(doomed->query(insert, {"a"}));
  ASSERT_FALSE(duplicate.has_value());
  const auto commit = run(doomed->commit());
  ASSERT_FALSE(commit.has_value());
  EXPECT_EQ(commit.error().code, errc::already_exists);
  EXPECT_EQ(must(p, count).int64(0, 0), 2);

  // Dropped without commit: the connection is closed and the server rolls back.
  {
    auto dropped = run(p.begin());
    ASSERT_TRUE(dropped.has_value());
    ASSERT_TRUE(run(dropped->query(insert, {"d"})));
  }
  EXPECT_EQ(must(p, count).int64(0, 0), 2);
  EXPECT_LE(p.open_connections(), 2u);
}

TEST_F(PgTest, NeverMoreThanMaxConnections) {
  pool p(io_.get_executor(), config(2));
  std::int64_t most = 0;
  int done = 0;
  for (int i = 0; i < 10; ++i) {
    asio::co_spawn(io_, [&]() -> asio::awaitable<void> {
      params args{table_};  // a braced list inside the co_await trips GCC 12
      auto r = co_await p.query("SELECT (SELECT count(*) FROM pg_stat_activity WHERE application_name = $1) "
                                "FROM pg_sleep(0.05)", std::move(args));
      EXPECT_TRUE(r.has_value()) << r.error().message;
      if (r) most = std::max(most, r->int64(0, 0).value_or(0));
      ++done;
    }, asio::detached);
  }
  io_.run();
  EXPECT_EQ(done, 10);
  EXPECT_EQ(most, 2);
  EXPECT_EQ(p.open_connections(), 2u);
  EXPECT_EQ(p.idle_connections(), 2u);
}

TEST_F(PgTest, ManyThreadsShareThePool) {
  pool p(io_.get_executor(), config(3));
  std::atomic<int> ok = 0;
  for (int i = 0; i < 60; ++i) {
    asio::co_spawn(io_, [&p, &ok, i]() -> asio::awaitable<void> {
      params args{i};
      auto r = co_await p.query("SELECT $1::int * 2", std::move(args));
      if (r && r->int64(0, 0) == 2 * i) ++ok;
    }, asio::detached);
  }
  std::thread helper([this] { io_.run(); });
  io_.run();
  helper.join();
  EXPECT_EQ(ok, 60);
  EXPECT_LE(p.open_connections(), 3u);
}

TEST_F(PgTest, ReplacesAConnectionTheServerClosed) {
  pool p(io_.get_executor(), config(1));
  pool admin(io_.get_executor(), pool_config{url_, 1, 5s, 30s});
  const auto pid = must(p, "SELECT pg_backend_pid()").int64(0, 0);
  ASSERT_EQ(must(admin, "SELECT pg_terminate_backend($1)", {*pid}).text(0, 0), "t");
  // Terminating is asynchronous: wait until the backend has gone.
  while (must(admin, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", {*pid}).int64(0, 0) != 0) {
  }
  const auto again = run(p.query("SELECT pg_backend_pid()"));
  ASSERT_TRUE(again.has_value()) << again.error().message;
  EXPECT_NE(again->int64(0, 0), pid);

  // Lost in the middle of a statement: unavailable, and the next one gets a fresh connection.
  const auto killed = run(p.query("SELECT pg_terminate_backend(pg_backend_pid())"));
  ASSERT_FALSE(killed.has_value());
  EXPECT_EQ(killed.error().code, errc::unavailable);
  EXPECT_EQ(p.open_connections(), 0u);
  EXPECT_EQ(must(p, "SELECT 7").int64(0, 0), 7);
}

TEST_F(PgTest, StatementTimeoutBreaksOnlyItsConnection) {
  auto cfg = config(1);
  cfg.query_timeout = 200ms;
  pool p(io_.get_executor(), cfg);
  const auto start = std::chrono::steady_clock::now();
  const auto slow = run(p.query("SELECT pg_sleep(10)"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  ASSERT_FALSE(slow.has_value());
  EXPECT_EQ(slow.error().code, errc::unavailable);
  EXPECT_NE(slow.error().message.find("timed out"), std::string::npos) << slow.error().message;
  EXPECT_EQ(p.open_connections(), 0u);
  EXPECT_EQ(must(p, "SELECT 1").int64(0, 0), 1);
}

TEST_F(PgTest, UnreachableServerIsUnavailable) {
  pool p(io_.get_executor(), pool_config{"postgresql://postgres@127.0.0.1:1/none", 2, 5s, 30s});
  const auto r = run(p.query("SELECT 1"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::unavailable);
  EXPECT_EQ(p.open_connections(), 0u);
}

}  // namespace
}  // namespace berth::pg
