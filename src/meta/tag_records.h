// The lifecycle of tags: what each tag points at with when, by whom, the image's size and
// platforms; every digest a tag pointed to (its history, the rollback candidates); repositories with
// their counts and sizes; and promotion, which points a tag at a manifest of another repository (or
// the same one) in one transaction. Tags are moved by metadata_store::put_manifest (a push) and by
// promote(); both record who and when from a push_stamp.
//
// Times are unix milliseconds from the caller's clock. A tag set to the digest it already points at
// changes nothing: neither its record nor its history.
// Thread-safety: every method may be called concurrently. Errors as in metadata_store.h.
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

// Why content changes: a client's request, or a retention run (which reports its deletions as such).
enum class change_cause { request, retention };

// Who changes a tag or manifest, and when. Passed by reference to a named local (coroutines keep
// the reference).
struct push_stamp {
  std::string_view by;      // the subject as the policy names it: "user:alice", "robot:ci", "oidc:..."
  std::int64_t at_ms = 0;   // unix milliseconds
  std::string_view source;  // a promotion's source ("staging/app:v1", "staging/app@sha256:..."); "" for a push
  // Set when the tag is immutable (an immutable_tags rule): the DENIED message a call returns, in
  // the transaction that would move the tag, when the tag exists and points at another digest.
  // Creating the tag, or setting it to the digest it points at, is no move.
  std::string_view immutable;
  change_cause cause = change_cause::request;
};

struct tag_record {
  std::string name;
  digest dgst;
  std::string media_type;
  std::int64_t pushed_at_ms = 0;
  std::string pushed_by;  // "unknown" for tags set before Berth recorded it
  std::uint64_t size = 0;  // the manifest's total (manifest_record::total_size)
  std::vector<std::string> platforms;
};

// One move of a tag.
struct tag_event {
  digest dgst;
  std::int64_t at_ms = 0;
  std::string by;
  std::string source;  // "" for a push
};

struct repository_summary {
  std::string name;
  std::uint64_t tags = 0;
  std::uint64_t size = 0;          // bytes it references: its manifests and linked blobs, each once
  std::int64_t last_push_ms = 0;   // the newest tag's time; 0 when it has no tag
};

// A manifest that no tag of its repository points at.
struct untagged_manifest {
  digest dgst;
  std::int64_t since_ms = 0;  // since when: unix ms, by the database's clock
  bool referrer = false;      // its subject is a manifest of the same repository
};

// An image manifest stored before Berth recorded platforms, whose config blob has not been read.
struct unread_platforms {
  std::string repository;
  digest dgst;
  std::string media_type;
  std::string content;  // the manifest's bytes
};

enum class tag_sort { name, time };

// What promote() did: the tag's digest before (nullopt when it is new) and whether it moved.
struct promotion {
  std::optional<digest> previous;
  bool moved = false;
};

class tag_records {
 public:
  virtual ~tag_records() = default;

  // The tags of `repo` with their records, sorted by name or by time (then name), ascending or
  // descending, starting after the tag `last` ("" for the start; by time: after that tag's current
  // position), at most `n`. nullopt when the repository is unknown.
  virtual awaitable<result<std::optional<std::vector<tag_record>>>> tag_list(std::string_view repo, tag_sort sort,
                                                                             bool descending, std::string_view last,
                                                                             std::size_t n) = 0;
  // Every move of `tag` in `repo`, newest first (empty when it never existed). Kept when the tag
  // or its manifests are deleted; gone with the repository.
  virtual awaitable<result<std::vector<tag_event>>> tag_history(std::string_view repo, std::string_view tag) = 0;
  // The tags of `repo` that point at `d`, in byte order.
  virtual awaitable<result<std::vector<std::string>>> tags_on(std::string_view repo, const digest& d) = 0;
  // The manifests of `repo` that no tag points at, in digest order (empty when the repository is
  // unknown). A manifest is untagged from its push without a tag, or from when its last tag left it
  // (the tag deleted, moved by a push or a promotion, or deleted by retention) until a tag points at
  // it again; the children of an index are untagged too (retention keeps those a kept index needs).
  // Manifests untagged before the store recorded it count from the upgrade. The times come from
  // the database's clock (triggers keep them, whoever changes a tag).
  virtual awaitable<result<std::vector<untagged_manifest>>> untagged(std::string_view repo) = 0;
  // Up to `n` image manifests whose platforms were never read from their config blobs (those stored
  // before the upgrade that records platforms at push time), in no particular order. Each stays on
  // the list until set_platforms records it.
  virtual awaitable<result<std::vector<unread_platforms>>> platforms_unread(std::size_t n) = 0;
  // Records the platforms of manifest `d` of `repo` (empty when its config names none) and takes it
  // off that list. Nothing happens when the manifest is gone.
  virtual awaitable<result<void>> set_platforms(std::string_view repo, const digest& d,
                                                const std::vector<std::string>& platforms) = 0;
  // Repositories whose name starts with `prefix` ("" for all), in byte order, with their counts.
  virtual awaitable<result<std::vector<repository_summary>>> repository_summaries(std::string_view prefix) = 0;
  // Points `dst`:`tag` at manifest `d` of `src`, after linking into `dst` (created when missing)
  // everything it needs: the manifest, its child manifests (indexes), the referrers of all of them
  // (signatures, SBOMs), and every blob these reference. One transaction: the tag moves only with
  // the content, and with the promotion's webhook deliveries (webhook_records.h). nullopt when `src`
  // does not hold `d`. `src` may be `dst` (retag, rollback).
  virtual awaitable<result<std::optional<promotion>>> promote(std::string_view dst, std::string_view tag,
                                                              std::string_view src, const digest& d,
                                                              const push_stamp& stamp) = 0;
};

}  // namespace berth::meta
