// Content digests ("sha256:<64 hex>", "sha512:<128 hex>") and the streaming hasher that computes
// them. A `digest` is always valid: the only way to get one is parse() or hasher::finish().
// Thread-safety: values are immutable; a hasher is used by one thread at a time.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "core/error.h"

typedef struct evp_md_ctx_st EVP_MD_CTX;

namespace berth {

enum class digest_algorithm { sha256, sha512 };

class digest {
 public:
  // Returns the digest, or DIGEST_INVALID when `text` does not follow the grammar or names an
  // algorithm Berth does not support.
  static result<digest> parse(std::string_view text);

  digest_algorithm algorithm() const { return algorithm_; }
  const std::string& str() const { return text_; }
  // The encoded part, after the colon.
  std::string_view hex() const { return std::string_view(text_).substr(text_.find(':') + 1); }

  friend bool operator==(const digest&, const digest&) = default;
  friend auto operator<=>(const digest& a, const digest& b) { return a.text_ <=> b.text_; }

 private:
  digest(digest_algorithm algorithm, std::string text) : algorithm_(algorithm), text_(std::move(text)) {}
  friend class hasher;
  friend class sha256_state;

  digest_algorithm algorithm_;
  std::string text_;
};

// Incremental hash over a byte stream (OpenSSL EVP). Movable, not copyable.
class hasher {
 public:
  explicit hasher(digest_algorithm algorithm = digest_algorithm::sha256);
  hasher(hasher&&) noexcept;
  hasher& operator=(hasher&&) noexcept;
  ~hasher();

  void update(const void* data, std::size_t size);
  void update(std::string_view bytes) { update(bytes.data(), bytes.size()); }
  // REQUIRES: called once; the hasher is spent afterwards.
  digest finish();

 private:
  struct ctx_deleter {
    void operator()(EVP_MD_CTX* ctx) const;
  };
  digest_algorithm algorithm_;
  std::unique_ptr<EVP_MD_CTX, ctx_deleter> ctx_;
};

// The sha256 (or other) digest of `bytes`.
digest digest_of(std::string_view bytes, digest_algorithm algorithm = digest_algorithm::sha256);

}  // namespace berth
