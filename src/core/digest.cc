#include "core/digest.h"

#include <openssl/evp.h>

#include <stdexcept>

namespace berth {
namespace {

bool is_lower_hex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

const EVP_MD* md_for(digest_algorithm algorithm) {
  return algorithm == digest_algorithm::sha256 ? EVP_sha256() : EVP_sha512();
}

}  // namespace

result<digest> digest::parse(std::string_view text) {
  const auto colon = text.find(':');
  if (colon == std::string_view::npos) return fail(errc::digest_invalid, "digest has no algorithm");
  const auto algorithm = text.substr(0, colon);
  const auto encoded = text.substr(colon + 1);
  if (algorithm == "sha256") {
    if (encoded.size() != 64 || !is_lower_hex(encoded))
      return fail(errc::digest_invalid, "sha256 digest must be 64 lowercase hex characters");
    return digest(digest_algorithm::sha256, std::string(text));
  }
  if (algorithm == "sha512") {
    if (encoded.size() != 128 || !is_lower_hex(encoded))
      return fail(errc::digest_invalid, "sha512 digest must be 128 lowercase hex characters");
    return digest(digest_algorithm::sha512, std::string(text));
  }
  return fail(errc::digest_invalid, "unsupported digest algorithm");
}

void hasher::ctx_deleter::operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }

hasher::hasher(digest_algorithm algorithm) : algorithm_(algorithm), ctx_(EVP_MD_CTX_new()) {
  if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), md_for(algorithm), nullptr) != 1)
    throw std::runtime_error("EVP_DigestInit_ex failed");
}

hasher::hasher(hasher&&) noexcept = default;
hasher& hasher::operator=(hasher&&) noexcept = default;
hasher::~hasher() = default;

void hasher::update(const void* data, std::size_t size) { EVP_DigestUpdate(ctx_.get(), data, size); }

digest hasher::finish() {
  unsigned char raw[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx_.get(), raw, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string text = algorithm_ == digest_algorithm::sha256 ? "sha256:" : "sha512:";
  text.reserve(text.size() + 2 * len);
  for (unsigned int i = 0; i < len; ++i) {
    text.push_back(kHex[raw[i] >> 4]);
    text.push_back(kHex[raw[i] & 0xf]);
  }
  return digest(algorithm_, std::move(text));
}

digest digest_of(std::string_view bytes, digest_algorithm algorithm) {
  hasher h(algorithm);
  h.update(bytes);
  return h.finish();
}

}  // namespace berth
