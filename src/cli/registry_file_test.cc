#include "cli/registry_file.h"

#include <gtest/gtest.h>

#include "cli/common.h"

namespace berth::cli {
namespace {

using json = nlohmann::json;

const char* kIssueExample = R"(# registry.yaml
namespaces:
  production:
    visibility: private
    creation: explicit
    immutable_tags: ["v*"]
    quota_bytes: 200GiB
repositories:
  - production/mindmirror
  - production/gateway
robots:
  - name: ci-production
    description: builds of main push here
    push: ["production/*"]
  - name: deploy
    pull: ["production/*"]
    expires_in_days: 365
grants:
  - subject: user:alice
    actions: [pull, push]
    repositories: ["staging/*"]
retention:
  - repositories: ["development/*"]
    keep_last: 10
)";

// The message of the cli_error that parsing `text` throws ("" when it parses).
std::string parse_error(const std::string& text) {
  try {
    parse_registry_file(text, "r.yaml");
  } catch (const cli_error& e) {
    return e.what();
  }
  return "";
}

TEST(RegistryFile, ReadsTheIssuesExample) {
  const auto f = parse_registry_file(kIssueExample, "r.yaml");
  ASSERT_EQ(f.namespaces.size(), 1u);
  const auto& ns = f.namespaces.at("production");
  EXPECT_EQ(ns.visibility, "private");
  EXPECT_EQ(ns.creation, "explicit");
  EXPECT_EQ(ns.immutable_tags, std::vector<std::string>{"v*"});
  EXPECT_EQ(ns.quota_bytes, 200ull << 30);
  EXPECT_EQ(ns.line, 3);
  EXPECT_EQ(f.repositories.size(), 2u);
  EXPECT_EQ(f.repositories.at("production/gateway"), 10);
  ASSERT_EQ(f.robots.size(), 2u);
  EXPECT_EQ(f.robots.at("ci-production").description, "builds of main push here");
  EXPECT_EQ(f.robots.at("deploy").expires_in_days, 365);
  EXPECT_FALSE(f.robots.at("deploy").description);
  EXPECT_EQ(f.robots.at("deploy").line, 15);
  std::set<grant_row> rows;
  for (const auto& [row, _] : f.grants) rows.insert(row);
  EXPECT_EQ(rows, (std::set<grant_row>{{"robot:ci-production", "push", "production/*"},
                                       {"robot:deploy", "pull", "production/*"},
                                       {"user:alice", "pull,push", "staging/*"}}));
  ASSERT_EQ(f.retention.size(), 1u);
  EXPECT_EQ(f.retention[0].line, 23);
  EXPECT_EQ(f.retention[0].rule, (meta::retention_rule{.repositories = {"development/*"}, .keep_last = 10}));
}

TEST(RegistryFile, RetentionRulesTakeTheServersKeysAndItsChecks) {
  const auto f = parse_registry_file(
      "retention:\n"
      "  - repositories: [dev/*, staging/*]\n    keep_last: 5\n    keep_days: 0\n    protect: [latest, v*]\n"
      "  - repositories: \"*\"\n    untagged_days: 7\n",
      "r.yaml");
  ASSERT_EQ(f.retention.size(), 2u);
  EXPECT_EQ(f.retention[0].rule, (meta::retention_rule{.repositories = {"dev/*", "staging/*"},
                                                       .keep_last = 5,
                                                       .keep_days = 0,
                                                       .protect = {"latest", "v*"}}));
  EXPECT_EQ(f.retention[1].rule, (meta::retention_rule{.repositories = {"*"}, .untagged_days = 7}));
  EXPECT_EQ(f.retention[1].line, 6);
  // Each message names the line of its rule, the rule and the field, as the server's would.
  EXPECT_EQ(parse_error("retention:\n  - repositories: [a/*]\n    keep_last: 1\n    max_age_days: 3\n"),
            "r.yaml:4: unknown key `retention[0].max_age_days` (known: repositories, keep_last, keep_days, protect, "
            "untagged_days)");
  EXPECT_EQ(parse_error("retention:\n  - repositories: [a/*]\n    keep_last: -1\n"),
            "r.yaml:2: `retention[0].keep_last` must be 0 to 2147483647");
  EXPECT_EQ(parse_error("retention:\n  - repositories: [a/*]\n    keep_days: soon\n"),
            "r.yaml:3: `retention[0].keep_days` must be a whole number");
  EXPECT_EQ(parse_error("retention:\n  - repositories: [a/*]\n"),
            "r.yaml:2: `retention[0]` needs keep_last, keep_days or untagged_days");
  EXPECT_EQ(parse_error("retention:\n  - keep_last: 1\n"),
            "r.yaml:2: `retention[0].repositories` needs at least one pattern");
  EXPECT_NE(parse_error("retention:\n  - repositories: [Dev/*]\n    keep_last: 1\n")
                .find("r.yaml:2: `retention[0].repositories` has `Dev/*`, which is not a repository pattern"),
            std::string::npos);
  EXPECT_EQ(parse_error("retention:\n  - repositories: [a/*]\n    keep_last: 1\n    protect: [\"v 1\"]\n"),
            "r.yaml:2: `retention[0].protect` has `v 1`, which is not a tag pattern (e.g. v*)");
  EXPECT_EQ(parse_error("retention:\n  - repositories: [a/*]\n    keep_last: 1\n"
                        "  - repositories: [a/*]\n    keep_last: 1\n"),
            "r.yaml:4: `retention[1]` is the rule of line 2 again");
  EXPECT_EQ(parse_error("retention:\n  repositories: [a/*]\n"),
            "r.yaml:2: `retention` must be a list of rules (repositories, keep_last, keep_days, protect, "
            "untagged_days)");
}

TEST(RegistryFile, EmptyFileIsEmptyState) {
  const auto f = parse_registry_file("", "r.yaml");
  EXPECT_TRUE(f.repositories.empty() && f.robots.empty() && f.grants.empty() && f.namespaces.empty());
}

TEST(RegistryFile, ErrorsNameTheirLines) {
  EXPECT_EQ(parse_error("repositories:\n  - a/b\nrobot:\n  - name: x\n"),
            "r.yaml:3: unknown key `robot` (known: namespaces, repositories, robots, grants, retention)");
  EXPECT_EQ(parse_error("robots:\n  - name: ci\n    pull: [a]\n    pusj: [b]\n"),
            "r.yaml:4: unknown key `robots[].pusj` (known: name, description, pull, push, delete, expires_in_days, "
            "expires_at)");
  EXPECT_NE(parse_error("robots:\n  - name: ci\n    push: [\"Production/*\"]\n")
                .find("r.yaml:3: `push`: `Production/*` "
                      "is not a repository pattern"),
            std::string::npos);
  EXPECT_EQ(parse_error("grants:\n  - subject: bob\n    actions: [pull]\n    repositories: [a/*]\n"),
            "r.yaml:2: `bob` is not a subject: user:NAME, robot:NAME or * (every authenticated caller); anonymous "
            "access is the namespace's visibility");
  EXPECT_NE(parse_error("grants:\n  - subject: user:bob\n    actions: [pull, fly]\n    repositories: [a/*]\n")
                .find("r.yaml:3: "),
            std::string::npos);
  EXPECT_EQ(parse_error("repositories:\n  - a/b\n  - a/b\n"),
            "r.yaml:3: repository a/b is listed twice (first on line 2)");
  EXPECT_EQ(parse_error("namespaces:\n  prod/x: {}\n"),
            "r.yaml:2: `namespaces.prod/x`: a namespace is one lower-case name component, e.g. production");
  EXPECT_EQ(parse_error("namespaces:\n  p:\n    quota_bytes: lots\n"),
            "r.yaml:3: `namespaces.p.quota_bytes` must be a size such as 200GiB, 500MB or 1048576");
  EXPECT_EQ(parse_error("robots:\n  - name: ci\n    pull: [a]\n    expires_in_days: -3\n"),
            "r.yaml:4: `expires_in_days` must be a positive whole number");
  EXPECT_EQ(parse_error("repositories: [a\n"), "r.yaml:2: end of sequence flow not found");
}

TEST(RegistryFile, ListsEveryProblemAtOnce) {
  const auto message = parse_error("repositories:\n  - UPPER\nrobots:\n  - name: Bad Name\n    pull: [a]\n");
  EXPECT_NE(message.find("r.yaml:2: `UPPER` is not a repository name"), std::string::npos) << message;
  EXPECT_NE(message.find("r.yaml:4: robot Bad Name: robot names match"), std::string::npos) << message;
}

TEST(RegistryFile, ExpiresAtTakesADateOrAUtcTime) {
  const auto f = parse_registry_file(
      "robots:\n  - name: a\n    pull: [x]\n    expires_at: 2027-11-30\n"
      "  - name: b\n    pull: [x]\n    expires_at: 2027-11-30T12:00:00Z\n",
      "r.yaml");
  EXPECT_EQ(f.robots.at("a").expires_at, 1827532800);
  EXPECT_EQ(f.robots.at("b").expires_at, 1827532800 + 12 * 3600);
  EXPECT_EQ(rfc3339(1827532800 + 12 * 3600), "2027-11-30T12:00:00Z");
  EXPECT_NE(parse_error("robots:\n  - name: a\n    pull: [x]\n    expires_at: next year\n"), "");
}

json api_state() {
  return {
      {"namespaces",
       json{{"namespaces", {{{"name", "production"}, {"visibility", "private"}, {"creation", "explicit"}}}}}},
      {"repositories", json{{"repositories", {{{"name", "production/gateway"}}, {{"name", "staging/web"}}}}}},
      {"robots",
       json{{"robots",
             {{{"name", "deploy"}, {"description", "rollouts"}, {"expires_at", 1827532800}, {"revoked_at", nullptr}},
              {{"name", "old"}, {"description", ""}, {"expires_at", nullptr}, {"revoked_at", 1700000000}}}}}},
      {"grants",
       json{{"grants",
             {{{"subject", "robot:deploy"},
               {"actions", "pull"},
               {"repositories", {"production/*"}},
               {"source", "namespaces.production.grants[0]"}},
              {{"id", 1}, {"subject", "robot:deploy"}, {"actions", "pull"}, {"repositories", {"staging/*"}}},
              {{"id", 2}, {"subject", "user:alice"}, {"actions", "pull,push"}, {"repositories", {"staging/*"}}},
              {{"id", 3}, {"subject", "robot:old"}, {"actions", "push"}, {"repositories", {"staging/*"}}},
              {{"id", 4}, {"subject", "user:gone"}, {"actions", "pull"}, {"repositories", {"staging/*"}}}}}}},
      {"users", json{{"users", {{{"name", "alice"}, {"created_at", 1}}}}}},
      {"retention",
       json{{"rules",
             {{{"repositories", {"dev/*"}}, {"keep_last", 3}, {"protect", json::array()}, {"source", "config"}},
              {{"repositories", {"ci/*", "tmp/*"}},
               {"keep_days", 7},
               {"protect", {"v*"}},
               {"untagged_days", 1},
               {"source", "api"}},
              {{"repositories", {"dev/*"}}, {"keep_last", 3}, {"protect", json::array()}, {"source", "api"}}}}}},
  };
}

server_state state_of(const json& j) {
  return server_state_from_api(j["namespaces"], j["repositories"], j["robots"], j["grants"], j["users"],
                               j["retention"]);
}

TEST(RegistryFile, ReadsTheServersState) {
  const auto s = state_of(api_state());
  EXPECT_EQ(s.namespaces.at("production").creation, "explicit");
  EXPECT_FALSE(s.namespaces.at("production").immutable_tags);
  EXPECT_EQ(s.repositories, (std::set<std::string>{"production/gateway", "staging/web"}));
  EXPECT_TRUE(s.robots.at("old").revoked);
  EXPECT_FALSE(s.robots.at("deploy").revoked);
  EXPECT_EQ(s.robots.at("deploy").expires_at, 1827532800);
  EXPECT_EQ(s.config_grants, (std::set<grant_row>{{"robot:deploy", "pull", "production/*"}}));
  EXPECT_EQ(s.grants.at(grant_row{"user:alice", "pull,push", "staging/*"}), std::vector<std::int64_t>{2});
  EXPECT_EQ(s.users, std::set<std::string>{"alice"});
  const meta::retention_rule dev{.repositories = {"dev/*"}, .keep_last = 3};
  EXPECT_EQ(s.config_retention, std::vector{dev});
  const meta::retention_rule ci{
      .repositories = {"ci/*", "tmp/*"}, .keep_days = 7, .untagged_days = 1, .protect = {"v*"}};
  EXPECT_EQ(s.api_retention, (std::vector<meta::retention_rule>{ci, dev}));
  EXPECT_THROW(server_state_from_api(json::object(), {}, {}, {}, {}, {}), cli_error);
  auto bad = api_state();
  bad["retention"]["rules"][0]["keep_last"] = "three";
  EXPECT_THROW(state_of(bad), cli_error);
}

TEST(RegistryFile, ExportWritesExistingSubjectsInTheFilesFormat) {
  const auto text = export_registry_file(state_of(api_state()));
  EXPECT_EQ(text,
            "namespaces:\n"
            "  production:\n"
            "    visibility: private\n"
            "    creation: explicit\n"
            "repositories:\n"
            "  - production/gateway\n"
            "  - staging/web\n"
            "robots:\n"
            "  - name: deploy\n"
            "    description: \"rollouts\"\n"
            "    expires_at: 2027-11-30T00:00:00Z\n"
            "    pull: [staging/*]\n"
            "grants:\n"
            "  - subject: \"user:alice\"\n"
            "    actions: [pull, push]\n"
            "    repositories: [staging/*]\n"
            "retention:\n"
            "  - repositories: [dev/*]\n"
            "    keep_last: 3\n"
            "  - repositories: [ci/*, tmp/*]\n"
            "    keep_days: 7\n"
            "    protect: [v*]\n"
            "    untagged_days: 1\n");
  // It reads back as the same state; each rule once, the config's and the API's.
  const auto f = parse_registry_file(text, "export.yaml");
  EXPECT_EQ(f.robots.at("deploy").expires_at, 1827532800);
  EXPECT_EQ(f.grants.size(), 2u);
  const auto s = state_of(api_state());
  ASSERT_EQ(f.retention.size(), 2u);
  EXPECT_EQ(f.retention[0].rule, s.config_retention[0]);
  EXPECT_EQ(f.retention[1].rule, s.api_retention[0]);
}

}  // namespace
}  // namespace berth::cli
