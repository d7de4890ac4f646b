#include "core/decimal.h"

#include <gtest/gtest.h>

namespace berth {
namespace {

TEST(ParseDecimal, DigitsOnlyTheWholeString) {
  EXPECT_EQ(parse_decimal("0"), 0u);
  EXPECT_EQ(parse_decimal("12"), 12u);
  EXPECT_EQ(parse_decimal("007"), 7u);
  EXPECT_EQ(parse_decimal("18446744073709551615"), UINT64_MAX);
  for (const char* bad : {"", "12abc", "12 ", " 12", "+12", "-1", "0x12", "1.0", "1e3", "18446744073709551616"}) {
    EXPECT_FALSE(parse_decimal(bad)) << bad;
  }
}

}  // namespace
}  // namespace berth
