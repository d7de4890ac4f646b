// The operations endpoints (rows of route_table.cc): /health/live, /health/ready and /metrics.
#include "api/operations.h"

#include <nlohmann/json.hpp>

#include <vector>

#include "api/handlers.h"
#include "api/route_table.h"

namespace berth::api {
namespace {

using namespace std::chrono_literals;

// How long a readiness answer is reused: a probe every second from every load balancer costs one
// check, not one per probe.
constexpr auto kReadinessMaxAge = 1s;
// How long the storage gauges' reading is reused: several Prometheus servers scraping every second
// cost one read of the counters.
constexpr auto kStoreMaxAge = 1s;

// The labels of the route table's rows, in its order (the metrics' endpoint indices).
std::span<const ops::endpoint_labels> endpoint_labels() {
  static const std::vector<ops::endpoint_labels> labels = [] {
    std::vector<ops::endpoint_labels> out;
    for (const auto& e : route_table()) out.push_back({e.operation, http::beast::http::to_string(e.method)});
    return out;
  }();
  return labels;
}

// What a failed check shows: the error's detail, else its code's message (backends log the cause
// and hand out no detail of the machine).
std::string describe(const error& e) { return e.detail.empty() ? std::string(info(e.code).message) : e.detail; }

response answer(const operations::readiness& r) {
  response res = json_response(r.ready ? 200 : 503, r.body);
  res.headers.set(http::beast::http::field::cache_control, "no-store");
  return res;
}

}  // namespace

operations::operations(operations_options options) : options_(options), metrics_(endpoint_labels()), access_log_(options.access_log) {}

void count_gc_run(ops::metrics& m, bool dry_run, const result<meta::gc_run>& run) {
  if (dry_run) return;
  if (!run) {
    m.gc_failed();
    return;
  }
  m.gc_ran(std::chrono::milliseconds(run->duration_ms), run->counts.bytes);
}

void count_retention_run(ops::metrics& m, const result<std::vector<lifecycle::repository_plan>>& deleted) {
  if (!deleted) {
    m.retention_failed();
    return;
  }
  const auto t = lifecycle::totals(*deleted);
  m.retention_ran(t.tags, t.manifests);
}

awaitable<result<response>> health_live(context&, request&, const route&) {
  response res = json_response(200, R"({"status":"ok"})");
  res.headers.set(http::beast::http::field::cache_control, "no-store");
  co_return res;
}

// Ready when the blob store takes a write and the metadata store answers; 503 naming the failing
// check otherwise, and from the start of a graceful shutdown (so that a load balancer drains the
// instance while its requests in flight finish).
awaitable<result<response>> health_ready(context& ctx, request&, const route&) {
  if (ctx.ops.is_stopping()) {
    co_return answer({false, R"({"status":"unavailable","checks":{"shutdown":"the server is stopping"}})"});
  }
  if (auto cached = ctx.ops.last_readiness().get(kReadinessMaxAge)) co_return answer(*cached);
  auto storage = co_await ctx.blobs.probe();
  auto metadata = co_await ctx.meta.probe();
  const bool ready = storage && metadata;
  const nlohmann::json body{{"status", ready ? "ok" : "unavailable"},
                            {"checks",
                             {{"storage", storage ? std::string("ok") : describe(storage.error())},
                              {"metadata", metadata ? std::string("ok") : describe(metadata.error())}}}};
  operations::readiness r{ready, body.dump()};
  ctx.ops.last_readiness().set(r);
  co_return answer(r);
}

// The counters, and what the metadata store knows for every instance: the storage gauges from its
// namespace counters and the end of the last collection (two cheap reads, reused for a second).
// When the store cannot answer, the scrape still answers the rest without them (the store logs
// why; /health/ready names it).
awaitable<result<response>> metrics_get(context& ctx, request&, const route&) {
  auto store = ctx.ops.last_store_reading().get(kStoreMaxAge);
  if (!store) {
    auto counted = co_await ctx.meta.namespace_counters();
    auto collections = co_await ctx.meta.blobs().runs(1, /*collections_only=*/true);
    if (counted && collections) {
      store.emplace();
      for (auto& n : *counted) store->namespaces.push_back({std::move(n.name), n.counts.bytes, n.counts.repositories});
      if (!collections->empty()) store->last_collection_ms = collections->front().started_ms + collections->front().duration_ms;
      ctx.ops.last_store_reading().set(*store);
    }
  }
  response res;
  res.headers.set(http::beast::http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
  res.body = ctx.ops.metrics().render(store ? *store : ops::store_reading{});
  co_return res;
}

}  // namespace berth::api
