// The token_service of tokens.h over ES256 JWTs (jwt.h), signed with the key kept in the data
// directory (created on first start).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "auth/tokens.h"

namespace berth::auth {

// Loads or creates the signing key at `key_path`. Throws std::runtime_error when the file exists but
// is not a usable key.
std::unique_ptr<token_service> make_jwt_token_service(const std::string& key_path, std::string service,
                                                      std::chrono::seconds access_lifetime,
                                                      std::chrono::seconds refresh_lifetime);

}  // namespace berth::auth
