#include "api/access.h"

#include <fmt/core.h>

#include <algorithm>

#include "auth/secret.h"

namespace berth::api {

caller::outcome caller::may(const policy::policy& pol, policy::action a, std::string_view repository) const {
  if (!token_) {
    auto d = pol.decide(who_, a, repository);
    return {d.allowed ? verdict::allowed : verdict::denied, std::move(d.reason)};
  }
  policy::action_set held;
  for (const auto& s : token_->access) {
    if (s.type != "repository" || s.name != repository) continue;
    if (auto parsed = policy::action_set::parse(s.actions)) {
      for (auto x : {policy::action::pull, policy::action::push, policy::action::delete_, policy::action::list,
                     policy::action::admin}) {
        if (parsed->has(x)) held.add(x);
      }
    }
  }
  if (held.allows(a)) return {verdict::allowed, "token scope"};
  // The token endpoint records why it refused a scope; the same question again gets the same answer.
  const auto key = fmt::format("repository:{}:{}", repository, policy::to_string(a));
  if (const auto it = token_->denied.find(key); it != token_->denied.end()) return {verdict::denied, it->second};
  if (a == policy::action::list) {
    // Listing tags is asked for as pull.
    if (const auto it = token_->denied.find(fmt::format("repository:{}:pull", repository)); it != token_->denied.end())
      return {verdict::denied, it->second};
  }
  return {verdict::challenge, fmt::format("the token does not grant {} on {}", policy::to_string(a), repository)};
}

namespace {

// `name="value"` with the value as an RFC 9110 quoted-string (control characters dropped).
std::string param(std::string_view name, std::string_view value) {
  std::string out(name);
  out += "=\"";
  for (char c : value) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) continue;
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
  return out;
}

}  // namespace

std::string challenge(const auth_services& auth, std::string_view realm, std::string_view scope,
                      std::string_view err) {
  if (auth.tokens == nullptr) return basic_challenge(auth);
  std::string out = "Bearer " + param("realm", realm) + "," + param("service", auth.service);
  if (!scope.empty()) out += "," + param("scope", scope);
  if (!err.empty()) out += "," + param("error", err);
  return out;
}

std::string basic_challenge(const auth_services& auth) { return "Basic " + param("realm", auth.service); }

bool grants_registry(const auth::access_claims& token, std::string_view name) {
  return std::any_of(token.access.begin(), token.access.end(),
                     [&](const auth::scope& s) { return s.type == "registry" && s.name == name; });
}

std::optional<basic_credentials> parse_basic(std::string_view header) {
  if (header.size() < 6 || !(header.substr(0, 6) == "Basic " || header.substr(0, 6) == "basic ")) return std::nullopt;
  std::string_view encoded = header.substr(6);
  while (!encoded.empty() && encoded.front() == ' ') encoded.remove_prefix(1);
  while (!encoded.empty() && encoded.back() == ' ') encoded.remove_suffix(1);
  std::string decoded;
  if (!auth::base64_decode(encoded, decoded)) return std::nullopt;
  const auto colon = decoded.find(':');
  if (colon == std::string::npos) return std::nullopt;
  return basic_credentials{decoded.substr(0, colon), decoded.substr(colon + 1)};
}

}  // namespace berth::api
