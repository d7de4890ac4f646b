// Namespace quotas: what a namespace may hold (namespaces.NS.quota_bytes and max_repositories in
// the config, or the same settings of a namespace of the admin API), what it holds (counters the
// metadata stores keep in the same transactions as the links, manifests and repositories they
// count), and the refusal of a change that takes a namespace past a limit.
//
// Bytes count as the namespace sees them: each distinct blob linked anywhere in the namespace once
// (a layer shared by two of its repositories counts once), plus the bytes of its manifests.
// Thread-safety: limits_table is thread-safe; the rest are values and pure functions.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.h"

namespace berth::meta {

// A namespace's limits; nullopt is no limit.
struct namespace_limit {
  std::optional<std::uint64_t> quota_bytes;
  std::optional<std::uint64_t> max_repositories;
  bool from_api = false;  // set through the admin API, not in the config (for the refusal's message)
};
using namespace_limits = std::map<std::string, namespace_limit, std::less<>>;

// The limits a store enforces, replaced whole when the namespaces change (the admin API's change at
// run time) while transactions read them.
class limits_table {
 public:
  void set(namespace_limits limits) {
    std::lock_guard lock(mutex_);
    limits_ = std::move(limits);
  }
  // Namespace `ns`'s limits; nullopt when it has none.
  std::optional<namespace_limit> of(std::string_view ns) const {
    std::lock_guard lock(mutex_);
    const auto it = limits_.find(ns);
    if (it == limits_.end()) return std::nullopt;
    return it->second;
  }

 private:
  mutable std::mutex mutex_;
  namespace_limits limits_;  // guarded by mutex_
};

// What a namespace holds, as its counters say.
struct namespace_counts {
  std::uint64_t repositories = 0;
  std::uint64_t bytes = 0;  // distinct blobs, each once, plus manifests
};

// A namespace's counters with its name (metadata_store::namespace_counters).
struct counted_namespace {
  std::string name;
  namespace_counts counts;
};

// The namespace of a repository: the first component of its name.
inline std::string_view namespace_of(std::string_view repo) { return repo.substr(0, repo.find('/')); }

// The refusal (DENIED, naming the namespace, its use, its limit and where it is set) when a change
// took namespace `ns` from `before` to `after` and so grew past one of `limit`'s limits; nullopt when
// it is allowed. A change that adds nothing is allowed even in a namespace over its quota (a
// lowered quota does not stop re-pushing what is there).
std::optional<error> over_limit(std::string_view ns, const namespace_limit& limit, const namespace_counts& before,
                                const namespace_counts& after);

}  // namespace berth::meta
