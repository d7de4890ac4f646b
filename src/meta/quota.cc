#include "meta/quota.h"

#include <fmt/core.h>

#include "core/byte_size.h"

namespace berth::meta {
namespace {

// Where a limit is set: "namespaces.dev.quota_bytes", or "quota_bytes of namespace dev, admin API".
std::string setting(std::string_view ns, const namespace_limit& limit, std::string_view key) {
  return limit.from_api ? fmt::format("{} of namespace {}, admin API", key, ns)
                        : fmt::format("namespaces.{}.{}", ns, key);
}

}  // namespace

std::optional<error> over_limit(std::string_view ns, const namespace_limit& limit, const namespace_counts& before,
                                const namespace_counts& after) {
  if (limit.max_repositories && after.repositories > before.repositories &&
      after.repositories > *limit.max_repositories) {
    return error{errc::denied,
                 fmt::format("namespace {} may hold at most {} repositories ({}); delete a repository first", ns,
                             *limit.max_repositories, setting(ns, limit, "max_repositories"))};
  }
  if (limit.quota_bytes && after.bytes > before.bytes && after.bytes > *limit.quota_bytes) {
    return error{errc::denied,
                 fmt::format("namespace {} is over its quota: {} used of {}, this push needs {} more "
                             "({}); delete tags or run berth retention, then berth gc",
                             ns, binary_size(before.bytes), binary_size(*limit.quota_bytes),
                             binary_size(after.bytes - before.bytes), setting(ns, limit, "quota_bytes"))};
  }
  return std::nullopt;
}

}  // namespace berth::meta
