#include "auth/rate_limiter.h"

#include <gtest/gtest.h>

#include <string>

namespace berth::auth {
namespace {

using namespace std::chrono_literals;

const auto t0 = rate_limiter::clock::time_point{} + 1000s;

TEST(RateLimiter, HoldsOffAnAccountFromAnAddressAfterLimitFailuresWithinTheWindow) {
  rate_limiter limiter(3, 60s);
  for (int i = 0; i < 3; ++i) {
    const auto a = limiter.make_attempt("10.0.0.1", "admin", "guess" + std::to_string(i));
    EXPECT_EQ(limiter.wait(a, t0), 0s);
    limiter.failed(a, t0 + std::chrono::seconds(i));
  }
  const auto next = limiter.make_attempt("10.0.0.1", "admin", "guess3");
  EXPECT_EQ(limiter.wait(next, t0 + 5s), 55s);  // the oldest failure ages out at t0 + 60 s
  EXPECT_EQ(limiter.wait(next, t0 + 59500ms), 1s);
  EXPECT_EQ(limiter.wait(next, t0 + 60s), 0s);
}

TEST(RateLimiter, TheRemainingTimeFollowsTheWindow) {
  rate_limiter limiter(1, 15s);
  limiter.failed(limiter.make_attempt("a", "admin", "x"), t0);
  EXPECT_EQ(limiter.wait(limiter.make_attempt("a", "admin", "y"), t0 + 3s), 12s);
}

TEST(RateLimiter, OtherAccountsAndOtherAddressesAreNotHeldOff) {
  rate_limiter limiter(2, 60s);
  limiter.failed(limiter.make_attempt("10.0.0.1", "admin", "x"), t0);
  limiter.failed(limiter.make_attempt("10.0.0.1", "admin", "y"), t0);
  EXPECT_GT(limiter.wait(limiter.make_attempt("10.0.0.1", "admin", "z"), t0), 0s);
  EXPECT_EQ(limiter.wait(limiter.make_attempt("10.0.0.1", "dev", "z"), t0), 0s);
  EXPECT_EQ(limiter.wait(limiter.make_attempt("10.0.0.2", "admin", "z"), t0), 0s);
  // The key cannot be forged by moving the separator between address and account.
  EXPECT_EQ(limiter.wait(limiter.make_attempt("10.0.0.1a", "dmin", "z"), t0), 0s);
}

TEST(RateLimiter, TheSameCredentialsFailOncePerWindow) {
  rate_limiter limiter(2, 60s);
  const auto a = limiter.make_attempt("10.0.0.1", "admin", "wrong");
  for (int i = 0; i < 5; ++i) limiter.failed(a, t0 + std::chrono::seconds(i));
  EXPECT_EQ(limiter.wait(limiter.make_attempt("10.0.0.1", "admin", "other"), t0 + 5s), 0s);
  limiter.failed(limiter.make_attempt("10.0.0.1", "admin", "other"), t0 + 6s);
  EXPECT_GT(limiter.wait(limiter.make_attempt("10.0.0.1", "admin", "third"), t0 + 7s), 0s);
}

TEST(RateLimiter, CredentialsThatSucceededAreNeverHeldOff) {
  rate_limiter limiter(1, 60s);
  const auto good = limiter.make_attempt("10.0.0.1", "admin", "right");
  limiter.succeeded(good, t0);
  limiter.failed(limiter.make_attempt("10.0.0.1", "admin", "wrong"), t0 + 1s);
  EXPECT_GT(limiter.wait(limiter.make_attempt("10.0.0.1", "admin", "wrong2"), t0 + 2s), 0s);
  EXPECT_EQ(limiter.wait(good, t0 + 2s), 0s);
  // Remembered for a day.
  limiter.failed(limiter.make_attempt("10.0.0.1", "admin", "wrong3"), t0 + 25h);
  EXPECT_GT(limiter.wait(good, t0 + 25h + 1s), 0s);
}

TEST(RateLimiter, ZeroLimitDisables) {
  rate_limiter limiter(0, 60s);
  for (int i = 0; i < 100; ++i) limiter.failed(limiter.make_attempt("a", "b", std::to_string(i)));
  EXPECT_EQ(limiter.wait(limiter.make_attempt("a", "b", "c")), 0s);
}

TEST(RateLimiter, BoundedMemory) {
  rate_limiter limiter(1, 60s, 2);
  limiter.failed(limiter.make_attempt("a", "u", "x"), t0);
  limiter.failed(limiter.make_attempt("b", "u", "x"), t0 + 1s);
  limiter.failed(limiter.make_attempt("c", "u", "x"), t0 + 2s);  // evicts "a", the stalest
  EXPECT_EQ(limiter.wait(limiter.make_attempt("a", "u", "y"), t0 + 3s), 0s);
  EXPECT_GT(limiter.wait(limiter.make_attempt("b", "u", "y"), t0 + 3s), 0s);
  EXPECT_GT(limiter.wait(limiter.make_attempt("c", "u", "y"), t0 + 3s), 0s);
}

}  // namespace
}  // namespace berth::auth
