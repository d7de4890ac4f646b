#include <gtest/gtest.h>

#include "auth/jwt.h"

namespace berth::auth {
namespace {

using json = nlohmann::json;

const json kClaims = {
    {"repository", "acme/shop"},
    {"ref", "refs/heads/main"},
    {"actor", "dependabot[bot]"},
    {"run_attempt", 2},
    {"job_workflow", {{"ref", "acme/ci/.github/workflows/build.yml@refs/tags/v1.2.0"}, {"sha", "abc"}}},
    {"name", "Zoë"},
};

bool rule_matches(std::string_view text, const json& claims = kClaims) {
  const auto rule = claim_rule::parse(text);
  if (!rule) throw std::invalid_argument(rule.error().detail);
  return rule->matches(claims);
}

std::string parse_error(std::string_view text) {
  const auto rule = claim_rule::parse(text);
  if (rule) return "parsed";
  EXPECT_EQ(rule.error().code, errc::unsupported);
  return rule.error().detail;
}

TEST(ClaimRule, Operators) {
  EXPECT_TRUE(rule_matches(R"(repository == "acme/shop")"));
  EXPECT_FALSE(rule_matches(R"(repository == "acme/shop2")"));
  EXPECT_FALSE(rule_matches(R"(repository == "ACME/shop")"));
  EXPECT_TRUE(rule_matches(R"(repository != "acme/other")"));
  EXPECT_FALSE(rule_matches(R"(repository != "acme/shop")"));
  EXPECT_TRUE(rule_matches(R"(ref starts with "refs/heads/")"));
  EXPECT_FALSE(rule_matches(R"(ref starts with "refs/tags/")"));
  EXPECT_TRUE(rule_matches(R"(ref ends with "/main")"));
  EXPECT_FALSE(rule_matches(R"(ref ends with "/mainx")"));
  EXPECT_TRUE(rule_matches(R"(ref matches "refs/*/main")"));
  EXPECT_FALSE(rule_matches(R"(ref matches "refs/*/dev")"));
}

TEST(ClaimRule, GlobsMatchTheWholeValue) {
  const auto glob = [](std::string_view pattern, std::string_view value) {
    return rule_matches("v matches \"" + std::string(pattern) + "\"", {{"v", value}});
  };
  EXPECT_TRUE(glob("*", ""));
  EXPECT_TRUE(glob("*", "anything/at/all"));
  EXPECT_TRUE(glob("", ""));
  EXPECT_FALSE(glob("", "x"));
  EXPECT_TRUE(glob("refs/tags/v*", "refs/tags/v1.2.3"));
  EXPECT_FALSE(glob("refs/tags/v*", "xrefs/tags/v1"));
  EXPECT_TRUE(glob("v?.?", "v1.2"));
  EXPECT_FALSE(glob("v?.?", "v1.23"));
  EXPECT_FALSE(glob("?", ""));
  EXPECT_TRUE(glob("*a*b*c*", "xxaxxbxxcxx"));
  EXPECT_FALSE(glob("*a*b*c*", "xxaxxcxxbxx"));
  EXPECT_TRUE(glob("a*b", "ab"));
  EXPECT_TRUE(glob("a*b", "aXbYb"));
  EXPECT_FALSE(glob("a*b", "aXbY"));
  EXPECT_TRUE(glob("**", "x"));
  EXPECT_TRUE(glob("Zo?", "Zoë"));  // ? is one UTF-8 character, not one byte
  EXPECT_FALSE(glob("Zo??", "Zoë"));
  EXPECT_TRUE(glob("*?", "ë"));
  // Pathological backtracking stays fast.
  EXPECT_FALSE(glob("*a*a*a*a*a*a*a*a*b", std::string(5000, 'a')));
}

TEST(ClaimRule, AndBindsTighterThanOr) {
  // true || (false && false): true. With the wrong precedence, (true || false) && false: false.
  EXPECT_TRUE(rule_matches(R"(repository == "acme/shop" || ref == "x" && actor == "y")"));
  // (false && x) || true
  EXPECT_TRUE(rule_matches(R"(ref == "x" && actor == "y" || repository == "acme/shop")"));
  EXPECT_FALSE(rule_matches(R"((repository == "acme/shop" || ref == "x") && actor == "y")"));
}

TEST(ClaimRule, NegationAndParentheses) {
  EXPECT_FALSE(rule_matches(R"(!(actor == "dependabot[bot]"))"));
  EXPECT_TRUE(rule_matches(R"(!(actor == "renovate"))"));
  EXPECT_TRUE(rule_matches(R"(!!(actor == "dependabot[bot]"))"));
  EXPECT_TRUE(rule_matches(R"(! actor == "renovate")"));  // ! applies to the comparison
  EXPECT_FALSE(rule_matches(R"(!actor == "renovate" && ref == "x")"));
  EXPECT_TRUE(rule_matches(R"(((((ref == "refs/heads/main")))))"));
  EXPECT_TRUE(rule_matches(R"(repository == "acme/shop" && !(ref starts with "refs/tags/" || actor matches "*[bot]x"))"));
}

TEST(ClaimRule, DottedClaimsWalkIntoObjects) {
  EXPECT_TRUE(rule_matches(R"(job_workflow.ref ends with "@refs/tags/v1.2.0")"));
  EXPECT_TRUE(rule_matches(R"(job_workflow.sha == "abc")"));
  EXPECT_FALSE(rule_matches(R"(job_workflow.missing == "abc")"));
  EXPECT_FALSE(rule_matches(R"(repository.name == "acme")"));  // walks into a string
  EXPECT_TRUE(rule_matches(R"(a.b == "c")", {{"a.b", "wrong"}, {"a", {{"b", "c"}}}}));
}

TEST(ClaimRule, AbsentOrNonStringClaimsCompareFalse) {
  EXPECT_FALSE(rule_matches(R"(missing == "")"));
  EXPECT_FALSE(rule_matches(R"(missing != "x")"));
  EXPECT_TRUE(rule_matches(R"(!(missing == "x"))"));
  EXPECT_FALSE(rule_matches(R"(missing matches "*")"));
  EXPECT_FALSE(rule_matches(R"(run_attempt == "2")"));
  EXPECT_FALSE(rule_matches(R"(job_workflow == "x")"));
  EXPECT_FALSE(rule_matches(R"(repository == "acme/shop")", json::array()));
  EXPECT_FALSE(rule_matches(R"(repository == "acme/shop")", json()));
}

TEST(ClaimRule, StringsAndWhitespace) {
  EXPECT_TRUE(rule_matches(R"(v == "say \"hi\" \\ bye")", {{"v", R"(say "hi" \ bye)"}}));
  EXPECT_TRUE(rule_matches("v==\"a\"&&w!=\"b\"", {{"v", "a"}, {"w", "c"}}));
  EXPECT_TRUE(rule_matches("  v\n==\t\"a\"  ", {{"v", "a"}}));
  EXPECT_TRUE(rule_matches("v starts   with \"a\"", {{"v", "ab"}}));
  EXPECT_TRUE(rule_matches(R"(v == "")", {{"v", ""}}));
  EXPECT_TRUE(rule_matches(R"(matches matches "m*")", {{"matches", "mine"}}));  // operators are not reserved
}

TEST(ClaimRule, KeepsItsText) {
  const std::string text = R"(ref == "refs/heads/main")";
  EXPECT_EQ(claim_rule::parse(text)->text(), text);
}

TEST(ClaimRule, ParseErrorsSayWhereAndWhat) {
  EXPECT_EQ(parse_error(R"(ref starts with refs/tags/)"), "at 17: expected a string after 'starts with'");
  EXPECT_EQ(parse_error(""), "at 1: expected a claim name, '!' or '('");
  EXPECT_EQ(parse_error("   "), "at 4: expected a claim name, '!' or '('");
  EXPECT_EQ(parse_error(R"(ref = "x")"), "at 5: expected '==', '!=', 'starts with', 'ends with' or 'matches' after a claim name");
  EXPECT_EQ(parse_error(R"(ref startswith "x")"), "at 5: expected '==', '!=', 'starts with', 'ends with' or 'matches' after a claim name");
  EXPECT_EQ(parse_error(R"(ref matchesx "x")"), "at 5: expected '==', '!=', 'starts with', 'ends with' or 'matches' after a claim name");
  EXPECT_EQ(parse_error(R"(ref == "x)"), "at 8: unterminated string");
  EXPECT_EQ(parse_error(R"(ref == "a\nb")"), R"(at 10: only \" and \\ may follow '\' in a string)");
  EXPECT_EQ(parse_error(R"(ref == "x" ref == "y")"), "at 12: expected '&&', '||' or the end of the rule");
  EXPECT_EQ(parse_error(R"(ref == "x" & a == "y")"), "at 12: expected '&&', '||' or the end of the rule");
  EXPECT_EQ(parse_error(R"((ref == "x")"), "at 12: expected ')' to close the '(' at 1");
  EXPECT_EQ(parse_error(R"(ref == "x")"")"), "at 11: expected '&&', '||' or the end of the rule");
  EXPECT_EQ(parse_error(R"(ref == "x" && )"), "at 15: expected a claim name, '!' or '('");
  EXPECT_EQ(parse_error(R"(1ref == "x")"), "at 1: expected a claim name, '!' or '('");
  EXPECT_EQ(parse_error(R"(a..b == "x")"), "at 3: empty step in a dotted claim name");
  EXPECT_EQ(parse_error(R"(a. == "x")"), "at 2: a claim name cannot end with '.'");
  EXPECT_EQ(parse_error(R"(ref == 'x')"), "at 8: expected a string after '=='");
  EXPECT_EQ(parse_error(R"(!= "x")"), "at 2: expected a claim name, '!' or '('");
}

TEST(ClaimRule, NestingIsLimited) {
  const auto nested = [](int depth, std::string_view open, std::string_view close) {
    std::string text;
    for (int i = 0; i < depth; ++i) text += open;
    text += R"(v == "a")";
    for (int i = 0; i < depth; ++i) text += close;
    return text;
  };
  EXPECT_TRUE(rule_matches(nested(32, "(", ")"), {{"v", "a"}}));
  EXPECT_TRUE(rule_matches(nested(32, "!", ""), {{"v", "a"}}));
  EXPECT_EQ(parse_error(nested(33, "(", ")")), "at 33: rule nested deeper than 32 levels");
  EXPECT_EQ(parse_error(nested(100'000, "!", "")), "at 33: rule nested deeper than 32 levels");
  EXPECT_EQ(parse_error(nested(17, "!(", ")")), "at 33: rule nested deeper than 32 levels");
}

TEST(ClaimRule, LongFlatChainsAreFine) {
  std::string text = R"(v == "0")";
  for (int i = 1; i < 10'000; ++i) text += " || v == \"" + std::to_string(i) + "\"";
  EXPECT_TRUE(rule_matches(text, {{"v", "9999"}}));
  EXPECT_FALSE(rule_matches(text, {{"v", "10000"}}));
}

}  // namespace
}  // namespace berth::auth
