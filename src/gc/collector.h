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

#include "core/error.h"
#include "gc/progress.h"
#include "meta/metadata_store.h"
#include "storage/blob_store.h"

namespace berth::gc {

using boost::asio::awaitable;

class collector {
 public:
  // Both stores, and `board` when given, must outlive the collector. A run shows its progress on
  // `board`.
  collector(meta::metadata_store& meta, storage::blob_store& blobs, progress_board* board = nullptr)
      : meta_(meta), blobs_(blobs), board_(board) {}

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
};

}  // namespace berth::gc
