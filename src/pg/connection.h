// One PostgreSQL connection driven without blocking (internal to berth_pg; use pg::pool). libpq
// runs in non-blocking mode (PQconnectPoll, PQsendPrepare/PQsendQueryPrepared, PQflush,
// PQconsumeInput, PQisBusy) and the coroutine waits for its socket with Asio, so an I/O thread never
// waits on the database. Each statement is prepared once per connection and reused. Every
// operation has a deadline; one that passes it leaves the connection broken (the pool closes it).
//
// Thread-safety: a connection is used by one caller at a time (the pool leases it out), and its
// coroutines run on its strand (REQUIRES: co_spawn them on strand()).
#pragma once

#include <utility>  // before Asio: boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "pg/error.h"
#include "pg/rows.h"

struct pg_conn;

namespace berth::pg {

class connection {
 public:
  using strand_type = boost::asio::strand<boost::asio::any_io_executor>;
  using duration = std::chrono::steady_clock::duration;

  // Opens a connection to `conninfo` (a libpq keyword string or postgresql:// URL). Fails with
  // unavailable (refused, authentication, timeout).
  static boost::asio::awaitable<result<std::unique_ptr<connection>>> open(strand_type strand, std::string conninfo,
                                                                          duration timeout);
  ~connection();
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  // Runs one statement with `args` as $1..$n, prepared on first use on this connection.
  boost::asio::awaitable<result<rows>> query(std::string sql, params args, duration timeout);
  // Runs one or more statements without parameters (simple protocol: DDL, BEGIN, COMMIT); returns
  // the last statement's rows, or the first error.
  boost::asio::awaitable<result<rows>> exec(std::string sql, duration timeout);

  // Whether the connection can serve another caller: not broken, outside any transaction, and not
  // closed by the server while idle (checked without a round trip: nothing waits to be read).
  bool reusable();

  const strand_type& strand() const { return strand_; }

 private:
  explicit connection(strand_type strand);

  // Sets the deadline for the current operation; when it passes, pending waits are cancelled.
  void arm(duration timeout);
  // Waits for the socket; false when the deadline passed or the wait failed.
  boost::asio::awaitable<bool> wait(bool for_write);
  // (Re)binds the Asio descriptor to libpq's socket, which may change while connecting.
  void attach_socket();
  // Sends what libpq buffered and collects the results of the statement(s) just sent.
  boost::asio::awaitable<result<rows>> finish(std::string_view what);
  // The error for a failed libpq call: the connection is broken from then on.
  std::unexpected<error> lost(std::string_view what);

  strand_type strand_;
  pg_conn* pg_ = nullptr;
  std::optional<boost::asio::posix::stream_descriptor> socket_;
  boost::asio::steady_timer timer_;
  std::uint64_t generation_ = 0;  // of the armed deadline, so a stale timer does nothing
  bool timed_out_ = false;
  bool broken_ = false;
  std::unordered_map<std::string, std::string> prepared_;  // sql -> statement name
};

}  // namespace berth::pg
