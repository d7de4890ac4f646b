#include "cli/preflight.h"

#include <gtest/gtest.h>

#include "cli/common.h"

namespace berth::cli {
namespace {

std::string parse_error(const std::string& text) {
  try {
    parse_preflight_file(text, "c.yaml");
  } catch (const cli_error& e) {
    return e.what();
  }
  return "";
}

TEST(Preflight, ReadsEachKindOfCheck) {
  const auto checks = parse_preflight_file(R"(checks:
  - name: CI pushes the gateway
    subject: robot:ci
    action: push
    repository: production/gateway
  - token_env: CI_JOB_JWT
    action: push
    repository: production/gateway
  - repository: production/mindmirror
    exists: true
  - repository: production/gateway
    tag_free: v1.2.0
  - issuer: github
    claims: {repository: acme/shop, ref: refs/heads/main}
    action: push
    repository: production/gateway
)",
                                           "c.yaml");
  ASSERT_EQ(checks.size(), 5u);
  EXPECT_EQ(checks[0].question(), "robot:ci may push production/gateway");
  EXPECT_EQ(checks[0].name, "CI pushes the gateway");
  EXPECT_EQ(checks[0].line, 2);
  EXPECT_EQ(checks[1].question(), "$CI_JOB_JWT may push production/gateway");
  EXPECT_EQ(checks[2].question(), "repository production/mindmirror exists");
  EXPECT_EQ(checks[3].question(), "tag v1.2.0 is free in production/gateway");
  EXPECT_EQ(checks[3].line, 11);
  EXPECT_EQ(checks[4].question(),
            "oidc of github with ref=refs/heads/main repository=acme/shop may push production/gateway");
  EXPECT_EQ(checks[4].claims, (nlohmann::json{{"repository", "acme/shop"}, {"ref", "refs/heads/main"}}));
}

TEST(Preflight, ErrorsNameTheirLines) {
  EXPECT_EQ(parse_error("checks:\n  - repository: a/b\n    exists: true\n    tag_free: v1\n"),
            "c.yaml:2: a check asks one question: `action` (with `subject`, `token_env` or `issuer` and `claims`), "
            "`exists` or `tag_free`");
  EXPECT_EQ(parse_error("checks:\n  - repository: a/b\n    exist: true\n"),
            "c.yaml:3: unknown key `checks[].exist` (known: name, subject, token_env, issuer, claims, action, "
            "repository, exists, "
            "tag_free)\nc.yaml:2: a check asks one question: `action` (with `subject`, `token_env` or `issuer` and "
            "`claims`), `exists` or `tag_free`");
  EXPECT_EQ(parse_error("checks:\n  - subject: bob\n    action: fly\n    repository: a/b\n"),
            "c.yaml:2: `bob` is not a subject: user:NAME, robot:NAME or anonymous\n"
            "c.yaml:2: an access check needs `action`: pull, push, delete, list or admin");
  EXPECT_EQ(parse_error("checks:\n  - issuer: github\n    action: push\n    repository: a/b\n"),
            "c.yaml:2: an access check takes one of `subject` (user:NAME, robot:NAME, anonymous), `token_env` (a "
            "variable holding an OIDC token) or `issuer` with `claims` (an OIDC identity by its claims)");
  EXPECT_EQ(parse_error("checks: []\n"), "c.yaml:1: `checks` must be a list of checks");
  EXPECT_EQ(parse_error("checks:\n  - repository: a/b\n    exists: maybe\n"),
            "c.yaml:3: `exists` must be true or false");
}

}  // namespace
}  // namespace berth::cli
