// The admin API, /api/v1/... (JSON in and out; Basic credentials, or a bearer token whose scope
// includes registry:admin:*):
//   GET    whoami                         the caller and its grants
//   GET    check?action=A&repository=R[&subject=S]   the policy's answer, and for a push whether the
//                                         repository exists or may be created (another subject: admins only)
//   GET    namespaces                     declared namespaces and the default
//   GET    repositories                   repositories the caller may list
//   POST   repositories {"name"}          create (admin on the repository)
//   DELETE repositories/<name>            delete with its manifests and tags (admin on the repository)
//   GET|POST users, DELETE users/<name>   (global admin)
//   GET|POST robots, DELETE robots/<name> revoke (global admin); POST answers the token, once
//   GET|POST grants, DELETE grants/<id>   stored grants; GET also shows the config's (global admin)
// Errors use the OCI error envelope.
#include <fmt/core.h>

#include <chrono>
#include <limits>
#include <nlohmann/json.hpp>

#include "api/errors.h"
#include "api/handlers.h"
#include "auth/password.h"
#include "core/reference.h"
#include "core/unix_time.h"

namespace berth::api {
namespace {

using verb = http::beast::http::verb;
using json = nlohmann::json;
using policy::action;

constexpr std::size_t body_limit = 64 * 1024;

std::string_view visibility_name(policy::visibility v) {
  return v == policy::visibility::public_pull ? "public-pull" : "private";
}
std::string_view creation_name(policy::creation c) { return c == policy::creation::explicit_ ? "explicit" : "on-push"; }

json grant_json(const policy::grant& g) {
  return {{"subject", g.subject}, {"actions", g.actions.str()}, {"repositories", g.repositories}, {"source", g.source}};
}

// The caller as a principal with its grants. Basic credentials act with the identity's full rights;
// a bearer token only when its scope includes the admin API (registry:admin:*, asked for at
// /token), and then it is resolved by subject. A token without it is refused with
// `insufficient_scope` (set in `challenge_error`): a token cut down to pulling one repository
// cannot create users.
awaitable<result<policy::principal>> admin_caller(context& ctx, request& req, std::string& challenge_error) {
  const auto header = req.header("Authorization");
  if (!header) co_return fail(errc::unauthorized, "authentication required");
  if (header->starts_with("Bearer ") || header->starts_with("bearer ")) {
    if (ctx.auth.tokens == nullptr) co_return fail(errc::unauthorized, "bearer tokens are not enabled");
    auto claims = ctx.auth.tokens->verify_access(header->substr(7));
    if (!claims) co_return std::unexpected(claims.error());
    if (!grants_registry(*claims, "admin")) {
      challenge_error = "insufficient_scope";
      co_return fail(errc::unauthorized,
                     fmt::format("the token does not grant the admin API: ask /token for scope {}, or use "
                                 "Basic credentials",
                                 admin_scope));
    }
    const std::string subject = claims->subject;
    auto who = co_await ctx.pool.run([&] { return ctx.auth.authn.by_subject(subject); });
    co_return who;
  }
  auto creds = parse_basic(*header);
  if (!creds) co_return fail(errc::unauthorized, "malformed Authorization header");
  co_return co_await login(ctx, req, creds->username, creds->password);
}

// The request body as a JSON object.
awaitable<result<json>> read_json(request& req) {
  auto body = co_await req.read_body(body_limit);
  if (!body) co_return std::unexpected(body.error());
  auto doc = json::parse(*body, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) co_return fail(errc::unsupported, "the body must be a JSON object", 400);
  co_return doc;
}

std::string string_field(const json& doc, const char* key) {
  const auto it = doc.find(key);
  return it != doc.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::vector<std::string> strings_field(const json& doc, const char* key) {
  std::vector<std::string> out;
  const auto it = doc.find(key);
  if (it == doc.end()) return out;
  if (it->is_string()) out.push_back(it->get<std::string>());
  if (it->is_array()) {
    for (const auto& v : *it) {
      if (v.is_string()) out.push_back(v.get<std::string>());
    }
  }
  return out;
}

result<void> require(const context& ctx, const policy::principal& who, action a, std::string_view repository) {
  auto d = ctx.auth.pol.decide(who, a, repository);
  if (!d.allowed) return fail(errc::denied, std::move(d.reason));
  return {};
}

// Stores one grant per repository pattern; returns their ids.
result<json> store_grants(context& ctx, std::string_view subject, const std::vector<std::string>& actions,
                          const std::vector<std::string>& repositories) {
  auto set = policy::action_set::parse(actions);
  if (!set) return fail(errc::unsupported, set.error().detail, 400);
  if (set->empty() || repositories.empty()) return fail(errc::unsupported, "a grant needs actions and repositories", 400);
  json ids = json::array();
  for (const auto& pattern : repositories) {
    auto id = ctx.auth.identities.add_grant(subject, set->str(), pattern);
    if (!id) return std::unexpected(id.error());
    ids.push_back(*id);
  }
  return ids;
}

// The grants a create request carries ("actions" on "repositories"), stored for `subject`; an empty
// array when it carries none.
result<json> grants_in(context& ctx, const std::string& subject, const json& doc) {
  const auto repositories = strings_field(doc, "repositories");
  if (repositories.empty()) return json::array();
  return store_grants(ctx, subject, strings_field(doc, "actions"), repositories);
}

awaitable<result<response>> repositories(context& ctx, request& req, const policy::principal& who,
                                         std::string_view rest) {
  if (rest.empty() && req.method() == verb::get) {
    auto all = co_await ctx.meta.list_repositories("", std::numeric_limits<std::size_t>::max());
    if (!all) co_return std::unexpected(all.error());
    json out = json::array();
    for (const auto& name : *all) {
      if (ctx.auth.pol.decide(who, action::list, name).allowed) out.push_back(name);
    }
    co_return json_response(200, json{{"repositories", out}}.dump());
  }
  if (rest.empty() && req.method() == verb::post) {
    auto doc = co_await read_json(req);
    if (!doc) co_return std::unexpected(doc.error());
    const std::string name = string_field(*doc, "name");
    if (!valid_name(name)) co_return fail(errc::name_invalid, "repository name must match the OCI name grammar");
    if (auto ok = require(ctx, who, action::admin, name); !ok) co_return std::unexpected(ok.error());
    auto created = co_await ctx.meta.create_repository(name);
    if (!created) co_return std::unexpected(created.error());
    co_return json_response(*created ? 201 : 200, json{{"name", name}, {"created", *created}}.dump());
  }
  if (!rest.empty() && req.method() == verb::delete_) {
    const std::string name(rest);
    if (!valid_name(name)) co_return fail(errc::name_invalid, "repository name must match the OCI name grammar");
    if (auto ok = require(ctx, who, action::admin, name); !ok) co_return std::unexpected(ok.error());
    auto deleted = co_await ctx.meta.delete_repository(name);
    if (!deleted) co_return std::unexpected(deleted.error());
    if (!*deleted) co_return fail(errc::name_unknown, fmt::format("repository {} does not exist", name));
    co_return json_response(200, json{{"name", name}, {"deleted", true}}.dump());
  }
  co_return fail(errc::method_not_allowed);
}

awaitable<result<response>> users(context& ctx, request& req, std::string_view rest) {
  if (rest.empty() && req.method() == verb::get) {
    auto list = ctx.auth.identities.list_users();
    if (!list) co_return std::unexpected(list.error());
    json out = json::array();
    for (const auto& u : *list) out.push_back({{"name", u.name}, {"created_at", u.created_at}});
    co_return json_response(200, json{{"users", out}}.dump());
  }
  if (rest.empty() && req.method() == verb::post) {
    auto doc = co_await read_json(req);
    if (!doc) co_return std::unexpected(doc.error());
    const std::string name = string_field(*doc, "name");
    const std::string password = string_field(*doc, "password");
    if (!auth::valid_account_name(name) || name == "oidc")
      co_return fail(errc::unsupported, "user names match [a-z0-9][a-z0-9._-]{0,63} (and `oidc` is reserved)", 400);
    if (password.size() < 8) co_return fail(errc::unsupported, "a password has at least 8 characters", 400);
    auto stored = co_await ctx.pool.run([&] {
      return ctx.auth.identities.put_user(name, auth::hash_password(password));
    });
    if (!stored) co_return std::unexpected(stored.error());
    auto ids = co_await ctx.pool.run([&] { return grants_in(ctx, "user:" + name, *doc); });
    if (!ids) co_return std::unexpected(ids.error());
    co_return json_response(201, json{{"name", name}, {"subject", "user:" + name}, {"grants", *ids}}.dump());
  }
  if (!rest.empty() && req.method() == verb::delete_) {
    const std::string name(rest);
    auto deleted = co_await ctx.pool.run([&] { return ctx.auth.identities.delete_user(name); });
    if (!deleted) co_return std::unexpected(deleted.error());
    if (!*deleted) co_return fail(errc::unsupported, fmt::format("no user {}", name), 404);
    co_return json_response(200, json{{"name", name}, {"deleted", true}}.dump());
  }
  co_return fail(errc::method_not_allowed);
}

awaitable<result<response>> robots(context& ctx, request& req, std::string_view rest) {
  if (rest.empty() && req.method() == verb::get) {
    auto list = ctx.auth.identities.list_robots();
    if (!list) co_return std::unexpected(list.error());
    json out = json::array();
    const auto now = unix_seconds();
    for (const auto& r : *list) {
      out.push_back({{"name", r.name},
                     {"subject", "robot:" + r.name},
                     {"description", r.description},
                     {"created_at", r.created_at},
                     {"expires_at", r.expires_at ? json(*r.expires_at) : json()},
                     {"revoked_at", r.revoked_at ? json(*r.revoked_at) : json()},
                     {"active", r.active(now)}});
    }
    co_return json_response(200, json{{"robots", out}}.dump());
  }
  if (rest.empty() && req.method() == verb::post) {
    auto doc = co_await read_json(req);
    if (!doc) co_return std::unexpected(doc.error());
    const std::string name = string_field(*doc, "name");
    if (!auth::valid_account_name(name))
      co_return fail(errc::unsupported, "robot names match [a-z0-9][a-z0-9._-]{0,63}", 400);
    std::optional<std::int64_t> expires_at;
    if (const auto it = doc->find("expires_in_days"); it != doc->end() && it->is_number_integer()) {
      if (it->get<std::int64_t>() <= 0) co_return fail(errc::unsupported, "expires_in_days must be positive", 400);
      expires_at = unix_seconds() + it->get<std::int64_t>() * 86400;
    }
    if (const auto it = doc->find("expires_at"); it != doc->end() && it->is_number_integer()) {
      expires_at = it->get<std::int64_t>();
    }
    const std::string description = string_field(*doc, "description");
    auto token = co_await ctx.pool.run([&] { return ctx.auth.identities.create_robot(name, description, expires_at); });
    if (!token && token.error().code == errc::denied) co_return fail(errc::denied, token.error().detail, 409);
    if (!token) co_return std::unexpected(token.error());
    auto ids = co_await ctx.pool.run([&] { return grants_in(ctx, "robot:" + name, *doc); });
    if (!ids) co_return std::unexpected(ids.error());
    co_return json_response(201, json{{"name", name},
                                      {"subject", "robot:" + name},
                                      {"username", name},
                                      {"token", *token},
                                      {"expires_at", expires_at ? json(*expires_at) : json()},
                                      {"grants", *ids}}
                                     .dump());
  }
  if (!rest.empty() && req.method() == verb::delete_) {
    const std::string name(rest);
    auto revoked = co_await ctx.pool.run([&] { return ctx.auth.identities.revoke_robot(name); });
    if (!revoked) co_return std::unexpected(revoked.error());
    if (!*revoked) co_return fail(errc::unsupported, fmt::format("no active robot {}", name), 404);
    co_return json_response(200, json{{"name", name}, {"revoked", true}}.dump());
  }
  co_return fail(errc::method_not_allowed);
}

awaitable<result<response>> grants(context& ctx, request& req, std::string_view rest) {
  if (rest.empty() && req.method() == verb::get) {
    auto stored = ctx.auth.identities.grants();
    if (!stored) co_return std::unexpected(stored.error());
    json out = json::array();
    for (const auto& g : ctx.auth.pol.grants()) out.push_back(grant_json(g));
    for (const auto& g : *stored) {
      out.push_back({{"id", g.id}, {"subject", g.subject}, {"actions", g.actions}, {"repositories", {g.repository}},
                     {"source", fmt::format("grant #{}", g.id)}});
    }
    co_return json_response(200, json{{"grants", out}}.dump());
  }
  if (rest.empty() && req.method() == verb::post) {
    auto doc = co_await read_json(req);
    if (!doc) co_return std::unexpected(doc.error());
    const std::string subject = string_field(*doc, "subject");
    if (subject.empty()) co_return fail(errc::unsupported, "a grant needs a subject (user:NAME, robot:NAME, ...)", 400);
    auto ids = co_await ctx.pool.run([&] {
      return store_grants(ctx, subject, strings_field(*doc, "actions"), strings_field(*doc, "repositories"));
    });
    if (!ids) co_return std::unexpected(ids.error());
    co_return json_response(201, json{{"ids", *ids}}.dump());
  }
  if (!rest.empty() && req.method() == verb::delete_) {
    std::int64_t id = 0;
    try {
      id = std::stoll(std::string(rest));
    } catch (const std::exception&) {
      co_return fail(errc::unsupported, "grant ids are numbers", 400);
    }
    auto deleted = co_await ctx.pool.run([&] { return ctx.auth.identities.delete_grant(id); });
    if (!deleted) co_return std::unexpected(deleted.error());
    if (!*deleted) co_return fail(errc::unsupported, fmt::format("no stored grant #{}", id), 404);
    co_return json_response(200, json{{"id", id}, {"deleted", true}}.dump());
  }
  co_return fail(errc::method_not_allowed);
}

awaitable<result<response>> check(context& ctx, request& req, const policy::principal& who) {
  const auto action_text = req.query("action").value_or("");
  const auto repository = req.query("repository").value_or("");
  const auto a = policy::parse_action(action_text);
  if (!a) co_return fail(errc::unsupported, "action must be pull, push, delete, list or admin", 400);
  if (!valid_name(repository)) co_return fail(errc::name_invalid, "repository name must match the OCI name grammar");
  policy::principal subject = who;
  if (auto other = req.query("subject"); other && *other != who.subject) {
    if (auto ok = require(ctx, who, action::admin, "*"); !ok) co_return std::unexpected(ok.error());
    const std::string s = *other;
    if (s == "anonymous") {
      subject = policy::principal{};
    } else {
      auto resolved = co_await ctx.pool.run([&] { return ctx.auth.authn.by_subject(s); });
      if (!resolved) co_return fail(errc::unsupported, resolved.error().detail, 404);
      subject = std::move(*resolved);
    }
  }
  // A push to a repository that does not exist in an explicit namespace would fail: say so.
  auto exists = co_await ctx.meta.repository_exists(repository);
  if (!exists) co_return std::unexpected(exists.error());
  const auto d = ctx.auth.pol.preflight(subject, *a, repository, *exists);
  const auto& ns = ctx.auth.pol.namespace_of(repository);
  co_return json_response(200, json{{"subject", subject.subject},
                                    {"action", action_text},
                                    {"repository", repository},
                                    {"namespace", ns.name},
                                    {"allowed", d.allowed},
                                    {"reason", d.reason}}
                                   .dump());
}

awaitable<result<response>> route_admin(context& ctx, request& req, const policy::principal& who) {
  std::string_view path = req.path().substr(std::string_view("/api/v1/").size());
  auto [resource, rest] = [&] {
    const auto slash = path.find('/');
    if (slash == std::string_view::npos) return std::pair{path, std::string_view()};
    return std::pair{path.substr(0, slash), path.substr(slash + 1)};
  }();
  const bool admin = ctx.auth.pol.decide(who, action::admin, "*").allowed;
  if (resource == "whoami" && rest.empty() && req.method() == verb::get) {
    json grants = json::array();
    for (const auto& g : who.grants) grants.push_back(grant_json(g));
    for (const auto& g : ctx.auth.pol.grants()) {
      if (g.subject == who.subject || (g.subject == "*" && !who.anonymous())) grants.push_back(grant_json(g));
    }
    co_return json_response(200, json{{"subject", who.subject}, {"admin", admin}, {"grants", grants}}.dump());
  }
  if (resource == "check" && rest.empty() && req.method() == verb::get) co_return co_await check(ctx, req, who);
  if (resource == "namespaces" && rest.empty() && req.method() == verb::get) {
    json out = json::array();
    for (const auto& ns : ctx.auth.pol.namespaces()) {
      out.push_back({{"name", ns.name}, {"visibility", visibility_name(ns.vis)}, {"creation", creation_name(ns.create)}});
    }
    const auto& d = ctx.auth.pol.default_namespace();
    co_return json_response(200, json{{"namespaces", out},
                                      {"default", {{"visibility", visibility_name(d.vis)},
                                                   {"creation", creation_name(d.create)}}}}
                                     .dump());
  }
  if (resource == "repositories") co_return co_await repositories(ctx, req, who, rest);
  if (resource == "users" || resource == "robots" || resource == "grants") {
    if (!admin) co_return fail(errc::denied, fmt::format("{} is not an administrator", who.subject));
    if (resource == "users") co_return co_await users(ctx, req, rest);
    if (resource == "robots") co_return co_await robots(ctx, req, rest);
    co_return co_await grants(ctx, req, rest);
  }
  co_return fail(errc::unsupported, "no such endpoint", 404);
}

}  // namespace

awaitable<result<response>> admin_endpoint(context& ctx, request& req) {
  std::string challenge_error;
  auto who = co_await admin_caller(ctx, req, challenge_error);
  if (!who && who.error().code == errc::unauthorized) {
    response res = error_response(who.error());
    res.headers.set(http::beast::http::field::www_authenticate,
                    challenge_error.empty()
                        ? basic_challenge(ctx.auth)
                        : challenge(ctx.auth, absolute_url(ctx, req, "/token"), admin_scope, challenge_error));
    co_return res;
  }
  if (!who) co_return std::unexpected(who.error());
  co_return co_await route_admin(ctx, req, *who);
}

}  // namespace berth::api
