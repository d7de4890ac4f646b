#include "auth/identity_store.h"

#include "auth/secret.h"

namespace berth::auth {

bool valid_account_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!(alnum || (i > 0 && (c == '.' || c == '_' || c == '-')))) return false;
  }
  return true;
}

std::string new_robot_token() { return std::string(robot_token_prefix) + random_urlsafe(32); }

// A plain hash suffices for a 256-bit random secret (nothing to brute-force), and a lookup by it
// reveals nothing usable through timing.
std::string robot_token_hash(std::string_view token) { return sha256_hex(token); }

}  // namespace berth::auth
