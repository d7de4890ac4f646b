#include "api/registry_api.h"

#include <spdlog/spdlog.h>

#include "api/errors.h"
#include "api/handlers.h"
#include "core/reference.h"

namespace berth::api {
namespace {

using verb = http::beast::http::verb;

awaitable<result<response>> method_not_allowed() {
  co_return fail(errc::method_not_allowed);
}

awaitable<result<response>> base() {
  response res = empty_response(200);
  res.headers.set(http::beast::http::field::content_type, "application/json");
  res.body = "{}";
  co_return res;
}

awaitable<result<response>> dispatch(context& ctx, request& req, const route& r) {
  const verb m = req.method();
  switch (r.kind) {
    case route_kind::not_found:
      co_return fail(errc::unsupported, "no such endpoint", 404);
    case route_kind::base:
      if (m == verb::get || m == verb::head) co_return co_await base();
      break;
    case route_kind::catalog:
      if (m == verb::get) co_return co_await list_catalog(ctx, req);
      break;
    case route_kind::tags:
      if (m == verb::get) co_return co_await list_tags(ctx, req, r);
      break;
    case route_kind::manifest:
      if (m == verb::get || m == verb::head) co_return co_await get_manifest(ctx, req, r, m == verb::head);
      if (m == verb::put) co_return co_await put_manifest(ctx, req, r);
      if (m == verb::delete_) co_return co_await delete_manifest(ctx, req, r);
      break;
    case route_kind::blob:
      if (m == verb::get || m == verb::head) co_return co_await get_blob(ctx, req, r, m == verb::head);
      if (m == verb::delete_) co_return co_await delete_blob(ctx, req, r);
      break;
    case route_kind::uploads:
      if (m == verb::post) co_return co_await start_upload(ctx, req, r);
      break;
    case route_kind::upload:
      if (m == verb::patch) co_return co_await patch_upload(ctx, req, r);
      if (m == verb::put) co_return co_await finish_upload(ctx, req, r);
      if (m == verb::get) co_return co_await upload_status(ctx, req, r);
      if (m == verb::delete_) co_return co_await cancel_upload(ctx, req, r);
      break;
    case route_kind::referrers:
      if (m == verb::get) co_return co_await get_referrers(ctx, req, r);
      break;
  }
  co_return co_await method_not_allowed();
}

}  // namespace

awaitable<response> registry_api::handle(request& req) {
  const route r = match_route(req.path());
  auto res = co_await dispatch(ctx_, req, r);
  response out = res ? std::move(*res) : error_response(res.error());
  if (!res && res.error().http_status() >= 500) {
    spdlog::warn("{} {} -> {} {}", http::beast::http::to_string(req.method()), req.target(),
                 res.error().http_status(), info(res.error().code).wire);
  }
  if (req.method() == verb::head && !out.head_length) {
    out.head_length = out.body.size();
    out.body.clear();
  }
  out.headers.set("Docker-Distribution-API-Version", "registry/2.0");
  co_return out;
}

result<std::string_view> checked_name(std::string_view name) {
  if (!valid_name(name)) return fail(errc::name_invalid, "repository name must match the OCI name grammar");
  return name;
}

result<digest> checked_digest(std::string_view text) { return digest::parse(text); }

std::string absolute_url(const context& ctx, const request& req, std::string_view path) {
  std::string_view scheme = ctx.options.scheme;
  std::optional<std::string_view> host = req.header("Host");
  if (ctx.options.trust_forwarded_headers) {
    if (auto p = req.header("X-Forwarded-Proto")) scheme = *p;
    if (auto h = req.header("X-Forwarded-Host")) host = h;
  }
  if (!host || host->empty()) return std::string(path);
  std::string url;
  url.reserve(scheme.size() + 3 + host->size() + path.size());
  url.append(scheme).append("://").append(*host).append(path);
  return url;
}

response empty_response(unsigned status) {
  response res;
  res.status = status;
  return res;
}

}  // namespace berth::api
