#include "auth/password.h"

#include <gtest/gtest.h>

#include "auth/base64url.h"
#include "auth/secret.h"

namespace berth::auth {
namespace {

TEST(Password, HashIsArgon2idAndVerifies) {
  const auto hash = hash_password("correct horse");
  EXPECT_TRUE(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$")) << hash;
  EXPECT_TRUE(verify_password(hash, "correct horse"));
  EXPECT_FALSE(verify_password(hash, "correct horsE"));
  EXPECT_FALSE(verify_password(hash, ""));
}

TEST(Password, SaltMakesEveryHashDifferent) {
  EXPECT_NE(hash_password("same"), hash_password("same"));
}

TEST(Password, MalformedOrOtherSchemesNeverVerify) {
  EXPECT_FALSE(verify_password("", "x"));
  EXPECT_FALSE(verify_password("plain", "plain"));
  EXPECT_FALSE(verify_password("$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA", "x"));
  EXPECT_FALSE(verify_password("$argon2id$garbage", "x"));
}

TEST(Secret, ConstantTimeEqual) {
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "abcd"));
  EXPECT_TRUE(constant_time_equal("", ""));
}

TEST(Secret, RandomTokensAreLongAndDistinct) {
  const auto a = random_urlsafe(32), b = random_urlsafe(32);
  EXPECT_EQ(a.size(), 43u);
  EXPECT_NE(a, b);
  EXPECT_EQ(a.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), std::string::npos);
}

TEST(Secret, Sha256Hex) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Secret, Base64) {
  std::string out;
  ASSERT_TRUE(base64_decode("YWRtaW46c2VjcmV0", out));
  EXPECT_EQ(out, "admin:secret");
  ASSERT_TRUE(base64_decode("YQ==", out));
  EXPECT_EQ(out, "a");
  EXPECT_FALSE(base64_decode("YQ==YQ", out));
  EXPECT_FALSE(base64_decode("a b", out));
  EXPECT_EQ(base64url_encode("\xfb\xff"), "-_8");
  EXPECT_EQ(base64_encode("\xfb\xff"), "+/8=");
  EXPECT_EQ(base64_encode("admin:secret"), "YWRtaW46c2VjcmV0");
}

}  // namespace
}  // namespace berth::auth
