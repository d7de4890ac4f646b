// The registry-as-code file (registry.yaml): the desired namespaces, repositories, robots, grants
// and retention rules of a registry, read strictly (every error names its line), and the same model for what a running
// registry holds, read from its admin API's answers, so that the two can be compared (registry_diff.h)
// and a registry can be written back out in the file's format (`berth export`).
// Pure: no I/O beyond the text handed in; the callers fetch and print.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "meta/retention_rules.h"

namespace berth::cli {

// One stored grant as the identity store keeps it: a subject's actions on one repository pattern.
struct grant_row {
  std::string subject;  // "user:alice", "robot:ci" or "*"
  std::string actions;  // normalised by policy::action_set: "pull,push"
  std::string pattern;  // "production/*"
  auto operator<=>(const grant_row&) const = default;
};

// A namespace's settings; a field left out of the file is not compared. `immutable_tags` from the
// server is set only when the server reports it (it manages them); `quota_bytes` when it has one.
struct namespace_spec {
  std::string name;
  std::optional<std::string> visibility;  // "private" | "public-pull"
  std::optional<std::string> creation;    // "on-push" | "explicit"
  std::optional<std::vector<std::string>> immutable_tags;
  std::optional<std::uint64_t> quota_bytes;
  int line = 0;  // in the file; 0 for the server's
  bool from_config = false;  // server only: declared in its config (authoritative), not through the API
};

struct robot_spec {
  std::string name;
  std::optional<std::string> description;       // left out of the file: not compared
  std::optional<std::int64_t> expires_in_days;  // file only: applied when the robot is created
  std::optional<std::int64_t> expires_at;       // Unix seconds
  bool revoked = false;                         // server only
  int line = 0;
};

// A retention rule of the file, in the server's keys (lifecycle/retention.h).
struct retention_spec {
  meta::retention_rule rule;
  int line = 0;
};

// What the file asks for.
struct registry_file {
  std::map<std::string, namespace_spec> namespaces;
  std::map<std::string, int> repositories;  // name -> line
  std::map<std::string, robot_spec> robots;
  std::map<grant_row, int> grants;   // robots' pull/push/delete and the `grants:` entries, one row per pattern -> line
  std::vector<retention_spec> retention;  // in the file's order, each once
};

// Parses and validates `text` (named `path` in messages). Throws cli_error listing every problem as
// "PATH:LINE: what is wrong", e.g. an unknown key, a bad repository pattern, an action that is not
// pull/push/delete/list/admin, a subject that is not user:NAME, robot:NAME or *, a retention rule
// the server would refuse (lifecycle::check_rule) or listed twice. What needs the
// server (whether a subject exists, whether a robot has grants at all) is checked by
// validate_against (registry_diff.h).
registry_file parse_registry_file(const std::string& text, const std::string& path);

// What a registry holds, from its admin API.
struct server_state {
  std::map<std::string, namespace_spec> namespaces;  // declared in the server's config or through its API
  std::set<std::string> repositories;
  std::map<std::string, robot_spec> robots;               // revoked ones too
  std::map<grant_row, std::vector<std::int64_t>> grants;  // stored grants -> their ids
  std::set<grant_row> config_grants;                      // declared in the server's config (not managed here)
  std::set<std::string> users;                            // user names known to exist
  std::vector<meta::retention_rule> config_retention;     // the config's rules (authoritative, not managed here)
  std::vector<meta::retention_rule> api_retention;        // the rules made through the API, in their order
};

// The state from the JSON answers of GET /api/v1/namespaces, repositories, robots, grants, users and
// retention/rules. Throws cli_error when an answer does not have the documented shape.
server_state server_state_from_api(const nlohmann::json& namespaces, const nlohmann::json& repositories,
                                   const nlohmann::json& robots, const nlohmann::json& grants,
                                   const nlohmann::json& users, const nlohmann::json& retention);

// The registry's state in the file's format (`berth export`): its namespaces, repositories, active
// robots with their single-action grants, the other stored grants of existing subjects, and every
// retention rule (the config's, then the API's).
std::string export_registry_file(const server_state& state);

// "2027-11-30T12:00:00Z" for a Unix time (UTC).
std::string rfc3339(std::int64_t unix_seconds);

}  // namespace berth::cli
