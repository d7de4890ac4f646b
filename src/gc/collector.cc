#include "gc/collector.h"

#include <spdlog/spdlog.h>

#include <optional>
#include <string>
#include <vector>

namespace berth::gc {
namespace {

constexpr std::size_t batch = 500;
// Blobs listed at a time: S3's largest page.
constexpr std::size_t listing_page = 1000;

std::int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::vector<digest> digests_of(std::span<const meta::blob_entry> entries) {
  std::vector<digest> out;
  out.reserve(entries.size());
  for (const auto& e : entries) out.push_back(e.dgst);
  return out;
}

}  // namespace

awaitable<result<void>> collector::delete_marked(std::span<const meta::blob_entry> marked, meta::gc_counts& counts) {
  for (const auto& e : marked) {
    auto removed = co_await blobs_.remove(e.dgst);
    if (!removed) co_return std::unexpected(removed.error());
  }
  const auto ds = digests_of(marked);
  auto forgotten = co_await meta_.blobs().forget(ds);
  if (!forgotten) co_return std::unexpected(forgotten.error());
  for (const auto& e : *forgotten) {
    ++counts.blobs;
    counts.bytes += e.size;
  }
  co_return result<void>{};
}

awaitable<result<std::uint64_t>> collector::adopt_orphans() {
  std::uint64_t adopted = 0;
  std::string cursor = search_ ? search_->position() : std::string();
  do {
    auto page = co_await blobs_.list_blobs(cursor, listing_page);
    if (!page) co_return std::unexpected(page.error());
    std::vector<meta::blob_entry> stored;
    stored.reserve(page->blobs.size());
    for (auto& b : page->blobs) stored.push_back(meta::blob_entry{std::move(b.dgst), b.size});
    auto recorded = co_await meta_.blobs().adopt(stored);
    if (!recorded) co_return std::unexpected(recorded.error());
    adopted += recorded->size();
    cursor = std::move(page->next);
  } while (!search_ && !cursor.empty());
  if (search_) search_->move_to(cursor);  // "" after the last page: the next run starts over
  co_return adopted;
}

awaitable<result<meta::gc_counts>> collector::finish_interrupted() {
  // (1) What an interrupted run marked: its bytes may be half deleted (S3) or not at all.
  meta::gc_counts counts;
  for (;;) {
    auto marked = co_await meta_.blobs().marked(batch);
    if (!marked) co_return std::unexpected(marked.error());
    if (marked->empty()) co_return counts;
    auto done = co_await delete_marked(*marked, counts);
    if (!done) co_return std::unexpected(done.error());
  }
}

awaitable<result<meta::gc_run>> collector::run(std::chrono::milliseconds grace, bool dry_run) {
  meta::blob_records& records = meta_.blobs();
  const auto started = std::chrono::steady_clock::now();
  meta::gc_run out;
  out.started_ms = unix_ms();
  out.dry_run = dry_run;
  const std::int64_t grace_ms = grace.count();
  std::optional<progress_board::ticket> shown;
  if (board_) shown.emplace(*board_, out.started_ms);
  const auto show = [&](phase p) {
    if (!shown) return;
    shown->enter(p);
    shown->update(out.counts);
  };
  show(dry_run ? phase::estimating : phase::finishing);
  if (dry_run) {
    auto estimate = co_await records.estimate(grace_ms);
    if (!estimate) co_return std::unexpected(estimate.error());
    out.counts = *estimate;
  } else {
    auto finished = co_await finish_interrupted();
    if (!finished) co_return std::unexpected(finished.error());
    out.counts = *finished;
    show(phase::links);
    // (2) Links.
    auto swept = co_await records.sweep_links(grace_ms);
    if (!swept) co_return std::unexpected(swept.error());
    out.counts.links = swept->links;
    out.counts.link_bytes = swept->link_bytes;
    show(phase::orphans);
    // (3) Bytes without a record.
    auto adopted = co_await adopt_orphans();
    if (!adopted) co_return std::unexpected(adopted.error());
    if (*adopted != 0) spdlog::info("gc: recorded {} blobs stored without a record", *adopted);
    show(phase::blobs);
    // (4) Blobs, a batch at a time: mark, delete the bytes, forget.
    std::string after;
    for (;;) {
      auto candidates = co_await records.unreferenced(grace_ms, after, batch);
      if (!candidates) co_return std::unexpected(candidates.error());
      if (candidates->empty()) break;
      after = candidates->back().dgst.str();
      const auto ds = digests_of(*candidates);
      auto marked = co_await records.mark_for_deletion(ds, grace_ms);
      if (!marked) co_return std::unexpected(marked.error());
      auto done = co_await delete_marked(*marked, out.counts);
      if (!done) co_return std::unexpected(done.error());
      show(phase::blobs);
      if (candidates->size() < batch) break;
    }
  }
  out.duration_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
  auto recorded = co_await records.record_run(out);
  if (!recorded) co_return std::unexpected(recorded.error());
  spdlog::info("gc{}: {} links ({} bytes), {} blobs ({} bytes) in {} ms", dry_run ? " (dry run)" : "",
               out.counts.links, out.counts.link_bytes, out.counts.blobs, out.counts.bytes, out.duration_ms);
  co_return out;
}

}  // namespace berth::gc
