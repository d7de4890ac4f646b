#include "auth/password.h"

#include <argon2.h>
#include <openssl/rand.h>

#include <semaphore>
#include <stdexcept>
#include <string>

namespace berth::auth {
namespace {

// OWASP's argon2id recommendation: 19 MiB, 2 passes, 1 lane.
constexpr std::uint32_t kMemoryKiB = 19 * 1024;
constexpr std::uint32_t kPasses = 2;
constexpr std::uint32_t kLanes = 1;
constexpr std::size_t kSaltBytes = 16;
constexpr std::size_t kHashBytes = 32;

// At most two hashes at once: each holds kMemoryKiB, so a burst of logins cannot take 19 MiB per
// blocking-pool thread (the others wait; the CPU is the limit anyway).
std::counting_semaphore<2> hashing_slots(2);

struct hashing_slot {
  hashing_slot() { hashing_slots.acquire(); }
  ~hashing_slot() { hashing_slots.release(); }
  hashing_slot(const hashing_slot&) = delete;
  hashing_slot& operator=(const hashing_slot&) = delete;
};

}  // namespace

std::string hash_password(std::string_view password) {
  unsigned char salt[kSaltBytes];
  if (RAND_bytes(salt, sizeof salt) != 1) throw std::runtime_error("the random number generator failed");
  const std::size_t length = argon2_encodedlen(kPasses, kMemoryKiB, kLanes, kSaltBytes, kHashBytes, Argon2_id);
  std::string encoded(length, '\0');
  const hashing_slot slot;
  const int rc = argon2id_hash_encoded(kPasses, kMemoryKiB, kLanes, password.data(), password.size(), salt,
                                       sizeof salt, kHashBytes, encoded.data(), encoded.size());
  if (rc != ARGON2_OK) throw std::runtime_error(std::string("argon2: ") + argon2_error_message(rc));
  encoded.resize(encoded.find('\0'));
  return encoded;
}

bool verify_password(std::string_view encoded, std::string_view password) {
  if (!encoded.starts_with("$argon2id$")) return false;
  const std::string z(encoded);  // argon2 wants a NUL-terminated string
  // argon2_verify compares in constant time.
  const hashing_slot slot;
  return argon2id_verify(z.c_str(), password.data(), password.size()) == ARGON2_OK;
}

}  // namespace berth::auth
