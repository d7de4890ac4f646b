// Berth's own bearer tokens. An access token is a short-lived ES256 JWT whose "access" claim holds
// exactly the scopes granted (Docker token format); "denied" explains, per refused
// "repository:NAME:ACTION", why (so a later 403 can say so). A refresh token is a longer-lived JWT
// that only names its subject; redeeming it re-resolves the subject, so a deleted user or revoked
// robot cannot refresh. Both carry iss = aud = the service name and a "use" claim, so neither can
// stand in for the other.
// Thread-safety: implementations are immutable after construction; every method is thread-safe.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "auth/scope.h"
#include "core/error.h"

namespace berth::auth {

struct access_claims {
  std::string subject;
  std::vector<scope> access;
  std::map<std::string, std::string> denied;  // "repository:NAME:ACTION" -> reason
  std::int64_t issued_at = 0;
  std::int64_t expires_at = 0;
};

class token_service {
 public:
  virtual ~token_service() = default;
  // A signed access token for `claims` (issued_at/expires_at are filled in from now and the lifetime).
  virtual std::string issue_access(access_claims& claims) const = 0;
  // A signed refresh token for `subject`.
  virtual std::string issue_refresh(std::string_view subject) const = 0;
  // Verifies signature, issuer, audience, expiry and use. Fails with errc::unauthorized and a short
  // detail ("token expired", "bad signature", ...).
  virtual result<access_claims> verify_access(std::string_view token) const = 0;
  // The subject of a valid refresh token.
  virtual result<std::string> verify_refresh(std::string_view token) const = 0;
  virtual std::chrono::seconds access_lifetime() const = 0;
  // The public keys (JWKS JSON) that verify Berth's tokens, for /token/jwks.json.
  virtual std::string public_jwks() const = 0;
};

}  // namespace berth::auth
