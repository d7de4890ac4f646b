#include "api/route_table.h"

#include <array>

#include "core/reference.h"

namespace berth::api {
namespace {

using policy::action;
using k = access::kind;
using rk = route_kind;

constexpr access anyone{k::anyone};
constexpr access authenticated{k::authenticated};
constexpr access administrator{k::administrator, action::admin};
constexpr access pull{k::repository, action::pull, access::source::path, "pull"};
constexpr access list{k::repository, action::list, access::source::path, "pull"};
constexpr access push{k::repository, action::push, access::source::path, "pull,push"};
constexpr access remove{k::repository, action::delete_, access::source::path, "delete"};

// The handlers whose signature differs from `handler`.
awaitable<result<response>> base(context&, request&, const route&) {
  response res = json_response(200, "{}");
  co_return res;
}
awaitable<result<response>> get_manifest_(context& c, request& r, const route& rt) { return get_manifest(c, r, rt, false); }
awaitable<result<response>> head_manifest(context& c, request& r, const route& rt) { return get_manifest(c, r, rt, true); }
awaitable<result<response>> get_blob_(context& c, request& r, const route& rt) { return get_blob(c, r, rt, false); }
awaitable<result<response>> head_blob(context& c, request& r, const route& rt) { return get_blob(c, r, rt, true); }
awaitable<result<response>> catalog(context& c, request& r, const route&) { return list_catalog(c, r); }

const std::array kTable = {
    // OCI Distribution.
    endpoint{rk::base, verb::get, "base", authenticated, base},
    endpoint{rk::base, verb::head, "base", authenticated, base},
    endpoint{rk::catalog, verb::get, "catalog_get", {k::catalog, action::list}, catalog},
    endpoint{rk::tags, verb::get, "tags_get", list, list_tags},
    endpoint{rk::manifest, verb::get, "manifest_get", pull, get_manifest_},
    endpoint{rk::manifest, verb::head, "manifest_head", pull, head_manifest},
    endpoint{rk::manifest, verb::put, "manifest_put", push, put_manifest, true, "manifest_push"},
    endpoint{rk::manifest, verb::delete_, "manifest_delete", remove, delete_manifest, false, "manifest_delete"},
    endpoint{rk::blob, verb::get, "blob_get", pull, get_blob_},
    endpoint{rk::blob, verb::head, "blob_head", pull, head_blob},
    endpoint{rk::blob, verb::delete_, "blob_delete", remove, delete_blob, false, "blob_delete"},
    endpoint{rk::uploads, verb::post, "upload_start", push, start_upload, true},
    endpoint{rk::upload, verb::patch, "upload_patch", push, patch_upload},
    endpoint{rk::upload, verb::put, "upload_finish", push, finish_upload},
    endpoint{rk::upload, verb::get, "upload_status", push, upload_status},
    endpoint{rk::upload, verb::delete_, "upload_cancel", push, cancel_upload},
    endpoint{rk::referrers, verb::get, "referrers_get", pull, get_referrers},
    // Token authentication: the handlers read the credentials (Basic, or the OAuth2 form).
    endpoint{rk::token, verb::get, "token_get", anyone, token_get},
    endpoint{rk::token, verb::post, "token_post", anyone, token_post},
    endpoint{rk::token_keys, verb::get, "token_keys", anyone, token_keys},
    endpoint{rk::token_keys, verb::head, "token_keys", anyone, token_keys},
    // The admin API.
    endpoint{rk::whoami, verb::get, "admin_whoami", authenticated, admin_whoami},
    endpoint{rk::check, verb::get, "admin_check", authenticated, admin_check},
    endpoint{rk::namespaces, verb::get, "admin_namespaces", authenticated, admin_namespaces},
    endpoint{rk::namespace_, verb::put, "admin_namespace_put", administrator, admin_put_namespace, false,
             "namespace_put"},
    endpoint{rk::namespace_, verb::delete_, "admin_namespace_delete", administrator, admin_delete_namespace, false,
             "namespace_delete"},
    endpoint{rk::repositories, verb::get, "admin_repositories", authenticated, admin_repositories},
    endpoint{rk::repositories, verb::post, "admin_repository_create",
             {k::repository, action::admin, access::source::body}, admin_create_repository, false, "repository_create"},
    endpoint{rk::repository, verb::delete_, "admin_repository_delete", {k::repository, action::admin},
             admin_delete_repository, false,
             "repository_delete"},
    endpoint{rk::repository_tags, verb::get, "admin_tags", list, admin_tags},
    endpoint{rk::tag_history, verb::get, "admin_tag_history", list, admin_tag_history},
    // Promotion: push on the target here; pull on the source, named in the body, in the handler.
    endpoint{rk::repository_tag, verb::post, "admin_promote", push, admin_promote, true, "promote"},
    endpoint{rk::users, verb::get, "admin_users", administrator, admin_users},
    endpoint{rk::users, verb::post, "admin_user_create", administrator, admin_create_user, false, "user_create"},
    endpoint{rk::user, verb::delete_, "admin_user_delete", administrator, admin_delete_user, false, "user_delete"},
    endpoint{rk::robots, verb::get, "admin_robots", administrator, admin_robots},
    endpoint{rk::robots, verb::post, "admin_robot_create", administrator, admin_create_robot, false, "robot_create"},
    endpoint{rk::robot, verb::patch, "admin_robot_update", administrator, admin_update_robot, false, "robot_update"},
    endpoint{rk::robot, verb::delete_, "admin_robot_revoke", administrator, admin_revoke_robot, false, "robot_revoke"},
    endpoint{rk::grants, verb::get, "admin_grants", administrator, admin_grants},
    endpoint{rk::grants, verb::post, "admin_grant_create", administrator, admin_create_grant, false, "grant_create"},
    endpoint{rk::grant, verb::delete_, "admin_grant_delete", administrator, admin_delete_grant, false, "grant_delete"},
    endpoint{rk::retention_preview, verb::post, "admin_retention_preview", administrator, admin_retention_preview},
    endpoint{rk::retention_run, verb::post, "admin_retention_run", administrator, admin_retention_run, false,
             "retention_run"},
    endpoint{rk::retention_rules, verb::get, "admin_retention_rules", administrator, admin_retention_rules},
    endpoint{rk::retention_rules, verb::put, "admin_retention_rules_put", administrator, admin_put_retention_rules,
             false, "retention_rules_put"},
    endpoint{rk::gc, verb::get, "admin_gc_runs", administrator, admin_gc_runs},
    endpoint{rk::gc, verb::post, "admin_gc_run", administrator, admin_gc_run, false, "gc_run"},
    endpoint{rk::usage, verb::get, "admin_usage", administrator, admin_usage},
    endpoint{rk::webhooks, verb::get, "admin_webhooks", administrator, admin_webhooks},
    endpoint{rk::webhook_deliveries, verb::get, "admin_webhook_deliveries", administrator, admin_webhook_deliveries},
    endpoint{rk::webhook_ping, verb::post, "admin_webhook_ping", administrator, admin_webhook_ping},
    endpoint{rk::webhook_delivery, verb::post, "admin_webhook_redeliver", administrator, admin_redeliver},
    endpoint{rk::audit, verb::get, "admin_audit", administrator, admin_audit},
    // Operations (operations.cc): probes need no credentials and tell nothing but their state.
    endpoint{rk::health_live, verb::get, "health_live", anyone, health_live},
    endpoint{rk::health_live, verb::head, "health_live", anyone, health_live},
    endpoint{rk::health_ready, verb::get, "health_ready", anyone, health_ready},
    endpoint{rk::health_ready, verb::head, "health_ready", anyone, health_ready},
    endpoint{rk::metrics, verb::get, "metrics", {k::metrics}, metrics_get},
};

}  // namespace

std::span<const endpoint> route_table() { return kTable; }

const endpoint* find_endpoint(route_kind kind, verb method) {
  for (const auto& e : kTable) {
    if (e.kind == kind && e.method == method) return &e;
  }
  return nullptr;
}

std::size_t endpoint_index(const endpoint* e) {
  return e == nullptr ? kTable.size() : static_cast<std::size_t>(e - kTable.data());
}

result<void> authorize_named(const context& ctx, std::string_view name) {
  if (!valid_name(name)) return fail(errc::name_invalid, "repository name must match the OCI name grammar");
  auto d = ctx.pol->decide(ctx.who->principal(), ctx.current->need.act, name);
  if (!d.allowed) return fail(errc::denied, std::move(d.reason));
  return {};
}

}  // namespace berth::api
