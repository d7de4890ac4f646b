#include "ops/refusal_limit.h"

#include <gtest/gtest.h>

#include <chrono>

namespace berth::ops {
namespace {

using namespace std::chrono_literals;

TEST(RefusalLimit, RecordsTheFirstOfAWindowThenCountsTheRest) {
  refusal_limit limit(3, 60s);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limit.admit("user:dev", "10.0.0.1", 1000 + i).record) << i;
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(limit.admit("user:dev", "10.0.0.1", 2000 + i).record) << i;
  // Another address, another subject: their own windows.
  EXPECT_TRUE(limit.admit("user:dev", "10.0.0.2", 3000).record);
  EXPECT_TRUE(limit.admit("robot:ci", "10.0.0.1", 3000).record);
  // A minute after the window began: recorded again, saying how many were left out.
  EXPECT_FALSE(limit.admit("user:dev", "10.0.0.1", 60'999).record);
  const auto next = limit.admit("user:dev", "10.0.0.1", 61'000);
  EXPECT_TRUE(next.record);
  EXPECT_EQ(next.left_out, 6u);
  EXPECT_EQ(limit.admit("user:dev", "10.0.0.1", 61'001).left_out, 0u);
}

TEST(RefusalLimit, HoldsAtMostMaxKeysDroppingEndedWindowsFirst) {
  refusal_limit limit(1, 60s, 2);
  EXPECT_TRUE(limit.admit("a", "x", 0).record);
  EXPECT_TRUE(limit.admit("b", "x", 30'000).record);
  EXPECT_FALSE(limit.admit("c", "x", 30'000).record);  // full, no window ended: not recorded
  EXPECT_TRUE(limit.admit("c", "x", 60'000).record);   // a's window ended: a is dropped for c
  EXPECT_FALSE(limit.admit("b", "x", 60'000).record);  // b's window goes on
}

}  // namespace
}  // namespace berth::ops
