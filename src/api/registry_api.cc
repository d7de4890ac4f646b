#include "api/registry_api.h"

#include <spdlog/spdlog.h>

#include <fmt/core.h>

#include <algorithm>
#include <chrono>

#include "api/audit.h"
#include "api/errors.h"
#include "api/handlers.h"
#include "api/route_table.h"
#include "core/reference.h"

namespace berth::api {
namespace {

// The caller of a /v2 request: anonymous, a bearer token, or Basic credentials.
awaitable<result<caller>> authenticate(context& ctx, request& req, std::string& challenge_error) {
  auto creds = parse_authorization(req);
  if (!creds) co_return std::unexpected(creds.error());
  if (creds->kind == credentials::scheme::none) co_return caller(policy::principal{});
  if (creds->kind == credentials::scheme::bearer) {
    auto claims = ctx.auth.tokens.verify_access(creds->token);
    if (!claims) {
      challenge_error = "invalid_token";
      co_return std::unexpected(claims.error());
    }
    co_return caller(std::move(*claims));
  }
  auto who = co_await login(ctx, req, creds->username, creds->password);
  if (!who) co_return std::unexpected(who.error());
  co_return caller(std::move(*who));
}

// The caller of an admin request, as a principal with its grants. Basic credentials act with the
// identity's full rights; a bearer token only when its scope includes the admin API
// (registry:admin:*, asked for at /token), and then it is resolved by subject. A token without it is
// refused with `insufficient_scope` (set in `challenge_error`): a token cut down to pulling one
// repository cannot create users.
awaitable<result<caller>> authenticate_admin(context& ctx, request& req, std::string& challenge_error) {
  auto creds = parse_authorization(req);
  if (!creds) co_return std::unexpected(creds.error());
  if (creds->kind == credentials::scheme::none) co_return fail(errc::unauthorized, "authentication required");
  if (creds->kind == credentials::scheme::basic) {
    auto who = co_await login(ctx, req, creds->username, creds->password);
    if (!who) co_return std::unexpected(who.error());
    co_return caller(std::move(*who));
  }
  auto claims = ctx.auth.tokens.verify_access(creds->token);
  if (!claims) co_return std::unexpected(claims.error());
  if (!grants_registry(*claims, "admin")) {
    challenge_error = "insufficient_scope";
    co_return fail(errc::unauthorized, fmt::format("the token does not grant the admin API: ask /token for scope {}, "
                                                   "or use Basic credentials",
                                                   admin_scope));
  }
  const std::string subject = claims->subject;
  auto who = co_await ctx.auth.authn.by_subject(subject);
  if (!who) co_return std::unexpected(who.error());
  co_return caller(std::move(*who));
}

bool is_mount(const route& r, const request& req) {
  return r.kind == route_kind::uploads && req.method() == verb::post && req.query("mount");
}

// What a request needs: its endpoint's access (the metrics': administrator unless `metrics.public`);
// for an unknown route or method, any authenticated caller gets the 404 or 405 (anyone, on /token
// and beside the probes).
access required(const context& ctx, const route& r, const endpoint* e) {
  if (e == nullptr) {
    const bool open = r.area == api_area::token || r.area == api_area::operations;
    return {open ? access::kind::anyone : access::kind::authenticated};
  }
  if (e->need.k != access::kind::metrics) return e->need;
  if (ctx.ops.options().metrics_public) return {access::kind::anyone};
  return {access::kind::administrator, policy::action::admin};
}

// For the challenge, every scope the request needs, space-separated: "repository:NAME:pull,push",
// "registry:catalog:*", "registry:admin:*", and for a cross-repository mount also
// "repository:FROM:pull". Names are echoed only when they are valid by the grammar.
std::string challenge_scope(const route& r, const request& req, const access& need) {
  if (r.area == api_area::admin || r.area == api_area::operations) return std::string(admin_scope);
  if (need.k == access::kind::catalog) return "registry:catalog:*";
  if (need.k != access::kind::repository || need.scope.empty() || !valid_name(r.name)) return {};
  std::string scope = fmt::format("repository:{}:{}", r.name, need.scope);
  // A mount also reads the source: a token without pull on it would only get a plain upload.
  if (const auto from = req.query("from"); from && is_mount(r, req) && valid_name(*from))
    scope += fmt::format(" repository:{}:pull", *from);
  return scope;
}

// Whether the caller may use the endpoint; the error (401/403/400) when not. A valid bearer token
// that lacks what the route needs gets error="insufficient_scope" in its challenge, whoever it was
// issued to: without it containerd repeats the request with the same token.
result<void> authorize(const context& ctx, const caller& who, const access& need, const route& r,
                       std::string& challenge_error) {
  using kind = access::kind;
  auto unauthorized = [&](std::string detail) {
    if (who.token() != nullptr) challenge_error = "insufficient_scope";
    return fail(errc::unauthorized, std::move(detail));
  };
  switch (need.k) {
    case kind::anyone:
      return {};
    case kind::authenticated:
    case kind::catalog:
    case kind::administrator:
    case kind::metrics:  // resolved by required(): never seen here
      if (who.anonymous()) return unauthorized("authentication required");
      if (need.k == kind::catalog && who.token() != nullptr && !grants_registry(*who.token(), "catalog"))
        return unauthorized("the token does not grant the catalog");
      if (need.k == kind::administrator && !ctx.pol->decide(who.principal(), policy::action::admin, "*").allowed)
        return fail(errc::denied, fmt::format("{} is not an administrator", who.subject()));
      return {};
    case kind::repository:
      break;
  }
  if (need.from == access::source::body) {  // the handler checks the name (authorize_named)
    if (who.anonymous()) return unauthorized("authentication required");
    return {};
  }
  // Anonymous callers may pull from public namespaces; refused, they are asked to log in.
  if (!valid_name(r.name)) {
    if (who.anonymous()) return unauthorized("authentication required");
    return fail(errc::name_invalid, "repository name must match the OCI name grammar");
  }
  auto o = who.may(*ctx.pol, need.act, r.name);
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
// print only "403 (Forbidden)", or for a 401 with insufficient_scope a body they cannot parse. So a
// HEAD on a blob that is denied (to credentials, or to a token whose subject may not), or refused to
// an anonymous token (a new token would not help it), answers "blob unknown", as it does whether the
// blob exists or not, and the push goes on to the upload's POST, whose refusal they print with its
// message. A request without credentials keeps its 401 (the challenge is how a client learns to log
// in), and so does a token that only lacks a scope it could get. GET keeps its refusal.
error head_refusal(const route& r, const request& req, const caller& who, error e) {
  const bool hopeless =
      e.code == errc::denied || (e.code == errc::unauthorized && who.token() != nullptr && who.anonymous());
  if (hopeless && r.kind == route_kind::blob && req.method() == verb::head) e.code = errc::blob_unknown;
  return e;
}

// In an explicit-creation namespace, pushing into a repository that does not exist is NAME_UNKNOWN.
awaitable<result<void>> check_creation(const context& ctx, const route& r) {
  if (ctx.pol->namespace_of(r.name).create != policy::creation::explicit_) co_return result<void>{};
  auto exists = co_await ctx.meta.repository_exists(r.name);
  if (!exists) co_return std::unexpected(exists.error());
  if (*exists) co_return result<void>{};
  co_return fail(errc::name_unknown, ctx.pol->may_create(r.name).reason);
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
  auto resolved = co_await ctx.auth.authn.by_subject(subject);
  if (resolved) who.emplace(std::move(*resolved));
}

// `identity` is set to the caller's subject once it is known (for the access log and the audit
// log); the handler adds to `note` what the request's audit entry needs beyond the route.
awaitable<result<response>> guarded(const context& shared, request& req, const route& r, const endpoint* e,
                                    std::string& challenge_error, std::string& identity, audit_note& note) {
  context ctx = shared;
  auto pol = co_await ctx.auth.policies.current();
  if (!pol) co_return std::unexpected(std::move(pol.error()));
  ctx.pol = std::move(*pol);
  const access need = required(ctx, r, e);
  std::optional<caller> who;
  if (need.k == access::kind::anyone) {
    who.emplace(policy::principal{});  // the token endpoint reads the credentials itself; probes need none
  } else {
    // GCC 12 miscompiles co_await inside a conditional expression: one statement each.
    result<caller> authenticated = fail(errc::internal);
    if (r.area == api_area::admin || r.area == api_area::operations) {
      authenticated = co_await authenticate_admin(ctx, req, challenge_error);
    } else {
      authenticated = co_await authenticate(ctx, req, challenge_error);
    }
    if (!authenticated) co_return std::unexpected(authenticated.error());
    who.emplace(std::move(*authenticated));
    identity = who->subject();
  }
  if (auto ok = authorize(ctx, *who, need, r, challenge_error); !ok) {
    co_return std::unexpected(head_refusal(r, req, *who, ok.error()));
  }
  if (e == nullptr) {
    if (r.kind == route_kind::not_found) co_return fail(errc::not_found, "no such endpoint");
    co_return fail(errc::method_not_allowed);
  }
  const bool automatic_mount = is_mount(r, req) && !req.query("from");
  if (who->token() != nullptr && (need.k == access::kind::catalog || automatic_mount)) {
    co_await widen_to_identity(ctx, who);
  }
  if (e->creates_repository) {
    auto creatable = co_await check_creation(ctx, r);
    if (!creatable) co_return std::unexpected(creatable.error());
  }
  ctx.who = &*who;
  ctx.current = e;
  ctx.audit = &note;
  co_return co_await e->handle(ctx, req, r);
}

}  // namespace

awaitable<result<policy::principal>> login(context& ctx, const request& req, std::string_view username,
                                           std::string_view password) {
  if (auto hit = ctx.auth.authn.cached(username, password)) co_return std::move(*hit);
  const std::string address = client_address(ctx, req);
  const auto attempt = ctx.auth.limiter.make_attempt(address, username, password);
  if (const auto wait = ctx.auth.limiter.wait(attempt); wait.count() > 0) {
    error held_off{
        errc::too_many_requests,
        fmt::format("too many failed logins for this account from {}; retry in {} s", address, wait.count())};
    held_off.retry_after = wait;
    co_return std::unexpected(std::move(held_off));
  }
  auto who = co_await ctx.auth.authn.basic(username, password);
  if (who) {
    ctx.auth.limiter.succeeded(attempt);
  } else if (who.error().code == errc::unauthorized) {
    ctx.auth.limiter.failed(attempt);
    // The username only when it is a plausible name: a password typed into the wrong field is not logged.
    spdlog::info("failed login from {} as {}: {}", address,
                 auth::valid_account_name(username) ? username : std::string_view("(invalid name)"),
                 who.error().detail);
    co_await audit_failed_login(ctx, req, username, password, who.error().detail);
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
  } else if (!res && res.error().code == errc::unavailable) {
    // A backend that cannot be reached: clients print only "503 Service Unavailable" for a 5xx (they
    // read no body), so say when to try again; the cause is in the log.
    out.headers.set(http::beast::http::field::retry_after, "5");
  }
  if (!res && res.error().http_status() >= 500) {
    spdlog::warn("{} {} -> {} {}", http::beast::http::to_string(req.method()), req.target(), res.error().http_status(),
                 info(res.error().code).wire);
  }
  if (req.method() == verb::head && !out.head_length) {
    out.head_length = out.body.size();
    out.body.clear();
  }
  out.headers.set("Docker-Distribution-API-Version", "registry/2.0");
  return out;
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
    return fail(errc::invalid_argument, fmt::format("the {} header must be host[:port]", header));
  };
  if (auto host = req.header("Host"); host && !host->empty() && !valid_authority(*host)) return bad("Host");
  if (!ctx.options.trust_forwarded_headers) return {};
  if (auto host = req.header("X-Forwarded-Host"); host && !valid_authority(*host)) return bad("X-Forwarded-Host");
  if (auto proto = req.header("X-Forwarded-Proto"); proto && *proto != "http" && *proto != "https")
    return fail(errc::invalid_argument, "the X-Forwarded-Proto header must be http or https");
  return {};
}

}  // namespace

namespace {

// An upload request, counted in berth_uploads_in_flight while it is served.
class upload_in_flight {
 public:
  upload_in_flight(ops::metrics& m, const endpoint* e) {
    const bool upload = e != nullptr && (e->kind == route_kind::uploads || e->kind == route_kind::upload) &&
                        (e->method == verb::post || e->method == verb::patch || e->method == verb::put);
    if (upload) {
      metrics_ = &m;
      m.upload(true);
    }
  }
  ~upload_in_flight() {
    if (metrics_ != nullptr) metrics_->upload(false);
  }
  upload_in_flight(const upload_in_flight&) = delete;
  upload_in_flight& operator=(const upload_in_flight&) = delete;

 private:
  ops::metrics* metrics_ = nullptr;
};

// Why a caller was refused, for berth_auth_failures_total; nullopt when it was not, or when it sent
// no credentials at all (the first step of every client's login, not a failure).
std::optional<ops::auth_failure> refusal_reason(const request& req, const result<response>& res) {
  if (res) return std::nullopt;
  switch (res.error().code) {
    case errc::denied:
      return ops::auth_failure::denied;
    case errc::too_many_requests:
      return ops::auth_failure::rate_limited;
    case errc::unauthorized: {
      auto creds = parse_authorization(req);
      if (!creds) return ops::auth_failure::bad_credentials;
      if (creds->kind == credentials::scheme::bearer) return ops::auth_failure::bad_token;
      if (creds->kind == credentials::scheme::basic) return ops::auth_failure::bad_credentials;
      return std::nullopt;
    }
    default:
      return std::nullopt;
  }
}

// Counts the answered request in the metrics and writes its access-log line.
void account(context& ctx, const request& req, const route& r, const endpoint* e, const result<response>& res,
             const response& out, std::string_view identity, std::chrono::steady_clock::time_point started) {
  const auto elapsed = std::chrono::steady_clock::now() - started;
  ops::metrics& m = ctx.ops.metrics();
  m.request(endpoint_index(e), out.status, elapsed);
  const std::uint64_t bytes_out = out.stream ? out.stream->length : out.body.size();
  if (e != nullptr) {
    if (e->kind == route_kind::blob && e->method == verb::get) m.blob_bytes_sent(bytes_out);
    if (e->kind == route_kind::upload || e->kind == route_kind::uploads) m.blob_bytes_received(req.body_bytes());
    if (e->kind == route_kind::token && out.status == 200) m.token_issued();
  }
  if (const auto why = refusal_reason(req, res)) m.auth_failed(*why);
  const auto& log = ctx.ops.access_log();
  if (!log.enabled()) return;
  // A repository only where the route names one (an admin route's name may be a user's).
  const bool names_repository = r.area == api_area::registry || r.kind == route_kind::repository;
  log.write(ops::access_entry{
      .time = std::chrono::system_clock::now(),
      .remote_address = client_address(ctx, req),
      .identity = identity,
      .method = http::beast::http::to_string(req.method()),
      .route = e != nullptr ? e->operation : std::string_view("none"),
      .repository = names_repository ? r.name : std::string_view(),
      .status = out.status,
      .bytes_in = req.body_bytes(),
      .bytes_out = bytes_out,
      .duration = elapsed,
      .user_agent = req.header("User-Agent").value_or(""),
  });
}

}  // namespace

awaitable<response> registry_api::handle(request& req) {
  const auto started = std::chrono::steady_clock::now();
  std::string decoded_name;
  const route r = match_route(req.path(), decoded_name);
  const endpoint* e = find_endpoint(r.kind, req.method());
  const upload_in_flight counted(ctx_.ops.metrics(), e);
  std::string challenge_error;
  std::string identity;
  audit_note note;
  result<response> res = fail(errc::internal);
  if (auto ok = check_origin(ctx_, req); !ok) {
    res = std::unexpected(ok.error());
  } else {
    res = co_await guarded(ctx_, req, r, e, challenge_error, identity, note);
  }
  response out = res ? std::move(*res) : error_response(res.error());
  if (!res && res.error().code == errc::unauthorized) {
    out.headers.set(http::beast::http::field::www_authenticate,
                    challenge(ctx_.auth, r.area, absolute_url(ctx_, req, "/token"),
                              challenge_scope(r, req, required(ctx_, r, e)), challenge_error));
  }
  out = finalize(req, res, std::move(out));
  co_await audit_request(ctx_, req, r, e, res, out.status, identity, note);
  account(ctx_, req, r, e, res, out, identity, started);
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

namespace berth::api {

response json_response(unsigned status, const std::string& body) {
  response res = empty_response(status);
  res.headers.set(http::beast::http::field::content_type, "application/json");
  res.body = body;
  return res;
}

}  // namespace berth::api
