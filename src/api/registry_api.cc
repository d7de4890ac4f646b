#include "api/registry_api.h"

#include <spdlog/spdlog.h>

#include <fmt/core.h>

#include <algorithm>

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
  // For the challenge, every scope the request needs, space-separated: "repository:NAME:pull,push",
  // "registry:catalog:*", and for a cross-repository mount also "repository:FROM:pull". Names are
  // echoed only when they are valid by the grammar.
  std::string scope;
};

requirement required(const route& r, const request& req) {
  using policy::action;
  const verb m = req.method();
  auto repo = [&](action a, std::string_view actions) {
    requirement need{requirement::kind::repository, a, r.name, {}};
    if (valid_name(r.name)) need.scope = fmt::format("repository:{}:{}", r.name, actions);
    return need;
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
      if (m == verb::post) {
        auto need = repo(action::push, "pull,push");
        // A mount also reads the source: a token without pull on it would only get a plain upload.
        const auto from = req.query("from");
        if (from && req.query("mount") && valid_name(*from) && !need.scope.empty())
          need.scope += fmt::format(" repository:{}:pull", *from);
        return need;
      }
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

// Whether the caller may use the route; the error (401/403/400) when not. A valid bearer token that
// lacks what the route needs gets error="insufficient_scope" in its challenge, whoever it was issued
// to: without it containerd repeats the request with the same token.
result<void> authorize(const context& ctx, const caller& who, const requirement& need, std::string& challenge_error) {
  using kind = requirement::kind;
  auto unauthorized = [&](std::string detail) {
    if (who.token() != nullptr) challenge_error = "insufficient_scope";
    return fail(errc::unauthorized, std::move(detail));
  };
  if (need.k == kind::authenticated || need.k == kind::catalog) {
    if (who.anonymous()) return unauthorized("authentication required");
    if (need.k == kind::catalog && who.token() != nullptr && !grants_registry(*who.token(), "catalog"))
      return unauthorized("the token does not grant the catalog");
    return {};
  }
  if (!valid_name(need.repository)) {
    if (who.anonymous()) return unauthorized("authentication required");
    return fail(errc::name_invalid, "repository name must match the OCI name grammar");
  }
  auto o = who.may(ctx.auth.pol, need.a, need.repository);
  switch (o.v) {
    case caller::verdict::allowed:
      return {};
    case caller::verdict::challenge:
      return unauthorized(std::move(o.reason));
    case caller::verdict::denied:
      if (who.anonymous()) return unauthorized("authentication required");
      return fail(errc::denied, std::move(o.reason));
  }
  return {};
}

// A refused HEAD has no body, and a push begins with a HEAD on each blob: podman, skopeo and docker
// would print only "403 Forbidden" and stop. Answered "blob unknown" (which reveals no more than the
// refusal: it is the answer whether the blob exists or not), the push goes on to the upload's POST,
// whose refusal they print with the policy's reason. GET keeps the 403 and its message.
error head_refusal(const route& r, const request& req, error e) {
  if (e.code == errc::denied && r.kind == route_kind::blob && req.method() == verb::head) e.code = errc::blob_unknown;
  return e;
}

// In an explicit-creation namespace, pushing into a repository that does not exist is NAME_UNKNOWN.
awaitable<result<void>> check_creation(const context& ctx, const route& r, verb m) {
  const bool creates = (r.kind == route_kind::uploads && m == verb::post) ||
                       (r.kind == route_kind::manifest && m == verb::put);
  if (!creates) co_return result<void>{};
  if (ctx.auth.pol.namespace_of(r.name).create != policy::creation::explicit_) co_return result<void>{};
  auto exists = co_await ctx.meta.repository_exists(r.name);
  if (!exists) co_return std::unexpected(exists.error());
  if (*exists) co_return result<void>{};
  co_return fail(errc::name_unknown, ctx.auth.pol.may_create(r.name).reason);
}

// The catalog and automatic mounts are decided by what the subject behind a bearer token may see
// now, not by the token's few scopes: the caller becomes that identity (after the route's own
// authorization, which the token bounds). A subject that cannot be resolved (a federated one) keeps
// the token's scopes.
awaitable<void> widen_to_identity(context& ctx, std::optional<caller>& who) {
  if (who->anonymous()) {
    who.emplace(policy::principal{});
    co_return;
  }
  const std::string subject = who->subject();
  auto resolved = co_await ctx.pool.run([&] { return ctx.auth.authn.by_subject(subject); });
  if (resolved) who.emplace(std::move(*resolved));
}

bool automatic_mount(const route& r, const request& req) {
  return r.kind == route_kind::uploads && req.method() == verb::post && req.query("mount") && !req.query("from");
}

awaitable<result<response>> guarded(context& ctx, request& req, const route& r, std::string& challenge_error,
                                    std::optional<caller>& who) {
  auto authenticated = co_await authenticate(ctx, req, challenge_error);
  if (!authenticated) co_return std::unexpected(authenticated.error());
  who.emplace(std::move(*authenticated));
  const requirement need = required(r, req);
  if (auto ok = authorize(ctx, *who, need, challenge_error); !ok) {
    co_return std::unexpected(head_refusal(r, req, ok.error()));
  }
  if (who->token() != nullptr && (need.k == requirement::kind::catalog || automatic_mount(r, req))) {
    co_await widen_to_identity(ctx, who);
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
  const std::string address = client_address(ctx, req);
  const auto attempt = ctx.auth.limiter.make_attempt(address, username, password);
  if (const auto wait = ctx.auth.limiter.wait(attempt); wait.count() > 0) {
    error held_off{errc::too_many_requests,
                   fmt::format("too many failed logins for this account from {}; retry in {} s", address, wait.count())};
    held_off.retry_after = wait;
    co_return std::unexpected(std::move(held_off));
  }
  auto who = co_await ctx.pool.run([&] { return ctx.auth.authn.basic(username, password); });
  if (who) {
    ctx.auth.limiter.succeeded(attempt);
  } else if (who.error().code == errc::unauthorized) {
    ctx.auth.limiter.failed(attempt);
    // The username only when it is a plausible name: a password typed into the wrong field is not logged.
    spdlog::info("failed login from {} as {}: {}", address,
                 auth::valid_account_name(username) ? username : std::string_view("(invalid name)"),
                 who.error().detail);
  }
  co_return who;
}

std::string client_address(const context& ctx, const request& req) {
  if (ctx.options.trust_forwarded_headers) {
    if (auto forwarded = req.header("X-Forwarded-For")) {
      // The last entry is the one the trusted proxy appended; earlier ones are the client's to write.
      auto last = forwarded->substr(forwarded->rfind(',') + 1);
      while (!last.empty() && last.front() == ' ') last.remove_prefix(1);
      while (!last.empty() && last.back() == ' ') last.remove_suffix(1);
      if (!last.empty()) return std::string(last);
    }
  }
  return req.remote_address();
}

namespace {

// Every response leaves through here: error logging, Retry-After, HEAD bodies, the API version header.
response finalize(const request& req, const result<response>& res, response out) {
  if (!res && res.error().retry_after.count() > 0) {
    out.headers.set(http::beast::http::field::retry_after, std::to_string(res.error().retry_after.count()));
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

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// host[:port] (RFC 3986 authority without userinfo): a registered name or IPv4 address, or an IPv6
// address in brackets, and at most five digits of port.
bool valid_authority(std::string_view text) {
  std::string_view host = text;
  std::optional<std::string_view> port;
  if (text.starts_with('[')) {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return false;
    host = text.substr(1, close - 1);
    const auto rest = text.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return false;
    if (!rest.empty()) port = rest.substr(1);
    if (host.empty() || host.find_first_not_of("0123456789abcdefABCDEF:.") != std::string_view::npos) return false;
  } else {
    if (const auto colon = text.rfind(':'); colon != std::string_view::npos) {
      host = text.substr(0, colon);
      port = text.substr(colon + 1);
    }
    const bool name_chars = std::all_of(host.begin(), host.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-' || c == '.' || c == '_' ||
             c == '~';
    });
    if (host.empty() || host.size() > 253 || !name_chars) return false;
  }
  return !port || (!port->empty() && port->size() <= 5 && std::all_of(port->begin(), port->end(), is_digit));
}

// The headers that name this registry in URLs (Location, the challenge's realm): Host, and behind a
// trusted proxy X-Forwarded-Host and X-Forwarded-Proto. A value that is not host[:port] (or
// http/https) is refused rather than echoed.
result<void> check_origin(const context& ctx, const request& req) {
  auto bad = [](std::string_view header) {
    return fail(errc::unsupported, fmt::format("the {} header must be host[:port]", header), 400);
  };
  if (auto host = req.header("Host"); host && !host->empty() && !valid_authority(*host)) return bad("Host");
  if (!ctx.options.trust_forwarded_headers) return {};
  if (auto host = req.header("X-Forwarded-Host"); host && !valid_authority(*host)) return bad("X-Forwarded-Host");
  if (auto proto = req.header("X-Forwarded-Proto"); proto && *proto != "http" && *proto != "https")
    return fail(errc::unsupported, "the X-Forwarded-Proto header must be http or https", 400);
  return {};
}

}  // namespace

awaitable<response> registry_api::handle(request& req) {
  if (auto ok = check_origin(ctx_, req); !ok) co_return finalize(req, std::unexpected(ok.error()));
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
    const auto need = required(r, req);
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
