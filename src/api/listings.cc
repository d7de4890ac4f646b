// Paginated listings: GET /v2/<name>/tags/list and GET /v2/_catalog, in lexical order with `n` and
// `last`, and a Link header to the next page when one may follow.
#include <fmt/core.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "api/handlers.h"
#include "core/decimal.h"

namespace berth::api {
namespace {

namespace field = http::beast::http;

struct page {
  std::size_t n;
  std::string last;
};

result<page> page_of(const context& ctx, const request& req) {
  page p{ctx.options.max_page, req.query("last").value_or("")};
  if (auto text = req.query("n")) {
    const auto n = parse_decimal(*text);
    if (!n) return fail(errc::pagination_invalid, "n must be a non-negative integer");
    p.n = static_cast<std::size_t>(std::min<std::uint64_t>(*n, ctx.options.max_page));
  }
  return p;
}

// Fills the body from `items` (fetched with one extra to know whether more follow) and the Link.
response listing(std::string_view path, nlohmann::json body,
                 std::string_view key, std::vector<std::string> items, const page& p) {
  const bool more = items.size() > p.n;
  if (more) items.resize(p.n);
  response res = empty_response(200);
  res.headers.set(field::field::content_type, "application/json");
  if (more && !items.empty()) {
    res.headers.set(field::field::link,
                    fmt::format("<{}?n={}&last={}>; rel=\"next\"", path, p.n, items.back()));
  }
  body[std::string(key)] = std::move(items);
  res.body = body.dump();
  return res;
}

}  // namespace

awaitable<result<response>> list_tags(context& ctx, request& req, const route& r) {
  auto name = checked_name(r.name);
  if (!name) co_return std::unexpected(name.error());
  auto p = page_of(ctx, req);
  if (!p) co_return std::unexpected(p.error());
  auto tags = co_await ctx.meta.list_tags(*name, p->last, p->n + 1);
  if (!tags) co_return std::unexpected(tags.error());
  if (!*tags) co_return fail(errc::name_unknown, std::string(*name));
  co_return listing(fmt::format("/v2/{}/tags/list", *name), {{"name", *name}}, "tags", std::move(**tags), *p);
}

awaitable<result<response>> list_catalog(context& ctx, request& req) {
  auto p = page_of(ctx, req);
  if (!p) co_return std::unexpected(p.error());
  // Only the repositories the caller may list, paged over the filtered sequence: read batches until
  // the page (plus one, to know whether more follow) is full or the store is exhausted.
  std::vector<std::string> visible;
  std::string last = p->last;
  const std::size_t batch = std::max<std::size_t>(p->n + 1, 100);
  while (visible.size() < p->n + 1) {
    auto repos = co_await ctx.meta.list_repositories(last, batch);
    if (!repos) co_return std::unexpected(repos.error());
    for (auto& repo : *repos) {
      if (visible.size() < p->n + 1 && ctx.who->allowed(*ctx.pol, policy::action::list, repo)) visible.push_back(repo);
    }
    if (repos->size() < batch) break;
    last = repos->back();
  }
  co_return listing("/v2/_catalog", nlohmann::json::object(), "repositories", std::move(visible), *p);
}

}  // namespace berth::api
