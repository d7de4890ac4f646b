// Maps a request path onto a route of the HTTP API: the OCI Distribution routes under /v2/, the
// token endpoint, the admin API under /api/v1/, and /health/* and /metrics. Repository names contain slashes, so an OCI path
// is read from its end: the last segments say which resource it is, the rest is the name. Nothing
// here validates the name or reference; the handlers do, before they touch storage. What each route
// answers, and the access it needs, is in route_table.h.
#pragma once

#include <string_view>

namespace berth::api {

enum class route_kind {
  not_found,
  // OCI Distribution.
  base,         // /v2/
  catalog,      // /v2/_catalog
  tags,         // /v2/<name>/tags/list
  manifest,     // /v2/<name>/manifests/<reference>
  blob,         // /v2/<name>/blobs/<digest>
  uploads,      // /v2/<name>/blobs/uploads/
  upload,       // /v2/<name>/blobs/uploads/<id>
  referrers,    // /v2/<name>/referrers/<digest>
  // Token authentication.
  token,        // /token
  token_keys,   // /token/jwks.json
  // The admin API.
  whoami,        // /api/v1/whoami
  check,         // /api/v1/check
  namespaces,    // /api/v1/namespaces
  namespace_,    // /api/v1/namespaces/<name>
  repositories,  // /api/v1/repositories
  repository,    // /api/v1/repositories/<name>
  repository_tags,  // /api/v1/repositories/<name>/tags
  repository_tag,   // /api/v1/repositories/<name>/tags/<tag>
  tag_history,      // /api/v1/repositories/<name>/tags/<tag>/history
  users,         // /api/v1/users
  user,          // /api/v1/users/<name>
  robots,        // /api/v1/robots
  robot,         // /api/v1/robots/<name>
  grants,        // /api/v1/grants
  grant,         // /api/v1/grants/<id>
  retention_preview,  // /api/v1/retention/preview
  retention_run,      // /api/v1/retention/run
  retention_rules,    // /api/v1/retention/rules
  gc,            // /api/v1/gc
  usage,         // /api/v1/usage
  webhooks,            // /api/v1/webhooks
  webhook_deliveries,  // /api/v1/webhooks/<name>/deliveries
  webhook_ping,        // /api/v1/webhooks/<name>/ping
  webhook_delivery,    // /api/v1/webhook-deliveries/<id>
  audit,         // /api/v1/audit
  // Operations.
  health_live,   // /health/live
  health_ready,  // /health/ready
  metrics,       // /metrics
};

// Which part of the API a path belongs to: it decides which credentials are accepted and how a
// refusal is challenged (access.h).
// `operations`: the health probes and the metrics, for load balancers and Prometheus (Basic
// credentials, as the admin API, when the route needs any).
enum class api_area { registry, token, admin, operations };

struct route {
  route_kind kind = route_kind::not_found;
  std::string_view name;       // repository, namespace, user or robot name (not validated)
  std::string_view reference;  // tag, digest, upload id or grant id (not validated)
  api_area area = api_area::registry;
};

// `path` is the request target up to '?'. The views point into `path`.
route match_route(std::string_view path);
// The same, with an admin route's name percent-decoded into `decoded` (and `name` pointing there)
// when it holds an escape. An encoded slash is not a separator, so `/api/v1/repositories/a%2Ftags`
// is the repository `a/tags`, which `/api/v1/repositories/a/tags` (a's tags) cannot name.
route match_route(std::string_view path, std::string& decoded);

}  // namespace berth::api
