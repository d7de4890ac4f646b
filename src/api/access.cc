#include "api/access.h"

#include <fmt/core.h>

#include <algorithm>
#include <cctype>

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

std::string challenge(const auth_services& auth, api_area area, std::string_view token_url, std::string_view scope,
                      std::string_view err) {
  if (area == api_area::token || ((area == api_area::admin || area == api_area::operations) && err.empty()))
    return "Basic " + param("realm", auth.service);
  std::string out = "Bearer " + param("realm", token_url) + "," + param("service", auth.service);
  if (!scope.empty()) out += "," + param("scope", scope);
  if (!err.empty()) out += "," + param("error", err);
  return out;
}

bool grants_registry(const auth::access_claims& token, std::string_view name) {
  return std::any_of(token.access.begin(), token.access.end(),
                     [&](const auth::scope& s) { return s.type == "registry" && s.name == name; });
}

namespace {

// The credentials after "<scheme> ", when `header` starts with that scheme (any case).
std::optional<std::string_view> after_scheme(std::string_view header, std::string_view scheme) {
  if (header.size() <= scheme.size() || header[scheme.size()] != ' ') return std::nullopt;
  for (std::size_t i = 0; i < scheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(header[i])) != scheme[i]) return std::nullopt;
  }
  std::string_view rest = header.substr(scheme.size() + 1);
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  while (!rest.empty() && rest.back() == ' ') rest.remove_suffix(1);
  return rest;
}

}  // namespace

result<credentials> parse_authorization(const http::request& req) {
  const auto header = req.header("Authorization");
  if (!header) return credentials{};
  if (auto token = after_scheme(*header, "bearer"); token && !token->empty()) {
    return credentials{credentials::scheme::bearer, {}, {}, *token};
  }
  if (auto encoded = after_scheme(*header, "basic")) {
    std::string decoded;
    if (auth::base64_decode(*encoded, decoded)) {
      if (const auto colon = decoded.find(':'); colon != std::string::npos) {
        return credentials{credentials::scheme::basic, decoded.substr(0, colon), decoded.substr(colon + 1), {}};
      }
    }
  }
  return fail(errc::unauthorized, "malformed Authorization header (Basic or Bearer credentials expected)");
}

}  // namespace berth::api
