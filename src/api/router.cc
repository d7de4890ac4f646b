#include "api/router.h"

namespace berth::api {
namespace {

constexpr std::string_view kPrefix = "/v2/";

// Splits "a/b/c" into ("a/b", "c"); the head is empty when there is no slash.
std::pair<std::string_view, std::string_view> split_last(std::string_view s) {
  const auto slash = s.rfind('/');
  if (slash == std::string_view::npos) return {{}, s};
  return {s.substr(0, slash), s.substr(slash + 1)};
}

}  // namespace

route match_route(std::string_view path) {
  if (path == "/v2" || path == kPrefix) return {route_kind::base};
  if (!path.starts_with(kPrefix)) return {};
  const auto rest = path.substr(kPrefix.size());
  if (rest == "_catalog") return {route_kind::catalog};

  if (rest.ends_with("/tags/list")) return {route_kind::tags, rest.substr(0, rest.size() - 10)};
  if (rest.ends_with("/blobs/uploads/")) return {route_kind::uploads, rest.substr(0, rest.size() - 15)};

  const auto [head, last] = split_last(rest);
  const auto [name, kind] = split_last(head);
  if (name.empty() || last.empty()) return {};
  if (kind == "manifests") return {route_kind::manifest, name, last};
  if (kind == "referrers") return {route_kind::referrers, name, last};
  if (kind == "blobs") {
    if (last == "uploads") return {route_kind::uploads, name};
    return {route_kind::blob, name, last};
  }
  if (kind == "uploads") {
    const auto [repo, blobs] = split_last(name);
    if (blobs != "blobs" || repo.empty()) return {};
    return {route_kind::upload, repo, last};
  }
  return {};
}

}  // namespace berth::api
