#include "policy/live_policy.h"

#include <gtest/gtest.h>

#include "core/offload.h"
#include "core/sync_wait.h"
#include "meta/test_temp_dir.h"

namespace berth::policy {
namespace {

class LivePolicy : public ::testing::Test {
 protected:
  std::shared_ptr<const policy> current() {
    auto p = sync_wait(live_.current());
    if (!p) throw std::runtime_error(p.error().detail);
    return *p;
  }

  meta::test_util::temp_dir dir_;
  blocking_pool pool_{2};
  std::unique_ptr<auth::identity_store> store_ = auth::make_sqlite_identity_store(dir_.file("auth.db"), pool_);
  policy_config config_{{namespace_rule{"production", visibility::private_, creation::explicit_, {}}}, {}, {}};
  live_policy live_{config_, *store_};
};

TEST_F(LivePolicy, AStoredNamespaceAppliesAtTheNextCallAndGoesWithItsDeletion) {
  EXPECT_EQ(current()->namespace_of("staging/app").name, "");
  ASSERT_TRUE(sync_wait(store_->put_namespace("staging", R"({"visibility":"public-pull","creation":"explicit"})")));
  const auto p = current();
  const auto& ns = p->namespace_of("staging/app");
  EXPECT_EQ(ns.name, "staging");
  EXPECT_EQ(ns.source, origin::api);
  EXPECT_TRUE(p->decide(principal{}, action::pull, "staging/app").allowed);
  EXPECT_FALSE(p->may_create("staging/app").allowed);
  ASSERT_TRUE(sync_wait(store_->delete_namespace("staging")));
  EXPECT_EQ(current()->namespace_of("staging/app").name, "");
}

TEST_F(LivePolicy, TheSamePolicyWhileNothingChanges) {
  const auto a = current();
  EXPECT_EQ(current().get(), a.get());
  ASSERT_TRUE(sync_wait(store_->add_grant("user:alice", "pull", "x/*")));
  EXPECT_NE(current().get(), a.get());
}

TEST_F(LivePolicy, TheConfigWinsOverAStoredNamespaceOfTheSameName) {
  ASSERT_TRUE(sync_wait(store_->put_namespace("production", R"({"creation":"on-push"})")));
  const auto p = current();
  EXPECT_EQ(p->namespace_of("production/app").source, origin::config);
  EXPECT_FALSE(p->may_create("production/app").allowed);
  EXPECT_EQ(p->namespaces().size(), 1u);
}

TEST(NamespaceSettings, RoundTripAndRefuseWhatIsNotASetting) {
  namespace_rule ns{"staging", visibility::public_pull, creation::explicit_, {"v*"}};
  auto back = parse_namespace_settings("staging", namespace_settings_json(ns), origin::api);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->vis, visibility::public_pull);
  EXPECT_EQ(back->create, creation::explicit_);
  EXPECT_EQ(back->immutable_tags, std::vector<std::string>{"v*"});
  EXPECT_EQ(back->source, origin::api);
  for (const char* bad : {R"({"visibility":"open"})", R"({"colour":"red"})", R"({"immutable_tags":[1]})", "[]",
                          R"({"immutable_tags":[""]})", R"({"creation":["explicit","on-push"]})"}) {
    auto r = parse_namespace_settings("staging", bad, origin::api);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, errc::invalid_argument);
  }
  EXPECT_NE(parse_namespace_settings("s", R"({"colour":"red"})", origin::api).error().detail.find("colour"),
            std::string::npos);
}

TEST(NamespaceSettings, QuotasAreRefusedThroughTheApiNamingTheConfigKey) {
  auto r = parse_namespace_settings("staging", R"({"quota_bytes":"1GiB"})", origin::api);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::invalid_argument);
  EXPECT_NE(r.error().detail.find("namespaces.staging.quota_bytes"), std::string::npos) << r.error().detail;
}

TEST(NamespaceSettings, AnApiNamespaceNamesItselfInTheImmutableRule) {
  namespace_rule ns{"staging", visibility::private_, creation::on_push, {"v*"}, origin::api};
  const policy p(policy_config{{ns}, {}, {}});
  EXPECT_EQ(p.immutable("staging/app", "v1"),
            "tag staging/app:v1 is immutable (immutable_tags of namespace staging (admin API): v*)");
}

}  // namespace
}  // namespace berth::policy
