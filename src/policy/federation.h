// CI federation (workload identity): trusts OIDC issuers from the config and turns a verified
// identity token into a principal whose grants come from the issuer's rules. The identity is
// "oidc:" + the subject claim, e.g. "oidc:repo:acme/shop:ref:refs/heads/main" for GitHub Actions.
// Verification: signature (RS256/ES256 against the issuer's JWKS, never `none` or HMAC), issuer,
// audience, expiry, not-before (auth/jwt.h).
// Thread-safety: immutable after construction; verify() is thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "auth/jwt.h"
#include "policy/federation_config.h"
#include "policy/policy.h"

namespace berth::policy {

// Fetches a URL (an issuer's discovery document or JWKS), trusting `ca_file` ("" = system store).
// Blocks; http::https_get in the server.
using jwks_fetcher = std::function<result<std::string>(const std::string& url, const std::string& ca_file)>;

class federation {
 public:
  // Loads every issuer's JWKS file, fetches the keys of the others (a failed fetch is logged and
  // retried when a token arrives: the registry starts without the issuer), and parses every rule.
  // Throws std::runtime_error naming the issuer and rule when a file or a rule cannot be used.
  federation(const std::vector<federation_issuer>& issuers, jwks_fetcher fetch);
  ~federation();
  federation(federation&&) noexcept;

  // The principal of an OIDC token. Fails with errc::unauthorized and a detail ("unknown issuer",
  // "token expired", "wrong audience", "bad signature", ...). May block on a key fetch: an hourly
  // refresh, or a token whose key id is unknown (at most one such fetch per issuer per 30 s).
  result<principal> verify(std::string_view token) const;

  // The principal a verified token of `issuer` (its name in the config, or its URL) carrying `claims`
  // would get: the subject claim and the rules, with no signature, audience or time to check. For
  // `berth check`, which asks what a CI job's identity may do before the job runs. Fails with
  // errc::not_found for an unknown issuer, errc::unauthorized when the subject claim is missing.
  result<principal> preview(std::string_view issuer, const nlohmann::json& claims) const;

 private:
  struct issuer_state;
  // The principal of verified `claims`: what both verify() and preview() answer.
  static result<principal> principal_of(const issuer_state& s, const nlohmann::json& claims);
  std::shared_ptr<const auth::key_set> keys_for(issuer_state& s, const nlohmann::json& header) const;
  void refresh(issuer_state& s) const;

  jwks_fetcher fetch_;
  std::vector<std::unique_ptr<issuer_state>> issuers_;
};

}  // namespace berth::policy
