#include "core/reference.h"

#include <gtest/gtest.h>

#include <regex>
#include <string>

namespace berth {
namespace {

// The distribution-spec grammar, verbatim, as the oracle for the hand-written matchers.
const std::regex kNameGrammar(R"([a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*)");
const std::regex kTagGrammar(R"([a-zA-Z0-9_][a-zA-Z0-9._-]{0,127})");

TEST(ValidName, AcceptsSpecExamples) {
  for (const char* name : {"a", "0", "library/ubuntu", "a/b/c/d/e", "foo.bar", "foo_bar", "foo__bar", "a-b",
                           "a--b", "a---------b", "a.b-c_d__e", "registry.example.com/team/app",
                           "localhost/x", "a1/b2.c3", "123", "a/0", "x.y.z/q-r--s"}) {
    EXPECT_TRUE(valid_name(name)) << name;
  }
}

TEST(ValidName, RejectsBadCharactersAndCase) {
  for (const char* name : {"A", "Library/ubuntu", "foo bar", "foo:bar", "foo@bar", "foo+bar", "foo\\bar",
                           "caf\xc3\xa9", "foo\nbar", "foo%2fbar", "foo*", "~user/x"}) {
    EXPECT_FALSE(valid_name(name)) << name;
  }
}

TEST(ValidName, RejectsBadSeparators) {
  for (const char* name : {"a___b", "a..b", "a._b", "a_.b", "a-.b", "a.-b", "a_-b", "a-_b", "a__-b"}) {
    EXPECT_FALSE(valid_name(name)) << name;
  }
}

TEST(ValidName, RejectsLeadingAndTrailingSeparators) {
  for (const char* name : {".a", "_a", "-a", "a.", "a_", "a-", "a__", "a/b.", "a/-b", "a/b_", "a./b"}) {
    EXPECT_FALSE(valid_name(name)) << name;
  }
}

TEST(ValidName, RejectsEmptyComponentsAndDotSegments) {
  for (const char* name : {"", "/", "/a", "a/", "a//b", "a/../b", "../a", "a/..", "./a", "a/./b", ".", ".."}) {
    EXPECT_FALSE(valid_name(name)) << name;
  }
}

TEST(ValidName, RejectsEmbeddedNul) {
  using namespace std::string_literals;
  EXPECT_FALSE(valid_name("a\0b"s));
}

TEST(ValidName, EnforcesLengthLimit) {
  std::string name(kMaxNameLength, 'a');
  EXPECT_TRUE(valid_name(name));
  EXPECT_FALSE(valid_name(name + "a"));
  // The limit is on the whole name, not per component.
  std::string nested;
  while (nested.size() + 2 <= kMaxNameLength) nested += nested.empty() ? "a" : "/a";
  EXPECT_TRUE(valid_name(nested));
  EXPECT_FALSE(valid_name(nested + "/a"));
}

TEST(ValidTag, AcceptsSpecExamples) {
  for (const char* tag : {"latest", "v1.2.3", "1.0", "_hidden", "A", "UPPER-lower_123", "a..b", "a--", "x.",
                          "0", "sha256-abc.sig", "__"}) {
    EXPECT_TRUE(valid_tag(tag)) << tag;
  }
}

TEST(ValidTag, RejectsBadTags) {
  for (const char* tag : {"", ".hidden", "-dash", "a/b", "a:b", "a@b", "a b", "tag+1", "caf\xc3\xa9", "a\n"}) {
    EXPECT_FALSE(valid_tag(tag)) << tag;
  }
}

TEST(ValidTag, EnforcesLengthLimit) {
  EXPECT_TRUE(valid_tag(std::string(128, 'a')));
  EXPECT_FALSE(valid_tag(std::string(129, 'a')));
  EXPECT_TRUE(valid_tag("_" + std::string(127, '-')));
}

// Calls `check` with every string of length 0..max_len over `alphabet`.
template <class F>
void for_all_strings(std::string_view alphabet, std::size_t max_len, F check) {
  std::string s;
  auto rec = [&](auto& self) -> void {
    check(s);
    if (s.size() == max_len) return;
    for (char c : alphabet) {
      s.push_back(c);
      self(self);
      s.pop_back();
    }
  };
  rec(rec);
}

// Every short string over the characters that matter agrees with the spec's regular expression.
TEST(ValidName, AgreesWithSpecGrammarExhaustively) {
  for_all_strings("a0._-/A", 5, [](const std::string& s) {
    ASSERT_EQ(valid_name(s), std::regex_match(s, kNameGrammar)) << '"' << s << '"';
  });
}

TEST(ValidTag, AgreesWithSpecGrammarExhaustively) {
  for_all_strings("aZ0._-/", 5, [](const std::string& s) {
    ASSERT_EQ(valid_tag(s), std::regex_match(s, kTagGrammar)) << '"' << s << '"';
  });
}

TEST(ValidPatterns, StarStandsForAnyRunOfCharacters) {
  for (const auto* p : {"*", "dev/*", "*/app", "team-*/app", "a"}) EXPECT_TRUE(valid_name_pattern(p)) << p;
  for (const auto* p : {"", "Dev/*", "dev/", "/*", "a b", "dev//*"}) EXPECT_FALSE(valid_name_pattern(p)) << p;
  for (const auto* p : {"*", "v*", "latest", "release-*"}) EXPECT_TRUE(valid_tag_pattern(p)) << p;
  for (const auto* p : {"", "v 1", ".x", "a/b"}) EXPECT_FALSE(valid_tag_pattern(p)) << p;
}

}  // namespace
}  // namespace berth
