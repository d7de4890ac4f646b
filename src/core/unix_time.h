// The wall clock as the stored and signed data holds it: whole seconds since the Unix epoch (robot
// expiries, token iat/exp, creation dates), or milliseconds where ordering within a second matters.
// Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>

namespace berth {

inline std::int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Milliseconds since the epoch: when a tag was pushed (tag records).
inline std::int64_t unix_millis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace berth
