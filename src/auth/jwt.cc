#include "auth/jwt.h"

#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <system_error>

#include <fmt/format.h>

#include "auth/base64url.h"
#include "auth/es256.h"
#include "auth/openssl_ptr.h"

namespace berth::auth {
namespace {

using json = nlohmann::json;

constexpr std::size_t kMaxTokenSize = 64 * 1024;
constexpr int kMaxJsonDepth = 32;
constexpr int kMinRsaBits = 2048;
constexpr int kMaxRsaBits = 8192;  // verification cost grows with the cube of the size
constexpr std::size_t kMaxRsaExponentSize = 8;  // bytes; a huge e makes each verification slow
constexpr std::size_t kP256CoordinateSize = 32;
constexpr std::string_view kRs256 = "RS256";
constexpr std::string_view kEs256 = "ES256";

const unsigned char* bytes_of(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

// Pops the OpenSSL errors a failed call leaves on the thread's queue, so that they do not show up
// later in unrelated code that reads the queue (Asio's TLS streams do).
class openssl_error_scope {
 public:
  openssl_error_scope() { ERR_set_mark(); }
  ~openssl_error_scope() { ERR_pop_to_mark(); }
  openssl_error_scope(const openssl_error_scope&) = delete;
  openssl_error_scope& operator=(const openssl_error_scope&) = delete;
};

// Parses untrusted JSON: never throws, and refuses nesting deeper than kMaxJsonDepth so that no
// later recursive walk (dump, comparison) can exhaust the stack.
std::optional<json> parse_json(std::string_view text) {
  bool too_deep = false;
  const json::parser_callback_t limit_depth = [&too_deep](int depth, json::parse_event_t, json&) {
    if (depth > kMaxJsonDepth) too_deep = true;
    return !too_deep;
  };
  json value = json::parse(text.begin(), text.end(), limit_depth, /*allow_exceptions=*/false);
  if (too_deep || value.is_discarded()) return std::nullopt;
  return value;
}

// An RSA or EC P-256 public key in an EVP_PKEY. EVP_PKEYs are safe to share between threads once
// built; each verification uses its own EVP_MD_CTX.
class evp_verification_key final : public verification_key {
 public:
  evp_verification_key(pkey_ptr key, std::string_view algorithm, std::string key_id)
      : key_(std::move(key)), algorithm_(algorithm), key_id_(std::move(key_id)) {}

  std::string_view algorithm() const override { return algorithm_; }
  std::string_view key_id() const override { return key_id_; }

  bool verify(std::string_view signing_input, std::string_view signature) const override {
    const openssl_error_scope errors;
    std::string der;
    if (algorithm_ == kEs256) {
      auto converted = es256_jws_to_der(signature);
      if (!converted) return false;
      der = std::move(*converted);
      signature = der;
    }
    const md_ctx_ptr ctx(EVP_MD_CTX_new());
    return ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_.get()) == 1 &&
           EVP_DigestVerify(ctx.get(), bytes_of(signature), signature.size(), bytes_of(signing_input),
                            signing_input.size()) == 1;
  }

 private:
  pkey_ptr key_;
  std::string_view algorithm_;  // one of the constants above
  std::string key_id_;
};

// A public key from OSSL_PARAMs of `type` ("RSA" or "EC"), or null when OpenSSL refuses them.
pkey_ptr public_key_from_params(const char* type, const param_bld_ptr& builder) {
  const params_ptr params(OSSL_PARAM_BLD_to_param(builder.get()));
  const pkey_ctx_ptr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1)
    return nullptr;
  pkey_ptr key(raw);
  const pkey_ctx_ptr check(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
  if (!check || EVP_PKEY_public_check(check.get()) != 1) return nullptr;
  return key;
}

// A base64url JWK member decoded to a big-endian integer, or nullopt.
std::optional<std::string> jwk_bytes(const json& jwk, const char* member) {
  const auto it = jwk.find(member);
  if (it == jwk.end() || !it->is_string()) return std::nullopt;
  auto bytes = base64url_decode(it->get_ref<const std::string&>());
  if (!bytes || bytes->empty()) return std::nullopt;
  return bytes;
}

pkey_ptr rsa_key_from_jwk(const json& jwk) {
  const auto n = jwk_bytes(jwk, "n");
  const auto e = jwk_bytes(jwk, "e");
  if (!n || !e || n->size() > kMaxRsaBits / 8 + 1 || e->size() > kMaxRsaExponentSize) return nullptr;
  const bignum_ptr modulus(BN_bin2bn(bytes_of(*n), static_cast<int>(n->size()), nullptr));
  const bignum_ptr exponent(BN_bin2bn(bytes_of(*e), static_cast<int>(e->size()), nullptr));
  const param_bld_ptr builder(OSSL_PARAM_BLD_new());
  if (!modulus || !exponent || !builder ||
      OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_RSA_N, modulus.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_RSA_E, exponent.get()) != 1)
    return nullptr;
  auto key = public_key_from_params("RSA", builder);
  if (!key) return nullptr;
  const int bits = EVP_PKEY_get_bits(key.get());
  if (bits < kMinRsaBits || bits > kMaxRsaBits) return nullptr;
  return key;
}

pkey_ptr p256_key_from_jwk(const json& jwk) {
  const auto crv = jwk.find("crv");
  if (crv == jwk.end() || *crv != "P-256") return nullptr;
  const auto x = jwk_bytes(jwk, "x");
  const auto y = jwk_bytes(jwk, "y");
  if (!x || !y || x->size() != kP256CoordinateSize || y->size() != kP256CoordinateSize) return nullptr;
  const std::string point = '\x04' + *x + *y;  // SEC 1 uncompressed point
  const param_bld_ptr builder(OSSL_PARAM_BLD_new());
  if (!builder ||
      OSSL_PARAM_BLD_push_utf8_string(builder.get(), OSSL_PKEY_PARAM_GROUP_NAME, SN_X9_62_prime256v1, 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(builder.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()) != 1)
    return nullptr;
  return public_key_from_params("EC", builder);
}

// The key a JWK describes, or null when Berth cannot use it: another type or curve, an "alg" other
// than the one its type implies, a "use" other than "sig", a malformed or weak key.
std::shared_ptr<const verification_key> key_from_jwk(const json& jwk) {
  if (!jwk.is_object()) return nullptr;
  const auto kty = jwk.find("kty");
  if (kty == jwk.end() || !kty->is_string()) return nullptr;
  std::string_view algorithm;
  pkey_ptr key;
  if (*kty == "RSA") {
    algorithm = kRs256;
    key = rsa_key_from_jwk(jwk);
  } else if (*kty == "EC") {
    algorithm = kEs256;
    key = p256_key_from_jwk(jwk);
  }
  if (!key) return nullptr;
  if (const auto alg = jwk.find("alg"); alg != jwk.end() && *alg != algorithm) return nullptr;
  if (const auto use = jwk.find("use"); use != jwk.end() && *use != "sig") return nullptr;
  std::string kid;
  if (const auto it = jwk.find("kid"); it != jwk.end()) {
    if (!it->is_string()) return nullptr;
    kid = it->get<std::string>();
  }
  return std::make_shared<evp_verification_key>(std::move(key), algorithm, std::move(kid));
}

std::unexpected<error> unauthorized(std::string detail) { return fail(errc::unauthorized, std::move(detail)); }

// The header's alg, echoed to the client only when it looks like an algorithm name.
std::string describe_algorithm(const json& alg) {
  if (!alg.is_string()) return "unsupported algorithm";
  const auto& name = alg.get_ref<const std::string&>();
  const bool printable = !name.empty() && name.size() <= 16 &&
                         name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-+_") ==
                             std::string::npos;
  return printable ? "unsupported algorithm " + name : "unsupported algorithm";
}

// The 32-byte big-endian affine coordinate `name` (OSSL_PKEY_PARAM_EC_PUB_X or _Y), base64url.
std::string p256_coordinate(const EVP_PKEY* key, const char* name) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &raw) != 1) throw std::runtime_error("cannot read the EC public key");
  const bignum_ptr value(raw);
  std::string bytes(kP256CoordinateSize, '\0');
  if (BN_bn2binpad(value.get(), reinterpret_cast<unsigned char*>(bytes.data()), kP256CoordinateSize) !=
      kP256CoordinateSize)
    throw std::runtime_error("EC public key coordinate out of range");
  return base64url_encode(bytes);
}

bool is_p256_private_key(const EVP_PKEY* key) {
  char group[64] = {};
  std::size_t size = 0;
  return EVP_PKEY_is_a(key, "EC") &&
         EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &size) == 1 &&
         std::string_view(group, size) == SN_X9_62_prime256v1;
}

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

// The content of `path`, or nullopt when it does not exist.
std::optional<std::string> read_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::nullopt;
    throw_errno("cannot open " + path);
  }
  std::string content;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int saved = errno;
      ::close(fd);
      errno = saved;
      throw_errno("cannot read " + path);
    }
    if (n == 0) break;
    content.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return content;
}

pkey_ptr parse_private_key(const std::string& pem, const std::string& path) {
  const openssl_error_scope errors;
  const std::unique_ptr<BIO, openssl_deleter<&BIO_free>> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  // A callback that supplies no passphrase: OpenSSL's default would prompt on the terminal.
  pem_password_cb* no_passphrase = [](char*, int, int, void*) { return 0; };
  pkey_ptr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr) : nullptr);
  if (!key || !is_p256_private_key(key.get()))
    throw std::runtime_error(path + " does not hold an unencrypted EC P-256 private key in PEM");
  return key;
}

std::string private_key_pem(const EVP_PKEY* key) {
  const std::unique_ptr<BIO, openssl_deleter<&BIO_free>> bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    throw std::runtime_error("cannot encode the signing key");
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

void write_all(int fd, std::string_view bytes, const std::string& path) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("cannot write " + path);
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

void fsync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_errno("cannot open " + dir);
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw_errno("cannot fsync " + dir);
}

// Writes `pem` to `path` unless it already exists, and returns what `path` holds afterwards. The key
// is written in full to a private (0600, O_EXCL) temporary file, synced, then linked to `path`:
// link() fails when `path` exists, so a crash never leaves a half-written key behind and two
// processes racing to create it agree on one key.
std::string publish_private_key(const std::string& path, const std::string& pem) {
  std::string temp = path + ".tmp-XXXXXX";
  const int fd = ::mkostemp(temp.data(), O_CLOEXEC);  // open(O_CREAT | O_EXCL, 0600)
  if (fd < 0) throw_errno("cannot create " + temp);
  try {
    write_all(fd, pem, temp);
    if (::fsync(fd) != 0) throw_errno("cannot fsync " + temp);
  } catch (...) {
    ::close(fd);
    ::unlink(temp.c_str());
    throw;
  }
  ::close(fd);
  const bool linked = ::link(temp.c_str(), path.c_str()) == 0;
  const int link_errno = errno;
  ::unlink(temp.c_str());
  if (!linked && link_errno != EEXIST) {
    errno = link_errno;
    throw_errno("cannot create " + path);
  }
  const auto dir = std::filesystem::path(path).parent_path();
  fsync_directory(dir.empty() ? "." : dir.string());
  if (linked) return pem;
  auto winner = read_file(path);
  if (!winner) throw std::runtime_error(path + " vanished while it was being created");
  return *winner;
}

}  // namespace

result<key_set> key_set::parse(std::string_view jwks_json) {
  const auto jwks = parse_json(jwks_json);
  if (!jwks || !jwks->is_object()) return fail(errc::unsupported, "JWKS is not a JSON object");
  const auto keys = jwks->find("keys");
  if (keys == jwks->end() || !keys->is_array()) return fail(errc::unsupported, "JWKS has no \"keys\" array");
  key_set set;
  const openssl_error_scope errors;  // skipped keys leave OpenSSL errors behind
  for (const auto& jwk : *keys) {
    if (auto key = key_from_jwk(jwk)) set.add(std::move(key));
  }
  if (set.empty()) return fail(errc::unsupported, "JWKS holds no RS256 or ES256 signing key Berth can use");
  return set;
}

const verification_key* key_set::find(std::string_view kid, std::string_view alg) const {
  const verification_key* only = nullptr;
  for (const auto& key : keys_) {
    if (key->algorithm() != alg) continue;
    if (!kid.empty()) {
      if (key->key_id() == kid) return key.get();
      continue;
    }
    if (only != nullptr) return nullptr;  // ambiguous
    only = key.get();
  }
  return only;
}

struct signing_key::impl {
  pkey_ptr key;
  std::string jwks;
};

signing_key signing_key::load_or_create(const std::string& path) {
  auto pem = read_file(path);
  if (!pem) {
    const pkey_ptr fresh(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    if (!fresh) throw std::runtime_error("cannot generate an EC P-256 key");
    pem = publish_private_key(path, private_key_pem(fresh.get()));
  }
  auto state = std::make_shared<impl>();
  state->key = parse_private_key(*pem, path);

  const std::string x = p256_coordinate(state->key.get(), OSSL_PKEY_PARAM_EC_PUB_X);
  const std::string y = p256_coordinate(state->key.get(), OSSL_PKEY_PARAM_EC_PUB_Y);
  // RFC 7638: the required members in lexicographic order, no whitespace.
  const std::string thumbprint_input = fmt::format(R"({{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}})", x, y);
  unsigned char sha[32];
  SHA256(bytes_of(thumbprint_input), thumbprint_input.size(), sha);

  signing_key out;
  out.kid_ = base64url_encode(std::string_view(reinterpret_cast<const char*>(sha), sizeof sha));
  const json jwk = {{"kty", "EC"}, {"crv", "P-256"}, {"x", x},     {"y", y},
                    {"kid", out.kid_}, {"alg", kEs256}, {"use", "sig"}};
  state->jwks = json{{"keys", json::array({jwk})}}.dump();
  auto public_keys = key_set::parse(state->jwks);
  if (!public_keys) throw std::logic_error("signing_key: own JWKS rejected: " + public_keys.error().detail);
  out.public_ = std::move(*public_keys);
  out.impl_ = std::move(state);
  return out;
}

std::string signing_key::sign(const nlohmann::json& claims) const {
  if (!impl_) throw std::logic_error("signing_key: not loaded");
  const json header = {{"alg", kEs256}, {"typ", "JWT"}, {"kid", kid_}};
  std::string token = base64url_encode(header.dump()) + '.' + base64url_encode(claims.dump());

  const openssl_error_scope errors;
  const md_ctx_ptr ctx(EVP_MD_CTX_new());
  std::size_t size = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, impl_->key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &size, bytes_of(token), token.size()) != 1)
    throw std::runtime_error("ES256 signing failed");
  std::string der(size, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(der.data()), &size, bytes_of(token),
                     token.size()) != 1)
    throw std::runtime_error("ES256 signing failed");
  der.resize(size);
  const auto signature = es256_der_to_jws(der);
  if (!signature) throw std::runtime_error("ES256 signing produced an unexpected signature");
  token += '.';
  token += base64url_encode(*signature);
  return token;
}

std::string signing_key::public_jwks() const {
  if (!impl_) throw std::logic_error("signing_key: not loaded");
  return impl_->jwks;
}

result<verified_jwt> verify_jws(std::string_view token, const key_set& keys) {
  const auto malformed = [] { return unauthorized("malformed token"); };
  if (token.size() > kMaxTokenSize) return malformed();
  const auto first_dot = token.find('.');
  const auto second_dot = token.find('.', first_dot == std::string_view::npos ? token.size() : first_dot + 1);
  if (second_dot == std::string_view::npos || token.find('.', second_dot + 1) != std::string_view::npos)
    return malformed();

  const auto header_bytes = base64url_decode(token.substr(0, first_dot));
  auto header = header_bytes ? parse_json(*header_bytes) : std::nullopt;
  if (!header || !header->is_object()) return malformed();
  const auto alg = header->find("alg");
  if (alg == header->end()) return malformed();
  if (*alg != kRs256 && *alg != kEs256) return unauthorized(describe_algorithm(*alg));
  // RFC 7515 §4.1.11: a token may only be accepted when every critical extension is understood.
  if (header->contains("crit")) return unauthorized("unsupported critical header");
  std::string_view kid;
  if (const auto it = header->find("kid"); it != header->end()) {
    if (!it->is_string()) return malformed();
    kid = it->get_ref<const std::string&>();
  }
  const auto* key = keys.find(kid, alg->get_ref<const std::string&>());
  if (key == nullptr) return unauthorized("unknown signing key");

  const auto signature = base64url_decode(token.substr(second_dot + 1));
  if (!signature) return malformed();
  if (!key->verify(token.substr(0, second_dot), *signature)) return unauthorized("bad signature");

  // The payload is parsed only once it is known to come from the key's owner.
  const auto payload_bytes = base64url_decode(token.substr(first_dot + 1, second_dot - first_dot - 1));
  auto claims = payload_bytes ? parse_json(*payload_bytes) : std::nullopt;
  if (!claims || !claims->is_object()) return malformed();
  return verified_jwt{std::move(*header), std::move(*claims)};
}

namespace {

// The NumericDate `name` as seconds since the epoch: nullopt when absent, NaN when not a number.
std::optional<double> numeric_date(const json& claims, const char* name) {
  const auto it = claims.find(name);
  if (it == claims.end()) return std::nullopt;
  return it->is_number() ? it->get<double>() : std::nan("");
}

bool audience_matches(const json& aud, const std::vector<std::string>& audiences) {
  const auto wanted = [&](const json& value) {
    return value.is_string() &&
           std::find(audiences.begin(), audiences.end(), value.get_ref<const std::string&>()) != audiences.end();
  };
  if (aud.is_array()) return std::any_of(aud.begin(), aud.end(), wanted);
  return wanted(aud);
}

}  // namespace

result<void> check_claims(const nlohmann::json& claims, const claim_checks& checks) {
  if (!claims.is_object()) return unauthorized("malformed claims");
  if (!checks.issuer.empty()) {
    const auto iss = claims.find("iss");
    if (iss == claims.end() || *iss != checks.issuer) return unauthorized("wrong issuer");
  }
  if (!checks.audiences.empty()) {
    const auto aud = claims.find("aud");
    if (aud == claims.end() || !audience_matches(*aud, checks.audiences)) return unauthorized("wrong audience");
  }

  // Doubles, not time_points: a date of 1e300 must compare, not overflow.
  const auto now_point = checks.now == std::chrono::system_clock::time_point{} ? std::chrono::system_clock::now()
                                                                              : checks.now;
  const double now = std::chrono::duration<double>(now_point.time_since_epoch()).count();
  const double leeway = std::chrono::duration<double>(checks.leeway).count();

  const auto exp = numeric_date(claims, "exp");
  if (!exp && checks.require_exp) return unauthorized("token has no exp claim");
  if (exp && std::isnan(*exp)) return unauthorized("malformed exp claim");
  if (exp && !(now < *exp + leeway)) return unauthorized("token expired");

  const auto nbf = numeric_date(claims, "nbf");
  if (nbf && std::isnan(*nbf)) return unauthorized("malformed nbf claim");
  if (nbf && *nbf > now + leeway) return unauthorized("token not yet valid");

  const auto iat = numeric_date(claims, "iat");
  if (iat && std::isnan(*iat)) return unauthorized("malformed iat claim");
  if (iat && *iat > now + leeway) return unauthorized("token issued in the future");
  return {};
}

}  // namespace berth::auth
