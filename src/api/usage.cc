// GET /api/v1/usage[?namespace=NS] (global administrators): storage use per namespace and
// repository (repositories, tags, manifests, logical and stored bytes), the dedup ratio
// (logical / stored), and each namespace's quota with its use (stored + manifest bytes, as the
// quota counts them; meta/quota.h), from the metadata store (metadata_store::usage).
#include <nlohmann/json.hpp>

#include "api/handlers.h"

namespace berth::api {
namespace {

using json = nlohmann::json;

// logical / stored; 1 for an empty store.
double ratio(std::uint64_t logical, std::uint64_t stored) {
  return stored == 0 ? 1.0 : static_cast<double>(logical) / static_cast<double>(stored);
}

}  // namespace

awaitable<result<response>> admin_usage(context& ctx, request& req, const route&) {
  const std::string ns = req.query("namespace").value_or("");
  if (ns.find('/') != std::string::npos) co_return fail(errc::invalid_argument, "a namespace has no '/'");
  auto report = co_await ctx.meta.usage(ns);
  if (!report) co_return std::unexpected(report.error());
  json namespaces = json::array();
  std::uint64_t logical_total = 0;
  for (const auto& n : report->namespaces) {
    json repos = json::array();
    std::uint64_t tags = 0, manifests = 0, logical = 0;
    for (const auto& r : n.repositories) {
      repos.push_back({{"name", r.name}, {"tags", r.tags}, {"manifests", r.manifests}, {"logical_bytes", r.logical_bytes}});
      tags += r.tags;
      manifests += r.manifests;
      logical += r.logical_bytes;
    }
    logical_total += logical;
    const std::uint64_t quota_used = n.stored_bytes + n.manifest_bytes;
    const auto& rule = ctx.pol->namespace_of(n.name + "/");
    json entry{{"name", n.name}, {"repositories", n.repositories.size()}, {"tags", tags},
               {"manifests", manifests}, {"logical_bytes", logical}, {"stored_bytes", n.stored_bytes},
               {"manifest_bytes", n.manifest_bytes}, {"quota_used_bytes", quota_used},
               {"dedup_ratio", ratio(logical, n.stored_bytes)}, {"quota_bytes", nullptr},
               {"quota_percent", nullptr}, {"max_repositories", nullptr}, {"repository_usage", repos}};
    if (rule.name == n.name && rule.quota_bytes) {
      entry["quota_bytes"] = *rule.quota_bytes;
      entry["quota_percent"] = *rule.quota_bytes == 0 ? 100.0
                                                       : 100.0 * static_cast<double>(quota_used) /
                                                             static_cast<double>(*rule.quota_bytes);
    }
    if (rule.name == n.name && rule.max_repositories) entry["max_repositories"] = *rule.max_repositories;
    namespaces.push_back(std::move(entry));
  }
  json out{{"namespaces", namespaces}};
  if (ns.empty()) {
    out["logical_bytes"] = logical_total;
    out["stored_bytes"] = report->stored_bytes;
    out["dedup_ratio"] = ratio(logical_total, report->stored_bytes);
  }
  co_return json_response(200, out.dump());
}

}  // namespace berth::api
