// What the metadata store knows of the blobs whose bytes the blob store holds, so that garbage
// collection decides in the store's transactions, never in one process's memory: one record per
// digest (size, when a link or an upload last used it, a generation, and whether the collector is
// deleting its bytes). Several instances may collect at once; they do no harm to each other.
//
// The protocol that keeps every link pointing at bytes (docs/storage-layout.md, "Garbage
// collection"):
//   upload:    upload_records::claim(d) -> generation g (refused while d is being deleted); the
//              bytes are committed under d (perhaps deduplicated against bytes already stored);
//              upload_records::complete(..., g) links d only if d's record still has generation g
//              and is not being deleted. So bytes a deduplicating commit relied on were not deleted
//              in between.
//   mount:     metadata_store::link_blob links d only while some repository links it.
//   orphans:   adopt(d) records bytes the blob store holds that have no record (as used now).
//   collector: mark_for_deletion(d) re-checks, in a transaction, that no repository links d and
//              that nothing used it within the grace window, and marks it (a new generation);
//              the bytes are deleted; forget(d) drops the record. A record left marked by a crash
//              is finished by the next run (marked()). While marked, d cannot be claimed or linked.
//   manifests: put_manifest refuses a manifest whose blobs are not linked at its commit, and the
//              link sweep re-checks at deletion that no manifest of the repository needs the link.
//
// Times are the store's clock (unix milliseconds); `grace_ms` protects what was used more recently.
// Thread-safety: every method may be called concurrently, from any instance.
#pragma once

#include <utility>  // before Asio: boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/digest.h"
#include "core/error.h"

namespace berth::meta {

using boost::asio::awaitable;

struct blob_entry {
  digest dgst;
  std::uint64_t size = 0;
};

// Counts of what a collection removes (or, estimated, would remove).
struct gc_counts {
  std::uint64_t manifests = 0;  // always 0 for now: untagged manifests go only when deleted
  std::uint64_t links = 0;
  std::uint64_t link_bytes = 0;  // the sizes of the links removed, per repository
  std::uint64_t blobs = 0;
  std::uint64_t bytes = 0;  // blob bytes freed
};

// One collection, as recorded for GET /api/v1/gc.
struct gc_run {
  std::int64_t started_ms = 0;
  std::int64_t duration_ms = 0;
  bool dry_run = false;
  gc_counts counts;
};

// A manifest of a repository (a deletion that retention plans).
struct repository_manifest {
  std::string repository;
  digest dgst;
};

// Bytes per repository.
struct repository_bytes {
  std::string repository;
  std::uint64_t bytes = 0;
};

class blob_records {
 public:
  virtual ~blob_records() = default;

  // Removes every repository link older than the grace window that no manifest of its repository
  // references (each re-checked as it is deleted); returns how many and their sizes.
  virtual awaitable<result<gc_counts>> sweep_links(std::int64_t grace_ms) = 0;
  // What a collection would remove now (links and blobs), without changing anything.
  virtual awaitable<result<gc_counts>> estimate(std::int64_t grace_ms) = 0;
  // Up to `n` blobs, in digest order after `after` ("" for the start), that no repository keeps
  // (no link, or only links the sweep removes) and that nothing used within the grace window.
  virtual awaitable<result<std::vector<blob_entry>>> unreferenced(std::int64_t grace_ms, std::string_view after,
                                                                  std::size_t n) = 0;
  // Marks for deletion, in one transaction, those of `ds` that no repository links and nothing used
  // within the grace window (re-checked here: a push or mount that won keeps its blob); returns them.
  virtual awaitable<result<std::vector<blob_entry>>> mark_for_deletion(std::span<const digest> ds,
                                                                       std::int64_t grace_ms) = 0;
  // Of `stored` (blobs listed from the blob store), records those that have no record, as used now,
  // and returns them: bytes no record knows (left from before garbage collection existed, or by a
  // crash of an older version) then go like any blob nothing links, after the grace window. A
  // digest with a record keeps it. An upload claims its digest before it commits the bytes, so
  // bytes of one in flight always have a record.
  virtual awaitable<result<std::vector<blob_entry>>> adopt(std::span<const blob_entry> stored) = 0;
  // Up to `n` blobs marked for deletion (by any run, also an interrupted one).
  virtual awaitable<result<std::vector<blob_entry>>> marked(std::size_t n) = 0;
  // Drops the records of marked blobs whose bytes are deleted; returns those it dropped (not those
  // another collector dropped first).
  virtual awaitable<result<std::vector<blob_entry>>> forget(std::span<const digest> ds) = 0;

  // What deleting the manifests `deleted` would free, per repository of `deleted` (in byte order;
  // those that hold none of them left out): the bytes of the blobs that no repository would keep then: linked, after the deletion, only by repositories where no remaining
  // manifest references them, and referenced by a manifest of `deleted` (a collection after the
  // deletion frees them). A blob still linked by another repository, or referenced by a kept
  // manifest, frees nothing; one that several repositories of `deleted` lose counts once, for the
  // first of them. Changes nothing.
  virtual awaitable<result<std::vector<repository_bytes>>> freed_by_deleting(
      std::span<const repository_manifest> deleted) = 0;

  // The log of collections: records one; the last `n`, newest first (with `collections_only`,
  // dry runs left out).
  virtual awaitable<result<void>> record_run(const gc_run& run) = 0;
  virtual awaitable<result<std::vector<gc_run>>> runs(std::size_t n, bool collections_only = false) = 0;
};

}  // namespace berth::meta
