#include "pg/pool.h"

#include <fmt/format.h>
#include <libpq-fe.h>

#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace berth::pg {
namespace asio = boost::asio;

pool::pool(asio::any_io_executor executor, pool_config config)
    : executor_(std::move(executor)), config_(std::move(config)) {}

pool::~pool() = default;

std::size_t pool::open_connections() const {
  std::lock_guard lock(mutex_);
  return open_;
}

std::size_t pool::idle_connections() const {
  std::lock_guard lock(mutex_);
  return idle_.size();
}

std::string pool::server() const {
  std::string host, port, dbname;
  char* message = nullptr;
  PQconninfoOption* options = PQconninfoParse(config_.conninfo.c_str(), &message);
  PQfreemem(message);
  if (options == nullptr) return "(unparsable conninfo)";
  for (const PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    const std::string_view key = o->keyword;
    const std::string value = o->val != nullptr ? o->val : "";
    if (key == "host" || key == "hostaddr") {
      if (host.empty()) host = value;
    } else if (key == "port") {
      port = value;
    } else if (key == "dbname") {
      dbname = value;
    }
  }
  PQconninfoFree(options);
  // libpq's defaults when unset: a local socket, port 5432, the user's name as the database.
  return fmt::format("{}:{}/{}", host.empty() ? "localhost" : host, port.empty() ? "5432" : port, dbname);
}

asio::awaitable<std::unique_ptr<connection>> pool::wait_for_release() {
  return asio::async_initiate<decltype(asio::use_awaitable), void(std::unique_ptr<connection>)>(
      [this](auto handler) {
        auto ex = asio::get_associated_executor(handler, executor_);
        auto resume = [handler = std::move(handler), ex](std::unique_ptr<connection> conn) mutable {
          asio::post(ex, [handler = std::move(handler), conn = std::move(conn)]() mutable {
            std::move(handler)(std::move(conn));
          });
        };
        std::unique_lock lock(mutex_);
        // Re-checked under the lock: a release may have come between acquire()'s check and now.
        if (!idle_.empty()) {
          auto conn = std::move(idle_.back());
          idle_.pop_back();
          lock.unlock();
          resume(std::move(conn));
        } else if (open_ < config_.max_connections) {
          lock.unlock();
          resume(nullptr);
        } else {
          waiters_.emplace_back(std::move(resume));
        }
      },
      asio::use_awaitable);
}

asio::awaitable<result<std::unique_ptr<connection>>> pool::acquire() {
  for (;;) {
    std::unique_ptr<connection> conn;
    bool open_one = false;
    {
      std::lock_guard lock(mutex_);
      if (!idle_.empty()) {
        conn = std::move(idle_.back());
        idle_.pop_back();
      } else if (open_ < config_.max_connections) {
        ++open_;
        open_one = true;
      }
    }
    if (!conn && !open_one) conn = co_await wait_for_release();
    if (conn) {
      if (conn->reusable()) co_return conn;
      release(std::move(conn));  // closes it and frees its slot
      continue;
    }
    if (!open_one) continue;  // a slot freed up: claim it above
    auto strand = asio::make_strand(executor_);
    auto opened = co_await asio::co_spawn(strand, connection::open(strand, config_.conninfo, config_.connect_timeout),
                                          asio::use_awaitable);
    if (!opened) release(nullptr);
    co_return opened;
  }
}

void pool::release(std::unique_ptr<connection> conn) {
  if (conn && !conn->reusable()) conn.reset();
  std::unique_lock lock(mutex_);
  if (!conn) --open_;
  if (waiters_.empty()) {
    if (conn) idle_.push_back(std::move(conn));
    return;
  }
  auto next = std::move(waiters_.front());
  waiters_.pop_front();
  lock.unlock();
  next(std::move(conn));  // null: the waiter opens a connection in the freed slot
}

asio::awaitable<result<rows>> pool::query(std::string_view sql, params args) {
  auto conn = co_await acquire();
  if (!conn) co_return std::unexpected(std::move(conn.error()));
  auto& c = **conn;
  auto r = co_await asio::co_spawn(c.strand(), c.query(std::string(sql), std::move(args), config_.query_timeout),
                                   asio::use_awaitable);
  release(std::move(*conn));
  co_return r;
}

asio::awaitable<result<rows>> pool::exec(std::string_view sql) {
  auto conn = co_await acquire();
  if (!conn) co_return std::unexpected(std::move(conn.error()));
  auto& c = **conn;
  auto r = co_await asio::co_spawn(c.strand(), c.exec(std::string(sql), config_.query_timeout), asio::use_awaitable);
  release(std::move(*conn));
  co_return r;
}

asio::awaitable<result<transaction>> pool::begin() {
  auto conn = co_await acquire();
  if (!conn) co_return std::unexpected(std::move(conn.error()));
  auto& c = **conn;
  auto started = co_await asio::co_spawn(c.strand(), c.exec("BEGIN", config_.query_timeout), asio::use_awaitable);
  if (!started) {
    release(std::move(*conn));
    co_return std::unexpected(std::move(started.error()));
  }
  co_return transaction(*this, std::move(*conn));
}

transaction::~transaction() {
  // Still open: close the connection (the server rolls back) rather than block here on ROLLBACK.
  if (conn_) {
    conn_.reset();
    pool_->release(nullptr);
  }
}

result<rows> transaction::noted(result<rows> r) {
  if (!r && !failed_) failed_ = r.error();
  return r;
}

asio::awaitable<result<rows>> transaction::query(std::string_view sql, params args) {
  auto& c = *conn_;
  auto r = co_await asio::co_spawn(c.strand(), c.query(std::string(sql), std::move(args), pool_->config_.query_timeout),
                                   asio::use_awaitable);
  co_return noted(std::move(r));
}

asio::awaitable<result<rows>> transaction::exec(std::string_view sql) {
  auto& c = *conn_;
  auto r = co_await asio::co_spawn(c.strand(), c.exec(std::string(sql), pool_->config_.query_timeout),
                                   asio::use_awaitable);
  co_return noted(std::move(r));
}

asio::awaitable<result<void>> transaction::end(std::string_view sql) {
  auto& c = *conn_;
  auto r = co_await asio::co_spawn(c.strand(), c.exec(std::string(sql), pool_->config_.query_timeout),
                                   asio::use_awaitable);
  pool_->release(std::move(conn_));
  if (!r) co_return std::unexpected(std::move(r.error()));
  co_return result<void>{};
}

asio::awaitable<result<void>> transaction::commit() {
  if (!failed_) {
    auto committed = co_await end("COMMIT");
    co_return committed;
  }
  co_await end("ROLLBACK");  // its failure changes nothing: the statement's error is the answer
  co_return std::unexpected(std::move(*failed_));
}

asio::awaitable<result<void>> transaction::rollback() { return end("ROLLBACK"); }

}  // namespace berth::pg
