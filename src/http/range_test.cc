#include "http/range.h"

#include <gtest/gtest.h>

namespace berth::http {
namespace {

void expect_range(std::optional<byte_range> r, std::uint64_t first, std::uint64_t last) {
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->first, first);
  EXPECT_EQ(r->last, last);
}

using kind = range_request::kind;

void expect_range(range_request r, std::uint64_t first, std::uint64_t last) {
  ASSERT_EQ(r.k, kind::satisfiable);
  expect_range(std::optional(r.range), first, last);
}

TEST(ParseRange, ClosedRange) {
  expect_range(parse_range("bytes=0-99", 1000), 0, 99);
  expect_range(parse_range("bytes=10-10", 1000), 10, 10);
  EXPECT_EQ(parse_range("bytes=10-19", 1000).range.length(), 10u);
}

TEST(ParseRange, LastPastTheEndIsClamped) { expect_range(parse_range("bytes=900-5000", 1000), 900, 999); }

TEST(ParseRange, OpenEnded) { expect_range(parse_range("bytes=500-", 1000), 500, 999); }

TEST(ParseRange, Suffix) {
  expect_range(parse_range("bytes=-100", 1000), 900, 999);
  expect_range(parse_range("bytes=-5000", 1000), 0, 999);  // more than the whole: the whole
}

TEST(ParseRange, UnitIsCaseInsensitiveAndOuterSpaceIgnored) {
  expect_range(parse_range("  Bytes=1-2 ", 10), 1, 2);
  expect_range(parse_range("bytes= 1-2", 10), 1, 2);
}

TEST(ParseRange, Unsatisfiable) {
  for (const char* h : {"bytes=1000-", "bytes=1000-2000", "bytes=-0"}) {
    EXPECT_EQ(parse_range(h, 1000).k, kind::unsatisfiable) << h;
  }
  EXPECT_EQ(parse_range("bytes=0-0", 0).k, kind::unsatisfiable);
  EXPECT_EQ(parse_range("bytes=-5", 0).k, kind::unsatisfiable);
}

// RFC 9110 14.2: an unknown unit MUST be ignored; several ranges and malformed ones MAY be. All get
// the whole body (200), never 416.
TEST(ParseRange, UnknownUnitsSeveralRangesAndMalformedOnesAreIgnored) {
  for (const char* h : {"", "bytes", "bytes=", "bytes=-", "items=0-1", "items=0-5", "bytes 0-1", "bytes=a-1",
                        "bytes=1-a", "bytes=5-1", "bytes=+1-2", "bytes=1--2", "bytes=0-1,3-4", "bytes=0-1,5-6",
                        "bytes=0-1,", "bytes=2000-3000,0-1", "bytes=0x1-2", "bytes=99999999999999999999-",
                        "=0-1"}) {
    EXPECT_EQ(parse_range(h, 1000).k, kind::ignored) << h;
  }
}

TEST(ParseContentRange, AllFormsRegistriesSee) {
  expect_range(parse_content_range("0-999"), 0, 999);
  expect_range(parse_content_range("bytes 0-999/*"), 0, 999);
  expect_range(parse_content_range("bytes=0-999"), 0, 999);
  expect_range(parse_content_range("bytes 0-999/1000"), 0, 999);
  expect_range(parse_content_range("BYTES 5-5"), 5, 5);
  expect_range(parse_content_range("1000-1999"), 1000, 1999);
}

TEST(ParseContentRange, Malformed) {
  for (const char* h : {"", "-", "0-", "-9", "9-0", "bytes 9-0/*", "bytes 0-999/999", "bytes 0-999/x",
                        "bytes 0-999/", "a-b", "0-1-2", "items 0-1", "0-1,2-3", "18446744073709551616-1"}) {
    EXPECT_FALSE(parse_content_range(h)) << h;
  }
}

}  // namespace
}  // namespace berth::http
