#include "policy/federation.h"

#include <fmt/core.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <mutex>
#include <stdexcept>

#include "auth/base64url.h"
#include "auth/jwt.h"
#include "core/read_file.h"

namespace berth::policy {
namespace {

using clock = std::chrono::steady_clock;
constexpr auto refresh_interval = std::chrono::hours(1);
constexpr auto retry_interval = std::chrono::minutes(1);         // after a failed fetch
constexpr auto unknown_key_interval = std::chrono::seconds(30);  // refetches forced by unknown key ids

// Part `index` (0 header, 1 payload) of a compact JWS, decoded but not verified: to pick the issuer
// and key that verify it. A null json when malformed.
nlohmann::json unverified_part(std::string_view token, int index) {
  for (int i = 0; i < index; ++i) {
    const auto dot = token.find('.');
    if (dot == std::string_view::npos) return {};
    token.remove_prefix(dot + 1);
  }
  const auto dot = token.find('.');
  if (dot == std::string_view::npos) return {};
  const auto decoded = auth::base64url_decode(token.substr(0, dot));
  if (!decoded) return {};
  auto part = nlohmann::json::parse(*decoded, nullptr, false);
  return part.is_object() ? part : nlohmann::json();
}

std::string string_member(const nlohmann::json& object, std::string_view key) {
  if (!object.is_object()) return {};
  const auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

struct federation::issuer_state {
  federation_issuer config;
  std::vector<std::pair<auth::claim_rule, grant>> rules;
  std::mutex fetching;  // one fetch at a time; held while the keys are fetched

  std::mutex mutex;  // guards the members below
  std::shared_ptr<const auth::key_set> keys;
  std::string jwks_uri;  // configured, or read from the discovery document
  clock::time_point next_fetch{};
  clock::time_point last_unknown_key_fetch{};
};

federation::federation(const std::vector<federation_issuer>& issuers, jwks_fetcher fetch) : fetch_(std::move(fetch)) {
  for (const auto& cfg : issuers) {
    auto state = std::make_unique<issuer_state>();
    state->config = cfg;
    if (!cfg.jwks_file.empty()) {
      auto keys = auth::key_set::parse(read_file(cfg.jwks_file));
      if (!keys)
        throw std::runtime_error(
            fmt::format("federation \"{}\": {}: {}", cfg.name, cfg.jwks_file, keys.error().detail));
      state->keys = std::make_shared<const auth::key_set>(std::move(*keys));
    } else {
      state->jwks_uri = cfg.jwks_uri;
      refresh(*state);
    }
    for (const auto& r : cfg.rules) {
      auto rule = auth::claim_rule::parse(r.when);
      if (!rule)
        throw std::runtime_error(fmt::format("federation \"{}\" rule {}: {}", cfg.name, r.name, rule.error().detail));
      auto actions = action_set::parse(r.actions);
      if (!actions)
        throw std::runtime_error(
            fmt::format("federation \"{}\" rule {}: {}", cfg.name, r.name, actions.error().detail));
      grant g{"", *actions, r.repositories, fmt::format("federation \"{}\" rule {}", cfg.name, r.name)};
      state->rules.emplace_back(std::move(*rule), std::move(g));
    }
    issuers_.push_back(std::move(state));
  }
}

federation::~federation() = default;
federation::federation(federation&&) noexcept = default;

// Fetches the issuer's keys (through its discovery document when no jwks_uri is configured). On
// failure the keys in hand stay, and the next attempt waits retry_interval. Failures are logged,
// never sent to clients.
void federation::refresh(issuer_state& s) const {
  std::lock_guard one_fetch(s.fetching);
  const auto started = clock::now();
  std::string uri;
  {
    std::lock_guard lock(s.mutex);
    if (s.next_fetch > started) return;  // another caller refreshed while this one waited
    uri = s.jwks_uri;
  }
  auto fail_fetch = [&](std::string_view what) {
    spdlog::warn("federation \"{}\": cannot fetch the issuer's keys: {}", s.config.name, what);
    std::lock_guard lock(s.mutex);
    s.next_fetch = clock::now() + retry_interval;
  };
  if (uri.empty()) {
    std::string issuer = s.config.issuer;
    while (issuer.ends_with('/')) issuer.pop_back();
    auto doc = fetch_(issuer + "/.well-known/openid-configuration", s.config.ca_file);
    if (!doc) return fail_fetch(doc.error().detail);
    const auto discovery = nlohmann::json::parse(*doc, nullptr, false);
    if (string_member(discovery, "issuer") != s.config.issuer)
      return fail_fetch("the discovery document does not name this issuer");
    uri = string_member(discovery, "jwks_uri");
    if (!uri.starts_with("https://")) return fail_fetch("the discovery document has no https jwks_uri");
  }
  auto jwks = fetch_(uri, s.config.ca_file);
  if (!jwks) return fail_fetch(jwks.error().detail);
  auto keys = auth::key_set::parse(*jwks);
  if (!keys) return fail_fetch(fmt::format("{}: {}", uri, keys.error().detail));
  spdlog::info("federation \"{}\": keys fetched from {}", s.config.name, uri);
  std::lock_guard lock(s.mutex);
  s.keys = std::make_shared<const auth::key_set>(std::move(*keys));
  if (s.config.jwks_uri.empty()) s.jwks_uri = uri;
  s.next_fetch = clock::now() + refresh_interval;
}

// The keys that verify a token with `header`: fetched ones are refreshed when due, or when the
// token's key id is unknown (a rotation), at most once per unknown_key_interval.
std::shared_ptr<const auth::key_set> federation::keys_for(issuer_state& s, const nlohmann::json& header) const {
  if (!s.config.jwks_file.empty()) return s.keys;  // read once at start-up, never written again
  const auto now = clock::now();
  bool due = false;
  {
    std::lock_guard lock(s.mutex);
    due = now >= s.next_fetch;
    const bool known = s.keys && s.keys->find(string_member(header, "kid"), string_member(header, "alg")) != nullptr;
    if (!due && !known && now - s.last_unknown_key_fetch >= unknown_key_interval) {
      s.last_unknown_key_fetch = now;
      s.next_fetch = now;
      due = true;
    }
  }
  if (due) refresh(s);
  std::lock_guard lock(s.mutex);
  return s.keys;
}

result<principal> federation::verify(std::string_view token) const {
  const std::string iss = string_member(unverified_part(token, 1), "iss");
  issuer_state* state = nullptr;
  for (const auto& s : issuers_) {
    if (s->config.issuer == iss) state = s.get();
  }
  if (state == nullptr) return fail(errc::unauthorized, "token from an unknown issuer");
  const auto keys = keys_for(*state, unverified_part(token, 0));
  if (!keys)
    return fail(errc::unauthorized, fmt::format("the keys of federation \"{}\" are not available", state->config.name));
  auto jws = auth::verify_jws(token, *keys);
  if (!jws) return std::unexpected(jws.error());
  auth::claim_checks checks;
  checks.issuer = state->config.issuer;
  checks.audiences = state->config.audiences;
  checks.now = std::chrono::system_clock::now();
  if (auto ok = auth::check_claims(jws->claims, checks); !ok) return std::unexpected(ok.error());
  return principal_of(*state, jws->claims);
}

result<principal> federation::preview(std::string_view issuer, const nlohmann::json& claims) const {
  for (const auto& s : issuers_) {
    if (s->config.name == issuer || s->config.issuer == issuer) return principal_of(*s, claims);
  }
  return fail(errc::not_found, fmt::format("no federation named {} in the config", issuer));
}

result<principal> federation::principal_of(const issuer_state& s, const nlohmann::json& claims) {
  const auto sub = claims.find(s.config.subject_claim);
  if (sub == claims.end() || !sub->is_string() || sub->get<std::string>().empty())
    return fail(errc::unauthorized, fmt::format("token has no `{}` claim", s.config.subject_claim));

  principal who;
  who.subject = "oidc:" + sub->get<std::string>();
  std::string tried;
  for (const auto& [rule, g] : s.rules) {
    if (!tried.empty()) tried += ", ";
    tried += g.source.substr(g.source.rfind(' ') + 1);
    if (rule.matches(claims)) {
      grant copy = g;
      copy.subject = who.subject;
      who.grants.push_back(std::move(copy));
    }
  }
  if (who.grants.empty()) {
    who.denial_hint = fmt::format("no rule of federation \"{}\" matched this token; rules: {}", s.config.name,
                                  tried.empty() ? std::string("none") : tried);
  } else {
    std::string matched;
    for (const auto& g : who.grants) {
      if (!matched.empty()) matched += ", ";
      matched += g.source.substr(g.source.rfind(' ') + 1);
    }
    who.denial_hint = fmt::format("federation \"{}\" rules matched: {}; none of them grants this (rules: {})",
                                  s.config.name, matched, tried);
  }
  return who;
}

}  // namespace berth::policy
