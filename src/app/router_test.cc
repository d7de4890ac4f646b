#include "app/router.h"

#include <gtest/gtest.h>

namespace berth::app {
namespace {

http::handler named(int id) {
  return [id](http::request&) -> http::asio::awaitable<http::response> {
    http::response r;
    r.status = static_cast<unsigned>(200 + id);
    co_return r;
  };
}

TEST(Router, MountsMatchWholeSegments) {
  router routes;
  routes.mount("/v2", named(1));
  routes.mount("/token", named(2));
  routes.mount("/api/v1", named(3));
  EXPECT_EQ(routes.find("/v2"), routes.find("/v2/a/manifests/latest"));
  EXPECT_NE(routes.find("/v2"), nullptr);
  EXPECT_NE(routes.find("/token/jwks.json"), nullptr);
  EXPECT_NE(routes.find("/api/v1/users"), nullptr);
  EXPECT_NE(routes.find("/v2"), routes.find("/token"));
  for (const char* path : {"/", "/v2x", "/tokens", "/api", "/api/v2/users", "/health"})
    EXPECT_EQ(routes.find(path), nullptr) << path;
}

TEST(Router, TheLongestPrefixWins) {
  router routes;
  routes.mount("/api", named(1));
  routes.mount("/api/v1", named(2));
  EXPECT_NE(routes.find("/api/v1/x"), routes.find("/api/other"));
  EXPECT_EQ(routes.find("/api/v1"), routes.find("/api/v1/users"));
}

}  // namespace
}  // namespace berth::app
