// The handlers behind registry_api, one group per file, and what they share. Each returns the
// response, or the error that errors.cc renders. `name` and `reference` come from the router and
// are validated by the handler before any use.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "api/registry_api.h"
#include "api/router.h"
#include "core/digest.h"

namespace berth::api {

using http::asio::awaitable;
using http::request;
using http::response;

// blobs.cc
awaitable<result<response>> get_blob(context& ctx, request& req, const route& r, bool head);
awaitable<result<response>> delete_blob(context& ctx, request& req, const route& r);

// uploads.cc
awaitable<result<response>> start_upload(context& ctx, request& req, const route& r);
awaitable<result<response>> patch_upload(context& ctx, request& req, const route& r);
awaitable<result<response>> finish_upload(context& ctx, request& req, const route& r);
awaitable<result<response>> upload_status(context& ctx, request& req, const route& r);
awaitable<result<response>> cancel_upload(context& ctx, request& req, const route& r);

// manifests.cc
awaitable<result<response>> get_manifest(context& ctx, request& req, const route& r, bool head);
awaitable<result<response>> put_manifest(context& ctx, request& req, const route& r);
awaitable<result<response>> delete_manifest(context& ctx, request& req, const route& r);
awaitable<result<response>> get_referrers(context& ctx, request& req, const route& r);

// lifecycle.cc: /api/v1/repositories/<name>/tags[...]: tag records, history, promotion.
awaitable<result<response>> admin_tags(context& ctx, request& req, const route& r);
awaitable<result<response>> admin_tag_history(context& ctx, request& req, const route& r);
awaitable<result<response>> admin_promote(context& ctx, request& req, const route& r);

// listings.cc
awaitable<result<response>> list_tags(context& ctx, request& req, const route& r);
awaitable<result<response>> list_catalog(context& ctx, request& req);

// token.cc: GET/POST /token (Docker token authentication, OAuth2 password and refresh grants) and
// the public keys that verify the tokens.
awaitable<result<response>> token_get(context& ctx, request& req, const route& r);
awaitable<result<response>> token_post(context& ctx, request& req, const route& r);
awaitable<result<response>> token_keys(context& ctx, request& req, const route& r);

// admin.cc: /api/v1/... (JSON). `ctx.who` holds the caller's principal with its grants.
awaitable<result<response>> admin_whoami(context& ctx, request& req, const route& r);
awaitable<result<response>> admin_check(context& ctx, request& req, const route& r);
awaitable<result<response>> admin_namespaces(context& ctx, request& req, const route& r);
awaitable<result<response>> admin_put_namespace(context& ctx, request& req, const route& r);
awaitable<result<response>> admin_delete_namespace(context& ctx, request& req, const route& r);
awaitable<result<response>> admin_repositories(context& ctx, request& req, const route& r);
awaitable<result<response>> admin_create_repository(context& ctx, request& req, const route& r);
awaitable<result<response>> admin_delete_repository(context& ctx, request& req, const route& r);
awaitable<result<response>> admin_users(context& ctx, request& req, const route& r);
awaitable<result<response>> admin_create_user(context& ctx, request& req, const route& r);
awaitable<result<response>> admin_delete_user(context& ctx, request& req, const route& r);
awaitable<result<response>> admin_robots(context& ctx, request& req, const route& r);
awaitable<result<response>> admin_create_robot(context& ctx, request& req, const route& r);
awaitable<result<response>> admin_update_robot(context& ctx, request& req, const route& r);
awaitable<result<response>> admin_revoke_robot(context& ctx, request& req, const route& r);
awaitable<result<response>> admin_grants(context& ctx, request& req, const route& r);
awaitable<result<response>> admin_create_grant(context& ctx, request& req, const route& r);
awaitable<result<response>> admin_delete_grant(context& ctx, request& req, const route& r);
// gc.cc: POST /api/v1/gc?dry_run=true|false runs a collection; GET lists the last runs.
awaitable<result<response>> admin_gc_run(context& ctx, request& req, const route& r);
awaitable<result<response>> admin_gc_runs(context& ctx, request& req, const route& r);
// usage.cc: GET /api/v1/usage[?namespace=NS].
awaitable<result<response>> admin_usage(context& ctx, request& req, const route& r);
// audit.cc: GET /api/v1/audit?repository=&subject=&action=&since=&until=&n=&last= (newest first).
awaitable<result<response>> admin_audit(context& ctx, request& req, const route& r);

// webhooks.cc (global admin): GET /api/v1/webhooks; GET /api/v1/webhooks/<name>/deliveries
// [?failed=true&before=ID]; POST /api/v1/webhooks/<name>/ping; POST /api/v1/webhook-deliveries/<id>
// (redelivers).
awaitable<result<response>> admin_webhooks(context& ctx, request& req, const route& r);
awaitable<result<response>> admin_webhook_deliveries(context& ctx, request& req, const route& r);
awaitable<result<response>> admin_webhook_ping(context& ctx, request& req, const route& r);
awaitable<result<response>> admin_redeliver(context& ctx, request& req, const route& r);

// retention.cc: /api/v1/retention/{preview,run,rules} (global admin).
awaitable<result<response>> admin_retention_rules(context& ctx, request& req, const route& r);
awaitable<result<response>> admin_put_retention_rules(context& ctx, request& req, const route& r);
awaitable<result<response>> admin_retention_preview(context& ctx, request& req, const route& r);
awaitable<result<response>> admin_retention_run(context& ctx, request& req, const route& r);

// operations.cc: probes and Prometheus metrics.
awaitable<result<response>> health_live(context& ctx, request& req, const route& r);
awaitable<result<response>> health_ready(context& ctx, request& req, const route& r);
awaitable<result<response>> metrics_get(context& ctx, request& req, const route& r);

// Shared helpers (registry_api.cc).
// Verifies a username and password (or robot token, or OIDC token as the password of `oidc`):
// failed attempts count against the account from the client's address; past the limit,
// TOOMANYREQUESTS (429) with the seconds to wait in Retry-After (see auth/rate_limiter.h).
awaitable<result<policy::principal>> login(context& ctx, const request& req, std::string_view username,
                                           std::string_view password);
// The client's address: behind a trusted proxy (trust_forwarded_headers) the last X-Forwarded-For
// entry, the one the proxy appended; else the peer's address.
std::string client_address(const context& ctx, const request& req);
// A JSON response with `status`.
response json_response(unsigned status, const std::string& body);
// The repository name, or NAME_INVALID.
result<std::string_view> checked_name(std::string_view name);
// The digest, or DIGEST_INVALID.
result<digest> checked_digest(std::string_view text);
// An absolute URL for `path` on this registry, from Host (or trusted X-Forwarded-*), as clients
// expect in Location headers.
std::string absolute_url(const context& ctx, const request& req, std::string_view path);
// A response with no body and `status`.
response empty_response(unsigned status);

}  // namespace berth::api
