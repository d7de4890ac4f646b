#include "pg/store_support.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <stdexcept>

#include "core/sync_wait.h"

namespace berth::pg {

std::unexpected<berth::error> failure(std::string_view store, std::string_view what, const error& e) {
  spdlog::error("{} (postgres): {}: {} (SQLSTATE {})", store, what, e.message,
                e.sqlstate.empty() ? "none" : e.sqlstate);
  if (e.code == errc::unavailable)
    return berth::fail(berth::errc::unavailable,
                       fmt::format("{} unavailable: the database cannot be reached; retry", store));
  // What passes: a full disk is freed, a failover ends, a lock is let go, a conflict is not met again.
  if (e.code == errc::busy || e.code == errc::conflict)
    return berth::fail(berth::errc::unavailable,
                       fmt::format("{} unavailable: the database cannot do this now (SQLSTATE {}); retry", store,
                                   e.sqlstate));
  return berth::fail(berth::errc::internal, fmt::format("{} failure", store));
}

boost::asio::awaitable<result<rows>> query_retrying(pool& p, std::string_view sql, const params& args) {
  for (int attempt = 1;; ++attempt) {
    auto r = co_await p.query(sql, args);
    if (r || r.error().code != errc::conflict || attempt == conflict_attempts) co_return r;
  }
}

namespace {

constexpr std::string_view versions_sql = R"sql(
CREATE TABLE IF NOT EXISTS berth_schema_versions (
  component text PRIMARY KEY,
  version   integer NOT NULL
))sql";

// The key of the advisory lock: one per schema, so stores of different schemas (tenants, tests)
// do not wait for each other.
constexpr std::string_view lock_sql =
    "SELECT pg_advisory_xact_lock(hashtext('berth.schema.' || coalesce(current_schema(), '')))";

}  // namespace

void migrate(pool& p, std::string_view component, std::span<const char* const> migrations) {
  const auto latest = static_cast<std::int64_t>(migrations.size());
  std::string problem;  // what went wrong, for the exception; "" when nothing did
  auto body = [&](transaction& tx) -> boost::asio::awaitable<result<void>> {
    problem.clear();
    auto locked = co_await tx.query(lock_sql);
    if (!locked) co_return std::unexpected(std::move(locked.error()));
    auto created = co_await tx.exec(versions_sql);
    if (!created) co_return std::unexpected(std::move(created.error()));
    params args{component};
    auto found = co_await tx.query("SELECT version FROM berth_schema_versions WHERE component = $1", std::move(args));
    if (!found) co_return std::unexpected(std::move(found.error()));
    const std::int64_t version = found->size() == 0 ? 0 : found->int64(0, 0).value_or(-1);
    if (version < 0 || version > latest) {
      problem = fmt::format(
          "schema version {} of {} is not one this Berth knows (it knows up to {}): written by a "
          "newer Berth?",
          version, component, latest);
      co_return result<void>{};
    }
    for (auto v = version; v < latest; ++v) {
      auto stepped = co_await tx.exec(migrations[static_cast<std::size_t>(v)]);
      if (!stepped) {
        problem =
            fmt::format("schema migration of {} to version {} failed: {}", component, v + 1, stepped.error().message);
        co_return std::unexpected(std::move(stepped.error()));
      }
    }
    if (version == latest) co_return result<void>{};
    params set{component, latest};
    auto recorded = co_await tx.query(
        "INSERT INTO berth_schema_versions(component, version) VALUES ($1, $2) "
        "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
        std::move(set));
    if (!recorded) co_return std::unexpected(std::move(recorded.error()));
    co_return result<void>{};
  };
  auto r = sync_wait(in_transaction(p, body));
  if (!r && problem.empty()) problem = r.error().message;
  if (!problem.empty()) throw std::runtime_error(fmt::format("PostgreSQL at {}: {}", p.server(), problem));
}

}  // namespace berth::pg
