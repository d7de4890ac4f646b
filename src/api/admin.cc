// The admin API, /api/v1/... (JSON in and out; Basic credentials, or a bearer token whose scope
// includes registry:admin:*; who may call what is in route_table.cc):
//   GET    whoami                         the caller and its grants
//   GET    check?action=A&repository=R[&subject=S][&tag=T]   the policy's answer, and for a push whether the
//                                         repository exists or may be created (another subject: admins only),
//                                         and whether tag T is immutable
//   GET    namespaces                     namespaces (each with its source: config or api) and the default
//   PUT    namespaces/<ns> {settings}     create or change a namespace of the API (global admin); 409 for one
//                                         the server's config declares (the config is authoritative)
//   DELETE namespaces/<ns>                delete a namespace of the API that holds no repositories (global admin)
//   GET    repositories[?namespace=NS]    repositories the caller may list, with tag count, size, last push
//   (a repository's tags, their history and promotion: lifecycle.cc)
//   POST   repositories {"name"}          create (admin on the repository)
//   DELETE repositories/<name>            delete with its manifests and tags (admin on the repository)
//   GET|POST users, DELETE users/<name>   (global admin)
//   GET|POST robots, DELETE robots/<name> revoke (global admin); POST answers the token, once
//   PATCH  robots/<name> {description, expires_at|expires_in_days|null, pull, push, delete}
//                                         change an active robot in place; its token stays (global admin)
//   GET|POST grants, DELETE grants/<id>   stored grants; GET also shows the config's (global admin)
// Errors use the OCI error envelope.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <nlohmann/json.hpp>

#include "api/audit.h"
#include "api/errors.h"
#include "api/handlers.h"
#include "api/route_table.h"
#include "auth/password.h"
#include "core/decimal.h"
#include "core/reference.h"
#include "core/unix_time.h"

namespace berth::api {
namespace {

using json = nlohmann::json;
using policy::action;

constexpr std::size_t body_limit = 64 * 1024;

json optional_number(const std::optional<std::uint64_t>& n) { return n ? json(*n) : json(nullptr); }

// A namespace as the API shows it: its settings, and its quotas (set in the server's config only).
json namespace_json(const policy::namespace_rule& ns) {
  json out = json::parse(policy::namespace_settings_json(ns));
  out["quota_bytes"] = optional_number(ns.quota_bytes);
  out["max_repositories"] = optional_number(ns.max_repositories);
  if (!ns.name.empty()) {
    out["name"] = ns.name;
    out["source"] = policy::to_string(ns.source);
  }
  return out;
}

// The refusal to change namespace `name` through the API when the server's config declares it.
result<void> not_in_config(const context& ctx, std::string_view name) {
  for (const auto& ns : ctx.pol->namespaces()) {
    if (ns.name == name && ns.source == policy::origin::config)
      return fail(errc::conflict, fmt::format("namespace {} is declared in the server's config (namespaces.{}), "
                                              "which is authoritative: change it there, or use another name",
                                              name, name));
  }
  return {};
}

result<std::string> namespace_name(const route& r) {
  if (!policy::valid_namespace_name(r.name))
    return fail(errc::invalid_argument, "a namespace is one component of a repository name, e.g. production");
  return std::string(r.name);
}

json grant_json(const policy::grant& g) {
  return {{"subject", g.subject}, {"actions", g.actions.str()}, {"repositories", g.repositories}, {"source", g.source}};
}

// The request body as a JSON object.
awaitable<result<json>> read_json(request& req) {
  auto body = co_await req.read_body(body_limit);
  if (!body) co_return std::unexpected(body.error());
  auto doc = json::parse(*body, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) co_return fail(errc::invalid_argument, "the body must be a JSON object");
  co_return doc;
}

// The keys of a robot's grants in a body (PATCH robots/<name>), one action each.
const std::vector<std::string> robot_grant_keys = {"pull", "push", "delete"};

// A robot's description: text for people, on one line (every store can hold it).
constexpr std::size_t max_description = 1024;

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

// Stores one grant per repository pattern; returns their ids.
awaitable<result<json>> store_grants(context& ctx, std::string_view subject, const std::vector<std::string>& actions,
                                     const std::vector<std::string>& repositories) {
  auto set = policy::action_set::parse(actions);
  if (!set) co_return fail(errc::invalid_argument, set.error().detail);
  if (set->empty() || repositories.empty())
    co_return fail(errc::invalid_argument, "a grant needs actions and repositories");
  const std::string action_text = set->str();
  json ids = json::array();
  for (const auto& pattern : repositories) {
    auto id = co_await ctx.auth.identities.add_grant(subject, action_text, pattern);
    if (!id) co_return std::unexpected(id.error());
    ids.push_back(*id);
  }
  co_return ids;
}

// The grants a create request carries ("actions" on "repositories"), stored for `subject`; an empty
// array when it carries none.
awaitable<result<json>> grants_in(context& ctx, const std::string& subject, const json& doc) {
  const auto repositories = strings_field(doc, "repositories");
  if (repositories.empty()) co_return json::array();
  const auto actions = strings_field(doc, "actions");
  co_return co_await store_grants(ctx, subject, actions, repositories);
}

result<void> check_description(const std::string& description) {
  if (description.size() > max_description ||
      std::any_of(description.begin(), description.end(), [](char c) { return c == '\x7f' || (c >= 0 && c < ' '); }))
    return fail(errc::invalid_argument,
                fmt::format("a description is at most {} bytes, without control characters", max_description));
  return {};
}

// A robot's expiry from a body: "expires_in_days" (positive), "expires_at" (unix seconds, or null for
// never); `current` when the body says neither.
result<std::optional<std::int64_t>> expiry_in(const json& doc, std::optional<std::int64_t> current) {
  if (const auto it = doc.find("expires_in_days"); it != doc.end() && it->is_number_integer()) {
    if (it->get<std::int64_t>() <= 0) return fail(errc::invalid_argument, "expires_in_days must be positive");
    return unix_seconds() + it->get<std::int64_t>() * 86400;
  }
  if (const auto it = doc.find("expires_at"); it != doc.end()) {
    if (it->is_null()) return std::optional<std::int64_t>{};
    if (!it->is_number_integer()) return fail(errc::invalid_argument, "expires_at is unix seconds, or null for never");
    return it->get<std::int64_t>();
  }
  return current;
}

const policy::principal& principal_of(const context& ctx) { return ctx.who->principal(); }

// An account name from the path: users and robots are named by valid_account_name.
result<std::string> account_name(const route& r) {
  if (!auth::valid_account_name(r.name))
    return fail(errc::invalid_argument, "account names match [a-z0-9][a-z0-9._-]{0,63}");
  return std::string(r.name);
}

// A limit as JSON: its number, or null when there is none.

}  // namespace

awaitable<result<response>> admin_whoami(context& ctx, request&, const route&) {
  const auto& who = principal_of(ctx);
  const bool admin = ctx.pol->decide(who, action::admin, "*").allowed;
  json grants = json::array();
  for (const auto& g : who.grants) grants.push_back(grant_json(g));
  for (const auto& g : ctx.pol->grants()) {
    if (g.subject == who.subject || (g.subject == "*" && !who.anonymous())) grants.push_back(grant_json(g));
  }
  co_return json_response(200, json{{"subject", who.subject}, {"admin", admin}, {"grants", grants}}.dump());
}

awaitable<result<response>> admin_namespaces(context& ctx, request&, const route&) {
  json out = json::array();
  for (const auto& ns : ctx.pol->namespaces()) out.push_back(namespace_json(ns));
  co_return json_response(200,
                          json{{"namespaces", out}, {"default", namespace_json(ctx.pol->default_namespace())}}.dump());
}

awaitable<result<response>> admin_put_namespace(context& ctx, request& req, const route& r) {
  auto name = namespace_name(r);
  if (!name) co_return std::unexpected(name.error());
  if (auto ok = not_in_config(ctx, *name); !ok) co_return std::unexpected(ok.error());
  auto body = co_await req.read_body(body_limit);
  if (!body) co_return std::unexpected(body.error());
  auto ns = policy::parse_namespace_settings(*name, *body, policy::origin::api);
  if (!ns) co_return std::unexpected(ns.error());
  const bool existed =
      std::ranges::any_of(ctx.pol->namespaces(), [&](const policy::namespace_rule& n) { return n.name == *name; });
  auto stored = co_await ctx.auth.identities.put_namespace(*name, policy::namespace_settings_json(*ns));
  if (!stored) co_return std::unexpected(stored.error());
  co_return json_response(existed ? 200 : 201, namespace_json(*ns).dump());
}

awaitable<result<response>> admin_delete_namespace(context& ctx, request&, const route& r) {
  auto name = namespace_name(r);
  if (!name) co_return std::unexpected(name.error());
  if (auto ok = not_in_config(ctx, *name); !ok) co_return std::unexpected(ok.error());
  // The first repository after "<ns>/" in byte order is one of the namespace's when it has any.
  const std::string prefix = *name + "/";
  auto first = co_await ctx.meta.list_repositories(prefix, 1);
  if (!first) co_return std::unexpected(first.error());
  if (!first->empty() && first->front().starts_with(prefix))
    co_return fail(errc::conflict, fmt::format("namespace {} still holds repositories ({} ...): delete them first "
                                               "(berth apply --prune, or DELETE /api/v1/repositories/<name>)",
                                               *name, first->front()));
  auto deleted = co_await ctx.auth.identities.delete_namespace(*name);
  if (!deleted) co_return std::unexpected(deleted.error());
  if (!*deleted) co_return fail(errc::not_found, fmt::format("no namespace {} of the admin API", *name));
  co_return json_response(200, json{{"name", *name}, {"deleted", true}}.dump());
}

awaitable<result<response>> admin_repositories(context& ctx, request& req, const route&) {
  // ?namespace=NS: the repositories under NS/ only.
  const std::string ns = req.query("namespace").value_or("");
  if (!ns.empty() && (ns.find('/') != std::string::npos || !valid_name(ns)))
    co_return fail(errc::invalid_argument, "namespace is one name component");
  const std::string prefix = ns.empty() ? std::string() : ns + "/";
  auto all = co_await ctx.meta.tags().repository_summaries(prefix);
  if (!all) co_return std::unexpected(all.error());
  json out = json::array();
  for (const auto& repo : *all) {
    if (!ctx.pol->decide(principal_of(ctx), action::list, repo.name).allowed) continue;
    out.push_back({{"name", repo.name},
                   {"tags", repo.tags},
                   {"size", repo.size},
                   {"last_push_ms", repo.last_push_ms ? json(repo.last_push_ms) : json()}});
  }
  co_return json_response(200, json{{"repositories", out}}.dump());
}

awaitable<result<response>> admin_create_repository(context& ctx, request& req, const route&) {
  auto doc = co_await read_json(req);
  if (!doc) co_return std::unexpected(doc.error());
  const std::string name = string_field(*doc, "name");
  ctx.audit->repository = ctx.audit->target = name;
  if (auto ok = authorize_named(ctx, name); !ok) co_return std::unexpected(ok.error());
  auto created = co_await ctx.meta.create_repository(name);
  if (!created) co_return std::unexpected(created.error());
  co_return json_response(*created ? 201 : 200, json{{"name", name}, {"created", *created}}.dump());
}

awaitable<result<response>> admin_delete_repository(context& ctx, request&, const route& r) {
  const std::string name(r.name);
  auto deleted = co_await ctx.meta.delete_repository(name);
  if (!deleted) co_return std::unexpected(deleted.error());
  if (!*deleted) co_return fail(errc::name_unknown, fmt::format("repository {} does not exist", name));
  co_return json_response(200, json{{"name", name}, {"deleted", true}}.dump());
}

awaitable<result<response>> admin_users(context& ctx, request&, const route&) {
  auto list = co_await ctx.auth.identities.list_users();
  if (!list) co_return std::unexpected(list.error());
  json out = json::array();
  for (const auto& u : *list) out.push_back({{"name", u.name}, {"created_at", u.created_at}});
  co_return json_response(200, json{{"users", out}}.dump());
}

awaitable<result<response>> admin_create_user(context& ctx, request& req, const route&) {
  auto doc = co_await read_json(req);
  if (!doc) co_return std::unexpected(doc.error());
  const std::string name = string_field(*doc, "name");
  const std::string password = string_field(*doc, "password");
  ctx.audit->target = "user:" + name;
  if (!auth::valid_account_name(name) || name == "oidc")
    co_return fail(errc::invalid_argument, "user names match [a-z0-9][a-z0-9._-]{0,63} (and `oidc` is reserved)");
  if (password.size() < 8) co_return fail(errc::invalid_argument, "a password has at least 8 characters");
  const auto hash = co_await ctx.pool.run([&] { return auth::hash_password(password); });
  auto stored = co_await ctx.auth.identities.put_user(name, hash);
  if (!stored) co_return std::unexpected(stored.error());
  const std::string subject = "user:" + name;
  auto ids = co_await grants_in(ctx, subject, *doc);
  if (!ids) co_return std::unexpected(ids.error());
  co_return json_response(201, json{{"name", name}, {"subject", subject}, {"grants", *ids}}.dump());
}

awaitable<result<response>> admin_delete_user(context& ctx, request&, const route& r) {
  auto name = account_name(r);
  if (!name) co_return std::unexpected(name.error());
  auto deleted = co_await ctx.auth.identities.delete_user(*name);
  if (!deleted) co_return std::unexpected(deleted.error());
  if (!*deleted) co_return fail(errc::not_found, fmt::format("no user {}", *name));
  co_return json_response(200, json{{"name", *name}, {"deleted", true}}.dump());
}

awaitable<result<response>> admin_robots(context& ctx, request&, const route&) {
  auto list = co_await ctx.auth.identities.list_robots();
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

awaitable<result<response>> admin_create_robot(context& ctx, request& req, const route&) {
  auto doc = co_await read_json(req);
  if (!doc) co_return std::unexpected(doc.error());
  const std::string name = string_field(*doc, "name");
  if (!auth::valid_account_name(name))
    co_return fail(errc::invalid_argument, "robot names match [a-z0-9][a-z0-9._-]{0,63}");
  ctx.audit->target = "robot:" + name;
  auto expires_at = expiry_in(*doc, std::nullopt);
  if (!expires_at) co_return std::unexpected(expires_at.error());
  const std::string description = string_field(*doc, "description");
  if (auto ok = check_description(description); !ok) co_return std::unexpected(ok.error());
  auto token = co_await ctx.auth.identities.create_robot(name, description, *expires_at);
  if (!token) co_return std::unexpected(token.error());
  const std::string subject = "robot:" + name;
  auto ids = co_await grants_in(ctx, subject, *doc);
  if (!ids) co_return std::unexpected(ids.error());
  co_return json_response(201, json{{"name", name},
                                    {"subject", subject},
                                    {"username", name},
                                    {"token", *token},
                                    {"expires_at", *expires_at ? json(**expires_at) : json()},
                                    {"grants", *ids}}
                                   .dump());
}

awaitable<result<response>> admin_update_robot(context& ctx, request& req, const route& r) {
  auto name = account_name(r);
  if (!name) co_return std::unexpected(name.error());
  auto doc = co_await read_json(req);
  if (!doc) co_return std::unexpected(doc.error());
  auto robot = co_await ctx.auth.identities.find_robot(*name);
  if (!robot) co_return std::unexpected(robot.error());
  if (!*robot || (*robot)->revoked_at) co_return fail(errc::not_found, fmt::format("no active robot {}", *name));
  const std::string description =
      doc->contains("description") ? string_field(*doc, "description") : (*robot)->description;
  if (auto ok = check_description(description); !ok) co_return std::unexpected(ok.error());
  auto expires_at = expiry_in(*doc, (*robot)->expires_at);
  if (!expires_at) co_return std::unexpected(expires_at.error());
  auto updated = co_await ctx.auth.identities.update_robot(*name, description, *expires_at);
  if (!updated) co_return std::unexpected(updated.error());
  if (!*updated) co_return fail(errc::not_found, fmt::format("no active robot {}", *name));
  // "pull", "push", "delete": each one given replaces the robot's stored grants of exactly that action.
  const std::string subject = "robot:" + *name;
  auto held = co_await ctx.auth.identities.grants(subject);
  if (!held) co_return std::unexpected(held.error());
  for (const std::string& a : robot_grant_keys) {
    if (!doc->contains(a)) continue;
    const auto wanted = strings_field(*doc, a.c_str());
    std::vector<std::string> missing = wanted;
    for (const auto& g : *held) {
      if (g.actions != a) continue;
      std::erase(missing, g.repository);
      if (std::ranges::find(wanted, g.repository) != wanted.end()) continue;
      auto deleted = co_await ctx.auth.identities.delete_grant(g.id);
      if (!deleted) co_return std::unexpected(deleted.error());
    }
    if (missing.empty()) continue;
    const std::vector<std::string> actions(1, a);
    auto ids = co_await store_grants(ctx, subject, actions, missing);
    if (!ids) co_return std::unexpected(ids.error());
  }
  co_return json_response(200, json{{"name", *name},
                                    {"description", description},
                                    {"expires_at", *expires_at ? json(**expires_at) : json()},
                                    {"updated", true}}
                                   .dump());
}

awaitable<result<response>> admin_revoke_robot(context& ctx, request&, const route& r) {
  auto name = account_name(r);
  if (!name) co_return std::unexpected(name.error());
  auto revoked = co_await ctx.auth.identities.revoke_robot(*name);
  if (!revoked) co_return std::unexpected(revoked.error());
  if (!*revoked) co_return fail(errc::not_found, fmt::format("no active robot {}", *name));
  co_return json_response(200, json{{"name", *name}, {"revoked", true}}.dump());
}

awaitable<result<response>> admin_grants(context& ctx, request&, const route&) {
  auto stored = co_await ctx.auth.identities.grants(std::nullopt);
  if (!stored) co_return std::unexpected(stored.error());
  json out = json::array();
  for (const auto& g : ctx.pol->grants()) out.push_back(grant_json(g));
  for (const auto& g : *stored) {
    out.push_back({{"id", g.id},
                   {"subject", g.subject},
                   {"actions", g.actions},
                   {"repositories", {g.repository}},
                   {"source", fmt::format("grant #{}", g.id)}});
  }
  co_return json_response(200, json{{"grants", out}}.dump());
}

awaitable<result<response>> admin_create_grant(context& ctx, request& req, const route&) {
  auto doc = co_await read_json(req);
  if (!doc) co_return std::unexpected(doc.error());
  const std::string subject = string_field(*doc, "subject");
  if (subject.empty()) co_return fail(errc::invalid_argument, "a grant needs a subject (user:NAME, robot:NAME, ...)");
  const auto actions = strings_field(*doc, "actions");
  const auto repositories = strings_field(*doc, "repositories");
  ctx.audit->target = subject;
  ctx.audit->detail = fmt::format("{} on {}", fmt::join(actions, ","), fmt::join(repositories, ","));
  auto ids = co_await store_grants(ctx, subject, actions, repositories);
  if (!ids) co_return std::unexpected(ids.error());
  co_return json_response(201, json{{"ids", *ids}}.dump());
}

awaitable<result<response>> admin_delete_grant(context& ctx, request&, const route& r) {
  // The whole segment is the number: "12abc" or "+12" is not grant 12.
  const auto parsed = parse_decimal(r.reference);
  if (!parsed || *parsed == 0 || *parsed > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
    co_return fail(errc::invalid_argument, "a grant id is a positive number: digits only");
  const auto id = static_cast<std::int64_t>(*parsed);
  auto deleted = co_await ctx.auth.identities.delete_grant(id);
  if (!deleted) co_return std::unexpected(deleted.error());
  if (!*deleted) co_return fail(errc::not_found, fmt::format("no stored grant #{}", id));
  co_return json_response(200, json{{"id", id}, {"deleted", true}}.dump());
}

awaitable<result<response>> admin_check(context& ctx, request& req, const route&) {
  const auto& who = principal_of(ctx);
  const auto action_text = req.query("action").value_or("");
  const auto repository = req.query("repository").value_or("");
  const auto a = policy::parse_action(action_text);
  if (!a) co_return fail(errc::invalid_argument, "action must be pull, push, delete, list or admin");
  if (!valid_name(repository)) co_return fail(errc::name_invalid, "repository name must match the OCI name grammar");
  policy::principal subject = who;
  const auto issuer = req.query("issuer");
  if (issuer && req.query("subject")) co_return fail(errc::invalid_argument, "ask by subject or by issuer, not both");
  if (issuer) {
    // An OIDC identity by its claims, before any job has a token: the config's federation rules
    // make the principal, this registry's policy (with the namespaces of the admin API) decides.
    if (auto d = ctx.pol->decide(who, action::admin, "*"); !d.allowed) co_return fail(errc::denied, std::move(d.reason));
    if (!ctx.auth.federation) co_return fail(errc::invalid_argument, "this registry trusts no OIDC issuer (`federation:`)");
    const auto claims = json::parse(req.query("claims").value_or("{}"), nullptr, false);
    if (!claims.is_object()) co_return fail(errc::invalid_argument, "claims must be a JSON object");
    auto previewed = ctx.auth.federation->preview(*issuer, claims);
    if (!previewed && previewed.error().code == errc::unauthorized)  // no subject claim: not the caller's credentials
      co_return fail(errc::invalid_argument, previewed.error().detail);
    if (!previewed) co_return std::unexpected(previewed.error());
    subject = std::move(*previewed);
  } else if (auto other = req.query("subject"); other && *other != who.subject) {
    if (auto d = ctx.pol->decide(who, action::admin, "*"); !d.allowed)
      co_return fail(errc::denied, std::move(d.reason));
    const std::string s = *other;
    if (s == "anonymous") {
      subject = policy::principal{};
    } else {
      auto resolved = co_await ctx.auth.authn.by_subject(s);
      if (!resolved && resolved.error().code == errc::unauthorized)
        co_return fail(errc::not_found, resolved.error().detail);
      if (!resolved) co_return std::unexpected(resolved.error());
      subject = std::move(*resolved);
    }
  }
  // A push to a repository that does not exist in an explicit namespace would fail: say so.
  auto exists = co_await ctx.meta.repository_exists(repository);
  if (!exists) co_return std::unexpected(exists.error());
  const auto d = ctx.pol->preflight(subject, *a, repository, *exists);
  const auto& ns = ctx.pol->namespace_of(repository);
  json answer{{"subject", subject.subject}, {"action", action_text}, {"repository", repository},
              {"namespace", ns.name},       {"allowed", d.allowed},  {"reason", d.reason}};
  // &tag=T: whether the tag is immutable, and so whether a push may move it (it may while it does
  // not exist, and may re-push its digest).
  if (const auto tag = req.query("tag")) {
    if (!valid_tag(*tag)) co_return fail(errc::tag_invalid, "tag must match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}");
    const auto rule = ctx.pol->immutable(repository, *tag);
    auto current = co_await ctx.meta.manifest_by_tag(repository, *tag);
    if (!current) co_return std::unexpected(current.error());
    answer["tag"] = *tag;
    answer["immutable"] = rule ? json(*rule) : json();
    answer["tag_exists"] = current->has_value();
  }
  co_return json_response(200, answer.dump());
}

}  // namespace berth::api
