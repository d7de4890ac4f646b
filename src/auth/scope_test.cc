#include "auth/scope.h"

#include <gtest/gtest.h>

namespace berth::auth {
namespace {

TEST(Scope, Parses) {
  auto s = parse_scope("repository:team/app:pull,push");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->type, "repository");
  EXPECT_EQ(s->name, "team/app");
  EXPECT_EQ(s->actions, (std::vector<std::string>{"pull", "push"}));
  EXPECT_EQ(s->str(), "repository:team/app:pull,push");

  s = parse_scope("repository(plugin):a:pull");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->type, "repository");
  s = parse_scope("registry:catalog:*");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->actions, (std::vector<std::string>{"*"}));
  s = parse_scope("repository:localhost:5000/app:pull");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->name, "localhost:5000/app");
}

TEST(Scope, Malformed) {
  EXPECT_FALSE(parse_scope(""));
  EXPECT_FALSE(parse_scope("repository"));
  EXPECT_FALSE(parse_scope("repository:pull"));
  EXPECT_FALSE(parse_scope("::pull"));
}

TEST(Scope, SeveralInOneParameterAndJsonRoundTrip) {
  auto all = parse_scopes("repository:a:pull repository:b:push  bogus");
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(scopes_from_json(to_json(all)), all);
}

}  // namespace
}  // namespace berth::auth
