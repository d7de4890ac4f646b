// The PostgreSQL identity store: users, robots and stored grants (identity_store.h) in a PostgreSQL
// database that several Berth instances share. Its tables live in the connection's schema
// (search_path), beside the metadata store's when both use one database: users, robots, grants,
// identity_generation (one row), and berth_schema_versions (docs/storage-layout.md).
//
// Every call is one prepared statement on the pool (a write and its generation bump are one
// statement, hence one transaction), retried on a serialization failure or deadlock; the caller
// suspends meanwhile. Names list in byte order (COLLATE "C").
//
// generation(): every write transaction also increments the counter row identity_generation, and
// the store keeps the largest value it has seen in an atomic, so reading it never blocks. A write
// through this store advances it before its awaitable completes (to the value its own transaction
// wrote). A write through another instance advances it within the bound
//   generation_poll_interval (1 s) + one round trip to the database,
// as a background coroutine on the pool's executor reads the counter that often. While the database
// does not answer, the generation stays where it is (and so do reads: they fail).
//
// Durability: a write completes once PostgreSQL committed it. Thread-safety: every method may be
// called concurrently. Errors: a PostgreSQL failure is logged and returned as errc::internal (errc::unavailable when the
// database cannot be reached); a robot
// name that is taken is errc::already_exists.
#pragma once

#include <chrono>
#include <memory>

#include "auth/identity_store.h"
#include "pg/pool.h"

namespace berth::auth {

// How often a store reads the generation counter that other instances' writes advance.
inline constexpr std::chrono::milliseconds generation_poll_interval{1000};

// The store on `pool`, whose tables are created or migrated first (under an advisory lock, so
// instances starting together do not race). For start-up code, not a coroutine: waits on the
// calling thread, and so does destroying the store (for its poller to stop). REQUIRES: the pool's
// executor runs on threads of its own (e.g. an asio::thread_pool) until the store is destroyed,
// and neither happens on one of those threads. Throws std::runtime_error naming the server and what
// is wrong (cannot connect, authentication failed, a schema written by a newer Berth), never the
// password.
std::unique_ptr<identity_store> make_pg_identity_store(std::shared_ptr<pg::pool> pool);

}  // namespace berth::auth
