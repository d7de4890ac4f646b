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
// Untagged manifests: a rule with `untagged_days` N also deletes, in the repositories it matches,
// the manifests no tag has pointed at for N days or more (tag_records::untagged says since when; 0:
// every untagged manifest at the run), unless something kept needs them: a remaining tag's manifest
// or an untagged one not yet expired keeps its children (an index's platform images), and a
// referrer whose subject the repository holds goes only with its subject (never before it). They go
// like the manifests the chosen tags leave, with the children and referrers only they needed, after
// those (repository_plan::untagged counts them). A rule with untagged_days only judges no tag; one
// with keep_last or keep_days only deletes no untagged manifest by time.
// The plan also says what a garbage collection after the run would free (blob_records::freed_by_deleting).
// Garbage collection removes what nothing refers to.
// Thread-safety: the functions keep no state; plan() and apply() may run concurrently with pushes
// (apply() skips a tag pushed again since plan(), a manifest tagged again, and what a manifest
// still there needs).
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

// A rule (meta/retention_rules.h: the API's rules are stored in the metadata store).
using retention_rule = meta::retention_rule;

// The largest keep_last, keep_days and untagged_days a rule may give.
inline constexpr std::int64_t max_rule_number = 2'147'483'647;

// Whether `rule` is valid, the one check for the config's rules, the admin API's and the registry
// file's: at least one repository pattern, every pattern valid (core/reference.h), keep_last,
// keep_days and untagged_days 0 to max_rule_number, at least one of them set. INVALID_ARGUMENT whose
// detail names `where` and the field: "`retention[0].keep_last` must be 0 to 2147483647".
result<void> check_rule(const retention_rule& rule, std::string_view where);

struct retention_config {
  std::vector<retention_rule> rules;  // the config's
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
// with keep_last or keep_days keeps, at `now_ms`; none when no rule has either. Ties in push time
// are broken by name.
std::vector<tag_entry> expired_tags(std::string_view repository, std::span<const tag_entry> tags,
                                    std::span<const retention_rule* const> rules, std::int64_t now_ms,
                                    const immutable_fn& immutable);

// What a run deletes in one repository.
struct repository_plan {
  std::string repository;
  std::vector<tag_entry> tags;
  std::vector<digest> manifests;  // in deletion order: a manifest before its children and referrers
  std::size_t untagged = 0;       // the last `untagged` of manifests go because untagged_days expired them
  // What a garbage collection after the deletion would free: the bytes of the blobs no repository
  // keeps then (blob_records::freed_by_deleting; the manifests themselves live in the metadata
  // store and go with the run). A run reports its plan's figure.
  std::uint64_t bytes_freed_by_gc = 0;
};

// What `plans` delete and free, summed over their repositories.
struct plan_totals {
  std::size_t tags = 0;
  std::size_t manifests = 0;
  std::size_t untagged = 0;
  std::uint64_t bytes_freed_by_gc = 0;
};
plan_totals totals(const std::vector<repository_plan>& plans);

// The plan of every repository that a rule matches and, when `only` is set, that matches the
// pattern `only`; repositories with nothing to delete are left out. The rules are the config's
// (`config.rules`, always applied) and those made through the admin API, read from the store at each
// call, so that another instance's change applies without a restart. Errors: the store's.
awaitable<result<std::vector<repository_plan>>> plan(meta::metadata_store& meta, const retention_config& config,
                                                     std::optional<std::string_view> only, std::int64_t now_ms,
                                                     const immutable_fn& immutable);

// Deletes what `plans` name and returns what it deleted: a tag or manifest already gone is left
// out; a manifest that a tag points at again is kept, and so is one that a manifest still in the
// repository lists (an index's child) or whose subject is still there (a referrer), judged in the
// deletion's transaction (meta::delete_guard::keep_needed). Errors: the store's (what was
// deleted before the failure stays deleted; the next run continues).
awaitable<result<std::vector<repository_plan>>> apply(meta::metadata_store& meta, std::vector<repository_plan> plans);

}  // namespace berth::lifecycle
