// The blob backend: where blob bytes live (a filesystem, or S3). Content-addressable: each
// blob's bytes are stored once, under its digest, whatever the number of repositories that use it;
// which repository may see which blob is metadata (meta::metadata_store). The backend also holds
// the bytes of unfinished uploads, under ids the upload service chooses (src/uploads); everything
// else about uploads (ids and their grammar, owners, leases, the running hash, digest checks) lives
// above it and is the same for every backend. This interface knows nothing of HTTP.
//
// Asynchronous: every call is awaited from the I/O threads. A local backend may complete inline
// when the work is short (opening a file, appending to the page cache) and hops to the blocking
// pool for what waits on the disk (fsync); a network backend suspends on its sockets and never
// blocks the calling thread. Adding a backend: docs/ARCHITECTURE.md; its tests register with the
// contract suite (blob_store_contract.h).
//
// Durability: upload_data::commit() completes once the blob's bytes (and, for a filesystem, its
// directory entry) are durable. A crash at any instant leaves either no blob or the complete blob
// under its digest: never a partial one. Unfinished uploads need not be durable.
// Thread-safety: blob_store methods may be called concurrently; readers and upload_data handles
// have one call in flight at a time (a reader's read may run in a coroutine of its own, beside
// the one that writes what the last read returned) and may outlive neither their store nor its
// blocking pool.
// Errors: the codes named below; any backend failure is logged here and returned as `internal`, or
// as `unavailable` (503) when a network backend cannot be reached (the client retries).
#pragma once

#include <utility>  // before Asio: boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/digest.h"
#include "core/error.h"
#include "core/offload.h"

namespace berth::storage {

using boost::asio::awaitable;

// An open blob.
class blob_reader {
 public:
  virtual ~blob_reader() = default;
  virtual std::uint64_t size() const = 0;
  // Reads up to buf.size() bytes at `offset` into `buf`; returns how many, 0 only at or past the end.
  virtual awaitable<result<std::size_t>> read(std::uint64_t offset, std::span<char> buf) = 0;
  // The size of the reads that suit the backend; the server reads the blob in pieces of it, the
  // next piece's read running while the last one is written (docs/ARCHITECTURE.md, Respond).
  // A network backend answers what amortises a request (S3: 4 MiB, two ranged GETs of 2 MiB at once).
  virtual std::size_t read_size() const { return 256 * 1024; }
  // Fast path: an open file descriptor holding the blob's bytes at the same offsets (the server
  // sends it with sendfile(2)); -1 when the backend has none. Owned by the reader.
  virtual int native_handle() const { return -1; }
  // A URL the client may fetch the bytes from itself (a presigned GET), when the backend offers
  // one; the API then redirects instead of streaming.
  virtual std::optional<std::string> redirect_url() const { return std::nullopt; }
};

// The bytes of one unfinished upload, as the backend holds them: an append-only byte sequence.
class upload_data {
 public:
  virtual ~upload_data() = default;
  // Bytes held, counting writes not yet flushed.
  virtual std::uint64_t size() const = 0;
  // Appends `bytes` (copied: the caller may reuse its buffer once this completes). The append may
  // finish in the background: flush(), or the next write(), reports its failure. After a failure
  // size() counts only the bytes the backend holds.
  virtual awaitable<result<void>> write(std::string_view bytes) = 0;
  // Completes once every byte accepted by write() is held by the backend.
  virtual awaitable<result<void>> flush() = 0;
  // Reads back bytes written before the last flush(): up to buf.size() at `offset`; returns how
  // many, 0 only at or past the end. For re-hashing an upload whose saved hash does not cover it.
  virtual awaitable<result<std::size_t>> read(std::uint64_t offset, std::span<char> buf) = 0;
  // Makes the bytes durable and stores them as blob `d`; when `d` is stored already, that copy is
  // kept and these bytes dropped (dedup). Either way the upload's bytes are gone afterwards and
  // this handle may only be destroyed. The caller has checked that the bytes hash to `d`.
  // On failure the upload is unchanged and the commit may be retried.
  virtual awaitable<result<void>> commit(const digest& d) = 0;
};

// An unfinished upload the backend holds, as listed for purging.
struct upload_entry {
  std::string id;
  std::chrono::system_clock::time_point last_write;
};

// A blob the backend holds, as listed for garbage collection.
struct stored_blob {
  digest dgst;
  std::uint64_t size = 0;
};

// One page of blob_store::list_blobs.
struct blob_page {
  std::vector<stored_blob> blobs;  // in digest (byte) order
  std::string next;                // the cursor of the next page; "" after the last one
};

class blob_store {
 public:
  virtual ~blob_store() = default;

  // The blob's size; BLOB_UNKNOWN when it is not stored.
  virtual awaitable<result<std::uint64_t>> stat(const digest& d) = 0;
  // Opens the blob for reading; BLOB_UNKNOWN when it is not stored. Reaches the backend: an outage fails open() itself.
  virtual awaitable<result<std::unique_ptr<blob_reader>>> open(const digest& d) = 0;
  // Deletes blob `d`'s bytes; succeeds when none are stored (idempotent, so an interrupted
  // garbage collection can run it again). Only the garbage collector calls it, for a blob the
  // metadata store has marked for deletion (meta/blob_records.h): nothing may link it any more.
  // Readers already open may keep reading (filesystem) or fail (S3).
  virtual awaitable<result<void>> remove(const digest& d) = 0;

  // Up to `n` of the blobs the backend holds, in digest order, from `cursor` ("" for the first page,
  // then the last page's `next`), for garbage collection to find bytes that the metadata store has
  // no record of. A blob stored or removed while the pages are read may be listed or not. What the
  // backend holds under its blob names that is no blob (a stray file) is left out.
  virtual awaitable<result<blob_page>> list_blobs(std::string_view cursor, std::size_t n) = 0;

  // Uploads, named by ids the upload service chose (lowercase UUIDs: safe as a path component).
  // Creates the empty upload `id`. REQUIRES: `id` is new.
  virtual awaitable<result<void>> create_upload(std::string_view id) = 0;
  // Opens upload `id` for appending; BLOB_UPLOAD_UNKNOWN when there is none (never created,
  // committed or deleted). REQUIRES: at most one handle on an upload at a time (the service's
  // lease sees to it).
  virtual awaitable<result<std::unique_ptr<upload_data>>> open_upload(std::string_view id) = 0;
  // Removes upload `id` and its bytes; BLOB_UPLOAD_UNKNOWN when there is none.
  virtual awaitable<result<void>> delete_upload(std::string_view id) = 0;
  // Every upload the backend holds (including remains a crash left), for the purge to compare
  // with the upload records.
  virtual awaitable<result<std::vector<upload_entry>>> list_uploads() = 0;
  // Removes what a commit cut off by a crash may have left that no upload names, begun before
  // `before` (an S3 multipart upload: invisible, but it takes space); returns how many went. A
  // backend whose commit leaves nothing of the kind has nothing to do.
  virtual awaitable<result<std::size_t>> purge_leftovers(std::chrono::system_clock::time_point before) {
    (void)before;
    co_return 0;
  }

  // Whether the store takes writes now (the readiness check, /health/ready): writes and removes a
  // small object where uploads are written, leaving nothing behind. Cheap: one create and one
  // delete, no fsync. Errors: `internal` or `unavailable` as for any write.
  virtual awaitable<result<void>> probe() = 0;
};

// The filesystem store rooted at `root` (created when missing). Layout in docs/storage-layout.md.
// Waits on the disk (fsync) on `pool`, which must outlive the store and its handles.
// Throws std::runtime_error at start-up when `root` cannot be created or written.
std::unique_ptr<blob_store> make_fs_blob_store(const std::string& root, blocking_pool& pool);

}  // namespace berth::storage
