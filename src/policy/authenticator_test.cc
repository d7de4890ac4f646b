#include "policy/authenticator.h"

#include <gtest/gtest.h>

#include "auth/password.h"
#include "meta/test_temp_dir.h"

namespace berth::policy {
namespace {

class Authenticator : public ::testing::Test {
 protected:
  meta::test_util::temp_dir dir_;
  std::unique_ptr<auth::identity_store> store_ = auth::identity_store::open(dir_.file("auth.db"));
};

TEST_F(Authenticator, UsersFromConfigAndStore) {
  ASSERT_TRUE(store_->put_user("alice", auth::hash_password("wonderland")));
  authenticator authn(*store_, {{"bob", auth::hash_password("builder")}});
  auto a = authn.basic("alice", "wonderland");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->subject, "user:alice");
  auto b = authn.basic("bob", "builder");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->subject, "user:bob");
  auto bad = authn.basic("alice", "wrong");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, errc::unauthorized);
  EXPECT_FALSE(authn.basic("nobody", "x"));
}

TEST_F(Authenticator, CacheHitsOnlyForTheSameCredentialsAndEmptiesOnWrites) {
  ASSERT_TRUE(store_->put_user("alice", auth::hash_password("wonderland")));
  authenticator authn(*store_, {});
  EXPECT_FALSE(authn.cached("alice", "wonderland"));
  ASSERT_TRUE(authn.basic("alice", "wonderland"));
  auto hit = authn.cached("alice", "wonderland");
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->subject, "user:alice");
  EXPECT_FALSE(authn.cached("alice", "wonderlanD"));
  ASSERT_TRUE(store_->add_grant("user:alice", "pull", "x/*"));
  EXPECT_FALSE(authn.cached("alice", "wonderland"));
}

TEST_F(Authenticator, RobotsByTokenWithStoredGrants) {
  auto token = store_->create_robot("ci", "", std::nullopt);
  ASSERT_TRUE(token);
  ASSERT_TRUE(store_->add_grant("robot:ci", "push", "staging/*"));
  authenticator authn(*store_, {});
  auto ci = authn.basic("ci", *token);
  ASSERT_TRUE(ci);
  EXPECT_EQ(ci->subject, "robot:ci");
  ASSERT_EQ(ci->grants.size(), 1u);
  EXPECT_EQ(ci->grants[0].repositories[0], "staging/*");
  // The token under another name is refused.
  EXPECT_FALSE(authn.basic("other", *token));
  ASSERT_TRUE(store_->revoke_robot("ci"));
  auto revoked = authn.basic("ci", *token);
  ASSERT_FALSE(revoked);
  EXPECT_NE(revoked.error().detail.find("revoked"), std::string::npos);
  EXPECT_FALSE(authn.by_subject("robot:ci"));
}

TEST_F(Authenticator, OidcGoesToTheFederation) {
  authenticator authn(*store_, {}, [](std::string_view token) -> result<principal> {
    if (token == "good") return principal{"oidc:x", {}, {}};
    return fail(errc::unauthorized, "bad signature");
  });
  auto ok = authn.basic("oidc", "good");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->subject, "oidc:x");
  auto bad = authn.basic("oidc", "evil");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().detail, "bad signature");
}

TEST_F(Authenticator, BySubject) {
  ASSERT_TRUE(store_->put_user("alice", "h"));
  authenticator authn(*store_, {{"bob", "h"}});
  EXPECT_TRUE(authn.by_subject("user:alice"));
  EXPECT_TRUE(authn.by_subject("user:bob"));
  EXPECT_FALSE(authn.by_subject("user:carol"));
  EXPECT_FALSE(authn.by_subject("oidc:x"));
}

}  // namespace
}  // namespace berth::policy
