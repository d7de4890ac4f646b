// Docker registry token scopes (https://distribution.github.io/distribution/spec/auth/scope/):
// "repository:team/app:pull,push", "repository(plugin):team/app:pull", "registry:catalog:*". The
// same shape is the "access" claim of an access token.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace berth::auth {

struct scope {
  std::string type;  // "repository" or "registry" (a "(class)" suffix is dropped)
  std::string name;  // repository name (not validated here), or "catalog"
  std::vector<std::string> actions;

  std::string str() const;  // "repository:team/app:pull,push"
  bool operator==(const scope&) const = default;
};

// Parses one scope. The name may hold ':' (a registry host with a port); the actions are after the
// last ':'. nullopt when malformed.
std::optional<scope> parse_scope(std::string_view text);

// Parses a space-separated list (one `scope` parameter may carry several); malformed items are skipped.
std::vector<scope> parse_scopes(std::string_view text);

// The "access" claim: [{"type","name","actions":[...]}].
nlohmann::json to_json(const std::vector<scope>& scopes);
std::vector<scope> scopes_from_json(const nlohmann::json& access);

}  // namespace berth::auth
