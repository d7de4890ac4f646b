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

TEST(NamespaceSettings, QuotasAreSetThroughTheApiAndKeptInTheRecord) {
  auto r = parse_namespace_settings("staging", R"({"quota_bytes":"1GiB","max_repositories":3})", origin::api);
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ(r->quota_bytes, 1ull << 30);
  EXPECT_EQ(r->max_repositories, 3u);
  auto back = parse_namespace_settings("staging", namespace_settings_json(*r), origin::api);
  ASSERT_TRUE(back) << back.error().detail;
  EXPECT_EQ(back->quota_bytes, 1ull << 30);
  EXPECT_EQ(back->max_repositories, 3u);
  for (const char* bad : {R"({"quota_bytes":"lots"})", R"({"max_repositories":"many"})", R"({"quota_bytes":-1})"}) {
    auto refused = parse_namespace_settings("staging", bad, origin::api);
    ASSERT_FALSE(refused) << bad;
    EXPECT_EQ(refused.error().code, errc::invalid_argument);
  }
}

// A change of the stored namespaces reaches the hook with the policy built from it (the server
// gives the metadata store its quotas so).
TEST_F(LivePolicy, EachBuildHandsItsNamespacesToTheHook) {
  std::vector<std::vector<namespace_rule>> seen;
  live_policy live({}, *store_, [&](const std::vector<namespace_rule>& namespaces) { seen.push_back(namespaces); });
  ASSERT_TRUE(sync_wait(live.current()));
  ASSERT_TRUE(sync_wait(store_->put_namespace("team", R"({"quota_bytes":1000})")));
  ASSERT_TRUE(sync_wait(live.current()));
  ASSERT_TRUE(sync_wait(live.current()));  // unchanged: no build, no call
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_TRUE(seen[0].empty());
  ASSERT_EQ(seen[1].size(), 1u);
  EXPECT_EQ(seen[1][0].name, "team");
  EXPECT_EQ(seen[1][0].quota_bytes, 1000u);
}

TEST(NamespaceSettings, AnApiNamespaceNamesItselfInTheImmutableRule) {
  namespace_rule ns{"staging", visibility::private_, creation::on_push, {"v*"}, origin::api};
  const policy p(policy_config{{ns}, {}, {}});
  EXPECT_EQ(p.immutable("staging/app", "v1"),
            "tag staging/app:v1 is immutable (immutable_tags of namespace staging (admin API): v*)");
}

}  // namespace
}  // namespace berth::policy
