#include "app/config.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace berth::app {
namespace {

std::string write_temp(const std::string& text) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("berth-config-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "-" +
                     ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".yaml");
  std::ofstream(path) << text;
  return path.string();
}

TEST(Config, DefaultsWhenEmpty) {
  const auto c = load_config(write_temp(""));
  EXPECT_EQ(c.listen, "127.0.0.1:5000");
  EXPECT_EQ(c.data, "./berth-data");
  EXPECT_EQ(c.manifest_max_bytes, 4u * 1024 * 1024);
  EXPECT_FALSE(c.tls);
}

TEST(Config, ReadsEveryKey) {
  const auto c = load_config(write_temp(R"(
listen: 0.0.0.0:5443
data: /srv/berth
log_level: debug
trust_forwarded_headers: true
threads: 3
tls:
  certificate: /etc/berth/cert.pem
  private_key: /etc/berth/key.pem
limits:
  manifest_max_bytes: 1048576
  max_page: 500
  shutdown_grace_seconds: 5
  upload_idle_hours: 48
)"));
  EXPECT_EQ(c.listen, "0.0.0.0:5443");
  EXPECT_EQ(c.data, "/srv/berth");
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_TRUE(c.trust_forwarded_headers);
  EXPECT_EQ(c.threads, 3);
  ASSERT_TRUE(c.tls);
  EXPECT_EQ(c.tls->certificate, "/etc/berth/cert.pem");
  EXPECT_EQ(c.manifest_max_bytes, 1048576u);
  EXPECT_EQ(c.max_page, 500u);
  EXPECT_EQ(c.shutdown_grace_seconds, 5);
  EXPECT_EQ(c.upload_idle_hours, 48);
}

TEST(Config, RejectsUnknownKeysAndWrongTypes) {
  EXPECT_THROW(load_config(write_temp("listne: x\n")), std::runtime_error);
  EXPECT_THROW(load_config(write_temp("limits:\n  manifest_max_bytes: lots\n")), std::runtime_error);
  EXPECT_THROW(load_config(write_temp("tls:\n  certificate: a.pem\n")), std::runtime_error);
  EXPECT_THROW(load_config(write_temp("limits:\n  upload_idle_hours: 0\n")), std::runtime_error);
  EXPECT_THROW(load_config(write_temp("- a\n- b\n")), std::runtime_error);
  EXPECT_THROW(load_config("/nonexistent/berth.yaml"), std::runtime_error);
}

}  // namespace
}  // namespace berth::app
