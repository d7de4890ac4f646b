// SHA256_Init/Update/Final are deprecated in OpenSSL 3 in favour of EVP, whose contexts cannot be
// serialised. They remain in OpenSSL 3 (and Debian's libssl3): silence the warning for this file only.
#define OPENSSL_SUPPRESS_DEPRECATED

#include "core/sha256_state.h"

#include <cstring>
#include <stdexcept>

namespace berth {
namespace {

// "bsh" + format version, then the layout the raw struct depends on: byte order, word size,
// struct size. Any change to them makes load() refuse the state rather than misread it.
constexpr char kMagic[] = {'b', 's', 'h', 1};
constexpr unsigned char kLayout[] = {
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? 'l' : 'b',
    static_cast<unsigned char>(sizeof(SHA_LONG)),
    static_cast<unsigned char>(sizeof(SHA256_CTX)),
    static_cast<unsigned char>(alignof(SHA256_CTX)),
};
static_assert(sizeof(SHA256_CTX) < 256);
constexpr std::size_t kTagSize = sizeof(kMagic) + sizeof(kLayout);

}  // namespace

sha256_state::sha256_state() {
  if (SHA256_Init(&ctx_) != 1) throw std::runtime_error("SHA256_Init failed");
}

void sha256_state::update(const void* data, std::size_t size) { SHA256_Update(&ctx_, data, size); }

std::uint64_t sha256_state::size() const {
  return ((static_cast<std::uint64_t>(ctx_.Nh) << 32) | ctx_.Nl) / 8;
}

digest sha256_state::finish() const {
  SHA256_CTX copy = ctx_;
  unsigned char raw[SHA256_DIGEST_LENGTH];
  SHA256_Final(raw, &copy);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string text = "sha256:";
  for (unsigned char byte : raw) {
    text.push_back(kHex[byte >> 4]);
    text.push_back(kHex[byte & 0xf]);
  }
  return digest(digest_algorithm::sha256, std::move(text));
}

std::string sha256_state::save() const {
  std::string out;
  out.reserve(kTagSize + sizeof(ctx_));
  out.append(kMagic, sizeof(kMagic));
  out.append(reinterpret_cast<const char*>(kLayout), sizeof(kLayout));
  out.append(reinterpret_cast<const char*>(&ctx_), sizeof(ctx_));
  return out;
}

std::optional<sha256_state> sha256_state::load(std::string_view bytes) {
  if (bytes.size() != kTagSize + sizeof(SHA256_CTX)) return std::nullopt;
  if (std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) return std::nullopt;
  if (std::memcmp(bytes.data() + sizeof(kMagic), kLayout, sizeof(kLayout)) != 0) return std::nullopt;
  sha256_state state;
  std::memcpy(&state.ctx_, bytes.data() + kTagSize, sizeof(SHA256_CTX));
  // OpenSSL indexes its partial block with `num`: a corrupt value would write out of bounds.
  if (state.ctx_.num >= SHA256_CBLOCK || state.ctx_.md_len != SHA256_DIGEST_LENGTH) return std::nullopt;
  if (state.size() % SHA256_CBLOCK != state.ctx_.num) return std::nullopt;
  return state;
}

}  // namespace berth
