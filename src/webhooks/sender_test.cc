#include "webhooks/sender.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <array>

namespace berth::webhooks {
namespace {

using std::chrono::milliseconds;

TEST(RetryDelay, DoublesFromTheBaseUpToAnHour) {
  const milliseconds second(1000);
  EXPECT_EQ(retry_delay(1, second), milliseconds(1000));
  EXPECT_EQ(retry_delay(2, second), milliseconds(2000));
  EXPECT_EQ(retry_delay(5, second), milliseconds(16000));
  EXPECT_EQ(retry_delay(12, second), milliseconds(2048 * 1000));
  EXPECT_EQ(retry_delay(13, second), milliseconds(3600 * 1000));
  EXPECT_EQ(retry_delay(1000, second), milliseconds(3600 * 1000));
  EXPECT_EQ(retry_delay(3, milliseconds(50)), milliseconds(200));
}

TEST(Signature, IsTheHexHmacSha256OfTheBody) {
  // RFC 4231, test case 2.
  EXPECT_EQ(signature("Jefe", "what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(EventBody, NamesTheEventAndTheRegistry) {
  meta::webhook_delivery d;
  d.id = 7;
  d.event_id = "abc";
  d.event = "push";
  d.at_ms = 1'700'000'000'123;
  d.repository = "production/app";
  d.tag = "v1";
  d.digest = "sha256:00";
  d.media_type = "application/vnd.oci.image.manifest.v1+json";
  d.size = 512;
  d.actor = "robot:ci";
  const auto body = nlohmann::json::parse(event_body(d, "registry.example:5000"));
  EXPECT_EQ(body["id"], "abc");
  EXPECT_EQ(body["type"], "push");
  EXPECT_EQ(body["time"], "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(body["repository"], "production/app");
  EXPECT_EQ(body["tag"], "v1");
  EXPECT_EQ(body["digest"], "sha256:00");
  EXPECT_EQ(body["mediaType"], "application/vnd.oci.image.manifest.v1+json");
  EXPECT_EQ(body["size"], 512);
  EXPECT_EQ(body["actor"], "robot:ci");
  EXPECT_EQ(body["host"], "registry.example:5000");
  EXPECT_FALSE(body.contains("source"));
}

TEST(Router, MatchesEventsAndRepositoryPatterns) {
  webhooks_config config;
  config.hooks.push_back({"deploy", "http://127.0.0.1:1/", {"push", "promote"}, {"production/*"}, "f", "s", 5});
  config.hooks.push_back({"audit", "http://127.0.0.1:1/", {"delete", "retention"}, {"*"}, "f", "s", 5});
  const auto route = make_router(config);
  using names = std::vector<std::string>;
  EXPECT_EQ(route("push", "production/app"), names{"deploy"});
  EXPECT_EQ(route("promote", "production/team/app"), names{"deploy"});
  EXPECT_EQ(route("push", "staging/app"), names{});
  EXPECT_EQ(route("delete", "production/app"), names{"audit"});
  EXPECT_EQ(route("retention", "x"), names{"audit"});
}

}  // namespace
}  // namespace berth::webhooks
