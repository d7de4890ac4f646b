// The state of unfinished blob uploads that must outlive one request: whose upload it is, how many
// bytes the running hash covers, the hash state itself, and who is writing to it now (a lease).
// It lives in the metadata store, not in one process's memory, so that an upload survives a restart
// and another instance serving the same registry can continue it. The bytes themselves live in the
// blob backend (storage::blob_store); the upload service (src/uploads) keeps the two in step.
//
// Leases: at most one request writes to an upload at a time. It takes the upload with acquire()
// (or holds it from create()), renews the lease with update() while it writes, and gives it back
// with update(..., until_ms = 0), complete() or remove(). A lease that is not renewed expires at
// `until_ms`, so a crashed holder blocks an upload for one lease at most; a store that can tell
// its holders are gone may end their leases sooner (the server ends every SQLite lease when it
// opens the store: it owns the data directory). Every change names the lease token: a holder whose lease expired
// and was taken over changes nothing.
//
// Times are unix milliseconds from the caller's clock (tests pass their own).
// Durability: complete() is durable on return (it links a blob); the rest need not be (an upload
// is only lost work after a power failure, which its client redoes).
// Thread-safety: every method may be called concurrently.
#pragma once

#include <utility>  // before Asio: boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/digest.h"
#include "core/error.h"

namespace berth::meta {

using boost::asio::awaitable;

struct upload_record {
  std::string id;
  std::string repo;         // the repository the upload belongs to
  std::uint64_t size = 0;   // bytes received that `hash_state` covers
  std::string hash_state;   // sha256_state::save() after the first `size` bytes; "" when unknown
  friend bool operator==(const upload_record&, const upload_record&) = default;
};

struct upload_lease {
  std::int64_t token = 0;     // chosen at random by the holder, > 0
  std::int64_t until_ms = 0;  // the lease ends then; 0: not held
};

class upload_records {
 public:
  virtual ~upload_records() = default;

  // Records a new upload, held under `lease` (until_ms 0: not held). The id is new (the caller
  // chose it at random); storing an existing id is a bug and fails with internal.
  virtual awaitable<result<void>> create(const upload_record& r, const upload_lease& lease, std::int64_t now_ms) = 0;
  // The upload `id`, held or not; nullopt when there is none. (Whose it is, is the caller's check.)
  virtual awaitable<result<std::optional<upload_record>>> find(std::string_view id) = 0;
  // Takes upload `id` of `repo` under `lease` when nobody holds it at `now_ms`, and returns it;
  // nullopt when there is none or it belongs to another repository; UPLOAD_BUSY while another
  // lease holds it.
  virtual awaitable<result<std::optional<upload_record>>> acquire(std::string_view repo, std::string_view id,
                                                                  const upload_lease& lease, std::int64_t now_ms) = 0;
  // Stores r.size and r.hash_state and moves the lease `token` holds to `until_ms` (0 gives it up).
  // false when `token` no longer holds the upload (expired and taken, or removed): nothing changes.
  virtual awaitable<result<bool>> update(const upload_record& r, std::int64_t token, std::int64_t until_ms,
                                         std::int64_t now_ms) = 0;
  // Removes the upload `token` holds; false when it holds none.
  virtual awaitable<result<bool>> remove(std::string_view id, std::int64_t token) = 0;
  // Before an upload's bytes are stored as blob `d` of `size` bytes: records that they are about
  // to be (a fresh use, for the grace window) and returns the generation of `d`'s record, which
  // complete() checks (blob_records.h). UNAVAILABLE while garbage collection deletes `d` (retry).
  virtual awaitable<result<std::int64_t>> claim(const digest& d, std::uint64_t size) = 0;
  // The upload `token` holds is finished as blob `d` of `size` bytes: in one transaction, removes
  // the upload and links `d` into its repository (creating the repository). Durable on return.
  // false when `token` holds no upload `id` (nothing changes); UNAVAILABLE when `d` is no longer
  // of `generation` (garbage collection deleted the bytes since the claim: push it again).
  virtual awaitable<result<bool>> complete(std::string_view id, std::int64_t token, const digest& d,
                                           std::uint64_t size, std::int64_t generation) = 0;
  // At most `n` uploads not changed since `before_ms` that nobody holds at `now_ms`, oldest first:
  // abandoned by their clients.
  virtual awaitable<result<std::vector<upload_record>>> idle(std::int64_t before_ms, std::int64_t now_ms,
                                                             std::size_t n) = 0;
};

}  // namespace berth::meta
