// The low-level SHA contexts are deprecated in OpenSSL 3 but kept: they are the only ones whose
// state can be saved (see hasher in digest.h).
#define OPENSSL_SUPPRESS_DEPRECATED
#include "core/digest.h"

#include <cstdint>
#include <cstring>

namespace berth {
namespace {

bool is_lower_hex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// save()'s layout: one byte naming the algorithm, then the context's fields in declaration order,
// integers little-endian, the partial block as bytes.
constexpr char kSha256Tag = 1;
constexpr char kSha512Tag = 2;

template <class Int>
void put_le(std::string& out, Int v) {
  for (std::size_t i = 0; i < sizeof(Int); ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// Reads little-endian integers and raw bytes from a state, failing softly past its end.
class state_reader {
 public:
  explicit state_reader(std::string_view in) : in_(in) {}
  template <class Int>
  Int take() {
    Int v = 0;
    if (in_.size() < sizeof(Int)) {
      ok_ = false;
      return v;
    }
    for (std::size_t i = 0; i < sizeof(Int); ++i) v |= static_cast<Int>(static_cast<unsigned char>(in_[i])) << (8 * i);
    in_.remove_prefix(sizeof(Int));
    return v;
  }
  void take(void* out, std::size_t n) {
    if (in_.size() < n) {
      ok_ = false;
      return;
    }
    std::memcpy(out, in_.data(), n);
    in_.remove_prefix(n);
  }
  // Every byte read, and no more.
  bool done() const { return ok_ && in_.empty(); }

 private:
  std::string_view in_;
  bool ok_ = true;
};

template <class Ctx, class Word>
void save_ctx(std::string& out, const Ctx& c, const void* block, std::size_t block_size) {
  for (auto h : c.h) put_le<Word>(out, h);
  put_le<Word>(out, c.Nl);
  put_le<Word>(out, c.Nh);
  out.append(static_cast<const char*>(block), block_size);
  put_le<std::uint32_t>(out, c.num);
  put_le<std::uint32_t>(out, c.md_len);
}

template <class Ctx, class Word>
bool resume_ctx(state_reader& in, Ctx& c, void* block, std::size_t block_size, unsigned md_len) {
  for (auto& h : c.h) h = in.take<Word>();
  c.Nl = in.take<Word>();
  c.Nh = in.take<Word>();
  in.take(block, block_size);
  c.num = in.take<std::uint32_t>();
  c.md_len = in.take<std::uint32_t>();
  return in.done() && c.num < block_size && c.md_len == md_len;
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

hasher::hasher(digest_algorithm algorithm) : algorithm_(algorithm) {
  if (algorithm == digest_algorithm::sha256) {
    SHA256_Init(&ctx_.emplace<SHA256_CTX>());
  } else {
    SHA512_Init(&ctx_.emplace<SHA512_CTX>());
  }
}

void hasher::update(const void* data, std::size_t size) {
  if (auto* c = std::get_if<SHA256_CTX>(&ctx_)) {
    SHA256_Update(c, data, size);
  } else {
    SHA512_Update(&std::get<SHA512_CTX>(ctx_), data, size);
  }
}

digest hasher::finish() const {
  unsigned char raw[SHA512_DIGEST_LENGTH];
  std::size_t len = 0;
  auto copy = ctx_;  // finishing spends a context: keep ours going
  if (auto* c = std::get_if<SHA256_CTX>(&copy)) {
    SHA256_Final(raw, c);
    len = SHA256_DIGEST_LENGTH;
  } else {
    SHA512_Final(raw, &std::get<SHA512_CTX>(copy));
    len = SHA512_DIGEST_LENGTH;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string text = algorithm_ == digest_algorithm::sha256 ? "sha256:" : "sha512:";
  text.reserve(text.size() + 2 * len);
  for (std::size_t i = 0; i < len; ++i) {
    text.push_back(kHex[raw[i] >> 4]);
    text.push_back(kHex[raw[i] & 0xf]);
  }
  return digest(algorithm_, std::move(text));
}

std::string hasher::save() const {
  std::string out;
  if (const auto* c = std::get_if<SHA256_CTX>(&ctx_)) {
    out.push_back(kSha256Tag);
    save_ctx<SHA256_CTX, std::uint32_t>(out, *c, c->data, SHA256_CBLOCK);
  } else {
    const auto& c512 = std::get<SHA512_CTX>(ctx_);
    out.push_back(kSha512Tag);
    save_ctx<SHA512_CTX, std::uint64_t>(out, c512, c512.u.p, SHA512_CBLOCK);
  }
  return out;
}

std::optional<hasher> hasher::resume(std::string_view state) {
  if (state.empty()) return std::nullopt;
  state_reader in(state.substr(1));
  if (state[0] == kSha256Tag) {
    hasher h(digest_algorithm::sha256);
    auto& c = std::get<SHA256_CTX>(h.ctx_);
    if (!resume_ctx<SHA256_CTX, std::uint32_t>(in, c, c.data, SHA256_CBLOCK, SHA256_DIGEST_LENGTH)) return std::nullopt;
    return h;
  }
  if (state[0] == kSha512Tag) {
    hasher h(digest_algorithm::sha512);
    auto& c = std::get<SHA512_CTX>(h.ctx_);
    if (!resume_ctx<SHA512_CTX, std::uint64_t>(in, c, c.u.p, SHA512_CBLOCK, SHA512_DIGEST_LENGTH)) return std::nullopt;
    return h;
  }
  return std::nullopt;
}

digest digest_of(std::string_view bytes, digest_algorithm algorithm) {
  hasher h(algorithm);
  h.update(bytes);
  return h.finish();
}

}  // namespace berth
