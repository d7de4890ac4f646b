// The lifecycle of tags, in the admin API (JSON; errors use the OCI error envelope):
//   GET  repositories/<name>/tags?sort=time|name&order=desc|asc&n=&last=   tag records, paged (Link)
//   GET  repositories/<name>/tags/<tag>/history                            every digest the tag had
//   POST repositories/<name>/tags/<tag> {"source": "repo:tag" | "repo@digest"}   promotion
// The listings need `list` on the repository; a promotion `push` on the target (route_table.cc) and
// `pull` on the source, checked here through the same policy. Records: meta/tag_records.h.
#include <fmt/core.h>

#include <algorithm>
#include <ctime>
#include <nlohmann/json.hpp>

#include "api/audit.h"
#include "core/decimal.h"
#include "core/reference.h"
#include "core/unix_time.h"

namespace berth::api {
namespace {

using json = nlohmann::json;
namespace field = http::beast::http;

constexpr std::size_t body_limit = 64 * 1024;

// "2026-11-30T16:04:05.123Z" (UTC).
std::string iso_time(std::int64_t ms) {
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::gmtime_r(&seconds, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, ms % 1000);
}

json digest_or_null(const std::optional<digest>& d) { return d ? json(d->str()) : json(); }

result<std::string_view> checked_tag_name(std::string_view tag) {
  if (!valid_tag(tag)) return fail(errc::tag_invalid, "tag must match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}");
  return tag;
}

// A promotion's source: "repo:tag" or "repo@sha256:...".
struct source_ref {
  std::string repository;
  std::optional<std::string> tag;
  std::optional<digest> dgst;
};

result<source_ref> parse_source(std::string_view text) {
  source_ref out;
  if (const auto at = text.find('@'); at != std::string_view::npos) {
    auto d = checked_digest(text.substr(at + 1));
    if (!d) return std::unexpected(d.error());
    out.repository = text.substr(0, at);
    out.dgst = std::move(*d);
  } else {
    const auto colon = text.rfind(':');
    const auto slash = text.rfind('/');
    if (colon == std::string_view::npos || (slash != std::string_view::npos && colon < slash))
      return fail(errc::invalid_argument, "source is repo:tag or repo@sha256:<hex>");
    auto tag = checked_tag_name(text.substr(colon + 1));
    if (!tag) return std::unexpected(tag.error());
    out.repository = text.substr(0, colon);
    out.tag = std::string(*tag);
  }
  if (!valid_name(out.repository))
    return fail(errc::name_invalid, "the source's repository name must match the OCI name grammar");
  return out;
}

}  // namespace

awaitable<result<response>> admin_tags(context& ctx, request& req, const route& r) {
  auto name = checked_name(r.name);
  if (!name) co_return std::unexpected(name.error());
  const std::string sort_text = req.query("sort").value_or("time");
  if (sort_text != "time" && sort_text != "name") co_return fail(errc::invalid_argument, "sort is time or name");
  const auto sort = sort_text == "time" ? meta::tag_sort::time : meta::tag_sort::name;
  // Newest first by time, A to Z by name, unless asked otherwise.
  const std::string order = req.query("order").value_or(sort == meta::tag_sort::time ? "desc" : "asc");
  if (order != "desc" && order != "asc") co_return fail(errc::invalid_argument, "order is desc or asc");
  std::size_t n = ctx.options.max_page;
  if (auto text = req.query("n")) {
    const auto parsed = parse_decimal(*text);
    if (!parsed) co_return fail(errc::pagination_invalid, "n must be a non-negative integer");
    n = static_cast<std::size_t>(std::min<std::uint64_t>(*parsed, ctx.options.max_page));
  }
  const std::string last = req.query("last").value_or("");
  auto records = co_await ctx.meta.tags().tag_list(*name, sort, order == "desc", last, n + 1);
  if (!records) co_return std::unexpected(records.error());
  if (!*records) co_return fail(errc::name_unknown, fmt::format("repository {} does not exist", *name));
  auto& page = **records;
  const bool more = page.size() > n;
  if (more) page.erase(page.begin() + static_cast<std::ptrdiff_t>(n), page.end());
  json tags = json::array();
  for (const auto& t : page) {
    tags.push_back({{"name", t.name},
                    {"digest", t.dgst.str()},
                    {"media_type", t.media_type},
                    {"pushed_at", iso_time(t.pushed_at_ms)},
                    {"pushed_at_ms", t.pushed_at_ms},
                    {"pushed_by", t.pushed_by},
                    {"size", t.size},
                    {"platforms", t.platforms}});
  }
  response res = json_response(200, json{{"name", *name}, {"tags", tags}}.dump());
  if (more && !page.empty()) {
    res.headers.set(field::field::link,
                    fmt::format("</api/v1/repositories/{}/tags?sort={}&order={}&n={}&last={}>; rel=\"next\"", *name,
                                sort_text, order, n, page.back().name));
  }
  co_return res;
}

awaitable<result<response>> admin_tag_history(context& ctx, request&, const route& r) {
  auto name = checked_name(r.name);
  if (!name) co_return std::unexpected(name.error());
  auto tag = checked_tag_name(r.reference);
  if (!tag) co_return std::unexpected(tag.error());
  auto events = co_await ctx.meta.tags().tag_history(*name, *tag);
  if (!events) co_return std::unexpected(events.error());
  if (events->empty()) {
    auto exists = co_await ctx.meta.repository_exists(*name);
    if (!exists) co_return std::unexpected(exists.error());
    if (!*exists) co_return fail(errc::name_unknown, fmt::format("repository {} does not exist", *name));
    co_return fail(errc::manifest_unknown, fmt::format("{}:{} was never tagged", *name, *tag));
  }
  json history = json::array();
  for (const auto& e : *events) {
    json entry{{"digest", e.dgst.str()},
               {"pushed_at", iso_time(e.at_ms)},
               {"pushed_at_ms", e.at_ms},
               {"pushed_by", e.by}};
    if (!e.source.empty()) entry["source"] = e.source;
    history.push_back(std::move(entry));
  }
  co_return json_response(200, json{{"name", *name}, {"tag", *tag}, {"history", history}}.dump());
}

awaitable<result<response>> admin_promote(context& ctx, request& req, const route& r) {
  auto name = checked_name(r.name);
  if (!name) co_return std::unexpected(name.error());
  auto tag = checked_tag_name(r.reference);
  if (!tag) co_return std::unexpected(tag.error());
  auto body = co_await req.read_body(body_limit);
  if (!body) co_return std::unexpected(body.error());
  const auto doc = json::parse(*body, nullptr, false);
  const auto it = doc.is_object() ? doc.find("source") : doc.end();
  if (!doc.is_object() || it == doc.end() || !it->is_string())
    co_return fail(errc::invalid_argument, R"(the body is {"source": "repo:tag"} or {"source": "repo@sha256:..."})");
  const std::string source_text = it->get<std::string>();
  ctx.audit->detail = "from " + source_text;
  auto source = parse_source(source_text);
  if (!source) co_return std::unexpected(source.error());

  // The route checked push on the target; the source needs pull, by the same policy.
  if (auto o = ctx.who->may(*ctx.pol, policy::action::pull, source->repository); o.v != caller::verdict::allowed)
    co_return fail(errc::denied, std::move(o.reason));

  std::optional<digest> target = source->dgst;
  if (source->tag) {
    auto found = co_await ctx.meta.manifest_by_tag(source->repository, *source->tag);
    if (!found) co_return std::unexpected(found.error());
    if (!*found) co_return fail(errc::manifest_unknown, fmt::format("source {} does not exist", source_text));
    target = (*found)->dgst;
  }
  const digest& d = *target;
  // The store refuses to move an immutable tag in the transaction that would move it.
  const std::string immutable = ctx.pol->immutable(*name, *tag).value_or("");
  const meta::push_stamp stamp{ctx.who->subject(), unix_millis(), source_text, immutable};
  auto promoted = co_await ctx.meta.tags().promote(*name, *tag, source->repository, d, stamp);
  if (!promoted) co_return std::unexpected(promoted.error());
  if (!*promoted) co_return fail(errc::manifest_unknown, fmt::format("source {} does not exist", source_text));
  co_return json_response(200, json{{"name", *name},
                                    {"tag", *tag},
                                    {"digest", d.str()},
                                    {"previous_digest", digest_or_null((*promoted)->previous)},
                                    {"moved", (*promoted)->moved}}
                                   .dump());
}

}  // namespace berth::api
