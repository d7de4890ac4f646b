#include "cli/registry_diff.h"

#include <fmt/core.h>
#include <gtest/gtest.h>

namespace berth::cli {
namespace {

using json = nlohmann::json;

// "+ text" lines of a plan.
std::vector<std::string> lines(const registry_plan& p) {
  std::vector<std::string> out;
  for (const auto& c : p.changes) out.push_back(std::string(1, c.sign) + " " + c.text);
  return out;
}

server_state production_server() {
  server_state s;
  s.namespaces["production"] = {"production", "private", "explicit", std::nullopt, std::nullopt, 0, true};
  s.users = {"alice", "bob"};
  return s;
}

registry_file file(const std::string& text) { return parse_registry_file(text, "r.yaml"); }

const char* kFile = R"(namespaces:
  production:
    creation: explicit
repositories:
  - production/gateway
robots:
  - name: deploy
    description: rollouts
    pull: ["production/*"]
grants:
  - subject: user:alice
    actions: [pull, push]
    repositories: ["staging/*"]
)";

TEST(RegistryDiff, EmptyRegistryGetsEverything) {
  const auto p = make_plan(file(kFile), production_server(), false, "user:admin", "r.yaml");
  EXPECT_TRUE(p.conflicts.empty());
  EXPECT_EQ(lines(p), (std::vector<std::string>{"+ repository production/gateway", "+ robot deploy: pull production/*",
                                                "+ grant user:alice pull,push on staging/*"}));
  const auto& robot = p.changes[1].operations;
  ASSERT_EQ(robot.size(), 2u);
  EXPECT_EQ(robot[0].method, "POST");
  EXPECT_EQ(robot[0].target, "/api/v1/robots");
  EXPECT_EQ(robot[0].robot, "deploy");
  EXPECT_EQ(robot[0].body, (json{{"name", "deploy"}, {"description", "rollouts"}}));
  EXPECT_EQ(robot[1].body,
            (json{{"subject", "robot:deploy"}, {"actions", {"pull"}}, {"repositories", {"production/*"}}}));
  EXPECT_EQ(p.changes[2].operations[0].body,
            (json{{"subject", "user:alice"}, {"actions", {"pull", "push"}}, {"repositories", {"staging/*"}}}));
}

// The server after the file was applied (grant ids 1 and 2).
server_state applied() {
  auto s = production_server();
  s.repositories = {"production/gateway"};
  s.robots["deploy"] = {"deploy", "rollouts", std::nullopt, std::nullopt, false, 0};
  s.grants[{"robot:deploy", "pull", "production/*"}] = {1};
  s.grants[{"user:alice", "pull,push", "staging/*"}] = {2};
  return s;
}

TEST(RegistryDiff, AppliedFileHasNoChanges) {
  const auto p = make_plan(file(kFile), applied(), true, "user:admin", "r.yaml");
  EXPECT_TRUE(p.changes.empty()) << testing::PrintToString(lines(p));
  EXPECT_TRUE(p.conflicts.empty());
  EXPECT_TRUE(p.notes.empty());
}

TEST(RegistryDiff, RobotPatternsChangeInPlace) {
  std::string text = kFile;
  text.replace(text.find(R"(pull: ["production/*"])"), 22, R"(pull: ["production/*", "staging/*"])");
  const auto p = make_plan(file(text), applied(), false, "user:admin", "r.yaml");
  EXPECT_EQ(lines(p), std::vector<std::string>{"~ robot deploy: pull production/* → production/*, staging/*"});
  ASSERT_EQ(p.changes[0].operations.size(), 1u);
  EXPECT_EQ(p.changes[0].operations[0].body["repositories"], json{"staging/*"});
}

TEST(RegistryDiff, ManyPatternsTakeSeveralCalls) {
  std::string text = "robots:\n  - name: many\n    pull:\n";
  for (int i = 0; i < 450; ++i) text += fmt::format("      - team-{:03}/*\n", i);
  const auto p = make_plan(file(text), production_server(), false, "user:admin", "r.yaml");
  ASSERT_EQ(p.changes.size(), 1u);
  ASSERT_EQ(p.changes[0].operations.size(), 4u);  // the robot, then 200 + 200 + 50 patterns
  EXPECT_EQ(p.changes[0].operations[1].body["repositories"].size(), 200u);
  EXPECT_EQ(p.changes[0].operations[3].body["repositories"].size(), 50u);
  EXPECT_EQ(p.changes[0].operations[3].body["repositories"].back(), "team-449/*");
}

TEST(RegistryDiff, RemovalsOnlyWithPrune) {
  auto s = applied();
  s.repositories.insert("staging/old");
  s.robots["ci"] = {"ci", "", std::nullopt, std::nullopt, false, 0};
  s.robots["gone"] = {"gone", "", std::nullopt, std::nullopt, true, 0};
  s.grants[{"robot:ci", "push", "staging/*"}] = {3};
  s.grants[{"robot:deploy", "pull", "staging/*"}] = {4};
  s.grants[{"user:bob", "pull", "staging/*"}] = {5, 6};
  s.grants[{"robot:gone", "push", "x/*"}] = {7};
  s.config_grants.insert({"user:carol", "pull", "production/*"});
  EXPECT_TRUE(make_plan(file(kFile), s, false, "user:admin", "r.yaml").changes.empty());

  const auto p = make_plan(file(kFile), s, true, "user:admin", "r.yaml");
  EXPECT_EQ(lines(p), (std::vector<std::string>{
                          "~ robot deploy: pull production/*, staging/* → production/*",
                          "- grant robot:gone push on x/*",
                          "- grant user:bob pull on staging/*",
                          "- robot ci (revoke; drop its grants push on staging/*)",
                          "- repository staging/old (with its manifests and tags)",
                      }));
  const auto targets = [&](std::size_t i) {
    std::vector<std::string> out;
    for (const auto& op : p.changes[i].operations) out.push_back(op.method + " " + op.target);
    return out;
  };
  EXPECT_EQ(targets(0), std::vector<std::string>{"DELETE /api/v1/grants/4"});
  EXPECT_EQ(targets(2), (std::vector<std::string>{"DELETE /api/v1/grants/5", "DELETE /api/v1/grants/6"}));
  EXPECT_EQ(targets(3), (std::vector<std::string>{"DELETE /api/v1/grants/3", "DELETE /api/v1/robots/ci"}));
  EXPECT_EQ(targets(4), std::vector<std::string>{"DELETE /api/v1/repositories/staging%2Fold"});
}

TEST(RegistryDiff, PruneKeepsTheCallersOwnGrantsAndRobot) {
  auto s = applied();
  s.grants[{"user:admin", "admin", "*"}] = {8};
  s.robots["ops"] = {"ops", "", std::nullopt, std::nullopt, false, 0};
  s.grants[{"robot:ops", "admin", "*"}] = {9};
  auto p = make_plan(file(kFile), s, true, "user:admin", "r.yaml");
  EXPECT_EQ(lines(p), std::vector<std::string>{"- robot ops (revoke; drop its grants admin on *)"});
  EXPECT_EQ(p.notes, std::vector<std::string>{"kept user:admin's grants admin on *: it is the identity running this "
                                              "plan (remove them as another administrator)"});
  p = make_plan(file(kFile), s, true, "robot:ops", "r.yaml");
  EXPECT_EQ(lines(p), std::vector<std::string>{"- grant user:admin admin on *"});
  EXPECT_EQ(p.notes, std::vector<std::string>{"kept robot ops: it is the identity running this plan"});
}

TEST(RegistryDiff, TheServersConfigDecidesItsNamespacesAndTheApiMakesTheOthers) {
  auto p = make_plan(file("namespaces:\n  production:\n    creation: on-push\n  qa:\n    visibility: public-pull\n"),
                     production_server(), false, "user:admin", "r.yaml");
  ASSERT_EQ(p.conflicts.size(), 1u);
  EXPECT_EQ(p.conflicts[0],
            "r.yaml:2: namespace production: creation is on-push in the file but explicit on the server (the server's "
            "config is authoritative for the namespaces it declares: change the file or the config)");
  EXPECT_EQ(lines(p), std::vector<std::string>{R"(+ namespace qa {"visibility":"public-pull"})"});
  EXPECT_EQ(p.changes[0].operations[0].method, "PUT");
  EXPECT_EQ(p.changes[0].operations[0].target, "/api/v1/namespaces/qa");

  // A namespace of the API is changed (its other settings kept), and pruned only with --prune; the
  // config's never.
  auto s = production_server();
  s.namespaces["qa"] = {"qa", "private", "explicit", std::vector<std::string>{}, std::nullopt, 0, false};
  s.namespaces["old"] = {"old", "private", "on-push", std::vector<std::string>{}, std::nullopt, 0, false};
  p = make_plan(file("namespaces:\n  qa:\n    visibility: public-pull\n"), s, true, "user:admin", "r.yaml");
  EXPECT_TRUE(p.conflicts.empty());
  EXPECT_EQ(lines(p),
            (std::vector<std::string>{"~ namespace qa: visibility private → public-pull", "- namespace old"}));
  EXPECT_EQ(p.changes[0].operations[0].body,
            (json{{"visibility", "public-pull"}, {"creation", "explicit"}, {"immutable_tags", json::array()}}));
  EXPECT_EQ(p.changes[1].operations[0].method, "DELETE");
  p = make_plan(file("namespaces:\n  qa:\n    visibility: private\n"), s, false, "user:admin", "r.yaml");
  EXPECT_TRUE(p.changes.empty());
  // Its quota too.
  p = make_plan(file("namespaces:\n  qa:\n    quota_bytes: 1GiB\n"), s, false, "user:admin", "r.yaml");
  EXPECT_EQ(lines(p), (std::vector<std::string>{"~ namespace qa: quota_bytes (none) → 1073741824"}));
  EXPECT_EQ(p.changes[0].operations[0].body, (json{{"visibility", "private"},
                                                   {"creation", "explicit"},
                                                   {"immutable_tags", json::array()},
                                                   {"quota_bytes", 1073741824}}));
  s.namespaces["qa"].quota_bytes = 1073741824;
  p = make_plan(file("namespaces:\n  qa:\n    quota_bytes: 1GiB\n"), s, false, "user:admin", "r.yaml");
  EXPECT_TRUE(p.changes.empty());

  p = make_plan(file("namespaces:\n  production:\n    immutable_tags: [v*]\n    quota_bytes: 1GiB\n"
                     "retention:\n  - repositories: [x/*]\n    keep_last: 3\n"),
                production_server(), false, "user:admin", "r.yaml");
  ASSERT_EQ(p.conflicts.size(), 1u);  // the config's namespace has no quota: the config decides
  EXPECT_NE(p.conflicts[0].find("quota_bytes is 1073741824 in the file but (none) on the server"), std::string::npos)
      << p.conflicts[0];
  EXPECT_EQ(p.notes,
            (std::vector<std::string>{
                "r.yaml:2: namespaces.production.immutable_tags is not managed by this registry version (ignored)"}));
  // A server that manages them compares them.
  s = production_server();
  s.namespaces["production"].immutable_tags = std::vector<std::string>{"release-*"};
  p = make_plan(file("namespaces:\n  production:\n    immutable_tags: [v*]\n"), s, false, "user:admin", "r.yaml");
  ASSERT_EQ(p.conflicts.size(), 1u);
  EXPECT_NE(p.conflicts[0].find("immutable_tags is [v*] in the file but [release-*] on the server"), std::string::npos);
}

// The rules of a plan's retention PUT.
json put_rules(const registry_plan& p) {
  for (const auto& c : p.changes) {
    for (const auto& op : c.operations) {
      if (op.target == "/api/v1/retention/rules") return op.body.at("rules");
    }
  }
  ADD_FAILURE() << "no PUT of the retention rules";
  return nullptr;
}

TEST(RegistryDiff, RetentionRulesAreTheApisSetBesideTheConfigs) {
  const meta::retention_rule dev{.repositories = {"dev/*"}, .keep_last = 3};
  const meta::retention_rule ci{.repositories = {"ci/*"}, .keep_days = 7, .protect = {"v*"}};
  const meta::retention_rule all{.repositories = {"*"}, .untagged_days = 1};
  auto s = production_server();
  s.config_retention = {all};

  // A fresh registry: the file's rules but the config's are added, in one PUT; the config's rule left
  // out of the file is a note.
  auto p = make_plan(file("retention:\n  - repositories: [dev/*]\n    keep_last: 3\n"
                          "  - repositories: [ci/*]\n    keep_days: 7\n    protect: [v*]\n"),
                     s, false, "user:admin", "r.yaml");
  EXPECT_EQ(lines(p), (std::vector<std::string>{"+ retention rule dev/*: keep_last 3",
                                                "+ retention rule ci/*: keep_days 7, protect [v*]"}));
  ASSERT_EQ(p.changes[0].operations.size(), 1u);
  EXPECT_EQ(p.changes[0].operations[0].method, "PUT");
  EXPECT_TRUE(p.changes[1].operations.empty());
  EXPECT_EQ(put_rules(p), json::array({meta::rule_json(dev), meta::rule_json(ci)}));
  EXPECT_EQ(p.notes, (std::vector<std::string>{"r.yaml: retention rule *: untagged_days 1 is declared in the server's "
                                               "config, which is authoritative: it applies though the file does not "
                                               "list it"}));

  // Applied (the config's rule listed too): no changes, no notes.
  s.api_retention = {dev, ci};
  const std::string applied_file =
      "retention:\n  - repositories: [\"*\"]\n    untagged_days: 1\n"
      "  - repositories: [dev/*]\n    keep_last: 3\n  - repositories: [ci/*]\n    keep_days: 7\n    protect: [v*]\n";
  p = make_plan(file(applied_file), s, true, "user:admin", "r.yaml");
  EXPECT_TRUE(p.changes.empty());
  EXPECT_TRUE(p.notes.empty());

  // A rule of the same repositories is changed in place; the set keeps its order.
  p = make_plan(file("retention:\n  - repositories: [dev/*]\n    keep_last: 5\n    untagged_days: 2\n"
                     "  - repositories: [ci/*]\n    keep_days: 7\n    protect: [v*]\n"),
                s, false, "user:admin", "r.yaml");
  EXPECT_EQ(lines(p),
            (std::vector<std::string>{"~ retention rule dev/*: keep_last 3 → 5; untagged_days (none) → 2"}));
  auto edited = dev;
  edited.keep_last = 5;
  edited.untagged_days = 2;
  EXPECT_EQ(put_rules(p), json::array({meta::rule_json(edited), meta::rule_json(ci)}));

  // A rule the file drops goes only with --prune; without it, the PUT of an addition keeps it.
  const std::string only_dev = "retention:\n  - repositories: [dev/*]\n    keep_last: 3\n";
  p = make_plan(file(only_dev), s, false, "user:admin", "r.yaml");
  EXPECT_TRUE(p.changes.empty());
  p = make_plan(file(only_dev + "  - repositories: [x/*]\n    keep_last: 1\n"), s, false, "user:admin", "r.yaml");
  EXPECT_EQ(lines(p), (std::vector<std::string>{"+ retention rule x/*: keep_last 1"}));
  EXPECT_EQ(put_rules(p).size(), 3u);
  p = make_plan(file(only_dev + "grants:\n  - subject: user:bob\n    actions: [pull]\n    repositories: [a/*]\n"), s,
                true, "user:admin", "r.yaml");
  EXPECT_EQ(lines(p), (std::vector<std::string>{"+ grant user:bob pull on a/*",
                                                "- retention rule ci/*: keep_days 7, protect [v*]"}));
  EXPECT_EQ(put_rules(p), json::array({meta::rule_json(dev)}));
  EXPECT_TRUE(p.changes[0].operations[0].target == "/api/v1/grants");

  // A file without retention, pruned, empties the API's set; the config's rule stays (a note).
  p = make_plan(file(""), s, true, "user:admin", "r.yaml");
  EXPECT_EQ(lines(p), (std::vector<std::string>{"- retention rule dev/*: keep_last 3",
                                                "- retention rule ci/*: keep_days 7, protect [v*]"}));
  EXPECT_EQ(put_rules(p), json::array());
  EXPECT_EQ(p.notes.size(), 1u);
}

TEST(RegistryDiff, RobotsAreChangedInPlace) {
  auto s = applied();
  s.robots["deploy"].description = "something else";
  auto p = make_plan(file(kFile), s, false, "user:admin", "r.yaml");
  ASSERT_EQ(p.changes.size(), 1u);
  EXPECT_EQ(p.changes[0].sign, '~');
  EXPECT_NE(p.changes[0].text.find("robot deploy: description \"something else\" → "), std::string::npos);
  ASSERT_EQ(p.changes[0].operations.size(), 1u);
  EXPECT_EQ(p.changes[0].operations[0].method, "PATCH");
  EXPECT_EQ(p.changes[0].operations[0].target, "/api/v1/robots/deploy");
  EXPECT_TRUE(p.notes.empty());

  s.robots["deploy"].revoked = true;
  p = make_plan(file(kFile), s, false, "user:admin", "r.yaml");
  ASSERT_EQ(p.conflicts.size(), 1u);
  EXPECT_NE(p.conflicts[0].find("robot deploy was revoked"), std::string::npos);
}

TEST(RegistryDiff, ValidatesSubjectsAndRobotsAgainstTheServer) {
  const auto f = file(R"(robots:
  - name: lonely
  - name: configured
grants:
  - subject: user:nobody
    actions: [pull]
    repositories: [a/*, b/*]
  - subject: robot:unlisted
    actions: [pull]
    repositories: [a/*]
  - subject: user:alice
    actions: [pull]
    repositories: [a/*]
)");
  auto s = production_server();
  s.config_grants.insert({"robot:configured", "pull", "production/*"});
  EXPECT_EQ(validate_against(f, s, "r.yaml"),
            (std::vector<std::string>{
                "r.yaml:2: robot lonely has no grants: give it pull:, push: or delete: patterns",
                "r.yaml:5: grant to user:nobody: no such user on the registry (users are declared in the server's "
                "config or created with the admin API)",
                "r.yaml:8: grant to robot:unlisted: the file does not list robot unlisted under `robots:`"}));
}

}  // namespace
}  // namespace berth::cli
