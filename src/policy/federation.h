// CI federation (workload identity): trusts OIDC issuers from the config and turns a verified
// identity token into a principal whose grants come from the issuer's rules. The identity is
// "oidc:" + the subject claim, e.g. "oidc:repo:acme/shop:ref:refs/heads/main" for GitHub Actions.
// Verification: signature (RS256/ES256 against the issuer's JWKS, never `none` or HMAC), issuer,
// audience, expiry, not-before (auth/jwt.h).
// Thread-safety: immutable after construction; verify() is thread-safe.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "policy/federation_config.h"
#include "policy/policy.h"

namespace berth::policy {

class federation {
 public:
  // Loads every issuer's JWKS file and parses every rule. Throws std::runtime_error naming the
  // issuer and rule when one cannot be used.
  explicit federation(const std::vector<federation_issuer>& issuers);
  ~federation();
  federation(federation&&) noexcept;

  // The principal of an OIDC token. Fails with errc::unauthorized and a detail ("unknown issuer",
  // "token expired", "wrong audience", "bad signature", ...).
  result<principal> verify(std::string_view token) const;

  bool empty() const;

 private:
  struct issuer_state;
  std::vector<std::unique_ptr<issuer_state>> issuers_;
};

}  // namespace berth::policy
