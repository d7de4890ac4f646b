#include "auth/rate_limiter.h"

#include <gtest/gtest.h>

namespace berth::auth {
namespace {

using namespace std::chrono_literals;

TEST(RateLimiter, BlocksAfterLimitFailuresWithinWindow) {
  rate_limiter limiter(3, 60s);
  const auto t0 = rate_limiter::clock::time_point{} + 1000s;
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(limiter.allowed("10.0.0.1", t0));
    limiter.failed("10.0.0.1", t0 + std::chrono::seconds(i));
  }
  EXPECT_FALSE(limiter.allowed("10.0.0.1", t0 + 5s));
  EXPECT_EQ(limiter.retry_after("10.0.0.1", t0 + 5s), 55s);
  // Other addresses are unaffected.
  EXPECT_TRUE(limiter.allowed("10.0.0.2", t0 + 5s));
  // The oldest failure ages out after the window.
  EXPECT_TRUE(limiter.allowed("10.0.0.1", t0 + 60s));
  EXPECT_EQ(limiter.retry_after("10.0.0.1", t0 + 60s), 0s);
}

TEST(RateLimiter, ZeroLimitDisables) {
  rate_limiter limiter(0, 60s);
  for (int i = 0; i < 100; ++i) limiter.failed("a");
  EXPECT_TRUE(limiter.allowed("a"));
}

TEST(RateLimiter, BoundedMemory) {
  rate_limiter limiter(1, 60s, 2);
  const auto t0 = rate_limiter::clock::time_point{} + 1000s;
  limiter.failed("a", t0);
  limiter.failed("b", t0 + 1s);
  limiter.failed("c", t0 + 2s);  // evicts "a", the stalest
  EXPECT_TRUE(limiter.allowed("a", t0 + 3s));
  EXPECT_FALSE(limiter.allowed("b", t0 + 3s));
  EXPECT_FALSE(limiter.allowed("c", t0 + 3s));
}

}  // namespace
}  // namespace berth::auth
