// Every endpoint of the HTTP API in one table: the route and method it answers, the handler, and the
// access it requires. Dispatch and authorisation both read this table (registry_api.cc), so they
// cannot drift apart; route_table_test.cc checks it (every route × method the API answers has a
// requirement; none answers twice).
#pragma once

#include <span>
#include <string_view>

#include "api/handlers.h"
#include "api/router.h"
#include "policy/policy.h"

namespace berth::api {

using verb = http::beast::http::verb;

// What an endpoint requires of its caller, checked before its handler runs.
struct access {
  enum class kind {
    anyone,         // no credentials required (/token reads them itself)
    authenticated,  // any authenticated caller; what it is shown is filtered by its grants
    catalog,        // authenticated, and a bearer token must hold registry:catalog:*
    repository,     // `act` on one repository, named by the route (or by the body: see `from`)
    administrator,  // `admin` on every repository: users, robots, grants
    metrics,        // administrator, or anyone when the config says `metrics.public: true`
  };
  enum class source {
    path,  // the route's name
    body,  // a name in the request body: the handler checks it with authorize_named()
  };
  kind k = kind::authenticated;
  policy::action act = policy::action::pull;
  source from = source::path;
  // The actions a token asks for in the challenge's scope, "repository:<name>:<scope>".
  std::string_view scope = {};
};

using handler = awaitable<result<response>> (*)(context&, request&, const route&);

struct endpoint {
  route_kind kind;
  verb method;
  std::string_view operation;  // the endpoint's name in logs and metrics, e.g. "manifest_put"
  access need;
  handler handle;
  // Creates the repository when it is missing: NAME_UNKNOWN in an explicit-creation namespace.
  bool creates_repository = false;
  // The action of a change, recorded in the audit log whatever its outcome (api/audit.h); "" when
  // the endpoint changes nothing (only its 403 refusals are recorded, under `operation`).
  std::string_view audit = {};
};

// The whole table, in no particular order.
std::span<const endpoint> route_table();
// The endpoint for `kind` and `method`; nullptr when there is none (404 for route_kind::not_found,
// else 405).
const endpoint* find_endpoint(route_kind kind, verb method);
// The row's position in route_table(); route_table().size() for nullptr (the metrics' index).
std::size_t endpoint_index(const endpoint* e);

// For a handler whose repository comes from the body (access::source::body): whether the caller
// may do the endpoint's action on `name` (NAME_INVALID when it is not a valid name, DENIED when not).
result<void> authorize_named(const context& ctx, std::string_view name);

}  // namespace berth::api
