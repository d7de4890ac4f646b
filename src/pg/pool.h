// An asynchronous pool of PostgreSQL connections for Asio coroutines. query() leases a connection,
// runs one statement (prepared once per connection) and gives the connection back; begin() leases
// one for a transaction until commit() or rollback(). At most `max_connections` are open; callers
// beyond that wait for one to come back. A connection that broke (lost, timed out, closed by the
// server while idle) is closed instead of reused, and the next caller opens a fresh one.
//
// No call blocks the thread: libpq runs in non-blocking mode under the coroutine (pg/connection.h).
// Errors are pg::error (pg/error.h): already_exists for a unique violation, conflict for a
// serialization failure or deadlock (run the transaction again), unavailable for connection trouble.
// Thread-safety: every method may be called from any thread and any executor.
// REQUIRES: no query or transaction is in flight when the pool is destroyed.
#pragma once

#include <utility>  // before Asio: boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pg/connection.h"
#include "pg/error.h"
#include "pg/rows.h"

namespace berth::pg {

struct pool_config {
  std::string conninfo;  // "postgresql://user@host:port/db" or "host=... dbname=..."
  std::size_t max_connections = 8;
  std::chrono::milliseconds connect_timeout{5'000};
  std::chrono::milliseconds query_timeout{30'000};  // per statement
};

class pool;

// A transaction on one leased connection. After a statement fails, PostgreSQL ignores the rest of
// the transaction: commit() then rolls back and fails with that statement's error. Destroying a
// transaction before commit() or rollback() closes the connection, and the server rolls back.
// Thread-safety: one caller at a time.
class transaction {
 public:
  transaction(transaction&&) noexcept = default;
  transaction& operator=(transaction&&) noexcept = default;
  ~transaction();

  boost::asio::awaitable<result<rows>> query(std::string_view sql, params args = {});
  // Runs one or more statements without parameters (schema migrations).
  boost::asio::awaitable<result<rows>> exec(std::string_view sql);
  // REQUIRES: neither commit() nor rollback() has been called. Either returns the connection to the
  // pool, whatever the outcome.
  boost::asio::awaitable<result<void>> commit();
  boost::asio::awaitable<result<void>> rollback();

 private:
  friend class pool;
  transaction(pool& owner, std::unique_ptr<connection> conn) : pool_(&owner), conn_(std::move(conn)) {}
  boost::asio::awaitable<result<void>> end(std::string_view sql);
  // Notes the first failure (commit() then rolls back).
  result<rows> noted(result<rows> r);

  pool* pool_;
  std::unique_ptr<connection> conn_;
  std::optional<error> failed_;  // the first statement that failed
};

class pool {
 public:
  pool(boost::asio::any_io_executor executor, pool_config config);
  ~pool();
  pool(const pool&) = delete;
  pool& operator=(const pool&) = delete;

  // Runs one statement with `args` as $1..$n.
  boost::asio::awaitable<result<rows>> query(std::string_view sql, params args = {});
  // Runs one or more statements without parameters (schema set-up).
  boost::asio::awaitable<result<rows>> exec(std::string_view sql);
  // Leases a connection and starts a transaction on it.
  boost::asio::awaitable<result<transaction>> begin();

  std::size_t open_connections() const;
  std::size_t idle_connections() const;
  // Where the pool connects, for messages: "host:port/dbname" from the conninfo (never the password).
  std::string server() const;
  // The executor the pool was made with (a store's background work runs there too).
  const boost::asio::any_io_executor& executor() const { return executor_; }

 private:
  friend class transaction;
  // Called with a connection handed over by release(), or null when a slot freed up (open one).
  using waiter = std::move_only_function<void(std::unique_ptr<connection>)>;

  boost::asio::awaitable<result<std::unique_ptr<connection>>> acquire();
  // Waits until release() hands over a connection or frees a slot.
  boost::asio::awaitable<std::unique_ptr<connection>> wait_for_release();
  // Takes a connection back: reused if it can be, closed otherwise.
  void release(std::unique_ptr<connection> conn);

  boost::asio::any_io_executor executor_;
  pool_config config_;
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<connection>> idle_;
  std::size_t open_ = 0;  // idle + leased + being opened
  std::deque<waiter> waiters_;
};

}  // namespace berth::pg
