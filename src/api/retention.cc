// The retention API (admin; lifecycle/retention.h decides):
//   POST /api/v1/retention/preview {"repository": PATTERN}?   what a run would delete now
//   POST /api/v1/retention/run     {"repository": PATTERN}?   deletes it, and answers what it deleted
// Both answer {"repositories": [{"repository", "tags": [{"tag", "digest", "pushed_at_ms", "size"}],
// "manifests": [digest, ...], "untagged": U, "bytes_freed_by_gc": B}], "tags": N, "manifests": M,
// "untagged": U, "bytes_freed_by_gc": B}; a repository with nothing to delete is left out. `untagged`
// counts the manifests (of `manifests`) that go because untagged_days expired them; bytes_freed_by_gc
// is what a garbage collection after the deletion frees (a run reports its plan's figure).
//   GET /api/v1/retention/rules   {"rules": [{"repositories", "keep_last", "keep_days", "protect",
//                                  "untagged_days", "source": "config" | "api"}]}: the rules in force
//   PUT /api/v1/retention/rules   {"rules": [...]}: replaces the rules made through the API (the
//                                  config's always apply besides), each checked as the config's are
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "api/audit.h"
#include "core/unix_time.h"
#include "lifecycle/retention.h"

namespace berth::api {
namespace {

using json = nlohmann::json;

constexpr std::size_t body_limit = 64 * 1024;

// The optional repository pattern of the body (an empty body: every repository).
awaitable<result<std::optional<std::string>>> only_pattern(request& req) {
  auto body = co_await req.read_body(body_limit);
  if (!body) co_return std::unexpected(body.error());
  if (body->empty()) co_return std::nullopt;
  const auto doc = json::parse(*body, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) co_return fail(errc::invalid_argument, "the body must be a JSON object");
  const auto it = doc.find("repository");
  if (it == doc.end() || it->is_null()) co_return std::nullopt;
  if (!it->is_string() || it->get<std::string>().empty())
    co_return fail(errc::invalid_argument, "`repository` must be a repository pattern such as \"dev/*\"");
  co_return it->get<std::string>();
}

response plans_response(const std::vector<lifecycle::repository_plan>& plans) {
  json repos = json::array();
  for (const auto& p : plans) {
    json ts = json::array();
    for (const auto& t : p.tags) {
      ts.push_back({{"tag", t.name}, {"digest", t.dgst.str()}, {"pushed_at_ms", t.pushed_at_ms}, {"size", t.size}});
    }
    json ms = json::array();
    for (const auto& d : p.manifests) ms.push_back(d.str());
    repos.push_back({{"repository", p.repository},
                     {"tags", std::move(ts)},
                     {"manifests", std::move(ms)},
                     {"untagged", p.untagged},
                     {"bytes_freed_by_gc", p.bytes_freed_by_gc}});
  }
  const auto t = lifecycle::totals(plans);
  return json_response(200, json{{"repositories", repos},
                                 {"tags", t.tags},
                                 {"manifests", t.manifests},
                                 {"untagged", t.untagged},
                                 {"bytes_freed_by_gc", t.bytes_freed_by_gc}}
                                .dump());
}

awaitable<result<std::vector<lifecycle::repository_plan>>> planned(context& ctx, request& req) {
  auto only = co_await only_pattern(req);
  if (!only) co_return std::unexpected(only.error());
  const auto now_ms = unix_millis();
  co_return co_await lifecycle::plan(ctx.meta, ctx.options.retention, *only, now_ms,
                                     lifecycle::immutable_tags(*ctx.pol));
}

// The rules of a PUT body, each checked as the config's are; INVALID_ARGUMENT naming the rule and the field.
awaitable<result<std::vector<lifecycle::retention_rule>>> rules_of_body(request& req) {
  auto body = co_await req.read_body(body_limit);
  if (!body) co_return std::unexpected(body.error());
  const auto doc = json::parse(*body, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || doc.size() != 1 || !doc.contains("rules") || !doc["rules"].is_array())
    co_return fail(errc::invalid_argument, "the body must be a JSON object {\"rules\": [rule, ...]}");
  std::vector<lifecycle::retention_rule> rules;
  for (std::size_t i = 0; i < doc["rules"].size(); ++i) {
    const auto where = fmt::format("rules[{}]", i);
    auto rule = meta::rule_from_json(doc["rules"][i], where);
    if (!rule) co_return std::unexpected(rule.error());
    if (auto valid = lifecycle::check_rule(*rule, where); !valid) co_return std::unexpected(valid.error());
    rules.push_back(std::move(*rule));
  }
  co_return rules;
}

}  // namespace

awaitable<result<response>> admin_retention_rules(context& ctx, request&, const route&) {
  auto stored = co_await ctx.meta.retention_rules().rules();
  if (!stored) co_return std::unexpected(stored.error());
  json rules = json::array();
  const auto add = [&](const lifecycle::retention_rule& r, const char* source) {
    auto doc = meta::rule_json(r);
    doc["source"] = source;
    rules.push_back(std::move(doc));
  };
  for (const auto& r : ctx.options.retention.rules) add(r, "config");
  for (const auto& r : *stored) add(r, "api");
  co_return json_response(200, json{{"rules", std::move(rules)}}.dump());
}

awaitable<result<response>> admin_put_retention_rules(context& ctx, request& req, const route&) {
  auto rules = co_await rules_of_body(req);
  if (!rules) co_return std::unexpected(rules.error());
  auto replaced = co_await ctx.meta.retention_rules().replace_rules(*rules);
  if (!replaced) co_return std::unexpected(replaced.error());
  json docs = json::array();
  for (const auto& r : *rules) docs.push_back(meta::rule_json(r));
  ctx.audit->detail = fmt::format("{} rule(s): {}", rules->size(), docs.dump());
  co_return json_response(200, json{{"rules", std::move(docs)}}.dump());
}

awaitable<result<response>> admin_retention_preview(context& ctx, request& req, const route&) {
  auto plans = co_await planned(ctx, req);
  if (!plans) co_return std::unexpected(plans.error());
  co_return plans_response(*plans);
}

awaitable<result<response>> admin_retention_run(context& ctx, request& req, const route&) {
  auto plans = co_await planned(ctx, req);
  if (!plans) co_return std::unexpected(plans.error());
  auto deleted = co_await lifecycle::apply(ctx.meta, std::move(*plans));
  count_retention_run(ctx.ops.metrics(), deleted);
  if (!deleted) co_return std::unexpected(deleted.error());
  ctx.audit->detail = describe_retention_run(*deleted);
  co_return plans_response(*deleted);
}

}  // namespace berth::api
