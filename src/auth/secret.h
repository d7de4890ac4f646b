// Secrets: random tokens and passwords, digests of them for storage, constant-time comparison.
// Thread-safety: every function is thread-safe (OpenSSL's RAND_bytes is).
#pragma once

#include <string>
#include <string_view>

namespace berth::auth {

// `bytes` random bytes from the OS CSPRNG, base64url without padding. Throws std::runtime_error
// when the generator fails (never silently weak).
std::string random_urlsafe(std::size_t bytes);

// A random password for the first administrator: 24 characters of base64url (144 bits).
std::string random_password();

// SHA-256 of `data`, lower-case hex. For 256-bit random tokens a plain hash is enough: there is
// nothing to brute-force.
std::string sha256_hex(std::string_view data);

// HMAC-SHA256 of `data` under `key`, raw bytes.
std::string hmac_sha256(std::string_view key, std::string_view data);

// Compares in time that depends only on the lengths (CRYPTO_memcmp).
bool constant_time_equal(std::string_view a, std::string_view b);

// base64 (standard alphabet, padded), as in Basic credentials.
std::string base64_encode(std::string_view data);
// Standard base64 back to bytes (padding allowed); false on bad input. For base64url, see base64url.h.
bool base64_decode(std::string_view text, std::string& out);

}  // namespace berth::auth
