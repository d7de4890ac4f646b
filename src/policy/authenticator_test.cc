#include "policy/authenticator.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "auth/password.h"
#include "core/sync_wait.h"
#include "meta/test_temp_dir.h"

namespace berth::policy {
namespace {

class Authenticator : public ::testing::Test {
 protected:
  meta::test_util::temp_dir dir_;
  blocking_pool pool_{2};
  std::unique_ptr<auth::identity_store> store_ = auth::make_sqlite_identity_store(dir_.file("auth.db"), pool_);
};

TEST_F(Authenticator, UsersFromConfigAndStore) {
  ASSERT_TRUE(sync_wait(store_->put_user("alice", auth::hash_password("wonderland"))));
  authenticator authn(*store_, pool_, {{"bob", auth::hash_password("builder")}});
  auto a = sync_wait(authn.basic("alice", "wonderland"));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->subject, "user:alice");
  auto b = sync_wait(authn.basic("bob", "builder"));
  ASSERT_TRUE(b);
  EXPECT_EQ(b->subject, "user:bob");
  auto bad = sync_wait(authn.basic("alice", "wrong"));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, errc::unauthorized);
  EXPECT_FALSE(sync_wait(authn.basic("nobody", "x")));
}

TEST_F(Authenticator, CacheHitsOnlyForTheSameCredentialsAndEmptiesOnWrites) {
  ASSERT_TRUE(sync_wait(store_->put_user("alice", auth::hash_password("wonderland"))));
  authenticator authn(*store_, pool_, {});
  EXPECT_FALSE(authn.cached("alice", "wonderland"));
  ASSERT_TRUE(sync_wait(authn.basic("alice", "wonderland")));
  auto hit = authn.cached("alice", "wonderland");
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->subject, "user:alice");
  EXPECT_FALSE(authn.cached("alice", "wonderlanD"));
  ASSERT_TRUE(sync_wait(store_->add_grant("user:alice", "pull", "x/*")));
  EXPECT_FALSE(authn.cached("alice", "wonderland"));
}

// A burst of requests with credentials not yet cached hashes the password once; a wrong password is
// hashed each time; a changed password is hashed again.
TEST_F(Authenticator, ConcurrentLoginsWithTheSameCredentialsHashOnce) {
  ASSERT_TRUE(sync_wait(store_->put_user("alice", auth::hash_password("wonderland"))));
  authenticator authn(*store_, pool_, {});
  boost::asio::io_context io;
  int ok = 0;
  int refused = 0;
  for (int i = 0; i < 12; ++i) {
    const bool right = i % 4 != 3;  // 9 right, 3 wrong
    boost::asio::co_spawn(io, [&, right]() -> boost::asio::awaitable<void> {
      auto who = co_await authn.basic("alice", right ? "wonderland" : "wrong");
      ++(who ? ok : refused);
    }, boost::asio::detached);
  }
  io.run();
  EXPECT_EQ(ok, 9);
  EXPECT_EQ(refused, 3);
  EXPECT_EQ(authn.passwords_hashed(), 4u);  // the right password once, the wrong one 3 times

  ASSERT_TRUE(sync_wait(store_->put_user("alice", auth::hash_password("looking-glass"))));
  EXPECT_FALSE(sync_wait(authn.basic("alice", "wonderland")));
  EXPECT_TRUE(sync_wait(authn.basic("alice", "looking-glass")));
  EXPECT_EQ(authn.passwords_hashed(), 6u);
}

TEST_F(Authenticator, RobotsByTokenWithStoredGrants) {
  auto token = sync_wait(store_->create_robot("ci", "", std::nullopt));
  ASSERT_TRUE(token);
  ASSERT_TRUE(sync_wait(store_->add_grant("robot:ci", "push", "staging/*")));
  authenticator authn(*store_, pool_, {});
  auto ci = sync_wait(authn.basic("ci", *token));
  ASSERT_TRUE(ci);
  EXPECT_EQ(ci->subject, "robot:ci");
  ASSERT_EQ(ci->grants.size(), 1u);
  EXPECT_EQ(ci->grants[0].repositories[0], "staging/*");
  // The token under another name is refused.
  EXPECT_FALSE(sync_wait(authn.basic("other", *token)));
  ASSERT_TRUE(sync_wait(store_->revoke_robot("ci")));
  auto revoked = sync_wait(authn.basic("ci", *token));
  ASSERT_FALSE(revoked);
  EXPECT_NE(revoked.error().detail.find("revoked"), std::string::npos);
  EXPECT_FALSE(sync_wait(authn.by_subject("robot:ci")));
}

TEST_F(Authenticator, OidcGoesToTheFederation) {
  authenticator authn(*store_, pool_, {}, [](std::string_view token) -> result<principal> {
    if (token == "good") return principal{"oidc:x", {}, {}};
    return fail(errc::unauthorized, "bad signature");
  });
  auto ok = sync_wait(authn.basic("oidc", "good"));
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->subject, "oidc:x");
  auto bad = sync_wait(authn.basic("oidc", "evil"));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().detail, "bad signature");
}

TEST_F(Authenticator, BySubject) {
  ASSERT_TRUE(sync_wait(store_->put_user("alice", "h")));
  authenticator authn(*store_, pool_, {{"bob", "h"}});
  EXPECT_TRUE(sync_wait(authn.by_subject("user:alice")));
  EXPECT_TRUE(sync_wait(authn.by_subject("user:bob")));
  EXPECT_FALSE(sync_wait(authn.by_subject("user:carol")));
  EXPECT_FALSE(sync_wait(authn.by_subject("oidc:x")));
}

}  // namespace
}  // namespace berth::policy
