// The PostgreSQL metadata store: the metadata_store (and its upload_records) in a PostgreSQL
// database that several Berth instances share, each through its own pool. Its tables live in the
// connection's schema (search_path), so one database can hold several registries:
// repositories, blob_links, manifests (bytes as bytea), manifest_refs, tags, uploads, and
// berth_schema_versions (docs/storage-layout.md lists them).
//
// Every call completes on the pool's sockets and suspends the caller meanwhile. A read is one
// prepared statement without a transaction (manifest_by_tag: one round trip); a write is one
// statement or one transaction, run again when PostgreSQL reports a serialization failure or a
// deadlock. Names compare and list in byte order (COLLATE "C"), whatever the database's locale.
// Upload leases are rows like the rest: an instance sees another's lease, and a lease of an
// instance that died ends when it expires (no instance can tell that another is gone).
//
// Durability: a write completes once PostgreSQL committed it (as durable as the server's
// synchronous_commit makes it). Thread-safety: every method may be called concurrently.
// Errors: a PostgreSQL failure is logged and returned as errc::internal, or errc::unavailable (503)
// when the database cannot be reached (the client retries; nothing acknowledged is lost).
#pragma once

#include <memory>

#include "meta/metadata_store.h"
#include "pg/pool.h"

namespace berth::meta {

// The store on `pool`, whose tables are created or migrated first (under an advisory lock, so
// instances starting together do not race). For start-up code, not a coroutine: waits on the
// calling thread (REQUIRES: the pool's executor runs on threads of its own, e.g. an
// asio::thread_pool). Throws std::runtime_error naming the server and what is wrong (cannot
// connect, authentication failed, a schema written by a newer Berth), never the password.
std::unique_ptr<metadata_store> make_pg_metadata_store(std::shared_ptr<pg::pool> pool);

}  // namespace berth::meta
