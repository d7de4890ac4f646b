// Retention: config rules that decide, per repository, which tags go, and the run that deletes
// them with the manifests they leave untagged. Reference: README.md "Retention".
//
// A rule matches repositories by pattern (as grants do, policy::pattern_matches) and keeps, of a
// matching repository's tags: its `keep_last` most recently pushed, those pushed in the last
// `keep_days` days, and those matching a `protect` pattern. A tag goes only when no matching rule
// keeps it; a repository no rule matches is never touched; an immutable tag never goes.
//
// What a run deletes, per repository (plan()): the chosen tags; then each manifest that no
// remaining tag points at any more because of them, unless a manifest of a remaining tag needs it
// (a kept index keeps its children); with such a manifest go the children it alone needed (an
// index's platform images) and every referrer of all of these (signatures, SBOMs), unless a
// remaining tag needs them. apply() deletes in that order: tags, then each manifest before its
// referrers, so a stopped run never leaves a referrer whose subject is kept.
//
// Untagged manifests that no run left untagged (pushed by digest, or untagged by hand) are not
// looked at: the stores keep no time per manifest. Garbage collection removes what nothing refers to.
// Thread-safety: the functions keep no state; plan() and apply() may run concurrently with pushes
// (apply() skips a tag pushed again since plan() and a manifest tagged again).
#pragma once

#include <utility>  // before Asio: boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/digest.h"
#include "core/error.h"
#include "meta/metadata_store.h"
#include "policy/policy.h"

namespace berth::lifecycle {

using boost::asio::awaitable;

struct retention_rule {
  std::vector<std::string> repositories;  // patterns, at least one
  std::optional<std::size_t> keep_last;   // at least one of keep_last and keep_days is set
  std::optional<int> keep_days;
  std::vector<std::string> protect;  // tag patterns
  std::string source;                // "retention[0]", for messages
};

struct retention_config {
  std::vector<retention_rule> rules;
  int interval_minutes = 0;  // a scheduled run every N minutes; 0: only when asked
};

// A tag as retention judges it.
struct tag_entry {
  std::string name;
  digest dgst;
  std::int64_t pushed_at_ms = 0;
  std::uint64_t size = 0;
};

// Whether `tag` of `repository` is immutable (never deleted by retention).
using immutable_fn = std::function<bool(std::string_view repository, std::string_view tag)>;

// The immutable tags of `pol`: the one place retention asks for them.
immutable_fn immutable_tags(const policy::policy& pol);

// The rules of `rules` whose patterns match `repository`.
std::vector<const retention_rule*> rules_for(std::string_view repository, std::span<const retention_rule> rules);

// Of `tags` (any order), the tags that go, most recently pushed first: those no rule of `rules`
// keeps, at `now_ms`; none when `rules` is empty. Ties in push time are broken by name.
std::vector<tag_entry> expired_tags(std::string_view repository, std::span<const tag_entry> tags,
                                    std::span<const retention_rule* const> rules, std::int64_t now_ms,
                                    const immutable_fn& immutable);

// What a run deletes in one repository.
struct repository_plan {
  std::string repository;
  std::vector<tag_entry> tags;
  std::vector<digest> manifests;  // in deletion order: a manifest before its children and referrers
};

// The plan of every repository that a rule matches and, when `only` is set, that matches the
// pattern `only`; repositories with nothing to delete are left out. Errors: the store's.
awaitable<result<std::vector<repository_plan>>> plan(meta::metadata_store& meta, const retention_config& config,
                                                     std::optional<std::string_view> only, std::int64_t now_ms,
                                                     const immutable_fn& immutable);

// Deletes what `plans` name and returns what it deleted: a tag or manifest already gone is left
// out, and a manifest that a tag points at again is kept. Errors: the store's (what was deleted
// before the failure stays deleted; the next run continues).
awaitable<result<std::vector<repository_plan>>> apply(meta::metadata_store& meta, std::vector<repository_plan> plans);

}  // namespace berth::lifecycle
