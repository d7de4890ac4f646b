// `berth check` without a running registry: the policy of a config file and the identities and
// repositories of a data directory decide, exactly as the server would (a push to a repository that
// does not exist in an explicit namespace is denied, naming the command that creates it).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace berth::app {

struct check_answer {
  bool allowed = false;
  std::string subject;
  std::string reason;  // the deciding grant or rule, or why not
};

// `as`: "anonymous", "user:NAME", "robot:NAME", a robot token, or an OIDC token (needs the config's
// federation). `config_path` may be empty (defaults); `data_dir` empty means the config's data
// directory. Throws std::runtime_error with a short message when `as` cannot be resolved.
check_answer offline_check(const std::string& config_path, const std::string& data_dir, const std::string& as,
                           const std::string& action, const std::string& repository);

// What a CI job's OIDC identity may do, from its claims rather than a token: the config's federation
// `issuer` (name or URL) and rules make the principal (federation::preview), the config's policy
// decides; `exists` says whether the repository exists (a push to a missing repository of an explicit
// namespace is denied). Throws std::runtime_error for an unknown issuer or a claim set without subject.
check_answer claims_check(const std::string& config_path, const std::string& issuer, const nlohmann::json& claims,
                          const std::string& action, const std::string& repository, bool exists);

}  // namespace berth::app
