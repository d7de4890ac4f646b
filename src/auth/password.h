// Password hashing with argon2id (libargon2), in the PHC string format
// ($argon2id$v=19$m=...,t=...,p=...$salt$hash), so parameters can change without a migration.
// Hashing is deliberately slow (tens of milliseconds): call it through blocking_pool, never on an
// I/O thread. Thread-safety: both functions are thread-safe; at most two hash at once (19 MiB each),
// the other callers wait.
#pragma once

#include <string>
#include <string_view>

namespace berth::auth {

// The PHC-encoded argon2id hash of `password` with a fresh random salt. Throws std::runtime_error
// when hashing fails (out of memory).
std::string hash_password(std::string_view password);

// True when `password` matches `encoded`. False for a malformed or non-argon2id `encoded`.
bool verify_password(std::string_view encoded, std::string_view password);

}  // namespace berth::auth
