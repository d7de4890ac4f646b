#include "auth/identity_store.h"

#include <gtest/gtest.h>

#include "meta/test_temp_dir.h"

namespace berth::auth {
namespace {

class IdentityStore : public ::testing::Test {
 protected:
  meta::test_util::temp_dir dir_;
  std::unique_ptr<identity_store> store_ = identity_store::open(dir_.file("auth.db"));
};

TEST(AccountName, Grammar) {
  EXPECT_TRUE(valid_account_name("admin"));
  EXPECT_TRUE(valid_account_name("ci-bot.2"));
  EXPECT_FALSE(valid_account_name(""));
  EXPECT_FALSE(valid_account_name("Admin"));
  EXPECT_FALSE(valid_account_name("-x"));
  EXPECT_FALSE(valid_account_name("a:b"));
  EXPECT_FALSE(valid_account_name("../x"));
  EXPECT_FALSE(valid_account_name(std::string(65, 'a')));
}

TEST_F(IdentityStore, Users) {
  EXPECT_FALSE(*store_->has_users());
  ASSERT_TRUE(store_->put_user("alice", "$argon2id$1"));
  EXPECT_TRUE(*store_->has_users());
  ASSERT_TRUE(store_->put_user("alice", "$argon2id$2"));
  auto u = store_->find_user("alice");
  ASSERT_TRUE(u && *u);
  EXPECT_EQ((*u)->password_hash, "$argon2id$2");
  EXPECT_FALSE(*store_->find_user("bob"));
  EXPECT_EQ(store_->list_users()->size(), 1u);
  EXPECT_TRUE(*store_->delete_user("alice"));
  EXPECT_FALSE(*store_->delete_user("alice"));
}

TEST_F(IdentityStore, RobotTokensAreStoredHashedAndRevocable) {
  auto token = store_->create_robot("ci", "pushes builds", std::nullopt);
  ASSERT_TRUE(token);
  EXPECT_TRUE(token->starts_with("berth_"));
  EXPECT_GE(token->size(), 40u);
  auto again = store_->create_robot("ci", "", std::nullopt);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, errc::already_exists);

  auto robot = store_->robot_by_token(*token);
  ASSERT_TRUE(robot && *robot);
  EXPECT_EQ((*robot)->name, "ci");
  EXPECT_TRUE((*robot)->active(0));
  EXPECT_FALSE(*store_->robot_by_token(*token + "x"));

  EXPECT_TRUE(*store_->revoke_robot("ci"));
  EXPECT_FALSE(*store_->revoke_robot("ci"));
  robot = store_->robot_by_token(*token);
  ASSERT_TRUE(robot && *robot);
  EXPECT_FALSE((*robot)->active(0));
}

TEST_F(IdentityStore, RobotExpiry) {
  auto token = store_->create_robot("temp", "", 1000);
  ASSERT_TRUE(token);
  auto robot = store_->find_robot("temp");
  ASSERT_TRUE(robot && *robot);
  EXPECT_TRUE((*robot)->active(999));
  EXPECT_FALSE((*robot)->active(1000));
}

TEST_F(IdentityStore, GrantsAndGeneration) {
  const auto g0 = store_->generation();
  auto id = store_->add_grant("robot:ci", "pull,push", "staging/*");
  ASSERT_TRUE(id);
  EXPECT_GT(store_->generation(), g0);
  ASSERT_TRUE(store_->add_grant("user:bob", "pull", "production/*"));
  EXPECT_EQ(store_->grants()->size(), 2u);
  auto mine = store_->grants(std::string_view("robot:ci"));
  ASSERT_EQ(mine->size(), 1u);
  EXPECT_EQ((*mine)[0].repository, "staging/*");
  EXPECT_TRUE(*store_->delete_grant(*id));
  EXPECT_EQ(store_->grants()->size(), 1u);
}

TEST_F(IdentityStore, SurvivesReopen) {
  ASSERT_TRUE(store_->put_user("alice", "h"));
  store_.reset();
  store_ = identity_store::open(dir_.file("auth.db"));
  EXPECT_TRUE(*store_->has_users());
}

}  // namespace
}  // namespace berth::auth
