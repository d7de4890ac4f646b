// GET /api/v1/usage[?namespace=NS] (global administrators): storage use per namespace and
// repository (repositories, tags, manifests, logical and stored bytes) and the dedup ratio
// (logical / stored), from the metadata store's aggregates (metadata_store::usage).
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
    namespaces.push_back({{"name", n.name}, {"repositories", n.repositories.size()}, {"tags", tags},
                          {"manifests", manifests}, {"logical_bytes", logical}, {"stored_bytes", n.stored_bytes},
                          {"dedup_ratio", ratio(logical, n.stored_bytes)}, {"repository_usage", repos}});
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
