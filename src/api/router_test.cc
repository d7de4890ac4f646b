#include "api/router.h"

#include <gtest/gtest.h>

namespace berth::api {
namespace {

TEST(Router, BaseAndCatalog) {
  EXPECT_EQ(match_route("/v2/").kind, route_kind::base);
  EXPECT_EQ(match_route("/v2").kind, route_kind::base);
  EXPECT_EQ(match_route("/v2/_catalog").kind, route_kind::catalog);
  EXPECT_EQ(match_route("/v3/").kind, route_kind::not_found);
  EXPECT_EQ(match_route("/").kind, route_kind::not_found);
}

TEST(Router, NamesWithSlashes) {
  auto r = match_route("/v2/a/b/c/manifests/latest");
  EXPECT_EQ(r.kind, route_kind::manifest);
  EXPECT_EQ(r.name, "a/b/c");
  EXPECT_EQ(r.reference, "latest");

  r = match_route("/v2/org/app/tags/list");
  EXPECT_EQ(r.kind, route_kind::tags);
  EXPECT_EQ(r.name, "org/app");

  r = match_route("/v2/x/referrers/sha256:abc");
  EXPECT_EQ(r.kind, route_kind::referrers);
  EXPECT_EQ(r.reference, "sha256:abc");
}

TEST(Router, BlobsAndUploads) {
  auto r = match_route("/v2/a/blobs/sha256:00");
  EXPECT_EQ(r.kind, route_kind::blob);
  EXPECT_EQ(r.name, "a");

  r = match_route("/v2/a/b/blobs/uploads/");
  EXPECT_EQ(r.kind, route_kind::uploads);
  EXPECT_EQ(r.name, "a/b");

  r = match_route("/v2/a/b/blobs/uploads");
  EXPECT_EQ(r.kind, route_kind::uploads);
  EXPECT_EQ(r.name, "a/b");

  r = match_route("/v2/a/blobs/uploads/1234-abcd");
  EXPECT_EQ(r.kind, route_kind::upload);
  EXPECT_EQ(r.name, "a");
  EXPECT_EQ(r.reference, "1234-abcd");
}

TEST(Router, ResourceWordsInsideNames) {
  // A repository may be called "blobs" or "manifests": only the last segments decide.
  auto r = match_route("/v2/manifests/blobs/manifests/v1");
  EXPECT_EQ(r.kind, route_kind::manifest);
  EXPECT_EQ(r.name, "manifests/blobs");

  r = match_route("/v2/blobs/blobs/uploads/");
  EXPECT_EQ(r.kind, route_kind::uploads);
  EXPECT_EQ(r.name, "blobs");
}

TEST(Router, Malformed) {
  EXPECT_EQ(match_route("/v2/manifests/latest").kind, route_kind::not_found);
  EXPECT_EQ(match_route("/v2/a/unknown/x").kind, route_kind::not_found);
  EXPECT_EQ(match_route("/v2/a/blobs/uploads/x/y").kind, route_kind::not_found);
  EXPECT_EQ(match_route("/v2/tags/list").kind, route_kind::not_found);
}

TEST(Router, TokenEndpoint) {
  EXPECT_EQ(match_route("/token").kind, route_kind::token);
  EXPECT_EQ(match_route("/token").area, api_area::token);
  EXPECT_EQ(match_route("/token/jwks.json").kind, route_kind::token_keys);
  const auto r = match_route("/token/other");
  EXPECT_EQ(r.kind, route_kind::not_found);
  EXPECT_EQ(r.area, api_area::token);
}

// A repository whose name ends in /tags is named with its slashes encoded; so is any other.
TEST(Router, AdminNamesMayBeEncoded) {
  std::string decoded;
  auto r = match_route("/api/v1/repositories/team%2Ftags", decoded);
  EXPECT_EQ(r.kind, route_kind::repository);
  EXPECT_EQ(r.name, "team/tags");
  r = match_route("/api/v1/repositories/team%2ftags/tags", decoded);
  EXPECT_EQ(r.kind, route_kind::repository_tags);
  EXPECT_EQ(r.name, "team/tags");
  r = match_route("/api/v1/repositories/team%2Ftags/tags/v1/history", decoded);
  EXPECT_EQ(r.kind, route_kind::tag_history);
  EXPECT_EQ(r.name, "team/tags");
  EXPECT_EQ(r.reference, "v1");
  r = match_route("/api/v1/repositories/team/tags", decoded);  // unencoded: team's tags
  EXPECT_EQ(r.kind, route_kind::repository_tags);
  EXPECT_EQ(r.name, "team");
  // Only admin names are decoded: OCI names never hold an escape.
  r = match_route("/v2/a%2Fb/manifests/latest", decoded);
  EXPECT_EQ(r.name, "a%2Fb");
  r = match_route("/api/v1/robots/c%69", decoded);
  EXPECT_EQ(r.name, "ci");
}

TEST(Router, AdminApi) {
  auto r = match_route("/api/v1/repositories/production/app");
  EXPECT_EQ(r.kind, route_kind::repository);
  EXPECT_EQ(r.area, api_area::admin);
  EXPECT_EQ(r.name, "production/app");

  r = match_route("/api/v1/repositories/production/app/tags");
  EXPECT_EQ(r.kind, route_kind::repository_tags);
  EXPECT_EQ(r.name, "production/app");
  r = match_route("/api/v1/repositories/production/app/tags/v1.4.0");
  EXPECT_EQ(r.kind, route_kind::repository_tag);
  EXPECT_EQ(r.name, "production/app");
  EXPECT_EQ(r.reference, "v1.4.0");
  r = match_route("/api/v1/repositories/production/app/tags/latest/history");
  EXPECT_EQ(r.kind, route_kind::tag_history);
  EXPECT_EQ(r.name, "production/app");
  EXPECT_EQ(r.reference, "latest");
  // A tag named "history" is a tag; a path without a name before /tags is the repository itself.
  r = match_route("/api/v1/repositories/a/tags/history");
  EXPECT_EQ(r.kind, route_kind::repository_tag);
  EXPECT_EQ(r.reference, "history");
  r = match_route("/api/v1/repositories/tags/x");
  EXPECT_EQ(r.kind, route_kind::repository);
  EXPECT_EQ(r.name, "tags/x");
  r = match_route("/api/v1/grants/12");
  EXPECT_EQ(r.kind, route_kind::grant);
  EXPECT_EQ(r.reference, "12");

  EXPECT_EQ(match_route("/api/v1/robots").kind, route_kind::robots);
  EXPECT_EQ(match_route("/api/v1/robots/ci").name, "ci");
  EXPECT_EQ(match_route("/api/v1/whoami").kind, route_kind::whoami);
  EXPECT_EQ(match_route("/api/v1/retention/preview").kind, route_kind::retention_preview);
  EXPECT_EQ(match_route("/api/v1/retention/run").kind, route_kind::retention_run);
  EXPECT_EQ(match_route("/api/v1/retention/rules").kind, route_kind::retention_rules);
  EXPECT_EQ(match_route("/api/v1/retention").kind, route_kind::not_found);
  EXPECT_EQ(match_route("/api/v1/retention/other").kind, route_kind::not_found);
  // Unknown resources, items of a resource that has none, empty items: not found, still admin.
  for (const char* path : {"/api/v1/", "/api/v1/nope", "/api/v1/whoami/x", "/api/v1/users/"}) {
    r = match_route(path);
    EXPECT_EQ(r.kind, route_kind::not_found) << path;
    EXPECT_EQ(r.area, api_area::admin) << path;
  }
}

}  // namespace
}  // namespace berth::api
