// What `berth plan` shows and `berth apply` does: the difference between a registry file
// (registry_file.h) and a registry's state, as Terraform-style changes, each with the admin API calls
// that make it. Pure (the callers fetch the state and run the calls), so it is tested without a server.
//
// Rules: the file adds what it names; with `prune`, what the registry holds and the file does not
// name is removed (repositories with their manifests and tags, robots revoked, stored grants deleted).
// Namespaces: one the server's config declares is authoritative (a file that contradicts it is a
// conflict, and nothing is applied); any other is made through the admin API (PUT namespaces/<ns>),
// changed there, and with `prune` deleted when the file drops it (after its repositories). Robots
// are changed in place (PATCH robots/<name>: description and expiry; their token stays).
// Retention rules: the config's are authoritative and always apply (one the file leaves out is a
// note); the file's others are the set the admin API holds (PUT retention/rules, one call): a held
// rule the file changes (same repositories) is changed, one it drops removed with `prune`.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/registry_file.h"

namespace berth::cli {

// One admin API call.
struct operation {
  std::string method;   // "POST", "PUT", "PATCH" or "DELETE"
  std::string target;   // "/api/v1/repositories"
  nlohmann::json body;  // null when none
  std::string robot;    // set on a robot's creation: the answer carries its token, shown once
};

struct change {
  char sign = '+';   // '+' add, '~' change, '-' remove
  std::string text;  // "repository production/gateway", "robot deploy: pull production/* → production/*, staging/*"
  std::vector<operation> operations;
};

struct registry_plan {
  std::vector<change> changes;         // in the order apply makes them: additions first, removals last
  std::vector<std::string> conflicts;  // the file contradicts the server's config: nothing may be applied
  std::vector<std::string> notes;      // what the file asks and this registry does not manage or change
};

// What only the server can tell about the file, "PATH:LINE: ..." each: a grant to a user that does
// not exist, to a robot the file does not list, a robot with no grants (in the file nor the server's config).
std::vector<std::string> validate_against(const registry_file& want, const server_state& have, const std::string& path);

// The changes that make `have` what `want` asks (removals only with `prune`). `caller` is the subject
// that runs the plan ("user:admin"): its own grants and robot are never pruned (a note says so), so an
// apply cannot lock out the administrator running it. `path` names the file in conflicts and notes.
registry_plan make_plan(const registry_file& want, const server_state& have, bool prune, const std::string& caller,
                        const std::string& path);

}  // namespace berth::cli
