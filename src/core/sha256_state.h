// A SHA-256 whose running state can be saved and resumed elsewhere. A chunked upload may continue
// on another Berth instance; that instance resumes the hash from the state saved at the upload's
// offset instead of re-reading every byte so far (Distribution keeps `hashstates/sha256/<offset>`
// for the same reason).
//
// The state is OpenSSL's SHA256_CTX (the 8 chaining words, the bit count and the partial block),
// prefixed by a tag naming the format version and this machine's layout of the struct. A state is
// portable between builds on the same architecture, not across architectures: import() refuses a
// tag it does not know, and the caller falls back to rehashing the bytes.
// Thread-safety: a value type; one thread at a time per object.
#pragma once

#include <openssl/sha.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/digest.h"

namespace berth {

class sha256_state {
 public:
  sha256_state();

  void update(const void* data, std::size_t size);
  void update(std::string_view bytes) { update(bytes.data(), bytes.size()); }

  // The number of bytes hashed so far (callers check it against the upload's offset).
  std::uint64_t size() const;

  // The digest of the bytes so far. The state is left as it was, so hashing may go on.
  digest finish() const;

  // The state as bytes, to store next to the upload. Never fails.
  std::string save() const;
  // The state saved by save(), or nullopt when `bytes` are not a state this build can resume (another
  // format version or architecture, truncated or corrupt): then rehash the bytes from the start.
  static std::optional<sha256_state> load(std::string_view bytes);

 private:
  SHA256_CTX ctx_;
};

}  // namespace berth
