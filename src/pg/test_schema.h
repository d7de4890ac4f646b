// For the PostgreSQL stores' tests: the server of the ctest fixture `pg` (tests/servers/pg.sh),
// one schema per test location, and pools whose connections use it (search_path), so tests are
// isolated from each other and may run in parallel on one database. Pools run on a thread pool
// of the test process, as a server would give them one.
#pragma once

#include <utility>  // before Asio: boost 1.74 awaitable.hpp uses std::exchange without it

#include <gtest/gtest.h>

#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "core/sync_wait.h"
#include "core/test_server_env.h"
#include "pg/pool.h"

namespace berth::pg::test_util {

// Sets `url` to the fixture's database URL; when there is no server to test against, leaves it
// empty and marks the running test skipped (no fixture: run by hand) or failed. Called from SetUp,
// a skip keeps the test body from running.
inline void find_server(std::string& url) {
  const auto env = berth::test_util::read_server_env("BERTH_TEST_PG_ENV", "pg.sh");
  if (!env.failure.empty()) FAIL() << env.failure;
  if (!env.skip.empty()) GTEST_SKIP() << env.skip;
  url = env["DATABASE_URL"];
}

// The schema that holds what the test at `location` stores: "t_" and a hash (FNV-1a) of it.
inline std::string schema_for(std::string_view location) {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : location) h = (h ^ c) * 1099511628211ull;
  return "t_" + std::to_string(h);
}

inline boost::asio::thread_pool& pool_threads() {
  static boost::asio::thread_pool threads(2);
  return threads;
}

// A pool on `url` whose tables are those of `schema`.
inline std::shared_ptr<pool> pool_on(const std::string& url, const std::string& schema,
                                     std::size_t max_connections = 4) {
  using namespace std::chrono_literals;
  return std::make_shared<pool>(pool_threads().get_executor(),
                                pool_config{url + "?options=-c%20search_path%3D" + schema, max_connections, 5s, 30s});
}

// Runs `sql` on the fixture's database (outside any test schema); throws when it fails.
inline void admin_exec(const std::string& url, const std::string& sql) {
  using namespace std::chrono_literals;
  pool admin(pool_threads().get_executor(), pool_config{url, 1, 5s, 30s});
  auto r = sync_wait(admin.exec(sql));
  if (!r) throw std::runtime_error(sql + ": " + r.error().message);
}

}  // namespace berth::pg::test_util
