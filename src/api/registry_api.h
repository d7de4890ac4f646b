// The OCI Distribution v1.1 API (/v2/...) over a blob store and a metadata store, the token endpoint
// (/token, token.cc) and the admin API (/api/v1/..., admin.cc). One handler function per resource
// lives in its own file (blobs.cc, uploads.cc, manifests.cc, listings.cc); this class authenticates
// the caller and enforces the policy before dispatching (access.cc), routes to the handlers, and
// renders every error in one place (errors.cc).
// Thread-safety: handle() runs concurrently on the io_context's threads; the stores are thread-safe.
#pragma once

#include <cstddef>
#include <string>

#include "api/access.h"
#include "core/offload.h"
#include "http/message.h"
#include "meta/metadata_store.h"
#include "storage/blob_store.h"
#include "uploads/upload_service.h"

namespace berth::api {

struct api_options {
  std::size_t manifest_max_bytes = 4 * 1024 * 1024;
  // Largest page of a tag or repository listing; a larger `n` is clamped and a Link header follows.
  std::size_t max_page = 10000;
  // Build Location URLs from X-Forwarded-Proto/X-Forwarded-Host (behind a trusted proxy only).
  bool trust_forwarded_headers = false;
  // The scheme of Location URLs when no trusted proxy says otherwise.
  std::string scheme = "http";
};

// What every handler gets. `who` is the authenticated caller of the request being handled (set per
// request; the rest is shared).
struct context {
  storage::blob_store& blobs;  // reads; writes go through `uploads`
  uploads::upload_service& uploads;
  meta::metadata_store& meta;
  blocking_pool& pool;
  const api_options& options;
  auth_services& auth;
  const caller* who = nullptr;
};

class registry_api {
 public:
  registry_api(storage::blob_store& blobs, uploads::upload_service& uploads, meta::metadata_store& meta,
               blocking_pool& pool, api_options options, auth_services& auth)
      : options_(std::move(options)), ctx_{blobs, uploads, meta, pool, options_, auth} {}

  // Answers one request. Never throws for expected failures: they become OCI error responses.
  http::asio::awaitable<http::response> handle(http::request& req);

 private:
  api_options options_;
  context ctx_;
};

}  // namespace berth::api
