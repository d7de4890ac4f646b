#include "auth/jwt.h"

#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include "auth/base64url.h"
#include "auth/es256.h"
#include "auth/openssl_ptr.h"

namespace berth::auth {
namespace {

using json = nlohmann::json;
using std::chrono::seconds;
using std::chrono::system_clock;

// --- test-only key material and a tiny JWS signer --------------------------------------------

pkey_ptr generate_rsa(std::size_t bits) {
  pkey_ptr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", bits));
  if (!key) throw std::runtime_error("RSA keygen failed");
  return key;
}

pkey_ptr generate_p256() {
  pkey_ptr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) throw std::runtime_error("EC keygen failed");
  return key;
}

// A key parameter as base64url of its big-endian bytes, left-padded to `width` (0: minimal).
std::string b64_param(const EVP_PKEY* key, const char* name, int width = 0) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &raw) != 1) throw std::runtime_error("get_bn_param failed");
  const bignum_ptr value(raw);
  std::string bytes(width > 0 ? width : BN_num_bytes(value.get()), '\0');
  BN_bn2binpad(value.get(), reinterpret_cast<unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  return base64url_encode(bytes);
}

json rsa_jwk(const EVP_PKEY* key, const std::string& kid) {
  return {{"kty", "RSA"}, {"kid", kid}, {"n", b64_param(key, OSSL_PKEY_PARAM_RSA_N)},
          {"e", b64_param(key, OSSL_PKEY_PARAM_RSA_E)}};
}

json ec_jwk(const EVP_PKEY* key, const std::string& kid) {
  return {{"kty", "EC"}, {"crv", "P-256"}, {"kid", kid}, {"x", b64_param(key, OSSL_PKEY_PARAM_EC_PUB_X, 32)},
          {"y", b64_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, 32)}};
}

std::string jwks(std::initializer_list<json> keys) {
  json set = {{"keys", json::array()}};
  for (const auto& key : keys) set["keys"].push_back(key);
  return set.dump();
}

// RS256 or ES256 (by the key's type) over `header.payload`, both already encoded.
std::string sign_input(const EVP_PKEY* key, const std::string& input) {
  const md_ctx_ptr ctx(EVP_MD_CTX_new());
  std::size_t size = 0;
  const auto* data = reinterpret_cast<const unsigned char*>(input.data());
  if (EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, const_cast<EVP_PKEY*>(key)) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &size, data, input.size()) != 1)
    throw std::runtime_error("sign init failed");
  std::string signature(size, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &size, data, input.size()) != 1)
    throw std::runtime_error("sign failed");
  signature.resize(size);
  return EVP_PKEY_is_a(key, "EC") ? es256_der_to_jws(signature).value() : signature;
}

std::string encode_json(const json& value) { return base64url_encode(value.dump()); }

std::string make_token(const EVP_PKEY* key, const json& header, const json& claims) {
  const std::string input = encode_json(header) + "." + encode_json(claims);
  return input + "." + base64url_encode(sign_input(key, input));
}

// Replaces the part `index` (0 header, 1 payload, 2 signature) of a compact JWS.
std::string with_part(const std::string& token, int index, const std::string& part) {
  const auto first = token.find('.');
  const auto second = token.find('.', first + 1);
  std::string parts[3] = {token.substr(0, first), token.substr(first + 1, second - first - 1),
                          token.substr(second + 1)};
  parts[index] = part;
  return parts[0] + "." + parts[1] + "." + parts[2];
}

void expect_refused(const result<verified_jwt>& r, const std::string& detail) {
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::unauthorized);
  EXPECT_EQ(r.error().detail, detail);
}

// Keys are expensive to generate under sanitizers: one pair for the whole suite.
class Jwt : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    rsa_ = generate_rsa(2048).release();
    ec_ = generate_p256().release();
  }
  static void TearDownTestSuite() {
    EVP_PKEY_free(rsa_);
    EVP_PKEY_free(ec_);
  }

  key_set keys() const { return key_set::parse(jwks({rsa_jwk(rsa_, "rsa-1"), ec_jwk(ec_, "ec-1")})).value(); }

  static json claims() { return {{"sub", "alice"}, {"iss", "https://issuer.example"}}; }
  static json header(const std::string& alg, const std::string& kid) {
    return {{"alg", alg}, {"typ", "JWT"}, {"kid", kid}};
  }
  std::string rs256_token() const { return make_token(rsa_, header("RS256", "rsa-1"), claims()); }
  std::string es256_token() const { return make_token(ec_, header("ES256", "ec-1"), claims()); }

  static EVP_PKEY* rsa_;
  static EVP_PKEY* ec_;
};

EVP_PKEY* Jwt::rsa_ = nullptr;
EVP_PKEY* Jwt::ec_ = nullptr;

// --- base64url and ES256 encodings -------------------------------------------------------------

TEST(JwtBase64url, RoundTripsEveryLength) {
  std::string bytes;
  for (int i = 0; i < 70; ++i) {
    const auto decoded = base64url_decode(base64url_encode(bytes));
    ASSERT_TRUE(decoded.has_value()) << i;
    EXPECT_EQ(*decoded, bytes);
    bytes.push_back(static_cast<char>(i * 37 + 250));
  }
  EXPECT_EQ(base64url_encode("\xfb\xff"), "-_8");
  EXPECT_EQ(base64url_encode("hello"), "aGVsbG8");
}

TEST(JwtBase64url, DecodingIsStrict) {
  EXPECT_EQ(base64url_decode("aGVsbG8").value(), "hello");
  for (const char* bad : {"aGVsbG8=", "aGVs+G8", "aGVs/G8", "aGVs bG8", "aGVsbG8\n", "a", "aGVsb", "QR", "aGVsbG9"})
    EXPECT_FALSE(base64url_decode(bad).has_value()) << bad;
  EXPECT_EQ(base64url_decode("").value(), "");
}

TEST(JwtEs256Signature, ConvertsBetweenDerAndRaw) {
  const std::string raw = std::string(31, '\0') + '\x01' + std::string(32, '\x7f');
  const auto der = es256_jws_to_der(raw);
  ASSERT_TRUE(der.has_value());
  EXPECT_EQ(es256_der_to_jws(*der).value(), raw);
  EXPECT_FALSE(es256_jws_to_der(raw.substr(1)).has_value());
  EXPECT_FALSE(es256_der_to_jws("not der").has_value());
  EXPECT_FALSE(es256_der_to_jws(*der + "x").has_value());  // trailing garbage
}

// --- key_set --------------------------------------------------------------------------------------

TEST_F(Jwt, KeySetSkipsKeysItCannotUse) {
  const auto set = key_set::parse(jwks({
      {{"kty", "oct"}, {"k", "c2VjcmV0"}, {"kid", "hmac"}},
      {{"kty", "EC"}, {"crv", "P-384"}, {"x", "AA"}, {"y", "AA"}, {"kid", "p384"}},
      {{"kty", "RSA"}, {"n", "!!"}, {"e", "AQAB"}, {"kid", "broken"}},
      json(42),
      ec_jwk(ec_, "ec-1"),
  }));
  ASSERT_TRUE(set.has_value()) << set.error().detail;
  EXPECT_NE(set->find("ec-1", "ES256"), nullptr);
  EXPECT_EQ(set->find("hmac", "HS256"), nullptr);
  EXPECT_EQ(set->find("p384", "ES384"), nullptr);
}

TEST_F(Jwt, KeySetRefusesWhatIsNotAUsableJwks) {
  for (const std::string text : {"", "not json", "[]", R"({"keys":{}})", R"({"keys":[]})", R"({"nokeys":[]})"}) {
    const auto set = key_set::parse(text);
    ASSERT_FALSE(set.has_value()) << text;
    EXPECT_EQ(set.error().code, errc::unsupported);
  }
}

TEST_F(Jwt, KeySetRejectsRsaKeysUnder2048Bits) {
  const auto weak = generate_rsa(1024);
  EXPECT_FALSE(key_set::parse(jwks({rsa_jwk(weak.get(), "weak")})).has_value());
}

TEST_F(Jwt, KeySetRejectsAHugeRsaExponent) {
  auto jwk = rsa_jwk(rsa_, "huge-e");
  jwk["e"] = base64url_encode(std::string(9, '\x01'));
  EXPECT_FALSE(key_set::parse(jwks({jwk})).has_value());
}

TEST_F(Jwt, KeySetSkipsKeysWhoseAlgOrUseContradictsTheirType) {
  auto rsa_as_es256 = rsa_jwk(rsa_, "confused");
  rsa_as_es256["alg"] = "ES256";
  auto ec_as_hs256 = ec_jwk(ec_, "confused");
  ec_as_hs256["alg"] = "HS256";
  auto encryption = ec_jwk(ec_, "enc");
  encryption["use"] = "enc";
  EXPECT_FALSE(key_set::parse(jwks({rsa_as_es256, ec_as_hs256, encryption})).has_value());

  auto explicit_alg = rsa_jwk(rsa_, "rsa-1");
  explicit_alg["alg"] = "RS256";
  explicit_alg["use"] = "sig";
  EXPECT_TRUE(key_set::parse(jwks({explicit_alg})).has_value());
}

TEST_F(Jwt, KeySetRejectsAPointOffTheCurve) {
  auto jwk = ec_jwk(ec_, "off");
  auto y = base64url_decode(jwk["y"].get<std::string>()).value();
  y.back() ^= 1;
  jwk["y"] = base64url_encode(y);
  EXPECT_FALSE(key_set::parse(jwks({jwk})).has_value());
}

TEST_F(Jwt, FindWithoutKidNeedsExactlyOneKeyOfTheAlgorithm) {
  const auto one = key_set::parse(jwks({rsa_jwk(rsa_, "rsa-1"), ec_jwk(ec_, "ec-1")})).value();
  ASSERT_NE(one.find("", "RS256"), nullptr);
  EXPECT_EQ(one.find("", "RS256")->key_id(), "rsa-1");
  const auto two = key_set::parse(jwks({ec_jwk(ec_, "a"), ec_jwk(ec_, "b")})).value();
  EXPECT_EQ(two.find("", "ES256"), nullptr);
  EXPECT_NE(two.find("b", "ES256"), nullptr);
  EXPECT_EQ(two.find("b", "RS256"), nullptr);
}

// --- verify_jws -----------------------------------------------------------------------------------

TEST_F(Jwt, VerifiesRs256) {
  const auto r = verify_jws(rs256_token(), keys());
  ASSERT_TRUE(r.has_value()) << r.error().detail;
  EXPECT_EQ(r->claims, claims());
  EXPECT_EQ(r->header["kid"], "rsa-1");
}

TEST_F(Jwt, VerifiesEs256) {
  const auto r = verify_jws(es256_token(), keys());
  ASSERT_TRUE(r.has_value()) << r.error().detail;
  EXPECT_EQ(r->claims, claims());
}

TEST_F(Jwt, VerifiesATokenWithoutKidWhenOneKeyFits) {
  const auto token = make_token(ec_, {{"alg", "ES256"}}, claims());
  EXPECT_TRUE(verify_jws(token, keys()).has_value());
}

TEST_F(Jwt, RefusesATamperedPayload) {
  for (const auto& token : {rs256_token(), es256_token()}) {
    auto forged = claims();
    forged["sub"] = "mallory";
    expect_refused(verify_jws(with_part(token, 1, encode_json(forged)), keys()), "bad signature");
  }
}

TEST_F(Jwt, RefusesATamperedSignature) {
  for (const auto& token : {rs256_token(), es256_token()}) {
    auto signature = base64url_decode(token.substr(token.rfind('.') + 1)).value();
    signature[signature.size() / 2] ^= 0x01;
    expect_refused(verify_jws(with_part(token, 2, base64url_encode(signature)), keys()), "bad signature");
    expect_refused(verify_jws(with_part(token, 2, ""), keys()), "bad signature");
    expect_refused(verify_jws(with_part(token, 2, base64url_encode(signature + "x")), keys()), "bad signature");
  }
}

TEST_F(Jwt, RefusesTheSignatureOfAnotherKeyWithTheSameKid) {
  const auto other = generate_p256();
  expect_refused(verify_jws(make_token(other.get(), header("ES256", "ec-1"), claims()), keys()), "bad signature");
}

TEST_F(Jwt, RefusesAlgNone) {
  const std::string unsigned_token = encode_json({{"alg", "none"}, {"typ", "JWT"}}) + "." + encode_json(claims());
  expect_refused(verify_jws(unsigned_token + ".", keys()), "unsupported algorithm none");
  expect_refused(verify_jws(unsigned_token + "." + base64url_encode("sig"), keys()), "unsupported algorithm none");
  const std::string with_kid = encode_json(header("none", "rsa-1")) + "." + encode_json(claims()) + ".";
  expect_refused(verify_jws(with_kid, keys()), "unsupported algorithm none");
  for (const char* spelling : {"None", "NONE", ""}) {
    const std::string token = encode_json({{"alg", spelling}}) + "." + encode_json(claims()) + ".";
    EXPECT_FALSE(verify_jws(token, keys()).has_value()) << spelling;
  }
}

TEST_F(Jwt, RefusesHs256SignedWithThePublicKeyAsSecret) {
  const std::unique_ptr<BIO, openssl_deleter<&BIO_free>> bio(BIO_new(BIO_s_mem()));
  ASSERT_EQ(PEM_write_bio_PUBKEY(bio.get(), rsa_), 1);
  char* pem = nullptr;
  const long pem_size = BIO_get_mem_data(bio.get(), &pem);
  for (const char* alg : {"HS256", "HS384", "HS512"}) {
    const std::string input = encode_json(header(alg, "rsa-1")) + "." + encode_json(claims());
    unsigned char mac[EVP_MAX_MD_SIZE];
    std::size_t mac_size = 0;
    ASSERT_NE(EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, pem, static_cast<std::size_t>(pem_size),
                        reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, sizeof mac,
                        &mac_size),
              nullptr);
    const std::string token =
        input + "." + base64url_encode(std::string_view(reinterpret_cast<const char*>(mac), mac_size));
    expect_refused(verify_jws(token, keys()), std::string("unsupported algorithm ") + alg);
  }
}

TEST_F(Jwt, RefusesOtherAsymmetricAlgorithms) {
  for (const char* alg : {"RS384", "RS512", "PS256", "ES384", "ES512", "EdDSA"}) {
    const auto token = make_token(rsa_, header(alg, "rsa-1"), claims());
    expect_refused(verify_jws(token, keys()), std::string("unsupported algorithm ") + alg);
  }
}

TEST_F(Jwt, UsesAKeyOnlyWithItsOwnAlgorithm) {
  // An ES256 token naming the RSA key, and an RS256 token naming the EC key.
  expect_refused(verify_jws(make_token(ec_, header("ES256", "rsa-1"), claims()), keys()), "unknown signing key");
  expect_refused(verify_jws(make_token(rsa_, header("RS256", "ec-1"), claims()), keys()), "unknown signing key");
  // The same kid on keys of both types: each token goes to the key of its algorithm.
  const auto shared = key_set::parse(jwks({rsa_jwk(rsa_, "k"), ec_jwk(ec_, "k")})).value();
  EXPECT_TRUE(verify_jws(make_token(rsa_, header("RS256", "k"), claims()), shared).has_value());
  EXPECT_TRUE(verify_jws(make_token(ec_, header("ES256", "k"), claims()), shared).has_value());
}

TEST_F(Jwt, RefusesAnUnknownKid) {
  expect_refused(verify_jws(make_token(rsa_, header("RS256", "rotated-away"), claims()), keys()),
                 "unknown signing key");
}

TEST_F(Jwt, RefusesCriticalHeaders) {
  auto h = header("RS256", "rsa-1");
  h["crit"] = json::array({"b64"});
  h["b64"] = false;
  expect_refused(verify_jws(make_token(rsa_, h, claims()), keys()), "unsupported critical header");
}

TEST_F(Jwt, RefusesMalformedTokens) {
  const auto token = rs256_token();
  const auto body = token.substr(0, token.rfind('.'));
  const std::string cases[] = {
      "",
      ".",
      "..",
      body,                                    // two parts
      token + ".",                             // four parts
      "a.b.c.d.e",
      with_part(token, 0, "!!!"),              // bad base64 header
      with_part(token, 0, "eyJhbGciOiJSUzI1NiJ9="),  // padding
      with_part(token, 0, base64url_encode("not json")),
      with_part(token, 0, base64url_encode("[\"RS256\"]")),
      with_part(token, 0, base64url_encode(R"({"alg":"RS256")")),  // truncated
      with_part(token, 0, base64url_encode(R"({"typ":"JWT"})")),     // no alg
      with_part(token, 0, base64url_encode(R"({"alg":"RS256","kid":7})")),
      with_part(token, 0, base64url_encode("{\"alg\":\"RS256\",\"x\":\"\xff\"}")),  // invalid UTF-8
      with_part(token, 2, "%%%"),              // bad base64 signature
      token + std::string(70'000, 'A'),        // huge
  };
  for (const auto& bad : cases) expect_refused(verify_jws(bad, keys()), "malformed token");
}

TEST_F(Jwt, RefusesDeeplyNestedJson) {
  const std::string deep = R"({"alg":"RS256","x":)" + std::string(10'000, '[') + std::string(10'000, ']') + "}";
  expect_refused(verify_jws(base64url_encode(deep) + "." + encode_json(claims()) + ".AA", keys()),
                 "malformed token");
}

TEST_F(Jwt, RefusesASignedPayloadThatIsNotAJsonObject) {
  const std::string input = encode_json(header("RS256", "rsa-1")) + "." + base64url_encode("[1,2]");
  expect_refused(verify_jws(input + "." + base64url_encode(sign_input(rsa_, input)), keys()), "malformed token");
  const std::string bad_base64 = encode_json(header("RS256", "rsa-1")) + ".*";
  expect_refused(verify_jws(bad_base64 + "." + base64url_encode(sign_input(rsa_, bad_base64)), keys()),
                 "malformed token");
}

// --- check_claims ---------------------------------------------------------------------------------

constexpr std::int64_t kNow = 1'700'000'000;

claim_checks checks_at(std::int64_t now) {
  claim_checks checks;
  checks.issuer = "https://issuer.example";
  checks.audiences = {"berth", "other"};
  checks.now = system_clock::time_point(seconds(now));
  checks.leeway = seconds(60);
  return checks;
}

json valid_claims() {
  return {{"iss", "https://issuer.example"}, {"aud", "berth"}, {"exp", kNow + 300}, {"nbf", kNow - 10},
          {"iat", kNow - 10}};
}

void expect_claims_refused(const json& claims, const claim_checks& checks, const std::string& detail) {
  const auto r = check_claims(claims, checks);
  ASSERT_FALSE(r.has_value()) << claims.dump();
  EXPECT_EQ(r.error().code, errc::unauthorized);
  EXPECT_EQ(r.error().detail, detail);
}

TEST(CheckClaims, AcceptsValidClaims) { EXPECT_TRUE(check_claims(valid_claims(), checks_at(kNow)).has_value()); }

TEST(CheckClaims, Expiry) {
  auto c = valid_claims();
  c["exp"] = kNow - 61;
  expect_claims_refused(c, checks_at(kNow), "token expired");
  c["exp"] = kNow - 60;  // exactly at the end of the leeway: expired
  expect_claims_refused(c, checks_at(kNow), "token expired");
  c["exp"] = kNow - 59;  // within the leeway
  EXPECT_TRUE(check_claims(c, checks_at(kNow)).has_value());
  auto no_leeway = checks_at(kNow);
  no_leeway.leeway = seconds(0);
  expect_claims_refused(c, no_leeway, "token expired");
  c["exp"] = 1e300;  // far future, as a double: no overflow
  EXPECT_TRUE(check_claims(c, checks_at(kNow)).has_value());
  c["exp"] = static_cast<double>(kNow) + 0.5;
  EXPECT_TRUE(check_claims(c, no_leeway).has_value());
}

TEST(CheckClaims, MissingOrMalformedExp) {
  auto c = valid_claims();
  c.erase("exp");
  expect_claims_refused(c, checks_at(kNow), "token has no exp claim");
  auto optional = checks_at(kNow);
  optional.require_exp = false;
  EXPECT_TRUE(check_claims(c, optional).has_value());
  c["exp"] = std::to_string(kNow + 300);
  expect_claims_refused(c, optional, "malformed exp claim");
  c["exp"] = nullptr;
  expect_claims_refused(c, checks_at(kNow), "malformed exp claim");
}

TEST(CheckClaims, NotBeforeAndIssuedAt) {
  auto c = valid_claims();
  c["nbf"] = kNow + 61;
  expect_claims_refused(c, checks_at(kNow), "token not yet valid");
  c["nbf"] = kNow + 60;  // within the leeway
  EXPECT_TRUE(check_claims(c, checks_at(kNow)).has_value());
  c["nbf"] = "soon";
  expect_claims_refused(c, checks_at(kNow), "malformed nbf claim");
  c = valid_claims();
  c["iat"] = kNow + 3600;
  expect_claims_refused(c, checks_at(kNow), "token issued in the future");
}

TEST(CheckClaims, Issuer) {
  auto c = valid_claims();
  c["iss"] = "https://evil.example";
  expect_claims_refused(c, checks_at(kNow), "wrong issuer");
  c["iss"] = json::array({"https://issuer.example"});
  expect_claims_refused(c, checks_at(kNow), "wrong issuer");
  c.erase("iss");
  expect_claims_refused(c, checks_at(kNow), "wrong issuer");
  auto any_issuer = checks_at(kNow);
  any_issuer.issuer.clear();
  EXPECT_TRUE(check_claims(c, any_issuer).has_value());
}

TEST(CheckClaims, AudienceAsStringOrArray) {
  auto c = valid_claims();
  c["aud"] = "other";
  EXPECT_TRUE(check_claims(c, checks_at(kNow)).has_value());
  c["aud"] = "stranger";
  expect_claims_refused(c, checks_at(kNow), "wrong audience");
  c["aud"] = json::array({"stranger", "berth"});
  EXPECT_TRUE(check_claims(c, checks_at(kNow)).has_value());
  c["aud"] = json::array({"stranger", 7});
  expect_claims_refused(c, checks_at(kNow), "wrong audience");
  c["aud"] = json::array();
  expect_claims_refused(c, checks_at(kNow), "wrong audience");
  c.erase("aud");
  expect_claims_refused(c, checks_at(kNow), "wrong audience");
  auto any_audience = checks_at(kNow);
  any_audience.audiences.clear();
  EXPECT_TRUE(check_claims(c, any_audience).has_value());
}

TEST(CheckClaims, DefaultNowIsTheClock) {
  const auto now = std::chrono::duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
  claim_checks checks;  // `now` left at its default
  EXPECT_TRUE(check_claims({{"exp", now + 300}}, checks).has_value());
  expect_claims_refused({{"exp", now - 300}}, checks, "token expired");
}

TEST(CheckClaims, RefusesClaimsThatAreNotAnObject) {
  expect_claims_refused(json::array(), checks_at(kNow), "malformed claims");
}

// --- signing_key ----------------------------------------------------------------------------------

class JwtSigningKey : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("berth-jwt-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string path(const std::string& name = "signing.pem") const { return (dir_ / name).string(); }

  std::filesystem::path dir_;
};

TEST_F(JwtSigningKey, SignsTokensItsPublicKeysVerify) {
  const auto key = signing_key::load_or_create(path());
  const json claims = {{"sub", "alice"}, {"access", json::array({"repo:acme/shop:pull"})}, {"exp", 4102444800}};
  const auto token = key.sign(claims);
  const auto r = verify_jws(token, key.public_keys());
  ASSERT_TRUE(r.has_value()) << r.error().detail;
  EXPECT_EQ(r->claims, claims);
  EXPECT_EQ(r->header, (json{{"alg", "ES256"}, {"typ", "JWT"}, {"kid", std::string(key.key_id())}}));
  // The JWKS served to others verifies it too.
  EXPECT_TRUE(verify_jws(token, key_set::parse(key.public_jwks()).value()).has_value());
  // Each signature is fresh (ECDSA is randomised), and each verifies.
  const auto again = key.sign(claims);
  EXPECT_NE(again, token);
  EXPECT_TRUE(verify_jws(again, key.public_keys()).has_value());
}

TEST_F(JwtSigningKey, LoadsTheSameKeyAgain) {
  const auto first = signing_key::load_or_create(path());
  const auto second = signing_key::load_or_create(path());
  EXPECT_EQ(first.key_id(), second.key_id());
  EXPECT_TRUE(verify_jws(first.sign({{"sub", "a"}}), second.public_keys()).has_value());
  EXPECT_NE(signing_key::load_or_create(path("other.pem")).key_id(), first.key_id());
}

TEST_F(JwtSigningKey, CreatesTheFileWithMode0600) {
  signing_key::load_or_create(path());
  struct stat st {};
  ASSERT_EQ(::stat(path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // No temporary file is left behind.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_), std::filesystem::directory_iterator()), 1);
}

TEST_F(JwtSigningKey, KidIsTheRfc7638Thumbprint) {
  const auto key = signing_key::load_or_create(path());
  const auto jwks = json::parse(key.public_jwks());
  ASSERT_EQ(jwks["keys"].size(), 1u);
  const auto& jwk = jwks["keys"][0];
  EXPECT_EQ(jwk["kty"], "EC");
  EXPECT_EQ(jwk["crv"], "P-256");
  EXPECT_EQ(jwk["alg"], "ES256");
  EXPECT_EQ(jwk["use"], "sig");
  EXPECT_EQ(jwk["kid"], std::string(key.key_id()));
  // nlohmann's objects sort their keys, which gives the canonical form RFC 7638 asks for.
  const std::string canonical = json{{"kty", "EC"}, {"crv", "P-256"}, {"x", jwk["x"]}, {"y", jwk["y"]}}.dump();
  unsigned char sha[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(canonical.data()), canonical.size(), sha);
  EXPECT_EQ(key.key_id(), base64url_encode(std::string_view(reinterpret_cast<const char*>(sha), sizeof sha)));
}

TEST_F(JwtSigningKey, RefusesAFileThatIsNotAnEcP256Key) {
  std::ofstream(path("garbage.pem")) << "not a key\n";
  EXPECT_THROW(signing_key::load_or_create(path("garbage.pem")), std::runtime_error);
  std::ofstream(path("empty.pem")).flush();
  EXPECT_THROW(signing_key::load_or_create(path("empty.pem")), std::runtime_error);

  const auto rsa = generate_rsa(2048);
  {
    const std::unique_ptr<BIO, openssl_deleter<&BIO_free>> bio(BIO_new_file(path("rsa.pem").c_str(), "w"));
    ASSERT_EQ(PEM_write_bio_PrivateKey(bio.get(), rsa.get(), nullptr, nullptr, 0, nullptr, nullptr), 1);
  }
  EXPECT_THROW(signing_key::load_or_create(path("rsa.pem")), std::runtime_error);
}

TEST_F(JwtSigningKey, ThrowsWhenTheDirectoryIsMissing) {
  EXPECT_THROW(signing_key::load_or_create(path("missing/signing.pem")), std::system_error);
}

}  // namespace
}  // namespace berth::auth
