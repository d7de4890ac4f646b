// Fuzzes what arrives from outside berth_auth: bearer tokens (verify_jws), JWKS documents
// (key_set::parse), claims (check_claims) and the claim rules of the config (claim_rule::parse and
// matches). The whole input goes to each; as well, its first line is read as a rule and the rest
// as the claims that rule and check_claims judge. Nothing may crash or throw, and errors carry the
// documented codes.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "auth/jwt.h"
#include "fuzz_check.h"

namespace {

using berth::errc;
using json = nlohmann::json;

// Public halves of throwaway keys; fuzz/corpus/jwt_fuzz/valid_rs256 is signed by the RSA one, so
// the fuzzer starts from a token that gets past the signature check.
constexpr std::string_view kJwks = R"({"keys":[
  {"kty":"RSA","kid":"fuzz-rsa","e":"AQAB","n":"vRp363LiLJGMFiagHNnlf-8UUYHX7XRHEGCJNh0AwoMPmgWT6zk8lG6f3miO5vZeI_npJKYynXtI2KjQJ7FjdBjyb1wQloUTyd7ZZOv0Gq1mEnkqNXllkHuLQjRgrClYU7Dob2Sz4Dn1p9hOUzvkdG_DY9sUjQ2DgvAzgpUJU7QlDkKv0NNR1V_zpLJJvhOD2Ti0Wy3HdtvZeNpI0LspKN-6z7HFddv8zqJxRTMt5zAZHRgKMxq3DwWtJ1OPHK60Uoc4PUwIj5U0bV95nhqbqxlP--ia0TZw5B6mc0RF8C7ZIGIhmxQwHxLVUwcXaPT62erkdxnM35uLPUPl-V4hHQ"},
  {"kty":"EC","crv":"P-256","kid":"fuzz-ec","x":"Binq_rY8edblH6F-zR3jcQF0PzleYGeGBbPhxODr5tw","y":"tERVJydd5FHePKoGQWkG0aHY-ZagaLps8KvLvXlCSt0"}
]})";

const berth::auth::key_set& keys() {
  static const auto set = berth::auth::key_set::parse(kJwks).value();
  return set;
}

void check_token(std::string_view token) {
  const auto verified = berth::auth::verify_jws(token, keys());
  if (!verified) {
    FUZZ_CHECK(verified.error().code == errc::unauthorized && !verified.error().detail.empty());
    return;
  }
  FUZZ_CHECK(verified->header.is_object() && verified->claims.is_object());
  FUZZ_CHECK(verified->header["alg"] == "RS256" || verified->header["alg"] == "ES256");
  berth::auth::claim_checks checks;
  checks.issuer = "https://issuer.example";
  checks.audiences = {"berth"};
  const auto checked = berth::auth::check_claims(verified->claims, checks);
  FUZZ_CHECK(checked || checked.error().code == errc::unauthorized);
}

void check_rule(std::string_view text, const json& claims) {
  const auto rule = berth::auth::claim_rule::parse(text);
  if (!rule) {
    FUZZ_CHECK(rule.error().code == errc::unsupported && rule.error().detail.starts_with("at "));
    return;
  }
  FUZZ_CHECK(rule->text() == text);
  const bool matched = rule->matches(claims);
  // Parsing is deterministic, and so is evaluation.
  const auto again = berth::auth::claim_rule::parse(rule->text());
  FUZZ_CHECK(again && again->matches(claims) == matched);
}

void check_claims_json(const json& claims) {
  berth::auth::claim_checks checks;
  checks.audiences = {"berth"};
  checks.now = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000));
  const auto checked = berth::auth::check_claims(claims, checks);
  FUZZ_CHECK(checked || checked.error().code == errc::unauthorized);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  check_token(input);

  const auto set = berth::auth::key_set::parse(input);
  FUZZ_CHECK(set ? !set->empty() : set.error().code == errc::unsupported);

  const auto newline = input.find('\n');
  const auto rule = input.substr(0, newline);
  const auto rest = newline == std::string_view::npos ? std::string_view() : input.substr(newline + 1);
  // Depth-limited like verify_jws's own parsing, so that comparing claims cannot exhaust the stack.
  int deepest = 0;
  const json::parser_callback_t depth = [&deepest](int d, json::parse_event_t, json&) {
    deepest = std::max(deepest, d);
    return deepest <= 32;
  };
  const json claims = json::parse(rest.begin(), rest.end(), depth, /*allow_exceptions=*/false);
  check_rule(input, claims);
  check_rule(rule, claims);
  if (!claims.is_discarded()) check_claims_json(claims);
  return 0;
}
