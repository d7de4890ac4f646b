#include "ops/access_log.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace berth::ops {
namespace {

using namespace std::chrono_literals;

access_entry entry() {
  access_entry e;
  e.time = std::chrono::system_clock::time_point(1'700'000'000'123ms);
  e.remote_address = "10.0.0.1";
  e.identity = "alice";
  e.method = "GET";
  e.route = "manifest_get";
  e.repository = "library/ubuntu";
  e.status = 200;
  e.bytes_in = 0;
  e.bytes_out = 1234;
  e.duration = 1500us;
  e.user_agent = "podman/4.3 (linux)";
  return e;
}

TEST(AccessLog, JsonHasEveryField) {
  const auto line = format_access(entry(), access_log_format::json);
  const auto doc = nlohmann::json::parse(line);
  EXPECT_EQ(doc["time"], "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(doc["remote_address"], "10.0.0.1");
  EXPECT_EQ(doc["identity"], "alice");
  EXPECT_EQ(doc["method"], "GET");
  EXPECT_EQ(doc["route"], "manifest_get");
  EXPECT_EQ(doc["repository"], "library/ubuntu");
  EXPECT_EQ(doc["status"], 200);
  EXPECT_EQ(doc["bytes_out"], 1234);
  EXPECT_DOUBLE_EQ(doc["duration_seconds"].get<double>(), 0.0015);
  EXPECT_EQ(doc["user_agent"], "podman/4.3 (linux)");
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

TEST(AccessLog, TextFieldsCannotForgeALine) {
  auto e = entry();
  e.identity = "";
  e.repository = "a b\nfake";
  e.user_agent = "x\" 200\n\xff";
  const auto line = format_access(e, access_log_format::text);
  EXPECT_EQ(line,
            "2023-11-14T22:13:20.123Z 10.0.0.1 - GET manifest_get a\\x20b\\x0afake 200 0 1234 0.001500 "
            "\"x\\x22 200\\x0a\\xff\"");
}

TEST(AccessLog, JsonReplacesInvalidUtf8) {
  auto e = entry();
  e.user_agent = "bad \xff\xfe";
  const auto doc = nlohmann::json::parse(format_access(e, access_log_format::json));
  EXPECT_EQ(doc["user_agent"], "bad \uFFFD\uFFFD");
  e.user_agent = "q\"\\\x01";
  EXPECT_EQ(nlohmann::json::parse(format_access(e, access_log_format::json))["user_agent"], "q\"\\\x01");
}

}  // namespace
}  // namespace berth::ops
