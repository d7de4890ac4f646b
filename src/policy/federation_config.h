// The federation section of the config: OIDC issuers Berth trusts (CI systems such as GitHub
// Actions) and the rules that map a token's claims to grants. Plain data; federation.h verifies.
#pragma once

#include <string>
#include <vector>

namespace berth::policy {

struct federation_rule {
  std::string name;                       // for messages; "rules[N]" when not given
  std::string when;                       // a claim_rule expression (auth/jwt.h)
  std::vector<std::string> actions;       // pull, push, delete, list, admin
  std::vector<std::string> repositories;  // patterns
};

struct federation_issuer {
  std::string name;                    // for messages: `federation "github"`
  std::string issuer;                  // "iss" must equal it
  std::vector<std::string> audiences;  // "aud" must contain one
  // Where the keys come from: a local JWKS (offline setups), or a JWKS URL, or (neither given) the
  // issuer's discovery document at <issuer>/.well-known/openid-configuration. Fetched keys are
  // refreshed hourly and when a token names a key id the set does not hold.
  std::string jwks_file;
  std::string jwks_uri;
  std::string ca_file;                 // PEM bundle trusted for the fetches ("" = system store)
  std::string subject_claim = "sub";   // the identity is "oidc:" + this claim
  std::vector<federation_rule> rules;
};

}  // namespace berth::policy
