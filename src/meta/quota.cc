#include "meta/quota.h"

#include <fmt/core.h>

#include "core/byte_size.h"

namespace berth::meta {

std::optional<error> over_limit(std::string_view ns, const namespace_limit& limit, const namespace_counts& before,
                                const namespace_counts& after) {
  if (limit.max_repositories && after.repositories > before.repositories &&
      after.repositories > *limit.max_repositories) {
    return error{errc::denied,
                 fmt::format("namespace {} may hold at most {} repositories (namespaces.{}.max_repositories); "
                             "delete a repository first",
                             ns, *limit.max_repositories, ns)};
  }
  if (limit.quota_bytes && after.bytes > before.bytes && after.bytes > *limit.quota_bytes) {
    return error{errc::denied,
                 fmt::format("namespace {} is over its quota: {} used of {}, this push needs {} more "
                             "(namespaces.{}.quota_bytes); delete tags or run berth retention, then berth gc",
                             ns, binary_size(before.bytes), binary_size(*limit.quota_bytes),
                             binary_size(after.bytes - before.bytes), ns)};
  }
  return std::nullopt;
}

}  // namespace berth::meta
