// Blob uploads above the backend: what is the same whatever stores the bytes. The upload service
// chooses upload ids (random UUIDv4) and checks their grammar before anything reaches a backend,
// knows whose upload is whose (an upload of another repository is unknown), lets one request at a
// time write to an upload (a lease in the metadata store, so the rule holds across processes and
// instances), hashes the bytes as they arrive and keeps the hash state with the upload record so
// that the next request, after a restart or on another instance, goes on hashing where the last
// one stopped, and finishes an upload by checking its digest, storing the blob (dedup) and linking
// it into the repository. The bytes are the backend's (storage::blob_store); the records are the
// metadata store's (meta::upload_records).
//
// Thread-safety: the service may be used concurrently; a session by one coroutine at a time.
// REQUIRES: the service, its stores and its pool outlive every session.
#pragma once

#include <utility>  // before Asio: boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/digest.h"
#include "core/error.h"
#include "core/offload.h"
#include "meta/upload_records.h"
#include "storage/blob_store.h"

namespace berth::uploads {

using boost::asio::awaitable;

struct service_options {
  // How long a request's hold on an upload lasts without renewal. A writing request renews it once
  // half has passed; a holder that died blocks its upload this long at most.
  std::chrono::milliseconds lease = std::chrono::minutes(1);
  // Unix milliseconds; tests pass their own clock.
  std::function<std::int64_t()> now_ms;
};

// Whether `id` has the shape of an id the service hands out (lowercase UUIDv4 text). Only such ids
// reach a backend, so no id taken from a URL can traverse a path.
bool is_upload_id(std::string_view id);

class upload_service;

// One request's hold on an upload, from open()/start() to commit(), release() or discard().
// Move-only. A session destroyed while it still holds its upload releases it in the background;
// a request releases it before answering, so that the client's next request finds it free.
class upload_session {
 public:
  upload_session(upload_session&&) noexcept;
  upload_session& operator=(upload_session&&) = delete;
  ~upload_session();

  const std::string& id() const;
  // Bytes received so far.
  std::uint64_t size() const;
  // Appends and hashes `bytes`. Fails with internal when the backend fails (the upload keeps what
  // the backend holds), UPLOAD_BUSY when the lease ran out and another request took the upload.
  awaitable<result<void>> write(std::string_view bytes);
  // Completes once every byte written is held by the backend; reports a deferred write's failure.
  awaitable<result<void>> flush();
  // Checks the bytes against `expected` (DIGEST_INVALID: the upload is discarded), stores them as
  // that blob (dedup: an existing copy is kept) and links it into the upload's repository, durably.
  // Returns the blob's size. Afterwards (and after DIGEST_INVALID) the session is spent: it holds
  // nothing and every call but destruction fails with BLOB_UPLOAD_UNKNOWN. After another failure
  // it still holds the upload, unchanged.
  awaitable<result<std::uint64_t>> commit(const digest& expected);
  // Ends the hold: saves the progress (size and hash state) for the next request and gives the
  // lease up. The session is spent afterwards.
  awaitable<result<void>> release();
  // Removes the upload, bytes and record. The session is spent afterwards.
  awaitable<result<void>> discard();

 private:
  friend class upload_service;
  struct state;
  explicit upload_session(std::unique_ptr<state> s);
  std::unique_ptr<state> s_;
};

class upload_service {
 public:
  upload_service(storage::blob_store& blobs, meta::upload_records& records, blocking_pool& pool,
                 service_options options = {});

  // Starts an upload of `repo`; returns its id.
  awaitable<result<std::string>> create(std::string_view repo);
  // Starts an upload of `repo` that the caller goes on writing to at once (a single-request upload).
  awaitable<result<upload_session>> start(std::string_view repo);
  // Opens upload `id` of `repo` for writing. BLOB_UPLOAD_UNKNOWN when `id` is malformed or names
  // no upload of `repo`; UPLOAD_BUSY while another request holds it. When the saved hash state does
  // not cover the bytes the backend holds (a crash mid-request, a failed write), hashes the rest on
  // the blocking pool, never on the caller's thread.
  awaitable<result<upload_session>> open(std::string_view repo, std::string_view id);
  // Bytes upload `id` of `repo` holds; BLOB_UPLOAD_UNKNOWN as open(). Takes no hold.
  awaitable<result<std::uint64_t>> size(std::string_view repo, std::string_view id);
  // Discards the upload; BLOB_UPLOAD_UNKNOWN and UPLOAD_BUSY as open().
  awaitable<result<void>> cancel(std::string_view repo, std::string_view id);
  // Discards every upload that received nothing for longer than `idle` (abandoned by its client)
  // and nobody holds, backend uploads no record names (left by a crash) as old, and what a commit
  // cut off by a crash left in the backend (blob_store::purge_leftovers) as old. Returns how many
  // went; failures are logged and skipped.
  awaitable<std::size_t> purge(std::chrono::seconds idle);

 private:
  friend class upload_session;
  std::int64_t now() const;
  meta::upload_lease new_lease() const;
  // Opens the backend's bytes of `rec`, held under `lease`, and brings the hash up to them.
  awaitable<result<upload_session>> resume(meta::upload_record rec, meta::upload_lease lease);

  storage::blob_store& blobs_;
  meta::upload_records& records_;
  blocking_pool& pool_;
  service_options options_;
};

}  // namespace berth::uploads
