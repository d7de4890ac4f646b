#include "api/router.h"

#include "http/message.h"

#include <utility>

namespace berth::api {
namespace {

constexpr std::string_view kPrefix = "/v2/";
constexpr std::string_view kAdminPrefix = "/api/v1/";

// Splits "a/b/c" into ("a/b", "c"); the head is empty when there is no slash.
std::pair<std::string_view, std::string_view> split_last(std::string_view s) {
  const auto slash = s.rfind('/');
  if (slash == std::string_view::npos) return {{}, s};
  return {s.substr(0, slash), s.substr(slash + 1)};
}

route match_registry(std::string_view path) {
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

// A repository's tags under /api/v1/repositories/<name>/: read from the end, as OCI paths are, so
// `a/tags` names a's tags; the repository `a/tags` is named with its slashes encoded (`a%2Ftags`,
// decoded by match_route(path, decoded)), which the CLI always does.
route match_repository_item(route r, std::string_view key) {
  if (key.ends_with("/tags")) {
    r.kind = route_kind::repository_tags;
    r.name = key.substr(0, key.size() - 5);
    return r;
  }
  // "<name>/tags/<tag>/history", else "<name>/tags/<tag>" (a tag may be named "history").
  const auto tag_route = [&](std::string_view path, route_kind kind) {
    const auto [head, tag] = split_last(path);
    const auto [name, tags] = split_last(head);
    if (tags != "tags" || name.empty() || tag.empty()) return false;
    r.kind = kind;
    r.name = name;
    r.reference = tag;
    return true;
  };
  if (key.ends_with("/history") && tag_route(key.substr(0, key.size() - 8), route_kind::tag_history)) return r;
  if (tag_route(key, route_kind::repository_tag)) return r;
  r.kind = route_kind::repository;
  r.name = key;
  return r;
}

// /api/v1/<collection>[/<item>]: the item is a name (repositories: with slashes) or a grant id.
route match_admin(std::string_view rest) {
  route r{.area = api_area::admin};
  if (rest == "retention/preview") r.kind = route_kind::retention_preview;
  if (rest == "retention/run") r.kind = route_kind::retention_run;
  if (rest == "retention/rules") r.kind = route_kind::retention_rules;
  if (r.kind != route_kind::not_found) return r;
  const auto slash = rest.find('/');
  const std::string_view collection = rest.substr(0, slash);
  const bool item = slash != std::string_view::npos;
  const std::string_view key = item ? rest.substr(slash + 1) : std::string_view();
  if (item && key.empty()) return r;
  if (collection == "webhooks" && item) {  // <name>/deliveries, <name>/ping
    const auto last = key.rfind('/');
    if (last == std::string_view::npos || last == 0) return r;
    const auto what = key.substr(last + 1);
    if (what == "deliveries") r.kind = route_kind::webhook_deliveries;
    if (what == "ping") r.kind = route_kind::webhook_ping;
    if (r.kind != route_kind::not_found) r.name = key.substr(0, last);
    return r;
  }
  struct entry {
    std::string_view collection;
    route_kind all;
    route_kind one;  // not_found: the collection has no items
  };
  static constexpr entry kEntries[] = {
      {"whoami", route_kind::whoami, route_kind::not_found},
      {"check", route_kind::check, route_kind::not_found},
      {"namespaces", route_kind::namespaces, route_kind::namespace_},
      {"repositories", route_kind::repositories, route_kind::repository},
      {"users", route_kind::users, route_kind::user},
      {"robots", route_kind::robots, route_kind::robot},
      {"grants", route_kind::grants, route_kind::grant},
      {"gc", route_kind::gc, route_kind::not_found},
      {"usage", route_kind::usage, route_kind::not_found},
      {"webhooks", route_kind::webhooks, route_kind::not_found},
      {"webhook-deliveries", route_kind::not_found, route_kind::webhook_delivery},
      {"audit", route_kind::audit, route_kind::not_found},
  };
  for (const auto& e : kEntries) {
    if (e.collection != collection) continue;
    r.kind = item ? e.one : e.all;
    if (r.kind == route_kind::repository) return match_repository_item(r, key);
    if (r.kind == route_kind::grant || r.kind == route_kind::webhook_delivery) {
      r.reference = key;
    } else {
      r.name = key;
    }
    return r;
  }
  return r;
}

}  // namespace

route match_route(std::string_view path) {
  if (path == "/token") return {route_kind::token, {}, {}, api_area::token};
  if (path == "/token/jwks.json") return {route_kind::token_keys, {}, {}, api_area::token};
  if (path.starts_with("/token/")) return {route_kind::not_found, {}, {}, api_area::token};
  if (path.starts_with(kAdminPrefix)) return match_admin(path.substr(kAdminPrefix.size()));
  if (path == "/health/live") return {route_kind::health_live, {}, {}, api_area::operations};
  if (path == "/health/ready") return {route_kind::health_ready, {}, {}, api_area::operations};
  if (path == "/metrics") return {route_kind::metrics, {}, {}, api_area::operations};
  if (path.starts_with("/health/")) return {route_kind::not_found, {}, {}, api_area::operations};
  return match_registry(path);
}

route match_route(std::string_view path, std::string& decoded) {
  route r = match_route(path);
  if (r.area == api_area::admin && r.name.find('%') != std::string_view::npos) {
    decoded = http::percent_decode(r.name, http::encoding::path);
    r.name = decoded;
  }
  return r;
}

}  // namespace berth::api
