// /api/v1/webhooks... (global administrators): the configured webhooks, their deliveries, a
// redelivery and a test ping (webhooks/sender.h). Deliveries come from the metadata store's outbox
// (meta/webhook_records.h), so every instance answers for all of them.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>

#include "api/handlers.h"
#include "core/unix_time.h"

namespace berth::api {
namespace {

using json = nlohmann::json;

constexpr std::size_t deliveries_listed = 50;  // per page

// The configured webhooks, or the error a server without any answers.
result<const webhooks::sender*> configured(const context& ctx) {
  if (ctx.options.webhooks == nullptr) return fail(errc::name_unknown, "no webhooks are configured (README \"Webhooks\")");
  return ctx.options.webhooks;
}

result<std::int64_t> parse_id(std::string_view text, std::string_view what) {
  std::int64_t id = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc() || end != text.data() + text.size() || id < 0)
    return fail(errc::invalid_argument, fmt::format("{} must be a delivery id (a number), not `{}`", what, text));
  return id;
}

json delivery_json(const meta::webhook_delivery& d) {
  return {{"id", d.id},
          {"event_id", d.event_id},
          {"event", d.event},
          {"time_ms", d.at_ms},
          {"repository", d.repository},
          {"tag", d.tag},
          {"digest", d.digest},
          {"actor", d.actor},
          {"state", meta::to_string(d.state)},
          {"attempts", d.attempts},
          {"status", d.status},
          {"last_error", d.last_error},
          {"next_at_ms", d.next_at_ms},
          {"updated_at_ms", d.updated_at_ms}};
}

}  // namespace

awaitable<result<response>> admin_webhooks(context& ctx, request&, const route&) {
  json out = json::array();
  if (ctx.options.webhooks != nullptr) {
    for (const auto& h : ctx.options.webhooks->hooks()) {
      out.push_back({{"name", h.name},
                     {"url", h.url},
                     {"events", h.events},
                     {"repositories", h.repositories},
                     {"timeout_seconds", h.timeout_seconds}});
    }
  }
  co_return json_response(200, json{{"webhooks", out}}.dump());
}

awaitable<result<response>> admin_webhook_deliveries(context& ctx, request& req, const route& r) {
  auto sender = configured(ctx);
  if (!sender) co_return std::unexpected(sender.error());
  const bool known = std::any_of((*sender)->hooks().begin(), (*sender)->hooks().end(),
                                 [&](const auto& h) { return h.name == r.name; });
  if (!known) co_return fail(errc::name_unknown, fmt::format("no webhook named {} in the configuration", r.name));
  const auto failed = req.query("failed");
  if (failed && *failed != "true" && *failed != "false") co_return fail(errc::invalid_argument, "failed is true or false");
  std::int64_t before = 0;
  if (const auto b = req.query("before")) {
    auto id = parse_id(*b, "before");
    if (!id) co_return std::unexpected(id.error());
    before = *id;
  }
  auto found = co_await ctx.meta.webhooks().deliveries(r.name, failed && *failed == "true", before, deliveries_listed);
  if (!found) co_return std::unexpected(found.error());
  json out = json::array();
  for (const auto& d : *found) out.push_back(delivery_json(d));
  co_return json_response(200, json{{"deliveries", out}}.dump());
}

awaitable<result<response>> admin_webhook_ping(context& ctx, request&, const route& r) {
  auto sender = configured(ctx);
  if (!sender) co_return std::unexpected(sender.error());
  auto status = co_await ctx.options.webhooks->ping(r.name, ctx.who->subject());
  if (!status) co_return std::unexpected(status.error());
  co_return json_response(200, json{{"webhook", r.name}, {"status", *status}}.dump());
}

awaitable<result<response>> admin_redeliver(context& ctx, request&, const route& r) {
  auto id = parse_id(r.reference, "the delivery");
  if (!id) co_return std::unexpected(id.error());
  auto found = co_await ctx.meta.webhooks().redeliver(*id, unix_millis());
  if (!found) co_return std::unexpected(found.error());
  if (!*found) co_return fail(errc::name_unknown, fmt::format("no webhook delivery {}", *id));
  co_return json_response(202, json{{"id", *id}, {"state", "pending"}}.dump());
}

}  // namespace berth::api
