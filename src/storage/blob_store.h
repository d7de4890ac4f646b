// Content-addressable blob storage and upload sessions. Each blob's bytes are stored once, under its
// digest, whatever the number of repositories that use it: which repository may see which blob is
// metadata (meta::metadata_store), not storage. Uploads are resumable: their bytes and owner survive
// a restart; the running hash is kept in memory between requests and recomputed from the bytes when
// the process restarted.
//
// Durability: commit() returns only once the blob's bytes and directory entry are fsynced. A crash
// at any instant leaves either no blob or the complete blob under its digest: never a partial one.
// Thread-safety: every method may be called concurrently. One upload accepts one writer at a time.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "core/digest.h"
#include "core/error.h"

namespace berth::storage {

// An open blob. Owns the descriptor; move-only.
class blob_reader {
 public:
  blob_reader(int fd, std::uint64_t size) : fd_(fd), size_(size) {}
  blob_reader(blob_reader&& other) noexcept : fd_(std::exchange(other.fd_, -1)), size_(other.size_) {}
  blob_reader& operator=(blob_reader&&) = delete;
  ~blob_reader();

  int fd() const { return fd_; }
  std::uint64_t size() const { return size_; }
  // Gives up ownership of the descriptor.
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
  std::uint64_t size_;
};

// One upload session, as returned by blob_store::open_upload(). Holding it marks the upload busy.
// It may outlive its store. Once commit() succeeded or returned DIGEST_INVALID, the handle is spent
// (write() and commit() return BLOB_UPLOAD_UNKNOWN); after an internal failure it may be retried.
class upload {
 public:
  virtual ~upload() = default;
  virtual const std::string& id() const = 0;
  // Bytes received so far.
  virtual std::uint64_t size() const = 0;
  // Appends and hashes `bytes` in one pass. Fails with internal when the disk write fails (the
  // upload keeps the bytes written before).
  // A write may finish in the background: flush() (or the next write or commit) reports its failure.
  virtual result<void> write(std::string_view bytes) = 0;
  // Waits until every byte accepted by write() is in the file. Fails with internal when a deferred
  // disk write failed; size() then counts only the bytes the file holds.
  virtual result<void> flush() { return {}; }
  // Makes the bytes durable, checks them against `expected` (DIGEST_INVALID on mismatch, the upload
  // is then discarded), and stores them as that blob (dedup: an existing blob is kept). Removes the
  // upload. Returns the blob's size.
  virtual result<std::uint64_t> commit(const digest& expected) = 0;
};

class blob_store {
 public:
  virtual ~blob_store() = default;

  // The blob's size; BLOB_UNKNOWN when it is not stored.
  virtual result<std::uint64_t> stat(const digest& d) = 0;
  // Opens the blob for reading; BLOB_UNKNOWN when it is not stored.
  virtual result<blob_reader> open(const digest& d) = 0;
  // Stores `bytes` as a blob in one call (manifests, small blobs). Verifies nothing: the caller
  // computed `d` from `bytes`. Durable on return.
  virtual result<void> put(const digest& d, std::string_view bytes) = 0;
  // Removes the blob's bytes; BLOB_UNKNOWN when it is not stored.
  virtual result<void> remove(const digest& d) = 0;

  // Starts an upload owned by repository `repo`; returns its id (a random UUID).
  virtual result<std::string> create_upload(std::string_view repo) = 0;
  // Opens the upload `id` of repository `repo` for writing. BLOB_UPLOAD_UNKNOWN when there is no
  // such upload for that repository; BLOB_UPLOAD_INVALID (409) while another request is writing to it.
  virtual result<std::shared_ptr<upload>> open_upload(std::string_view repo, std::string_view id) = 0;
  // Bytes received so far by the upload; BLOB_UPLOAD_UNKNOWN as above. Does not mark it busy.
  virtual result<std::uint64_t> upload_size(std::string_view repo, std::string_view id) = 0;
  // Discards the upload; BLOB_UPLOAD_UNKNOWN as above; BLOB_UPLOAD_INVALID (409) while a request
  // is writing to it.
  virtual result<void> cancel_upload(std::string_view repo, std::string_view id) = 0;
  // Discards every upload that received no byte for longer than `idle` (abandoned by its client),
  // except those a request is writing to. Returns how many went. Failures are logged and skipped.
  virtual std::size_t purge_uploads(std::chrono::seconds idle) = 0;
};

// The filesystem store rooted at `root` (created when missing). Layout in docs/storage-layout.md.
// Throws std::runtime_error at start-up when `root` cannot be created or written.
std::unique_ptr<blob_store> make_fs_blob_store(const std::string& root);

}  // namespace berth::storage
