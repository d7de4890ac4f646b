// JSON Web Tokens (RFC 7519) in compact JWS form (RFC 7515): Berth's own access tokens, signed with
// an ES256 key kept in the data directory, and the OIDC identity tokens of CI systems, verified
// against the issuer's JWKS (RS256 or ES256). Nothing here decides who may do what; see policy.h.
// Security: only RS256 and ES256 are accepted; `alg: none` and every HMAC algorithm are refused
// (so a public key can never be used as an HMAC secret); a key is used only with its own algorithm.
// Thread-safety: all types are immutable after construction; every function is thread-safe.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace berth::auth {

// A public key that verifies signatures: RSA (RS256) or EC P-256 (ES256).
class verification_key {
 public:
  virtual ~verification_key() = default;
  virtual std::string_view algorithm() const = 0;  // "RS256" or "ES256"
  virtual std::string_view key_id() const = 0;     // the JWK "kid" ("" when none)
  // True when `signature` (JWS encoding: r||s for ES256) signs `signing_input`.
  virtual bool verify(std::string_view signing_input, std::string_view signature) const = 0;
};

// A JSON Web Key Set (RFC 7517). Keys of other types or curves are skipped, not fatal.
class key_set {
 public:
  // Parses {"keys":[...]}. Fails with errc::unsupported (detail says why) when the text is not a
  // JWKS or holds no usable key.
  static result<key_set> parse(std::string_view jwks_json);
  // The key with `kid` (any key of `alg` when kid is empty and only one such key exists).
  const verification_key* find(std::string_view kid, std::string_view alg) const;
  bool empty() const { return keys_.empty(); }
  void add(std::shared_ptr<const verification_key> key) { keys_.push_back(std::move(key)); }

 private:
  std::vector<std::shared_ptr<const verification_key>> keys_;
};

// Berth's ES256 signing key.
class signing_key {
 public:
  // Loads the PEM private key at `path`, or creates a new P-256 key there (mode 0600) when the file
  // does not exist. Throws std::runtime_error when the file exists but is not a usable EC key, and
  // std::system_error (a runtime_error) when it cannot be read or created.
  static signing_key load_or_create(const std::string& path);
  // A compact JWS of `claims`, header {"alg":"ES256","typ":"JWT","kid":key_id()}. Throws
  // nlohmann::json::type_error when a string in `claims` is not valid UTF-8.
  std::string sign(const nlohmann::json& claims) const;
  // The public half, as a key_set holding one key (also served as JSON by public_jwks()).
  const key_set& public_keys() const { return public_; }
  std::string public_jwks() const;
  std::string_view key_id() const { return kid_; }  // derived from the public key (RFC 7638 thumbprint)

 private:
  struct impl;
  std::shared_ptr<const impl> impl_;
  key_set public_;
  std::string kid_;
};

struct verified_jwt {
  nlohmann::json header;
  nlohmann::json claims;
};

// Verifies a compact JWS against `keys`: well-formed, alg RS256 or ES256, a key with the header's
// kid and alg, a valid signature. Does not look at the claims. Fails with errc::unauthorized and a
// short detail ("malformed token", "unsupported algorithm none", "unknown signing key",
// "bad signature"). Tokens over 64 KiB and JSON nested deeper than 32 levels are malformed. The
// payload is parsed only after the signature checks out. Never throws.
result<verified_jwt> verify_jws(std::string_view token, const key_set& keys);

// What the claims of a verified token must satisfy.
struct claim_checks {
  std::string issuer;                  // "iss" must equal it (skipped when empty)
  std::vector<std::string> audiences;  // "aud" (string or array) must contain one (skipped when empty)
  // "exp" must be after it, "nbf"/"iat" not after it. The default (the epoch) means the clock at the
  // call, so that a forgotten `now` cannot switch the expiry check off.
  std::chrono::system_clock::time_point now;
  std::chrono::seconds leeway{60};  // clock skew allowed on exp/nbf/iat
  bool require_exp = true;
};

// Checks iss, aud, exp, nbf, iat. Fails with errc::unauthorized and a detail naming the claim
// ("token expired", "wrong audience", "wrong issuer", "token not yet valid", "token has no exp
// claim", "token issued in the future", "malformed exp claim" for a date that is not a number).
result<void> check_claims(const nlohmann::json& claims, const claim_checks& checks);

// A rule over token claims, as written in the config:
//   repository == "acme/shop" && ref == "refs/heads/main"
//   ref starts with "refs/tags/v" || ref == "refs/heads/release"
//   !(actor == "dependabot[bot]")
// Grammar: or := and ('||' and)* ; and := unary ('&&' unary)* ; unary := '!' unary | '(' or ')' | cmp ;
// cmp := claim ('==' | '!=' | 'starts with' | 'ends with' | 'matches') string ; claim := [A-Za-z_][A-Za-z0-9_.]*
// (a dotted claim walks into objects; no step may be empty). Strings are double-quoted with \" and
// \\ escapes. `matches` takes a glob: * any run of characters ('/' too), ? one UTF-8 character; the
// whole value must match. Everything is case-sensitive. A claim that is absent or not a string makes
// its comparison false (so `x != "a"` is false when x is absent, and `!(x == "a")` is true).
class claim_rule {
 public:
  // Fails with errc::unsupported and a detail giving the position (1-based byte offset) and what
  // was expected: "at 17: expected a string after 'starts with'". '!' and '(' nest at most 32 deep.
  static result<claim_rule> parse(std::string_view text);
  bool matches(const nlohmann::json& claims) const;
  const std::string& text() const { return text_; }

  struct node;

 private:
  std::shared_ptr<const node> root_;
  std::string text_;
};

}  // namespace berth::auth
