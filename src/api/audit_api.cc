// GET /api/v1/audit (global administrators): the audit log, newest first, filtered by repository,
// subject and action (exact) and by time (`since`, `until`: unix milliseconds, or an age such as
// 90s, 30m, 24h, 7d), paged with `n` and `last` (the id of the previous page's last entry) and a Link
// header to the next page.
#include <fmt/core.h>

#include <algorithm>
#include <cctype>
#include <limits>
#include <nlohmann/json.hpp>

#include "api/audit.h"
#include "core/decimal.h"
#include "core/unix_time.h"

namespace berth::api {
namespace {

using json = nlohmann::json;

// Unix milliseconds from "1700000000000", or from an age ("24h": now minus a day).
result<std::int64_t> time_param(std::string_view key, std::string_view text) {
  const auto bad = [&] {
    return fail(errc::invalid_argument,
                fmt::format("{} is unix milliseconds or an age such as 90s, 30m, 24h, 7d", key));
  };
  if (text.empty()) return bad();
  std::int64_t unit_ms = 0;
  switch (text.back()) {
    case 's': unit_ms = 1000; break;
    case 'm': unit_ms = 60 * 1000; break;
    case 'h': unit_ms = 3600 * 1000; break;
    case 'd': unit_ms = 86400 * 1000; break;
    default: break;
  }
  const auto number = parse_decimal(unit_ms == 0 ? text : text.substr(0, text.size() - 1));
  const auto most = std::numeric_limits<std::int64_t>::max() / std::max<std::int64_t>(unit_ms, 1);
  if (!number || *number > static_cast<std::uint64_t>(most)) return bad();
  const auto value = static_cast<std::int64_t>(*number);
  return unit_ms == 0 ? value : unix_millis() - value * unit_ms;
}

// `text` percent-encoded for a query value (unreserved characters stay).
std::string encoded(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

}  // namespace

awaitable<result<response>> admin_audit(context& ctx, request& req, const route&) {
  meta::audit_query q;
  q.repository = req.query("repository").value_or("");
  q.subject = req.query("subject").value_or("");
  q.action = req.query("action").value_or("");
  q.n = ctx.options.max_page;
  if (auto text = req.query("n")) {
    const auto n = parse_decimal(*text);
    if (!n) co_return fail(errc::pagination_invalid, "n must be a non-negative integer");
    q.n = static_cast<std::size_t>(std::min<std::uint64_t>(*n, ctx.options.max_page));
  }
  if (auto text = req.query("last")) {
    const auto last = parse_decimal(*text);
    if (!last || *last > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      co_return fail(errc::pagination_invalid, "last is the id of an entry");
    q.before_id = static_cast<std::int64_t>(*last);
  }
  for (auto [key, field] : {std::pair{"since", &q.since_ms}, std::pair{"until", &q.until_ms}}) {
    if (auto text = req.query(key)) {
      auto t = time_param(key, *text);
      if (!t) co_return std::unexpected(t.error());
      *field = *t;
    }
  }
  const std::size_t n = q.n;
  ++q.n;  // one more, to know whether a next page follows
  auto entries = co_await ctx.meta.audit().list(q);
  if (!entries) co_return std::unexpected(entries.error());
  const bool more = entries->size() > n;
  if (more) entries->resize(n);
  json out = json::array();
  for (const auto& e : *entries) {
    out.push_back({{"id", e.id},
                   {"time_ms", e.at_ms},
                   {"subject", e.subject},
                   {"address", e.address},
                   {"action", e.action},
                   {"repository", e.repository},
                   {"target", e.target},
                   {"outcome", e.outcome},
                   {"status", e.status},
                   {"detail", e.detail}});
  }
  response res = json_response(200, json{{"entries", out}}.dump());
  if (more && !entries->empty()) {
    std::string next = fmt::format("/api/v1/audit?n={}&last={}", n, entries->back().id);
    for (auto [key, value] : {std::pair{"repository", &q.repository}, std::pair{"subject", &q.subject},
                              std::pair{"action", &q.action}}) {
      if (!value->empty()) next += fmt::format("&{}={}", key, encoded(*value));
    }
    for (auto [key, value] : {std::pair{"since", q.since_ms}, std::pair{"until", q.until_ms}}) {
      if (value != 0) next += fmt::format("&{}={}", key, value);
    }
    res.headers.set(http::beast::http::field::link, fmt::format("<{}>; rel=\"next\"", next));
  }
  co_return res;
}

}  // namespace berth::api
