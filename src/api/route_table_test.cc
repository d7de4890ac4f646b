#include "api/route_table.h"

#include <gtest/gtest.h>

#include <set>
#include <utility>

namespace berth::api {
namespace {

using k = access::kind;
using policy::action;

// Every route the router can produce, with a path that produces it.
constexpr std::pair<route_kind, const char*> kRoutes[] = {
    {route_kind::base, "/v2/"},
    {route_kind::catalog, "/v2/_catalog"},
    {route_kind::tags, "/v2/a/tags/list"},
    {route_kind::manifest, "/v2/a/manifests/v1"},
    {route_kind::blob, "/v2/a/blobs/sha256:00"},
    {route_kind::uploads, "/v2/a/blobs/uploads/"},
    {route_kind::upload, "/v2/a/blobs/uploads/id"},
    {route_kind::referrers, "/v2/a/referrers/sha256:00"},
    {route_kind::token, "/token"},
    {route_kind::token_keys, "/token/jwks.json"},
    {route_kind::whoami, "/api/v1/whoami"},
    {route_kind::check, "/api/v1/check"},
    {route_kind::namespaces, "/api/v1/namespaces"},
    {route_kind::namespace_, "/api/v1/namespaces/qa"},
    {route_kind::repositories, "/api/v1/repositories"},
    {route_kind::repository, "/api/v1/repositories/a/b"},
    {route_kind::repository_tags, "/api/v1/repositories/a/b/tags"},
    {route_kind::repository_tag, "/api/v1/repositories/a/b/tags/v1"},
    {route_kind::tag_history, "/api/v1/repositories/a/b/tags/v1/history"},
    {route_kind::users, "/api/v1/users"},
    {route_kind::user, "/api/v1/users/alice"},
    {route_kind::robots, "/api/v1/robots"},
    {route_kind::robot, "/api/v1/robots/ci"},
    {route_kind::grants, "/api/v1/grants"},
    {route_kind::grant, "/api/v1/grants/1"},
    {route_kind::retention_preview, "/api/v1/retention/preview"},
    {route_kind::retention_run, "/api/v1/retention/run"},
    {route_kind::retention_rules, "/api/v1/retention/rules"},
    {route_kind::gc, "/api/v1/gc"},
    {route_kind::usage, "/api/v1/usage"},
    {route_kind::webhooks, "/api/v1/webhooks"},
    {route_kind::webhook_deliveries, "/api/v1/webhooks/deploy/deliveries"},
    {route_kind::webhook_ping, "/api/v1/webhooks/deploy/ping"},
    {route_kind::webhook_delivery, "/api/v1/webhook-deliveries/12"},
    {route_kind::audit, "/api/v1/audit"},
    {route_kind::health_live, "/health/live"},
    {route_kind::health_ready, "/health/ready"},
    {route_kind::metrics, "/metrics"},
};

api_area area_of(route_kind kind) {
  for (const auto& [k, path] : kRoutes) {
    if (k == kind) return match_route(path).area;
  }
  ADD_FAILURE() << "route " << static_cast<int>(kind) << " is missing from kRoutes";
  return api_area::registry;
}

TEST(RouteTable, EveryRouteAnswersSomeMethodAndEveryRowIsReachable) {
  std::set<route_kind> answered;
  for (const auto& e : route_table()) answered.insert(e.kind);
  for (const auto& [kind, path] : kRoutes) {
    EXPECT_EQ(match_route(path).kind, kind) << path;
    EXPECT_TRUE(answered.contains(kind)) << path << " has no endpoint";
  }
  EXPECT_EQ(answered.size(), std::size(kRoutes)) << "a row names a route the router never produces";
  EXPECT_FALSE(answered.contains(route_kind::not_found));
}

TEST(RouteTable, NoRouteAndMethodAnswersTwiceAndEveryRowIsComplete) {
  std::set<std::pair<route_kind, verb>> seen;
  for (const auto& e : route_table()) {
    EXPECT_TRUE(seen.insert({e.kind, e.method}).second) << e.operation;
    EXPECT_NE(e.handle, nullptr) << e.operation;
    EXPECT_FALSE(e.operation.empty());
    EXPECT_EQ(find_endpoint(e.kind, e.method), &e);
    // A refused OCI request is challenged with the scope a token needs.
    if (e.need.k == k::repository && area_of(e.kind) == api_area::registry) {
      EXPECT_FALSE(e.need.scope.empty()) << e.operation << ": no challenge scope";
    }
  }
}

TEST(RouteTable, OnlyTheTokenEndpointAndTheProbesAreOpenToAnyone) {
  for (const auto& e : route_table()) {
    const bool open = e.kind == route_kind::token || e.kind == route_kind::token_keys ||
                      e.kind == route_kind::health_live || e.kind == route_kind::health_ready;
    EXPECT_EQ(e.need.k == k::anyone, open) << e.operation;
  }
  // The metrics are the administrator's unless the configuration makes them public.
  EXPECT_EQ(find_endpoint(route_kind::metrics, verb::get)->need.k, k::metrics);
  EXPECT_EQ(area_of(route_kind::metrics), api_area::operations);
}

TEST(RouteTable, EndpointIndexIsTheRowsPosition) {
  const auto table = route_table();
  for (std::size_t i = 0; i < table.size(); ++i) EXPECT_EQ(endpoint_index(&table[i]), i);
  EXPECT_EQ(endpoint_index(nullptr), table.size());
}

// The access matrix of the OCI routes: reads pull, writes push, deletes delete, listings list.
TEST(RouteTable, OciRoutesRequireTheSpecsActions) {
  struct want {
    route_kind kind;
    verb method;
    k who;
    action act;
  };
  constexpr want kWant[] = {
      {route_kind::base, verb::get, k::authenticated, action::pull},
      {route_kind::catalog, verb::get, k::catalog, action::list},
      {route_kind::tags, verb::get, k::repository, action::list},
      {route_kind::manifest, verb::get, k::repository, action::pull},
      {route_kind::manifest, verb::head, k::repository, action::pull},
      {route_kind::manifest, verb::put, k::repository, action::push},
      {route_kind::manifest, verb::delete_, k::repository, action::delete_},
      {route_kind::blob, verb::get, k::repository, action::pull},
      {route_kind::blob, verb::head, k::repository, action::pull},
      {route_kind::blob, verb::delete_, k::repository, action::delete_},
      {route_kind::uploads, verb::post, k::repository, action::push},
      {route_kind::upload, verb::patch, k::repository, action::push},
      {route_kind::upload, verb::put, k::repository, action::push},
      {route_kind::upload, verb::get, k::repository, action::push},
      {route_kind::upload, verb::delete_, k::repository, action::push},
      {route_kind::referrers, verb::get, k::repository, action::pull},
  };
  for (const auto& w : kWant) {
    const endpoint* e = find_endpoint(w.kind, w.method);
    ASSERT_NE(e, nullptr) << static_cast<int>(w.kind) << " " << w.method;
    EXPECT_EQ(e->need.k, w.who) << e->operation;
    if (w.who == k::repository) {
      EXPECT_EQ(e->need.act, w.act) << e->operation;
    }
  }
  // Only the writes that start a repository's content create it (a promotion may start it too).
  for (const auto& e : route_table()) {
    const bool creates = (e.kind == route_kind::manifest && e.method == verb::put) ||
                         (e.kind == route_kind::uploads && e.method == verb::post) ||
                         (e.kind == route_kind::repository_tag && e.method == verb::post);
    EXPECT_EQ(e.creates_repository, creates) << e.operation;
  }
}

TEST(RouteTable, AdminWritesNeedAdmin) {
  for (const auto& e : route_table()) {
    if (area_of(e.kind) != api_area::admin || e.method == verb::get) continue;
    if (e.kind == route_kind::repository_tag) continue;  // a promotion: push, below
    EXPECT_EQ(e.need.act, action::admin) << e.operation;
    EXPECT_TRUE(e.need.k == k::administrator || e.need.k == k::repository) << e.operation;
  }
  EXPECT_EQ(find_endpoint(route_kind::users, verb::get)->need.k, k::administrator);
  EXPECT_EQ(find_endpoint(route_kind::grants, verb::get)->need.k, k::administrator);
  EXPECT_EQ(find_endpoint(route_kind::gc, verb::get)->need.k, k::administrator);
  EXPECT_EQ(find_endpoint(route_kind::gc, verb::post)->need.k, k::administrator);
  EXPECT_EQ(find_endpoint(route_kind::namespace_, verb::put)->need.k, k::administrator);
  EXPECT_EQ(find_endpoint(route_kind::robot, verb::patch)->need.k, k::administrator);
  EXPECT_EQ(find_endpoint(route_kind::repositories, verb::post)->need.from, access::source::body);
  // Webhook URLs and deliveries name receivers and events across every repository.
  for (auto kind : {route_kind::webhooks, route_kind::webhook_deliveries})
    EXPECT_EQ(find_endpoint(kind, verb::get)->need.k, k::administrator);
}

TEST(RouteTable, WebhookRoutesNameTheirWebhookOrDelivery) {
  EXPECT_EQ(match_route("/api/v1/webhooks/deploy/deliveries").name, "deploy");
  EXPECT_EQ(match_route("/api/v1/webhooks/deploy/ping").name, "deploy");
  EXPECT_EQ(match_route("/api/v1/webhook-deliveries/12").reference, "12");
  EXPECT_EQ(match_route("/api/v1/webhooks/deploy").kind, route_kind::not_found);
  EXPECT_EQ(match_route("/api/v1/webhooks/deploy/other").kind, route_kind::not_found);
}

// A promotion needs push on the target (the path); the handler checks pull on the source.
TEST(RouteTable, LifecycleRoutesNeedListOrPush) {
  EXPECT_EQ(find_endpoint(route_kind::repository_tags, verb::get)->need.act, action::list);
  EXPECT_EQ(find_endpoint(route_kind::tag_history, verb::get)->need.act, action::list);
  const endpoint* promote = find_endpoint(route_kind::repository_tag, verb::post);
  EXPECT_EQ(promote->need.k, k::repository);
  EXPECT_EQ(promote->need.act, action::push);
  EXPECT_EQ(promote->need.from, access::source::path);
}

TEST(RouteTable, UnknownMethodsHaveNoEndpoint) {
  EXPECT_EQ(find_endpoint(route_kind::catalog, verb::post), nullptr);
  EXPECT_EQ(find_endpoint(route_kind::uploads, verb::get), nullptr);
  EXPECT_EQ(find_endpoint(route_kind::grant, verb::get), nullptr);
  EXPECT_EQ(find_endpoint(route_kind::not_found, verb::get), nullptr);
}

}  // namespace
}  // namespace berth::api
