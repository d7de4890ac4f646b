// /api/v1/gc (global administrators): POST ?dry_run=true|false runs a garbage collection now (a dry
// run only counts) and answers what it freed; GET answers the last runs, newest first, from every
// instance (they are logged in the metadata store), and the runs in flight on this instance with
// what they have freed so far.
#include <nlohmann/json.hpp>

#include "api/audit.h"
#include "gc/collector.h"

namespace berth::api {
namespace {

using json = nlohmann::json;

constexpr std::size_t runs_listed = 20;

json counts_json(const meta::gc_counts& c) {
  return {{"manifests", c.manifests}, {"links", c.links}, {"link_bytes", c.link_bytes},
          {"blobs", c.blobs},         {"bytes", c.bytes}};
}

json run_json(const meta::gc_run& r) {
  json out = counts_json(r.counts);
  out["started_at_ms"] = r.started_ms;
  out["duration_ms"] = r.duration_ms;
  out["dry_run"] = r.dry_run;
  return out;
}

}  // namespace

awaitable<result<response>> admin_gc_run(context& ctx, request& req, const route&) {
  const auto dry = req.query("dry_run");
  if (dry && *dry != "true" && *dry != "false") co_return fail(errc::invalid_argument, "dry_run is true or false");
  gc::collector collector(ctx.meta, ctx.blobs, &ctx.ops.gc_progress(), &ctx.ops.gc_orphans());
  const bool dry_run = dry && *dry == "true";
  auto run = co_await collector.run(ctx.options.gc_grace, dry_run);
  count_gc_run(ctx.ops.metrics(), dry_run, run);
  if (!run) co_return std::unexpected(run.error());
  ctx.audit->detail = describe_gc_run(*run);
  co_return json_response(200, run_json(*run).dump());
}

awaitable<result<response>> admin_gc_runs(context& ctx, request&, const route&) {
  auto runs = co_await ctx.meta.blobs().runs(runs_listed);
  if (!runs) co_return std::unexpected(runs.error());
  json out = json::array();
  for (const auto& r : *runs) out.push_back(run_json(r));
  json running = json::array();
  for (const auto& r : ctx.ops.gc_progress().running()) {
    json one = counts_json(r.counts);
    one["started_at_ms"] = r.started_ms;
    one["phase"] = gc::phase_name(r.at);
    running.push_back(std::move(one));
  }
  co_return json_response(200, json{{"runs", out}, {"running", running}}.dump());
}

}  // namespace berth::api
