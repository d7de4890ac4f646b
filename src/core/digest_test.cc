#include "core/digest.h"

#include <gtest/gtest.h>

#include <string>

namespace berth {
namespace {

const std::string kEmpty256 = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const std::string kAbc256 = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const std::string kAbc512 =
    "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
    "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f";
const std::string kEmpty512 =
    "sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
    "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e";
// FIPS 180-2 two-block message.
const std::string kTwoBlock = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";

TEST(DigestParse, AcceptsSha256AndSha512) {
  auto d = digest::parse(kAbc256);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->algorithm(), digest_algorithm::sha256);
  EXPECT_EQ(d->str(), kAbc256);
  EXPECT_EQ(d->hex(), kAbc256.substr(7));

  auto e = digest::parse(kAbc512);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->algorithm(), digest_algorithm::sha512);
  EXPECT_EQ(e->hex().size(), 128u);
}

void expect_invalid(const std::string& text) {
  auto d = digest::parse(text);
  ASSERT_FALSE(d.has_value()) << text;
  EXPECT_EQ(d.error().code, errc::digest_invalid) << text;
  EXPECT_FALSE(d.error().detail.empty()) << text;
}

TEST(DigestParse, RejectsUppercaseHex) {
  std::string upper = kAbc256;
  upper[10] = 'B';  // 'b' in the encoded part
  expect_invalid(upper);
  expect_invalid("SHA256:" + kAbc256.substr(7));
}

TEST(DigestParse, RejectsWrongLength) {
  expect_invalid(kAbc256.substr(0, kAbc256.size() - 1));
  expect_invalid(kAbc256 + "0");
  expect_invalid("sha256:");
  expect_invalid("sha512:" + kAbc256.substr(7));  // 64 hex under sha512
  expect_invalid("sha256:" + kAbc512.substr(7));  // 128 hex under sha256
}

TEST(DigestParse, RejectsNonHexCharacters) {
  std::string bad = kAbc256;
  bad[20] = 'g';
  expect_invalid(bad);
  bad[20] = ':';
  expect_invalid(bad);
  expect_invalid(kAbc256 + "\n");
  expect_invalid(" " + kAbc256);
}

TEST(DigestParse, RejectsUnknownAlgorithm) {
  expect_invalid("md5:d41d8cd98f00b204e9800998ecf8427e");
  expect_invalid("sha384:" + std::string(96, 'a'));
  expect_invalid("sha256+b64:" + kAbc256.substr(7));
  expect_invalid(":" + kAbc256.substr(7));
}

TEST(DigestParse, RejectsMissingColon) {
  expect_invalid("");
  expect_invalid("sha256");
  expect_invalid(kAbc256.substr(7));
  expect_invalid("sha256" + kAbc256.substr(7));
}

TEST(Hasher, MatchesKnownSha256Vectors) {
  EXPECT_EQ(digest_of("").str(), kEmpty256);
  EXPECT_EQ(digest_of("abc").str(), kAbc256);
  EXPECT_EQ(digest_of(kTwoBlock).str(),
            "sha256:248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(digest_of(std::string(1000000, 'a')).str(),
            "sha256:cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Hasher, MatchesKnownSha512Vectors) {
  EXPECT_EQ(digest_of("", digest_algorithm::sha512).str(), kEmpty512);
  EXPECT_EQ(digest_of("abc", digest_algorithm::sha512).str(), kAbc512);
  EXPECT_EQ(digest_of(kTwoBlock, digest_algorithm::sha512).str(),
            "sha512:204a8fc6dda82f0a0ced7beb8e08a41657c16ef468b228a8279be331a703c335"
            "96fd15c13b1b07f9aa1d3bea57789ca031ad85c7a71dd70354ec631238ca3445");
}

TEST(Hasher, IncrementalEqualsOneShot) {
  std::string data;
  for (int i = 0; i < 10000; ++i) data.push_back(static_cast<char>(i * 31 + 7));
  for (auto algorithm : {digest_algorithm::sha256, digest_algorithm::sha512}) {
    // Uneven pieces, including empty ones, straddling the 64/128-byte block boundaries.
    hasher h(algorithm);
    std::size_t at = 0;
    for (std::size_t piece = 0; at < data.size(); piece = (piece * 7 + 3) % 200) {
      const auto n = std::min(piece, data.size() - at);
      h.update(data.data() + at, n);
      at += n;
    }
    EXPECT_EQ(h.finish(), digest_of(data, algorithm));
  }
}

TEST(Hasher, FinishedDigestParsesBackToItself) {
  for (auto algorithm : {digest_algorithm::sha256, digest_algorithm::sha512}) {
    const digest d = digest_of("berth", algorithm);
    auto parsed = digest::parse(d.str());
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(*parsed, d);
    EXPECT_EQ(parsed->algorithm(), algorithm);
  }
}

TEST(Hasher, MovedHasherKeepsState) {
  hasher a;
  a.update("ab");
  hasher b = std::move(a);
  b.update("c");
  EXPECT_EQ(b.finish().str(), kAbc256);
}

TEST(Digest, OrdersByText) {
  auto abc = digest::parse(kAbc256);      // "sha256:ba78..."
  auto empty = digest::parse(kEmpty256);  // "sha256:e3b0..."
  ASSERT_TRUE(abc && empty);
  EXPECT_LT(*abc, *empty);
  EXPECT_NE(*abc, *empty);
}

}  // namespace
}  // namespace berth
