// The OCI Distribution v1.1 API (/v2/...) over a blob store and a metadata store, the token endpoint
// (/token, token.cc) and the admin API (/api/v1/..., admin.cc). Every endpoint, with its handler
// and the access it requires, is a row of one table (route_table.h); handlers live one group per
// file (blobs.cc, uploads.cc, manifests.cc, listings.cc, operations.cc). handle() matches the route,
// authenticates the caller as the route's area requires, checks the row's access (access.cc), calls
// the handler, renders every error and challenge in one place (errors.cc, access.cc), and counts
// the request in the metrics and the access log (operations.h).
// Thread-safety: handle() runs concurrently on the io_context's threads; the stores are thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include "api/access.h"
#include "api/operations.h"
#include "core/offload.h"
#include "http/message.h"
#include "lifecycle/retention.h"
#include "meta/metadata_store.h"
#include "storage/blob_store.h"
#include "uploads/upload_service.h"
#include "webhooks/sender.h"

namespace berth::api {

struct api_options {
  std::size_t manifest_max_bytes = 4 * 1024 * 1024;
  // Largest page of a tag or repository listing; a larger `n` is clamped and a Link header follows.
  std::size_t max_page = 10000;
  // Build Location URLs from X-Forwarded-Proto/X-Forwarded-Host (behind a trusted proxy only).
  bool trust_forwarded_headers = false;
  // The scheme of Location URLs when no trusted proxy says otherwise.
  std::string scheme = "http";
  // The retention rules that /api/v1/retention/... apply.
  lifecycle::retention_config retention;
  // Garbage collection asked for through the API spares what was used within this window.
  std::chrono::milliseconds gc_grace = std::chrono::hours(1);
  // The webhooks' sender (for /api/v1/webhooks...); nullptr when none is configured. Outlives the API.
  berth::webhooks::sender* webhooks = nullptr;
};

struct endpoint;
struct audit_note;

// What every handler gets. `who` is the authenticated caller of the request being handled and
// `current` its endpoint in the route table, `pol` the policy (set per request; the rest is shared).
struct context {
  storage::blob_store& blobs;  // reads; writes go through `uploads`
  uploads::upload_service& uploads;
  meta::metadata_store& meta;
  blocking_pool& pool;
  const api_options& options;
  auth_services& auth;
  operations& ops;
  const caller* who = nullptr;
  const endpoint* current = nullptr;
  audit_note* audit = nullptr;  // what the handler adds to the request's audit entry (audit.h)
  // The policy this request is decided by (auth.policies.current() when it began).
  std::shared_ptr<const policy::policy> pol;
};

class registry_api {
 public:
  registry_api(storage::blob_store& blobs, uploads::upload_service& uploads, meta::metadata_store& meta,
               blocking_pool& pool, api_options options, auth_services& auth, operations& ops)
      : options_(std::move(options)), ctx_{blobs, uploads, meta, pool, options_, auth, ops} {}

  // Answers one request. Never throws for expected failures: they become OCI error responses.
  http::asio::awaitable<http::response> handle(http::request& req);

 private:
  api_options options_;
  context ctx_;
};

}  // namespace berth::api
