// A CI preflight file (`berth check -f checks.yaml`): the prerequisites of a deploy, each a question
// the registry answers before anything is built. Read strictly, every error naming its line:
//   checks:
//     - subject: robot:ci             # or user:NAME, anonymous; or token_env: VAR (an OIDC token)
//       action: push
//       repository: production/gateway
//     - issuer: github                # an OIDC identity by its claims, decided by the server's
//       claims: {repository: acme/shop, ref: refs/heads/main}   # config (berth check --config)
//       action: push
//       repository: production/gateway
//     - repository: production/mindmirror
//       exists: true
//     - repository: production/gateway
//       tag_free: v1.2.0              # no such tag yet (a push would not overwrite or be refused)
// Pure: the command (check.cc) asks the registry.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace berth::cli {

struct preflight_check {
  enum class kind { access, exists, tag_free };
  kind what = kind::access;
  std::string name;       // optional `name:`, for the report
  std::string subject;    // access: "user:NAME", "robot:NAME", "anonymous"; empty with token_env
  std::string token_env;  // access: the environment variable holding an OIDC token to ask as
  std::string issuer;     // access: a federation of the server's config, with `claims`
  nlohmann::json claims;  // access: the claims of the OIDC identity (strings), with `issuer`
  std::string action;     // access: pull, push, delete, list, admin
  std::string repository;
  bool exists = true;  // exists: whether the repository should exist
  std::string tag;     // tag_free
  int line = 0;

  // "robot:ci may push production/gateway", "repository x exists", "tag v1 is free in x".
  std::string question() const;
};

// Throws cli_error listing every problem as "PATH:LINE: ...".
std::vector<preflight_check> parse_preflight_file(const std::string& text, const std::string& path);

}  // namespace berth::cli
