#include "policy/federation.h"

#include <fmt/core.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "auth/base64url.h"
#include "auth/jwt.h"

namespace berth::policy {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("cannot read {}", path));
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// The unverified "iss" of a compact JWS, to pick the issuer whose keys verify it.
std::string unverified_issuer(std::string_view token) {
  const auto first = token.find('.');
  if (first == std::string_view::npos) return {};
  const auto second = token.find('.', first + 1);
  if (second == std::string_view::npos) return {};
  const auto payload = auth::base64url_decode(token.substr(first + 1, second - first - 1));
  if (!payload) return {};
  auto claims = nlohmann::json::parse(*payload, nullptr, false);
  if (!claims.is_object()) return {};
  const auto iss = claims.find("iss");
  return iss != claims.end() && iss->is_string() ? iss->get<std::string>() : std::string();
}

}  // namespace

struct federation::issuer_state {
  federation_issuer config;
  auth::key_set keys;
  std::vector<std::pair<auth::claim_rule, grant>> rules;
};

federation::federation(const std::vector<federation_issuer>& issuers) {
  for (const auto& cfg : issuers) {
    auto state = std::make_unique<issuer_state>();
    state->config = cfg;
    if (cfg.jwks_file.empty())
      throw std::runtime_error(fmt::format("federation \"{}\": jwks_uri is not supported yet; use jwks_file", cfg.name));
    auto keys = auth::key_set::parse(read_file(cfg.jwks_file));
    if (!keys) throw std::runtime_error(fmt::format("federation \"{}\": {}: {}", cfg.name, cfg.jwks_file, keys.error().detail));
    state->keys = std::move(*keys);
    for (const auto& r : cfg.rules) {
      auto rule = auth::claim_rule::parse(r.when);
      if (!rule) throw std::runtime_error(fmt::format("federation \"{}\" rule {}: {}", cfg.name, r.name, rule.error().detail));
      auto actions = action_set::parse(r.actions);
      if (!actions) throw std::runtime_error(fmt::format("federation \"{}\" rule {}: {}", cfg.name, r.name, actions.error().detail));
      grant g{"", *actions, r.repositories, fmt::format("federation \"{}\" rule {}", cfg.name, r.name)};
      state->rules.emplace_back(std::move(*rule), std::move(g));
    }
    issuers_.push_back(std::move(state));
  }
}

federation::~federation() = default;
federation::federation(federation&&) noexcept = default;

bool federation::empty() const { return issuers_.empty(); }

result<principal> federation::verify(std::string_view token) const {
  const std::string iss = unverified_issuer(token);
  const issuer_state* state = nullptr;
  for (const auto& s : issuers_) {
    if (s->config.issuer == iss) state = s.get();
  }
  if (state == nullptr) return fail(errc::unauthorized, "token from an unknown issuer");
  auto jws = auth::verify_jws(token, state->keys);
  if (!jws) return std::unexpected(jws.error());
  auth::claim_checks checks;
  checks.issuer = state->config.issuer;
  checks.audiences = state->config.audiences;
  checks.now = std::chrono::system_clock::now();
  if (auto ok = auth::check_claims(jws->claims, checks); !ok) return std::unexpected(ok.error());
  const auto sub = jws->claims.find(state->config.subject_claim);
  if (sub == jws->claims.end() || !sub->is_string() || sub->get<std::string>().empty())
    return fail(errc::unauthorized, fmt::format("token has no `{}` claim", state->config.subject_claim));

  principal who;
  who.subject = "oidc:" + sub->get<std::string>();
  std::string tried;
  for (const auto& [rule, g] : state->rules) {
    if (!tried.empty()) tried += ", ";
    tried += g.source.substr(g.source.rfind(' ') + 1);
    if (rule.matches(jws->claims)) {
      grant copy = g;
      copy.subject = who.subject;
      who.grants.push_back(std::move(copy));
    }
  }
  if (who.grants.empty()) {
    who.denial_hint = fmt::format("no rule of federation \"{}\" matched this token; rules: {}", state->config.name,
                                  tried.empty() ? std::string("none") : tried);
  } else {
    std::string matched;
    for (const auto& g : who.grants) {
      if (!matched.empty()) matched += ", ";
      matched += g.source.substr(g.source.rfind(' ') + 1);
    }
    who.denial_hint = fmt::format("federation \"{}\" rules matched: {}; none of them grants this (rules: {})",
                                  state->config.name, matched, tried);
  }
  return who;
}

}  // namespace berth::policy
