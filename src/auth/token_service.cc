#include "auth/token_service.h"

#include "auth/jwt.h"
#include "auth/secret.h"
#include "core/unix_time.h"

namespace berth::auth {
namespace {

using json = nlohmann::json;

class jwt_token_service final : public token_service {
 public:
  jwt_token_service(signing_key key, std::string service, std::chrono::seconds access_lifetime,
                    std::chrono::seconds refresh_lifetime)
      : key_(std::move(key)), service_(std::move(service)), access_(access_lifetime), refresh_(refresh_lifetime) {}

  std::string issue_access(access_claims& claims) const override {
    claims.issued_at = unix_seconds();
    claims.expires_at = claims.issued_at + access_.count();
    json body = base(claims.subject, claims.issued_at, claims.expires_at, "access");
    body["access"] = to_json(claims.access);
    if (!claims.denied.empty()) body["denied"] = claims.denied;
    return key_.sign(body);
  }

  std::string issue_refresh(std::string_view subject) const override {
    const auto now = unix_seconds();
    return key_.sign(base(std::string(subject), now, now + refresh_.count(), "refresh"));
  }

  result<access_claims> verify_access(std::string_view token) const override {
    auto claims = verified(token, "access");
    if (!claims) return std::unexpected(claims.error());
    access_claims out;
    out.subject = (*claims)["sub"].get<std::string>();
    out.access = scopes_from_json(claims->value("access", json::array()));
    if (const auto it = claims->find("denied"); it != claims->end() && it->is_object()) {
      for (const auto& [k, v] : it->items()) {
        if (v.is_string()) out.denied[k] = v.get<std::string>();
      }
    }
    out.issued_at = claims->value("iat", std::int64_t{0});
    out.expires_at = claims->value("exp", std::int64_t{0});
    return out;
  }

  result<std::string> verify_refresh(std::string_view token) const override {
    auto claims = verified(token, "refresh");
    if (!claims) return std::unexpected(claims.error());
    return (*claims)["sub"].get<std::string>();
  }

  std::chrono::seconds access_lifetime() const override { return access_; }
  std::string public_jwks() const override { return key_.public_jwks(); }

 private:
  json base(const std::string& subject, std::int64_t iat, std::int64_t exp, std::string_view use) const {
    return json{{"iss", service_}, {"aud", service_}, {"sub", subject}, {"iat", iat}, {"nbf", iat},
                {"exp", exp},      {"jti", random_urlsafe(16)}, {"use", use}};
  }

  result<json> verified(std::string_view token, std::string_view use) const {
    auto jws = verify_jws(token, key_.public_keys());
    if (!jws) return std::unexpected(jws.error());
    claim_checks checks;
    checks.issuer = service_;
    checks.audiences = {service_};
    checks.now = std::chrono::system_clock::now();
    checks.leeway = std::chrono::seconds(5);  // Berth checks its own tokens: its clock is the signer's
    if (auto ok = check_claims(jws->claims, checks); !ok) return std::unexpected(ok.error());
    const auto& c = jws->claims;
    const auto u = c.find("use");
    const auto sub = c.find("sub");
    if (u == c.end() || !u->is_string() || *u != use) return fail(errc::unauthorized, "wrong kind of token");
    if (sub == c.end() || !sub->is_string()) return fail(errc::unauthorized, "malformed token");
    return jws->claims;
  }

  signing_key key_;
  std::string service_;
  std::chrono::seconds access_;
  std::chrono::seconds refresh_;
};

}  // namespace

std::unique_ptr<token_service> make_jwt_token_service(const std::string& key_path, std::string service,
                                                      std::chrono::seconds access_lifetime,
                                                      std::chrono::seconds refresh_lifetime) {
  return std::make_unique<jwt_token_service>(signing_key::load_or_create(key_path), std::move(service),
                                             access_lifetime, refresh_lifetime);
}

}  // namespace berth::auth
