#include "gc/progress.h"

namespace berth::gc {

std::string_view phase_name(phase p) {
  switch (p) {
    case phase::finishing:
      return "finishing";
    case phase::links:
      return "links";
    case phase::orphans:
      return "orphans";
    case phase::blobs:
      return "blobs";
    case phase::estimating:
      return "estimating";
  }
  return "unknown";
}

progress_board::ticket::ticket(progress_board& board, std::int64_t started_ms) : board_(board) {
  std::lock_guard lock(board_.mutex_);
  board_.entries_.emplace_back();
  it_ = std::prev(board_.entries_.end());
  it_->started_ms = started_ms;
}

progress_board::ticket::~ticket() {
  std::lock_guard lock(board_.mutex_);
  board_.entries_.erase(it_);
}

void progress_board::ticket::update(const meta::gc_counts& c) {
  it_->links.store(c.links, std::memory_order_relaxed);
  it_->link_bytes.store(c.link_bytes, std::memory_order_relaxed);
  it_->blobs.store(c.blobs, std::memory_order_relaxed);
  it_->bytes.store(c.bytes, std::memory_order_relaxed);
}

std::vector<progress_view> progress_board::running() const {
  std::lock_guard lock(mutex_);
  std::vector<progress_view> out;
  for (const auto& e : entries_) {
    progress_view v;
    v.started_ms = e.started_ms;
    v.at = static_cast<phase>(e.at.load(std::memory_order_relaxed));
    v.counts.links = e.links.load(std::memory_order_relaxed);
    v.counts.link_bytes = e.link_bytes.load(std::memory_order_relaxed);
    v.counts.blobs = e.blobs.load(std::memory_order_relaxed);
    v.counts.bytes = e.bytes.load(std::memory_order_relaxed);
    out.push_back(v);
  }
  return out;
}

}  // namespace berth::gc
