// The token endpoint of Docker registry token authentication:
//   GET  /token?service=S&scope=repository:a:pull&scope=repository:b:pull,push[&offline_token=true]
//        with Basic credentials (docker, podman, skopeo) or none (anonymous: public namespaces only);
//   POST /token, an OAuth2 form: grant_type=password (username, password) or grant_type=refresh_token
//        (refresh_token), scope (space-separated), service, client_id (containerd, docker).
// The answer is {"token","access_token","expires_in","issued_at"} plus "refresh_token" for
// offline_token=true and for the OAuth2 form. Each scope is cut down to what the policy allows;
// refused actions are recorded in the token's "denied" claim with the policy's reason (a request
// the token does not cover is then refused with it). `registry:catalog:*` and
// `registry:admin:*` (the admin API) go to any authenticated caller that asks for them: what they
// show or allow is then decided by the caller's own grants.
#include <fmt/chrono.h>
#include <fmt/core.h>

#include <chrono>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

#include "api/errors.h"
#include "api/handlers.h"
#include "core/reference.h"

namespace berth::api {
namespace {

using policy::action;

constexpr std::size_t form_limit = 64 * 1024;

// The actions a requested scope names ("*" is every repository action but admin).
std::vector<action> requested_actions(const std::vector<std::string>& names) {
  std::vector<action> out;
  auto add = [&](action a) {
    if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
  };
  for (const auto& n : names) {
    if (n == "*") {
      add(action::pull);
      add(action::push);
      add(action::delete_);
    } else if (auto a = policy::parse_action(n)) {
      add(*a);
    }
  }
  return out;
}

std::string rfc3339(std::int64_t unix_seconds) {
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", fmt::gmtime(static_cast<std::time_t>(unix_seconds)));
}

response issue(const context& ctx, const policy::principal& who, const std::vector<auth::scope>& wanted,
               bool with_refresh) {
  auth::access_claims claims;
  claims.subject = who.subject;
  std::map<std::string, policy::action_set> granted;  // repository -> actions, merged over scopes
  std::set<std::string> registry;                     // "admin", "catalog"
  for (const auto& s : wanted) {
    if (s.type == "registry" && (s.name == "catalog" || s.name == "admin")) {
      if (!who.anonymous()) registry.insert(s.name);
      continue;
    }
    if (s.type != "repository" || !valid_name(s.name)) continue;
    for (action a : requested_actions(s.actions)) {
      auto d = ctx.pol->decide(who, a, s.name);
      if (d.allowed) {
        granted[s.name].add(a);
      } else {
        claims.denied[fmt::format("repository:{}:{}", s.name, policy::to_string(a))] = std::move(d.reason);
      }
    }
  }
  for (const auto& [name, actions] : granted) {
    auth::scope s{"repository", name, {}};
    const std::string list = actions.str();
    for (auto rest = std::string_view(list); !rest.empty();) {
      const auto comma = std::min(rest.find(','), rest.size());
      s.actions.emplace_back(rest.substr(0, comma));
      rest.remove_prefix(std::min(comma + 1, rest.size()));
    }
    claims.access.push_back(std::move(s));
  }
  for (const auto& name : registry) claims.access.push_back(auth::scope{"registry", name, {"*"}});

  const std::string token = ctx.auth.tokens.issue_access(claims);
  nlohmann::json body = {{"token", token},
                         {"access_token", token},
                         {"expires_in", ctx.auth.tokens.access_lifetime().count()},
                         {"issued_at", rfc3339(claims.issued_at)}};
  // Federated identities cannot be re-resolved without their OIDC token: no refresh for them.
  const bool refreshable = who.subject.starts_with("user:") || who.subject.starts_with("robot:");
  if (with_refresh && refreshable && ctx.auth.refresh_tokens) {
    body["refresh_token"] = ctx.auth.tokens.issue_refresh(who.subject);
  }
  return json_response(200, body.dump());
}

std::vector<auth::scope> scopes_of(const std::vector<std::string>& params) {
  std::vector<auth::scope> out;
  for (const auto& p : params) {
    auto more = auth::parse_scopes(p);
    out.insert(out.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
  }
  return out;
}

}  // namespace

awaitable<result<response>> token_get(context& ctx, request& req, const route&) {
  auto creds = parse_authorization(req);
  if (!creds) co_return std::unexpected(creds.error());
  if (creds->kind == credentials::scheme::bearer) co_return fail(errc::unauthorized, "Basic credentials expected");
  policy::principal who;
  if (creds->kind == credentials::scheme::basic) {
    auto logged_in = co_await login(ctx, req, creds->username, creds->password);
    if (!logged_in) co_return std::unexpected(logged_in.error());
    who = std::move(*logged_in);
  }
  const bool offline = req.query("offline_token").value_or("") == "true";
  co_return issue(ctx, who, scopes_of(req.query_all("scope")), offline);
}

awaitable<result<response>> token_post(context& ctx, request& req, const route&) {
  auto body = co_await req.read_body(form_limit);
  if (!body) co_return std::unexpected(body.error());
  auto field = [&](std::string_view key) {
    auto values = http::form_values(*body, key);
    return values.empty() ? std::string() : values.front();
  };
  const std::string grant_type = field("grant_type");
  policy::principal who;
  if (grant_type == "password") {
    const std::string username = field("username");
    const std::string password = field("password");
    auto logged_in = co_await login(ctx, req, username, password);
    if (!logged_in) co_return std::unexpected(logged_in.error());
    who = std::move(*logged_in);
  } else if (grant_type == "refresh_token") {
    auto subject = ctx.auth.tokens.verify_refresh(field("refresh_token"));
    if (!subject) co_return std::unexpected(subject.error());
    const std::string s = *subject;
    auto resolved = co_await ctx.auth.authn.by_subject(s);
    if (!resolved) co_return std::unexpected(resolved.error());
    who = std::move(*resolved);
  } else {
    co_return fail(errc::invalid_argument, "grant_type must be password or refresh_token");
  }
  co_return issue(ctx, who, scopes_of(http::form_values(*body, "scope")), true);
}

awaitable<result<response>> token_keys(context& ctx, request&, const route&) {
  co_return json_response(200, ctx.auth.tokens.public_jwks());
}

}  // namespace berth::api
