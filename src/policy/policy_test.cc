#include "policy/policy.h"

#include <gtest/gtest.h>

namespace berth::policy {
namespace {

TEST(Pattern, Globs) {
  EXPECT_TRUE(pattern_matches("production/*", "production/app"));
  EXPECT_TRUE(pattern_matches("production/*", "production/team/app"));
  EXPECT_FALSE(pattern_matches("production/*", "production"));
  EXPECT_FALSE(pattern_matches("production/*", "productionx/app"));
  EXPECT_FALSE(pattern_matches("production/*", "staging/app"));
  EXPECT_TRUE(pattern_matches("staging/web-*", "staging/web-shop"));
  EXPECT_FALSE(pattern_matches("staging/web-*", "staging/api"));
  EXPECT_TRUE(pattern_matches("*", "anything/at/all"));
  EXPECT_TRUE(pattern_matches("a*b*c", "axxbyyc"));
  EXPECT_FALSE(pattern_matches("a*b*c", "axxbyy"));
  EXPECT_TRUE(pattern_matches("exact", "exact"));
  EXPECT_FALSE(pattern_matches("exact", "exact2"));
}

TEST(Actions, ImplicationsAndParsing) {
  action_set push{action::push};
  EXPECT_TRUE(push.allows(action::push));
  EXPECT_TRUE(push.allows(action::pull));
  EXPECT_TRUE(push.allows(action::list));
  EXPECT_FALSE(push.allows(action::delete_));
  action_set pull{action::pull};
  EXPECT_FALSE(pull.allows(action::push));
  EXPECT_TRUE(pull.allows(action::list));
  action_set list{action::list};
  EXPECT_FALSE(list.allows(action::pull));
  action_set admin{action::admin};
  for (auto a : {action::pull, action::push, action::delete_, action::list, action::admin}) EXPECT_TRUE(admin.allows(a));

  auto parsed = action_set::parse({"pull, push", "delete"});
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->str(), "pull,push,delete");
  EXPECT_FALSE(action_set::parse({"pull", "write"}));
}

policy sample() {
  policy_config c;
  c.namespaces = {{"development", visibility::private_, creation::on_push},
                  {"staging", visibility::private_, creation::on_push},
                  {"production", visibility::private_, creation::explicit_},
                  {"public", visibility::public_pull, creation::on_push}};
  c.default_namespace = {"", visibility::private_, creation::on_push};
  c.grants = {
      {"robot:ci", {action::push}, {"development/*", "staging/*"}, "grants[0]"},
      {"robot:deploy", {action::pull}, {"production/*"}, "grants[1]"},
      {"user:admin", {action::admin}, {"*"}, "grants[2]"},
      {"*", {action::pull}, {"staging/web-*"}, "grants[3]"},
  };
  return policy(std::move(c));
}

TEST(Policy, NamespaceOfFirstComponent) {
  const auto p = sample();
  EXPECT_EQ(p.namespace_of("production/app").name, "production");
  EXPECT_EQ(p.namespace_of("production").name, "production");
  EXPECT_EQ(p.namespace_of("productionx/app").name, "");
  EXPECT_EQ(p.namespace_of("other/app").name, "");
}

TEST(Policy, GrantsDecideAndNameTheGrant) {
  const auto p = sample();
  principal ci{"robot:ci", {}, {}};
  auto d = p.decide(ci, action::push, "staging/app");
  EXPECT_TRUE(d.allowed);
  EXPECT_NE(d.reason.find("grants[0]"), std::string::npos) << d.reason;
  d = p.decide(ci, action::push, "production/app");
  EXPECT_FALSE(d.allowed);
  EXPECT_NE(d.reason.find("robot:ci"), std::string::npos) << d.reason;
  EXPECT_NE(d.reason.find("production/app"), std::string::npos) << d.reason;
  EXPECT_FALSE(p.decide(ci, action::delete_, "staging/app").allowed);

  principal deploy{"robot:deploy", {}, {}};
  EXPECT_TRUE(p.decide(deploy, action::pull, "production/app").allowed);
  EXPECT_FALSE(p.decide(deploy, action::push, "production/app").allowed);
  EXPECT_FALSE(p.decide(deploy, action::pull, "staging/app").allowed);
}

TEST(Policy, WildcardSubjectNeedsAuthentication) {
  const auto p = sample();
  EXPECT_TRUE(p.decide(principal{"user:bob", {}, {}}, action::pull, "staging/web-shop").allowed);
  EXPECT_FALSE(p.decide(principal{}, action::pull, "staging/web-shop").allowed);
}

TEST(Policy, PublicPullNamespacesLetAnyonePullOnly) {
  const auto p = sample();
  principal anon;
  EXPECT_TRUE(p.decide(anon, action::pull, "public/tool").allowed);
  EXPECT_TRUE(p.decide(anon, action::list, "public/tool").allowed);
  EXPECT_FALSE(p.decide(anon, action::push, "public/tool").allowed);
  EXPECT_FALSE(p.decide(anon, action::pull, "production/app").allowed);
  EXPECT_FALSE(p.decide(anon, action::pull, "elsewhere/app").allowed);
}

TEST(Policy, AdminEverywhereAndGlobalAdminCheck) {
  const auto p = sample();
  principal admin{"user:admin", {}, {}};
  EXPECT_TRUE(p.decide(admin, action::delete_, "production/app").allowed);
  EXPECT_TRUE(p.decide(admin, action::admin, "*").allowed);
  // Admin on a namespace only is not global admin.
  principal ns_admin{"user:ops", {{"user:ops", {action::admin}, {"staging/*"}, "grant #1"}}, {}};
  EXPECT_TRUE(p.decide(ns_admin, action::delete_, "staging/x").allowed);
  EXPECT_FALSE(p.decide(ns_admin, action::admin, "*").allowed);
}

TEST(Policy, IdentityGrantsAndDenialHint) {
  const auto p = sample();
  principal oidc{"oidc:repo:acme/shop:ref:refs/heads/develop",
                 {{"oidc", {action::push}, {"development/*"}, "federation github rule develop"}},
                 "federation github: rules main, develop"};
  EXPECT_TRUE(p.decide(oidc, action::push, "development/shop").allowed);
  auto d = p.decide(oidc, action::push, "production/shop");
  EXPECT_FALSE(d.allowed);
  EXPECT_NE(d.reason.find("oidc:repo:acme/shop:ref:refs/heads/develop"), std::string::npos) << d.reason;
  EXPECT_NE(d.reason.find("rules main, develop"), std::string::npos) << d.reason;
}

TEST(Policy, PreflightRefusesAPushThatWouldMeetAnExplicitNamespace) {
  const auto p = sample();
  principal admin{"user:admin", {}, {}};
  auto d = p.preflight(admin, action::push, "production/mindmirror", false);
  EXPECT_FALSE(d.allowed);
  EXPECT_NE(d.reason.find("production/mindmirror does not exist"), std::string::npos) << d.reason;
  EXPECT_NE(d.reason.find("berth repo create production/mindmirror"), std::string::npos) << d.reason;
  EXPECT_TRUE(p.preflight(admin, action::push, "production/mindmirror", true).allowed);
  EXPECT_TRUE(p.preflight(admin, action::pull, "production/mindmirror", false).allowed);
  EXPECT_TRUE(p.preflight(admin, action::push, "staging/new", false).allowed);
  // A push the policy refuses is refused for that reason first.
  d = p.preflight(principal{"robot:deploy", {}, {}}, action::push, "production/mindmirror", false);
  EXPECT_FALSE(d.allowed);
  EXPECT_NE(d.reason.find("no grant allows it"), std::string::npos) << d.reason;
}

TEST(Policy, ImmutableTagsNameTheTagAndTheRule) {
  policy_config c;
  c.namespaces.push_back(namespace_rule{"production", visibility::private_, creation::on_push, {"latest-*", "v*"}});
  c.default_namespace.immutable_tags = {"release"};
  const policy p(std::move(c));
  EXPECT_EQ(p.immutable("production/app", "v1.4.0"),
            "tag production/app:v1.4.0 is immutable (namespaces.production.immutable_tags: v*)");
  EXPECT_EQ(p.immutable("production/app", "latest"), std::nullopt);
  EXPECT_EQ(p.immutable("production/team/app", "latest-1"),
            "tag production/team/app:latest-1 is immutable (namespaces.production.immutable_tags: latest-*)");
  EXPECT_EQ(p.immutable("staging/app", "v1"), std::nullopt);
  EXPECT_EQ(p.immutable("other/app", "release"),
            "tag other/app:release is immutable (default_namespace.immutable_tags: release)");
}

TEST(Policy, AllowedActionsCutsRequestsDown) {
  const auto p = sample();
  principal deploy{"robot:deploy", {}, {}};
  EXPECT_EQ(p.allowed_actions(deploy, {action::pull, action::push}, "production/app").str(), "pull");
  EXPECT_TRUE(p.allowed_actions(deploy, {action::push}, "staging/app").empty());
}

}  // namespace
}  // namespace berth::policy
