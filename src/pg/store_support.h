// What the PostgreSQL stores (meta/pg_metadata_store.cc, auth/pg_identity_store.cc) share on top of
// the pool: running a statement or a transaction again when PostgreSQL reports a serialization
// failure or a deadlock, turning a pg::error into Berth's error model, and bringing a store's
// tables to their schema version at start-up.
//
// Errors: failure() logs PostgreSQL's message (with the store's name and what was being done) and
// returns errc::internal with a generic detail, or errc::unavailable (503) when the database cannot be
// reached: clients never see the backend or its words.
// Thread-safety: free functions; the pool is thread-safe.
#pragma once

#include <utility>  // before Asio: boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <span>
#include <string_view>

#include "core/error.h"
#include "pg/pool.h"

namespace berth::pg {

// How often a statement or transaction is tried when PostgreSQL answers errc::conflict.
inline constexpr int conflict_attempts = 5;

// Logs `e` as a failure of `store` ("metadata store") while doing `what`; the error to return to
// the caller: internal, with the detail "<store> failure" and nothing of PostgreSQL's.
std::unexpected<berth::error> failure(std::string_view store, std::string_view what, const error& e);

// Runs `sql` once, and again (up to conflict_attempts in all) while it fails with errc::conflict.
boost::asio::awaitable<result<rows>> query_retrying(pool& p, std::string_view sql, const params& args);

// Runs body(transaction&) -> awaitable<pg::result<T>> in a transaction and commits it; a failure
// of the body or of the commit rolls back. The whole transaction runs again while it fails with
// errc::conflict (up to conflict_attempts in all), so `body` must be safe to repeat. `body` is a
// named object of the caller (GCC 12 mishandles temporaries passed into coroutines).
template <class F>
auto in_transaction(pool& p, F& body) -> decltype(body(std::declval<transaction&>())) {
  for (int attempt = 1;; ++attempt) {
    auto tx = co_await p.begin();
    if (!tx) co_return std::unexpected(std::move(tx.error()));
    auto r = co_await body(*tx);
    if (r) {
      auto committed = co_await tx->commit();
      if (committed) co_return r;
      r = std::unexpected(std::move(committed.error()));
    } else {
      auto ignored = co_await tx->rollback();  // its failure changes nothing: the body's error is the answer
      (void)ignored;
    }
    if (r.error().code != errc::conflict || attempt == conflict_attempts) co_return r;
  }
}

// Brings the tables of `component` ("meta", "auth") to version migrations.size(): migrations[v]
// takes them from version v to v + 1. The versions live in the table berth_schema_versions of the
// connection's schema (search_path). All steps run in one transaction that first takes a
// transaction-scoped advisory lock, so instances starting together migrate one after the other and
// the later ones find the work done. For start-up: waits on the calling thread (REQUIRES: the
// pool's executor runs on other threads) and throws std::runtime_error naming the server and the
// cause (cannot connect, authentication failed, a newer schema, a failed step), never the password.
void migrate(pool& p, std::string_view component, std::span<const char* const> migrations);

}  // namespace berth::pg
