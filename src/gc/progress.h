// What the collections in flight on this instance have done so far: `GET /api/v1/gc` lists them
// under "running", and `berth gc` on a terminal draws its progress bar from that. A collection
// registers itself for its lifetime (progress_board::start) and adds to its counts as it goes.
// Thread-safety: every member may be used concurrently; counts are read as they are, not as one
// snapshot.
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <mutex>
#include <string_view>
#include <vector>

#include "meta/blob_records.h"

namespace berth::gc {

enum class phase : int {
  finishing,   // an interrupted run's marked blobs
  links,       // the sweep of unneeded repository links
  orphans,     // recording blobs stored without a record (blob_records::adopt)
  blobs,       // unreferenced blobs, a batch at a time
  estimating,  // a dry run
};

std::string_view phase_name(phase p);

struct progress_view {
  std::int64_t started_ms = 0;
  phase at = phase::finishing;
  meta::gc_counts counts;
};

class progress_board {
  struct entry {
    std::int64_t started_ms;
    std::atomic<int> at{0};
    std::atomic<std::uint64_t> links{0}, link_bytes{0}, blobs{0}, bytes{0};
  };

 public:
  // One collection's place on the board, removed when it is destroyed.
  class ticket {
   public:
    ticket(progress_board& board, std::int64_t started_ms);
    ticket(const ticket&) = delete;
    ticket& operator=(const ticket&) = delete;
    ~ticket();

    void enter(phase p) { it_->at.store(static_cast<int>(p), std::memory_order_relaxed); }
    // The counts so far (each only grows).
    void update(const meta::gc_counts& c);

   private:
    progress_board& board_;
    std::list<entry>::iterator it_;
  };

  std::vector<progress_view> running() const;

 private:
  mutable std::mutex mutex_;  // guards the list's shape; the counts are atomics
  std::list<entry> entries_;
};

}  // namespace berth::gc
