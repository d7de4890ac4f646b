#include "lifecycle/retention.h"

#include <fmt/core.h>

#include <algorithm>
#include <limits>
#include <map>
#include <numeric>
#include <set>

#include "core/reference.h"
#include "core/unix_time.h"

namespace berth::lifecycle {
namespace {

constexpr std::int64_t ms_per_day = 86'400'000;

bool any_matches(const std::vector<std::string>& patterns, std::string_view name) {
  return std::ranges::any_of(patterns, [&](const std::string& p) { return policy::pattern_matches(p, name); });
}

// The manifests `repo` holds, fetched once each.
class manifest_cache {
 public:
  manifest_cache(meta::metadata_store& meta, std::string_view repo) : meta_(meta), repo_(repo) {}

  // The manifests among the references of manifest `d` (none when `repo` does not hold `d`).
  awaitable<result<std::vector<digest>>> child_manifests(const digest& d) {
    auto it = children_.find(d);
    if (it != children_.end()) co_return it->second;
    auto m = co_await meta_.manifest_by_digest(repo_, d);
    if (!m) co_return std::unexpected(m.error());
    std::vector<digest> children;
    if (*m && !(*m)->references.empty()) {
      auto missing = co_await meta_.missing_manifests(repo_, (*m)->references);
      if (!missing) co_return std::unexpected(missing.error());
      const std::set<digest> absent(missing->begin(), missing->end());
      for (const auto& r : (*m)->references) {
        if (!absent.contains(r)) children.push_back(r);
      }
    }
    children_.emplace(d, children);
    co_return children;
  }

 private:
  meta::metadata_store& meta_;
  std::string repo_;
  std::map<digest, std::vector<digest>> children_;
};

// Every manifest that `roots` (what stays) need: themselves and, through indexes, their children.
awaitable<result<std::set<digest>>> needed_by(manifest_cache& cache, const std::set<digest>& roots) {
  std::set<digest> needed = roots;
  std::vector<digest> todo(roots.begin(), roots.end());
  while (!todo.empty()) {
    const digest d = std::move(todo.back());
    todo.pop_back();
    auto children = co_await cache.child_manifests(d);
    if (!children) co_return std::unexpected(children.error());
    for (auto& c : *children) {
      if (needed.insert(c).second) todo.push_back(std::move(c));
    }
  }
  co_return needed;
}

// Appends to `listed` (from index `from` on) the children and referrers of the manifests listed
// there that `needed` does not hold, breadth first: each after the manifest that brings it.
awaitable<result<void>> add_dependents(meta::metadata_store& meta, manifest_cache& cache, std::string_view repo,
                                       const std::set<digest>& needed, std::set<digest>& seen,
                                       std::vector<digest>& listed, std::size_t from) {
  for (std::size_t i = from; i < listed.size(); ++i) {
    const digest d = listed[i];
    auto children = co_await cache.child_manifests(d);
    if (!children) co_return std::unexpected(children.error());
    auto referrers = co_await meta.referrers(repo, d, std::nullopt);
    if (!referrers) co_return std::unexpected(referrers.error());
    std::vector<digest> next = std::move(*children);
    for (auto& r : *referrers) next.push_back(std::move(r.dgst));
    for (auto& n : next) {
      if (!needed.contains(n) && seen.insert(n).second) listed.push_back(std::move(n));
    }
  }
  co_return result<void>{};
}

// The longest untagged_days of `rules`, if any sets it: an untagged manifest goes when none keeps it.
std::optional<std::int64_t> untagged_days(std::span<const retention_rule* const> rules) {
  std::optional<std::int64_t> days;
  for (const auto* r : rules) {
    if (r->untagged_days) days = std::max(days.value_or(0), *r->untagged_days);
  }
  return days;
}

awaitable<result<std::optional<repository_plan>>> plan_repository(meta::metadata_store& meta, std::string_view repo,
                                                                  std::span<const retention_rule* const> rules,
                                                                  std::int64_t now_ms, const immutable_fn& immutable) {
  auto records =
      co_await meta.tags().tag_list(repo, meta::tag_sort::time, true, "", std::numeric_limits<std::size_t>::max());
  if (!records) co_return std::unexpected(records.error());
  if (!*records) co_return std::nullopt;
  std::vector<tag_entry> tags;
  for (auto& r : **records) tags.push_back({std::move(r.name), std::move(r.dgst), r.pushed_at_ms, r.size});
  repository_plan plan{std::string(repo), expired_tags(repo, tags, rules, now_ms, immutable), {}};

  // What stays needs its children: the remaining tags' manifests, and the untagged ones not expired
  // (a referrer whose subject is here follows its subject instead). Expired untagged manifests go.
  std::set<std::string_view> going;
  for (const auto& t : plan.tags) going.insert(t.name);
  std::set<digest> kept;
  for (const auto& t : tags) {
    if (!going.contains(t.name)) kept.insert(t.dgst);
  }
  std::vector<digest> expired;
  if (const auto days = untagged_days(rules)) {
    auto untagged = co_await meta.tags().untagged(repo);
    if (!untagged) co_return std::unexpected(untagged.error());
    for (auto& u : *untagged) {
      if (u.referrer) continue;
      if (u.since_ms <= now_ms - std::int64_t{*days} * ms_per_day) {
        expired.push_back(std::move(u.dgst));
      } else {
        kept.insert(std::move(u.dgst));
      }
    }
  }
  if (plan.tags.empty() && expired.empty()) co_return std::nullopt;
  manifest_cache cache(meta, repo);
  auto needed = co_await needed_by(cache, kept);
  if (!needed) co_return std::unexpected(needed.error());

  // The manifests the tags leave, then the expired untagged ones, each group with what only it
  // needed. A manifest that another one going lists (an index's child) is reached through it, so
  // it comes after it.
  std::vector<digest> tag_left;
  for (const auto& t : plan.tags) {
    if (!needed->contains(t.dgst)) tag_left.push_back(t.dgst);
  }
  std::erase_if(expired, [&](const digest& d) { return needed->contains(d); });
  std::set<digest> listed_by_others;
  for (const auto* group : {&tag_left, &expired}) {
    for (const auto& d : *group) {
      auto children = co_await cache.child_manifests(d);
      if (!children) co_return std::unexpected(children.error());
      listed_by_others.insert(children->begin(), children->end());
    }
  }
  std::set<digest> seen;
  std::size_t from = 0;
  for (const auto* group : {&tag_left, &expired}) {
    from = plan.manifests.size();
    for (const auto& d : *group) {
      if (!listed_by_others.contains(d) && seen.insert(d).second) plan.manifests.push_back(d);
    }
    auto added = co_await add_dependents(meta, cache, repo, *needed, seen, plan.manifests, from);
    if (!added) co_return std::unexpected(added.error());
  }
  plan.untagged = plan.manifests.size() - from;
  if (plan.tags.empty() && plan.manifests.empty()) co_return std::nullopt;
  co_return plan;
}

// Sets each plan's bytes_freed_by_gc, from one question to the store about every manifest of `plans`.
awaitable<result<void>> add_freed_bytes(meta::metadata_store& meta, std::vector<repository_plan>& plans) {
  std::vector<meta::repository_manifest> deleted;
  for (const auto& p : plans) {
    for (const auto& d : p.manifests) deleted.push_back({p.repository, d});
  }
  if (deleted.empty()) co_return result<void>{};
  auto freed = co_await meta.blobs().freed_by_deleting(deleted);
  if (!freed) co_return std::unexpected(freed.error());
  std::map<std::string_view, std::uint64_t> bytes;
  for (const auto& f : *freed) bytes[f.repository] = f.bytes;
  for (auto& p : plans) {
    const auto it = bytes.find(p.repository);
    if (it != bytes.end()) p.bytes_freed_by_gc = it->second;
  }
  co_return result<void>{};
}

}  // namespace

result<void> check_rule(const retention_rule& rule, std::string_view where) {
  const auto bad = [&](std::string_view field, std::string_view why) {
    return fail(errc::invalid_argument, fmt::format("`{}.{}` {}", where, field, why));
  };
  if (rule.repositories.empty()) return bad("repositories", "needs at least one pattern");
  for (const auto& p : rule.repositories) {
    if (!valid_name_pattern(p))
      return bad("repositories", fmt::format("has `{}`, which is not a repository pattern (a repository name, lower "
                                             "case, in which * stands for any characters, e.g. dev/*)",
                                             p));
  }
  for (const auto& p : rule.protect) {
    if (!valid_tag_pattern(p)) return bad("protect", fmt::format("has `{}`, which is not a tag pattern (e.g. v*)", p));
  }
  for (const auto& [field, value] : {std::pair{"keep_last", rule.keep_last}, std::pair{"keep_days", rule.keep_days},
                                     std::pair{"untagged_days", rule.untagged_days}}) {
    if (value && (*value < 0 || *value > max_rule_number))
      return bad(field, fmt::format("must be 0 to {}", max_rule_number));
  }
  if (!rule.keep_last && !rule.keep_days && !rule.untagged_days)
    return fail(errc::invalid_argument, fmt::format("`{}` needs keep_last, keep_days or untagged_days", where));
  return {};
}

// Immutable tags (namespaces.NS.immutable_tags) are never deleted by retention.
immutable_fn immutable_tags(const policy::policy& pol) {
  return [&pol](std::string_view r, std::string_view t) { return pol.immutable(r, t).has_value(); };
}

std::vector<const retention_rule*> rules_for(std::string_view repository, std::span<const retention_rule> rules) {
  std::vector<const retention_rule*> out;
  for (const auto& r : rules) {
    if (any_matches(r.repositories, repository)) out.push_back(&r);
  }
  return out;
}

std::vector<tag_entry> expired_tags(std::string_view repository, std::span<const tag_entry> tags,
                                    std::span<const retention_rule* const> rules, std::int64_t now_ms,
                                    const immutable_fn& immutable) {
  std::vector<const retention_rule*> judging;  // the rules that judge tags
  for (const auto* r : rules) {
    if (r->keep_last || r->keep_days) judging.push_back(r);
  }
  if (judging.empty()) return {};
  std::vector<tag_entry> newest_first(tags.begin(), tags.end());
  std::ranges::sort(newest_first, [](const tag_entry& a, const tag_entry& b) {
    return a.pushed_at_ms != b.pushed_at_ms ? a.pushed_at_ms > b.pushed_at_ms : a.name < b.name;
  });
  const auto kept = [&](const tag_entry& t, std::size_t rank) {
    return std::ranges::any_of(judging, [&](const retention_rule* r) {
      return (r->keep_last && rank < static_cast<std::size_t>(*r->keep_last)) ||
             (r->keep_days && t.pushed_at_ms >= now_ms - std::int64_t{*r->keep_days} * ms_per_day) ||
             any_matches(r->protect, t.name);
    });
  };
  std::vector<tag_entry> out;
  for (std::size_t rank = 0; rank < newest_first.size(); ++rank) {
    const auto& t = newest_first[rank];
    if (!kept(t, rank) && !immutable(repository, t.name)) out.push_back(t);
  }
  return out;
}

awaitable<result<std::vector<repository_plan>>> plan(meta::metadata_store& meta, const retention_config& config,
                                                     std::optional<std::string_view> only, std::int64_t now_ms,
                                                     const immutable_fn& immutable) {
  std::vector<repository_plan> plans;
  // The config's rules, then the stored ones.
  auto stored = co_await meta.retention_rules().rules();
  if (!stored) co_return std::unexpected(stored.error());
  std::vector<retention_rule> in_force = config.rules;
  for (std::size_t i = 0; i < stored->size(); ++i) {
    (*stored)[i].source = fmt::format("api rules[{}]", i);
    in_force.push_back(std::move((*stored)[i]));
  }
  if (in_force.empty()) co_return plans;
  auto repos = co_await meta.list_repositories("", std::numeric_limits<std::size_t>::max());
  if (!repos) co_return std::unexpected(repos.error());
  for (const auto& repo : *repos) {
    if (only && !policy::pattern_matches(*only, repo)) continue;
    const auto rules = rules_for(repo, in_force);
    if (rules.empty()) continue;
    auto p = co_await plan_repository(meta, repo, rules, now_ms, immutable);
    if (!p) co_return std::unexpected(p.error());
    if (*p) plans.push_back(std::move(**p));
  }
  auto freed = co_await add_freed_bytes(meta, plans);
  if (!freed) co_return std::unexpected(freed.error());
  co_return plans;
}

awaitable<result<std::vector<repository_plan>>> apply(meta::metadata_store& meta, std::vector<repository_plan> plans) {
  std::vector<repository_plan> done;
  // Retention's deletions are its own, reported to webhooks as `retention` events.
  const meta::push_stamp stamp{.by = "system:retention", .at_ms = unix_millis(), .cause = meta::change_cause::retention};
  for (auto& p : plans) {
    repository_plan deleted{p.repository, {}, {}, 0, p.bytes_freed_by_gc};
    for (auto& t : p.tags) {
      // A tag pushed again since the plan points elsewhere now: it is not the one judged.
      auto current = co_await meta.manifest_by_tag(p.repository, t.name);
      if (!current) co_return std::unexpected(current.error());
      if (!*current || (*current)->dgst != t.dgst) continue;
      auto gone = co_await meta.delete_tag(p.repository, t.name, stamp);
      if (!gone) co_return std::unexpected(gone.error());
      if (*gone) deleted.tags.push_back(std::move(t));
    }
    // Judged in each deletion's transaction: a manifest tagged since the plan (or whose tag above
    // was pushed again) is kept, and so is one that a manifest still there needs (an index that was
    // kept or pushed since lists it; its subject stayed), with what it needs in turn. The plan
    // lists an index before its children and a subject before its referrers; a manifest refused
    // while another of the plan still needed it (an index listed after it) is tried again.
    const meta::delete_guard guard{
        .tags = [](std::string_view) { return std::optional<std::string>("tagged since the plan"); },
        .keep_needed = true};
    const std::size_t first_untagged = p.manifests.size() - p.untagged;
    std::vector<std::size_t> pending(p.manifests.size());
    std::iota(pending.begin(), pending.end(), std::size_t{0});
    while (!pending.empty()) {
      std::vector<std::size_t> refused;
      for (const std::size_t i : pending) {
        auto gone = co_await meta.delete_manifest(p.repository, p.manifests[i], stamp, guard);
        if (!gone && gone.error().code == errc::denied) {
          refused.push_back(i);
          continue;
        }
        if (!gone) co_return std::unexpected(gone.error());
        if (!*gone) continue;
        deleted.manifests.push_back(std::move(p.manifests[i]));
        if (i >= first_untagged) ++deleted.untagged;
      }
      if (refused.size() == pending.size()) break;
      pending = std::move(refused);
    }
    if (!deleted.tags.empty() || !deleted.manifests.empty()) done.push_back(std::move(deleted));
  }
  co_return done;
}

plan_totals totals(const std::vector<repository_plan>& plans) {
  plan_totals t;
  for (const auto& p : plans) {
    t.tags += p.tags.size();
    t.manifests += p.manifests.size();
    t.untagged += p.untagged;
    t.bytes_freed_by_gc += p.bytes_freed_by_gc;
  }
  return t;
}

}  // namespace berth::lifecycle
