// The stores the configuration names (`storage:`, `metadata:`), opened for start-up: the one place
// in Berth that names concrete backends (docs/ARCHITECTURE.md "Backends"). The filesystem and SQLite
// stores live under the data directory; the S3 and PostgreSQL ones are shared by every instance
// configured alike (docs/scale-out.md).
//
// Credentials are read from the files the configuration names, else from the environment
// (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, BERTH_POSTGRES_URL), and never logged.
// Errors: throws std::runtime_error at start-up, naming what is wrong (a missing credential, an
// unreachable bucket or database), never a secret.
#pragma once

#include <boost/asio/thread_pool.hpp>
#include <memory>

#include "app/config.h"
#include "auth/identity_store.h"
#include "core/offload.h"
#include "meta/metadata_store.h"
#include "pg/pool.h"
#include "storage/blob_store.h"

namespace berth::app {

// Who opens the stores: the server owns its data directory (it holds DATA/LOCK); the offline
// `berth check` reads beside a server that may be running, and needs no blob store.
enum class opener { server, offline_check };

struct stores {
  // Runs the PostgreSQL pool's sockets (metadata.driver: postgres); its stores wait on it at start-up
  // and when they are destroyed, so it outlives them (members are destroyed in reverse order).
  std::unique_ptr<boost::asio::thread_pool> pg_threads;
  std::shared_ptr<pg::pool> pg;
  std::unique_ptr<storage::blob_store> blobs;  // null for opener::offline_check
  std::unique_ptr<meta::metadata_store> meta;  // null for an offline check of a directory never pushed to
  std::unique_ptr<auth::identity_store> identities;
};

// Opens what `c` names. `pool` (the blocking pool) must outlive the stores.
stores open_stores(const config& c, blocking_pool& pool, opener who);

}  // namespace berth::app
