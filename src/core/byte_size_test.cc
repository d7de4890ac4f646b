#include "core/byte_size.h"

#include <gtest/gtest.h>

namespace berth {
namespace {

TEST(byte_size, plain_bytes_and_units) {
  EXPECT_EQ(parse_byte_size("0"), 0u);
  EXPECT_EQ(parse_byte_size("1048576"), 1048576u);
  EXPECT_EQ(parse_byte_size("512B"), 512u);
  EXPECT_EQ(parse_byte_size("500MB"), 500'000'000u);
  EXPECT_EQ(parse_byte_size("500 MB"), 500'000'000u);
  EXPECT_EQ(parse_byte_size("2kB"), 2000u);
  EXPECT_EQ(parse_byte_size("2KB"), 2000u);
  EXPECT_EQ(parse_byte_size("200GiB"), 200ull << 30);
  EXPECT_EQ(parse_byte_size("2kiB"), 2048u);
  EXPECT_FALSE(parse_byte_size("2gib"));
  EXPECT_EQ(parse_byte_size("1KiB"), 1024u);
  EXPECT_EQ(parse_byte_size("3TiB"), 3ull << 40);
  EXPECT_EQ(parse_byte_size("1PB"), 1'000'000'000'000'000u);
  EXPECT_EQ(parse_byte_size("1.5GiB"), 3ull << 29);
  EXPECT_EQ(parse_byte_size("0.5 KiB"), 512u);
  EXPECT_EQ(parse_byte_size("18446744073709551615"), UINT64_MAX);
}

TEST(byte_size, refuses_what_is_not_a_size) {
  for (const char* bad : {"", "GiB", "-1", "1.5", "1.", ".5GiB", "10 XB", "10Gb", "10 GiBs", "10iB", " 10",
                          "18446744073709551616", "16EiB", "20000PiB", "1e9"}) {
    const auto r = parse_byte_size(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, errc::invalid_argument);
    EXPECT_NE(r.error().detail.find("200GiB"), std::string::npos) << r.error().detail;
  }
}

TEST(byte_size, binary_size_for_messages) {
  EXPECT_EQ(binary_size(0), "0 B");
  EXPECT_EQ(binary_size(1023), "1023 B");
  EXPECT_EQ(binary_size(1024), "1 KiB");
  EXPECT_EQ(binary_size(1536), "1.5 KiB");
  EXPECT_EQ(binary_size(10ull << 30), "10 GiB");
  EXPECT_EQ(binary_size((98ull << 30) / 10), "9.8 GiB");
}

}  // namespace
}  // namespace berth
