// Content digests ("sha256:<64 hex>", "sha512:<128 hex>") and the streaming hasher that computes
// them. A `digest` is always valid: the only way to get one is parse() or hasher::finish().
// Thread-safety: values are immutable; a hasher is used by one thread at a time.
#pragma once

#include <openssl/sha.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "core/error.h"

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

// Incremental hash over a byte stream. A plain value (copying it forks the hash), and resumable:
// save() gives its state as bytes that resume() turns back into the same hasher in another process
// or on another machine, which is how an upload continues where its last request stopped.
// It uses OpenSSL's SHA256_CTX/SHA512_CTX (the same assembly as EVP): EVP offers no way to export a
// state, and these contexts are plain structs.
class hasher {
 public:
  explicit hasher(digest_algorithm algorithm = digest_algorithm::sha256);

  digest_algorithm algorithm() const { return algorithm_; }
  void update(const void* data, std::size_t size);
  void update(std::string_view bytes) { update(bytes.data(), bytes.size()); }
  // The digest of everything passed to update() so far; the hasher may go on.
  digest finish() const;

  // The state as portable bytes (fixed field order, little-endian).
  std::string save() const;
  // The hasher save() described; nullopt when `state` is not such bytes.
  static std::optional<hasher> resume(std::string_view state);

 private:
  digest_algorithm algorithm_;
  std::variant<SHA256_CTX, SHA512_CTX> ctx_;
};

// The sha256 (or other) digest of `bytes`.
digest digest_of(std::string_view bytes, digest_algorithm algorithm = digest_algorithm::sha256);

}  // namespace berth
