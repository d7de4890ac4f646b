// Authentication and authorization of API requests: who the caller is (anonymous, Basic credentials,
// or one of Berth's bearer tokens), what a route needs (pull for GET/HEAD, push for POST/PATCH/PUT,
// delete for DELETE, list for listings), and the refusal when the caller may not: 401 UNAUTHORIZED
// with a WWW-Authenticate challenge (no or bad credentials, or a token that lacks a scope the caller
// could get), or 403 DENIED naming the identity and the repository.
// Thread-safety: a caller is used by one request; auth_services members are thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "api/router.h"
#include "auth/identity_store.h"
#include "auth/rate_limiter.h"
#include "auth/tokens.h"
#include "core/error.h"
#include "http/message.h"
#include "policy/authenticator.h"
#include "policy/federation.h"
#include "policy/live_policy.h"
#include "policy/policy.h"

namespace berth::api {

struct auth_services {
  policy::live_policy& policies;  // the policy of each request: context::pol
  policy::authenticator& authn;
  auth::identity_store& identities;
  auth::rate_limiter& limiter;
  const auth::token_service& tokens;
  std::string service = "berth";  // the token service name ("service" in challenges)
  bool refresh_tokens = true;
  // The OIDC issuers the config trusts (null: none), for checks of an identity by its claims.
  std::shared_ptr<const policy::federation> federation;
};

// The authenticated party of one request.
class caller {
 public:
  // Anonymous, or a principal proven by Basic credentials.
  explicit caller(policy::principal who) : who_(std::move(who)) {}
  // The bearer of one of Berth's access tokens.
  explicit caller(auth::access_claims token) : token_(std::move(token)) { who_.subject = token_->subject; }

  const std::string& subject() const { return who_.subject; }
  bool anonymous() const { return who_.anonymous(); }
  // The principal (Basic or anonymous); for a bearer only the subject is filled in.
  const policy::principal& principal() const { return who_; }
  const auth::access_claims* token() const { return token_ ? &*token_ : nullptr; }

  enum class verdict { allowed, denied, challenge };
  struct outcome {
    verdict v;
    std::string reason;
  };
  // Whether the caller may do `a` on `repository`. A bearer is limited to its token's scopes; a
  // missing scope the token endpoint did not refuse gives `challenge` (fetch a new token).
  outcome may(const policy::policy& pol, policy::action a, std::string_view repository) const;
  bool allowed(const policy::policy& pol, policy::action a, std::string_view repository) const {
    return may(pol, a, repository).v == verdict::allowed;
  }

 private:
  policy::principal who_;
  std::optional<auth::access_claims> token_;
};

// The value of WWW-Authenticate for a refusal in `area`, the one place challenges are rendered:
//   registry  `Bearer realm="<token_url>",service="...",scope="...",error="..."`;
//   admin     `Basic realm="<service>"`, or when a bearer token was refused (`err` set) the Bearer
//             challenge for `scope` (the admin scope), so clients fetch a token that holds it;
//   token     `Basic realm="<service>"`: only credentials will do.
// `scope` and `err` are left out when empty; `scope` may list several scopes separated by spaces.
// Every value is a quoted-string with `"` and `\` escaped; callers still pass only validated names
// and hosts.
std::string challenge(const auth_services& auth, api_area area, std::string_view token_url, std::string_view scope,
                      std::string_view err);

// The scope that lets a bearer token use the admin API (with the rights of its subject), requested
// explicitly at /token like `registry:catalog:*`.
inline constexpr std::string_view admin_scope = "registry:admin:*";
// Whether `token` holds `registry:<name>:...` ("catalog", "admin").
bool grants_registry(const auth::access_claims& token, std::string_view name);

// The Authorization header, parsed in one place. Scheme names are case-insensitive (RFC 9110).
struct credentials {
  enum class scheme { none, basic, bearer };
  scheme kind = scheme::none;
  std::string username;    // basic
  std::string password;    // basic
  std::string_view token;  // bearer: a view into the request's Authorization header
};
// `none` without the header; UNAUTHORIZED when it is neither well-formed Basic nor Bearer.
result<credentials> parse_authorization(const http::request& req);

}  // namespace berth::api
