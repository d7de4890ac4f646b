// Online garbage collection: frees the repository links no manifest needs and the blob bytes no
// repository links, while pushes and pulls go on. Every decision is a transaction of the metadata
// store (meta/blob_records.h), so collectors on several instances, and a collector killed at any
// instant, leave every referenced blob intact; the next run finishes what a killed one began.
//
// A run: (1) finishes deletions an interrupted run left marked; (2) sweeps unneeded links;
// (3) lists the blob store and records the blobs that have no record (bytes stored before garbage
// collection existed, or left by an older version's crash), as used now, so that a run after the
// grace window frees them unless something links them meanwhile; (4) for each batch of
// unreferenced blobs: marks them (re-checked in the transaction), deletes their bytes, forgets
// their records. A dry run only estimates (2) and (4).
// Thread-safety: run() may be called concurrently (by this and other instances).
#pragma once

#include <utility>  // before Asio: boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <chrono>

#include <mutex>
#include <string>

#include "core/error.h"
#include "gc/progress.h"
#include "meta/metadata_store.h"
#include "storage/blob_store.h"

namespace berth::gc {

using boost::asio::awaitable;

// Where an instance's search for blobs stored without a record goes on (step 3 of a run): each
// collection looks at one page of the blob store after the page the previous one looked at, and
// starts over after the last. So a collection costs one listing call, not the whole store's, however
// often it runs (a loop of collections beside pushes); a store of 100,000 blobs is searched in 100.
// Thread-safe.
class orphan_search {
 public:
  std::string position() const {
    std::lock_guard lock(mutex_);
    return position_;
  }
  void move_to(std::string position) {
    std::lock_guard lock(mutex_);
    position_ = std::move(position);
  }

 private:
  mutable std::mutex mutex_;
  std::string position_;  // the listing's cursor; "" for the start; guarded by mutex_
};

class collector {
 public:
  // Both stores, and `board` and `search` when given, must outlive the collector. A run shows its
  // progress on `board`. With `search`, a run looks for blobs without a record on one page of the
  // blob store, where `search` says; without, on all of it.
  collector(meta::metadata_store& meta, storage::blob_store& blobs, progress_board* board = nullptr,
            orphan_search* search = nullptr)
      : meta_(meta), blobs_(blobs), board_(board), search_(search) {}

  // Collects (or, with `dry_run`, estimates) what nothing used within `grace` and nothing
  // references; records the run in the store's log and returns it. Fails with the first store
  // error (what was freed before it stays freed and is not recorded).
  awaitable<result<meta::gc_run>> run(std::chrono::milliseconds grace, bool dry_run);

  // Step (1) alone: finishes the deletions interrupted runs left marked, so that their digests can
  // be pushed again (while marked they are refused with 503). The server calls it at start-up;
  // finishing another instance's deletions in flight is harmless (marked blobs are never linked).
  // Returns what it freed.
  awaitable<result<meta::gc_counts>> finish_interrupted();

 private:
  // Step (3): returns how many blobs it recorded.
  awaitable<result<std::uint64_t>> adopt_orphans();
  // Deletes the bytes of `marked` blobs and forgets them; adds what it freed to `counts`.
  awaitable<result<void>> delete_marked(std::span<const meta::blob_entry> marked, meta::gc_counts& counts);

  meta::metadata_store& meta_;
  storage::blob_store& blobs_;
  progress_board* board_;
  orphan_search* search_;
};

}  // namespace berth::gc
