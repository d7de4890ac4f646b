#include "pg/connection.h"

#include <libpq-fe.h>
#include <poll.h>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <string_view>
#include <vector>

namespace berth::pg {
namespace asio = boost::asio;

namespace {

std::string trimmed(const char* message) {
  std::string s = message != nullptr ? message : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

connection::connection(strand_type strand) : strand_(strand), timer_(strand) {}

connection::~connection() {
  if (socket_) socket_->release();  // libpq owns the descriptor
  if (pg_ != nullptr) PQfinish(pg_);
}

void connection::arm(duration timeout) {
  timed_out_ = false;
  const auto generation = ++generation_;
  timer_.expires_after(timeout);
  timer_.async_wait([this, generation](boost::system::error_code ec) {
    // Checked before touching `this`: a cancelled or destroyed timer reports operation_aborted.
    if (ec || generation != generation_) return;
    timed_out_ = true;
    if (socket_) socket_->cancel();
  });
}

void connection::attach_socket() {
  const int fd = PQsocket(pg_);
  if (socket_ && socket_->native_handle() == fd) return;
  if (socket_) socket_->release();
  socket_.reset();
  if (fd >= 0) socket_.emplace(strand_, fd);
}

asio::awaitable<bool> connection::wait(bool for_write) {
  if (timed_out_ || !socket_) co_return false;
  boost::system::error_code ec;
  const auto type = for_write ? asio::posix::descriptor_base::wait_write : asio::posix::descriptor_base::wait_read;
  co_await socket_->async_wait(type, asio::redirect_error(asio::use_awaitable, ec));
  co_return !ec && !timed_out_;
}

std::unexpected<error> connection::lost(std::string_view what) {
  broken_ = true;
  const std::string cause = timed_out_ ? "timed out" : trimmed(PQerrorMessage(pg_));
  return fail(errc::unavailable, std::string(what) + ": " + cause);
}

asio::awaitable<result<std::unique_ptr<connection>>> connection::open(strand_type strand, std::string conninfo,
                                                                       duration timeout) {
  std::unique_ptr<connection> c(new connection(strand));
  c->pg_ = PQconnectStart(conninfo.c_str());
  if (c->pg_ == nullptr) co_return fail(errc::unavailable, "connect: out of memory");
  if (PQstatus(c->pg_) == CONNECTION_BAD || PQsetnonblocking(c->pg_, 1) != 0) co_return c->lost("connect");
  // Notices (NOTICE, WARNING) would go to stderr; callers get errors as values and nothing else.
  PQsetNoticeProcessor(c->pg_, [](void*, const char*) {}, nullptr);
  c->arm(timeout);
  for (PostgresPollingStatusType status = PGRES_POLLING_WRITING; status != PGRES_POLLING_OK;) {
    if (status == PGRES_POLLING_FAILED) co_return c->lost("connect");
    c->attach_socket();
    const bool ready = co_await c->wait(status == PGRES_POLLING_WRITING);
    if (!ready) co_return c->lost("connect");
    status = PQconnectPoll(c->pg_);
  }
  c->attach_socket();
  c->timer_.cancel();
  co_return c;
}

bool connection::reusable() {
  if (broken_ || PQstatus(pg_) != CONNECTION_OK || PQtransactionStatus(pg_) != PQTRANS_IDLE) return false;
  // Between statements the server has nothing to say: anything to read is its farewell (a FATAL
  // message, the end of the stream) from closing the connection while it sat idle.
  pollfd p{PQsocket(pg_), POLLIN, 0};
  return ::poll(&p, 1, 0) == 0;
}

asio::awaitable<result<rows>> connection::finish(std::string_view what) {
  for (;;) {
    const int flushed = PQflush(pg_);
    if (flushed == 0) break;
    if (flushed < 0) co_return lost(what);
    const bool ready = co_await wait(/*for_write=*/true);
    if (!ready) co_return lost(what);
  }
  std::optional<rows> last;
  std::optional<error> first_error;
  for (;;) {
    while (PQisBusy(pg_) == 1) {
      const bool ready = co_await wait(/*for_write=*/false);
      if (!ready || PQconsumeInput(pg_) == 0) co_return lost(what);
    }
    PGresult* res = PQgetResult(pg_);
    if (res == nullptr) break;
    rows r(res);  // owns res from here
    const auto status = PQresultStatus(res);
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
      last = std::move(r);
    } else if (!first_error) {
      const char* state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
      const std::string sqlstate = state != nullptr ? state : "";
      first_error = error{sqlstate.empty() ? errc::failed : code_for_sqlstate(sqlstate), sqlstate,
                          std::string(what) + ": " + trimmed(PQresultErrorMessage(res))};
    }
  }
  if (PQstatus(pg_) != CONNECTION_OK) {
    broken_ = true;
    if (first_error) first_error->code = errc::unavailable;
  }
  if (first_error) {
    // A read-only server is a standby: a new connection may reach the primary (after a failover).
    if (first_error->code == errc::unavailable || first_error->sqlstate == "25006") broken_ = true;
    co_return std::unexpected(std::move(*first_error));
  }
  if (!last) co_return fail(errc::failed, std::string(what) + ": no result");
  co_return std::move(*last);
}

asio::awaitable<result<rows>> connection::query(std::string sql, params args, duration timeout) {
  arm(timeout);
  auto it = prepared_.find(sql);
  if (it == prepared_.end()) {
    const std::string name = "berth_" + std::to_string(prepared_.size() + 1);
    if (PQsendPrepare(pg_, name.c_str(), sql.c_str(), static_cast<int>(args.size()), nullptr) == 0)
      co_return lost("prepare");
    auto prepared = co_await finish("prepare");
    if (!prepared) {
      timer_.cancel();
      co_return std::unexpected(std::move(prepared.error()));
    }
    it = prepared_.emplace(sql, name).first;
  }
  std::vector<const char*> values;
  std::vector<int> lengths, formats;
  for (const auto& a : args) {
    values.push_back(a.value() ? a.value()->data() : nullptr);
    lengths.push_back(a.value() ? static_cast<int>(a.value()->size()) : 0);
    formats.push_back(a.binary() ? 1 : 0);
  }
  if (PQsendQueryPrepared(pg_, it->second.c_str(), static_cast<int>(args.size()), values.data(), lengths.data(),
                          formats.data(), 0) == 0)
    co_return lost("query");
  auto r = co_await finish("query");
  timer_.cancel();
  co_return r;
}

asio::awaitable<result<rows>> connection::exec(std::string sql, duration timeout) {
  arm(timeout);
  if (PQsendQuery(pg_, sql.c_str()) == 0) co_return lost("exec");
  auto r = co_await finish("exec");
  timer_.cancel();
  co_return r;
}

}  // namespace berth::pg
