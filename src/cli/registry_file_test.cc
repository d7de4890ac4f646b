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
  EXPECT_EQ(f.retention_lines, std::vector<int>{23});
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
  };
}

server_state state_of(const json& j) {
  return server_state_from_api(j["namespaces"], j["repositories"], j["robots"], j["grants"], j["users"]);
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
  EXPECT_THROW(server_state_from_api(json::object(), {}, {}, {}, {}), cli_error);
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
            "    repositories: [staging/*]\n");
  // It reads back as the same state.
  const auto f = parse_registry_file(text, "export.yaml");
  EXPECT_EQ(f.robots.at("deploy").expires_at, 1827532800);
  EXPECT_EQ(f.grants.size(), 2u);
}

}  // namespace
}  // namespace berth::cli
