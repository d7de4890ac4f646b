#include "api/registry_api.h"

#include <spdlog/spdlog.h>

#include <fmt/core.h>

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

// What a route needs from the caller.
struct requirement {
  enum class kind { authenticated, catalog, repository } k = kind::authenticated;
  policy::action a = policy::action::pull;
  std::string_view repository;
  std::string scope;  // for the challenge: "repository:NAME:pull,push", "registry:catalog:*"
};

requirement required(const route& r, verb m) {
  using policy::action;
  auto repo = [&](action a, std::string_view actions) {
    return requirement{requirement::kind::repository, a, r.name, fmt::format("repository:{}:{}", r.name, actions)};
  };
  const bool read = m == verb::get || m == verb::head;
  switch (r.kind) {
    case route_kind::not_found:
    case route_kind::base:
      break;
    case route_kind::catalog:
      return {requirement::kind::catalog, action::list, {}, "registry:catalog:*"};
    case route_kind::tags:
      if (read) return repo(action::list, "pull");
      break;
    case route_kind::referrers:
      if (read) return repo(action::pull, "pull");
      break;
    case route_kind::manifest:
    case route_kind::blob:
      if (read) return repo(action::pull, "pull");
      if (m == verb::delete_) return repo(action::delete_, "delete");
      if (m == verb::put && r.kind == route_kind::manifest) return repo(action::push, "pull,push");
      break;
    case route_kind::uploads:
      if (m == verb::post) return repo(action::push, "pull,push");
      break;
    case route_kind::upload:
      if (m == verb::patch || m == verb::put || m == verb::get || m == verb::delete_)
        return repo(action::push, "pull,push");
      break;
  }
  return {};  // base, unknown routes and methods: any authenticated caller gets the 404/405
}

awaitable<result<caller>> authenticate(context& ctx, request& req, std::string& challenge_error) {
  const auto header = req.header("Authorization");
  if (!header) co_return caller(policy::principal{});
  if (header->starts_with("Bearer ") || header->starts_with("bearer ")) {
    if (ctx.auth.tokens == nullptr) co_return fail(errc::unauthorized, "bearer tokens are not enabled");
    auto claims = ctx.auth.tokens->verify_access(header->substr(7));
    if (!claims) {
      challenge_error = "invalid_token";
      co_return std::unexpected(claims.error());
    }
    co_return caller(std::move(*claims));
  }
  auto creds = parse_basic(*header);
  if (!creds) co_return fail(errc::unauthorized, "malformed Authorization header (Basic or Bearer expected)");
  auto who = co_await login(ctx, req, creds->username, creds->password);
  if (!who) co_return std::unexpected(who.error());
  co_return caller(std::move(*who));
}

// Whether the caller may use the route; the error (401/403/400) when not.
result<void> authorize(const context& ctx, const caller& who, const requirement& need, std::string& challenge_error) {
  using kind = requirement::kind;
  if (need.k == kind::authenticated || need.k == kind::catalog) {
    if (who.anonymous()) return fail(errc::unauthorized, "authentication required");
    if (need.k == kind::catalog && who.token() != nullptr) {
      for (const auto& s : who.token()->access) {
        if (s.type == "registry" && s.name == "catalog") return {};
      }
      challenge_error = "insufficient_scope";
      return fail(errc::unauthorized, "the token does not grant the catalog");
    }
    return {};
  }
  if (!valid_name(need.repository)) {
    if (who.anonymous()) return fail(errc::unauthorized, "authentication required");
    return fail(errc::name_invalid, "repository name must match the OCI name grammar");
  }
  auto o = who.may(ctx.auth.pol, need.a, need.repository);
  switch (o.v) {
    case caller::verdict::allowed:
      return {};
    case caller::verdict::challenge:
      challenge_error = "insufficient_scope";
      return fail(errc::unauthorized, std::move(o.reason));
    case caller::verdict::denied:
      if (who.anonymous()) return fail(errc::unauthorized, "authentication required");
      return fail(errc::denied, std::move(o.reason));
  }
  return {};
}

// In an explicit-creation namespace, pushing into a repository that does not exist is NAME_UNKNOWN.
awaitable<result<void>> check_creation(const context& ctx, const route& r, verb m) {
  const bool creates = (r.kind == route_kind::uploads && m == verb::post) ||
                       (r.kind == route_kind::manifest && m == verb::put);
  if (!creates) co_return result<void>{};
  const auto& ns = ctx.auth.pol.namespace_of(r.name);
  if (ns.create != policy::creation::explicit_) co_return result<void>{};
  auto exists = co_await ctx.meta.repository_exists(r.name);
  if (!exists) co_return std::unexpected(exists.error());
  if (*exists) co_return result<void>{};
  co_return fail(errc::name_unknown,
              fmt::format("repository {} does not exist and namespace {} creates repositories explicitly; "
                          "create it with: berth repo create {}",
                          r.name, ns.name.empty() ? std::string("(default)") : ns.name, r.name));
}

awaitable<result<response>> guarded(context& ctx, request& req, const route& r, std::string& challenge_error,
                                    std::optional<caller>& who) {
  auto authenticated = co_await authenticate(ctx, req, challenge_error);
  if (!authenticated) co_return std::unexpected(authenticated.error());
  who.emplace(std::move(*authenticated));
  const requirement need = required(r, req.method());
  if (auto ok = authorize(ctx, *who, need, challenge_error); !ok) co_return std::unexpected(ok.error());
  if (need.k == requirement::kind::catalog && who->token() != nullptr) {
    // Filter the catalog by what the subject may see now, not by the token's few scopes.
    const std::string subject = who->subject();
    auto resolved = co_await ctx.pool.run([&] { return ctx.auth.authn.by_subject(subject); });
    if (resolved) who.emplace(std::move(*resolved));
  }
  auto creatable = co_await check_creation(ctx, r, req.method());
  if (!creatable) co_return std::unexpected(creatable.error());
  context per_request = ctx;
  per_request.who = &*who;
  co_return co_await dispatch(per_request, req, r);
}

}  // namespace

awaitable<result<policy::principal>> login(context& ctx, const request& req, std::string_view username,
                                           std::string_view password) {
  if (auto hit = ctx.auth.authn.cached(username, password)) co_return std::move(*hit);
  const std::string& address = req.remote_address();
  if (!ctx.auth.limiter.allowed(address)) {
    co_return fail(errc::too_many_requests,
                   fmt::format("too many failed logins from {}; retry in {} s", address,
                               ctx.auth.limiter.retry_after(address).count()));
  }
  auto who = co_await ctx.pool.run([&] { return ctx.auth.authn.basic(username, password); });
  if (!who && who.error().code == errc::unauthorized) {
    ctx.auth.limiter.failed(address);
    // The username only when it is a plausible name: a password typed into the wrong field is not logged.
    spdlog::info("failed login from {} as {}: {}", address,
                 auth::valid_account_name(username) ? username : std::string_view("(invalid name)"),
                 who.error().detail);
  }
  co_return who;
}

namespace {

// Every response leaves through here: error logging, Retry-After, HEAD bodies, the API version header.
response finalize(const request& req, const result<response>& res, response out) {
  if (!res && res.error().code == errc::too_many_requests) {
    out.headers.set(http::beast::http::field::retry_after, "60");
  }
  if (!res && res.error().http_status() >= 500) {
    spdlog::warn("{} {} -> {} {}", http::beast::http::to_string(req.method()), req.target(),
                 res.error().http_status(), info(res.error().code).wire);
  }
  if (req.method() == verb::head && !out.head_length) {
    out.head_length = out.body.size();
    out.body.clear();
  }
  out.headers.set("Docker-Distribution-API-Version", "registry/2.0");
  return out;
}

response finalize(const request& req, result<response> res) {
  response out = res ? std::move(*res) : error_response(res.error());
  return finalize(req, res, std::move(out));
}

}  // namespace

awaitable<response> registry_api::handle(request& req) {
  const std::string_view path = req.path();
  if (path == "/token" || path.starts_with("/token/")) {
    auto res = co_await token_endpoint(ctx_, req);
    co_return finalize(req, std::move(res));
  }
  if (path.starts_with("/api/v1/")) {
    auto res = co_await admin_endpoint(ctx_, req);
    co_return finalize(req, std::move(res));
  }

  const route r = match_route(path);
  std::string challenge_error;
  std::optional<caller> who;
  auto res = co_await guarded(ctx_, req, r, challenge_error, who);
  response out = res ? std::move(*res) : error_response(res.error());
  if (!res && res.error().code == errc::unauthorized) {
    const auto need = required(r, req.method());
    out.headers.set(http::beast::http::field::www_authenticate,
                    challenge(ctx_.auth, absolute_url(ctx_, req, "/token"), need.scope, challenge_error));
  }
  co_return finalize(req, res, std::move(out));
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

namespace berth::api {

response json_response(unsigned status, const std::string& body) {
  response res = empty_response(status);
  res.headers.set(http::beast::http::field::content_type, "application/json");
  res.body = body;
  return res;
}

}  // namespace berth::api
