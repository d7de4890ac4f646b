#include "auth/token_service.h"

#include <gtest/gtest.h>

#include "auth/jwt.h"
#include "meta/test_temp_dir.h"

namespace berth::auth {
namespace {

using namespace std::chrono_literals;

class TokenService : public ::testing::Test {
 protected:
  meta::test_util::temp_dir dir_;
  std::unique_ptr<token_service> tokens_ = make_jwt_token_service(dir_.file("key.pem"), "berth-test", 300s, 3600s);
};

TEST_F(TokenService, AccessTokenRoundTripCarriesExactlyTheGrantedScope) {
  access_claims claims;
  claims.subject = "robot:ci";
  claims.access = {{"repository", "staging/app", {"pull", "push"}}};
  claims.denied["repository:production/app:push"] = "robot:ci may not push production/app";
  const auto token = tokens_->issue_access(claims);
  EXPECT_GT(claims.expires_at, claims.issued_at);
  auto back = tokens_->verify_access(token);
  ASSERT_TRUE(back) << back.error().detail;
  EXPECT_EQ(back->subject, "robot:ci");
  EXPECT_EQ(back->access, claims.access);
  EXPECT_EQ(back->denied, claims.denied);
}

TEST_F(TokenService, RefreshAndAccessTokensAreNotInterchangeable) {
  access_claims claims;
  claims.subject = "user:alice";
  const auto access = tokens_->issue_access(claims);
  const auto refresh = tokens_->issue_refresh("user:alice");
  EXPECT_EQ(*tokens_->verify_refresh(refresh), "user:alice");
  EXPECT_FALSE(tokens_->verify_access(refresh));
  EXPECT_FALSE(tokens_->verify_refresh(access));
}

TEST_F(TokenService, TamperedOrForeignTokensFail) {
  access_claims claims;
  claims.subject = "user:alice";
  auto token = tokens_->issue_access(claims);
  auto tampered = token;
  tampered[tampered.size() - 5] = tampered[tampered.size() - 5] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(tokens_->verify_access(tampered));
  EXPECT_FALSE(tokens_->verify_access("not.a.token"));
  // Another registry's key (or the same key under another service name) does not verify here.
  auto other = make_jwt_token_service(dir_.file("other.pem"), "berth-test", 300s, 3600s);
  EXPECT_FALSE(tokens_->verify_access(other->issue_access(claims)));
  auto renamed = make_jwt_token_service(dir_.file("key.pem"), "elsewhere", 300s, 3600s);
  auto wrong_audience = tokens_->verify_access(renamed->issue_access(claims));
  ASSERT_FALSE(wrong_audience);
  EXPECT_EQ(wrong_audience.error().code, errc::unauthorized);
}

TEST_F(TokenService, ExpiredTokensFail) {
  auto short_lived = make_jwt_token_service(dir_.file("key.pem"), "berth-test", -10s, 3600s);
  access_claims claims;
  claims.subject = "user:alice";
  auto expired = short_lived->verify_access(short_lived->issue_access(claims));
  ASSERT_FALSE(expired);
  EXPECT_NE(expired.error().detail.find("expired"), std::string::npos) << expired.error().detail;
}

TEST_F(TokenService, KeySurvivesRestart) {
  access_claims claims;
  claims.subject = "user:alice";
  const auto token = tokens_->issue_access(claims);
  auto again = make_jwt_token_service(dir_.file("key.pem"), "berth-test", 300s, 3600s);
  EXPECT_TRUE(again->verify_access(token));
  EXPECT_NE(again->public_jwks().find("\"kty\":\"EC\""), std::string::npos);
}

}  // namespace
}  // namespace berth::auth
