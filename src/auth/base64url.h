// base64url without padding (RFC 4648 §5, as JWS uses it; RFC 7515 §2). Internal to berth_auth.
// Decoding is strict, so that one byte string has exactly one encoding: only [A-Za-z0-9_-], no
// padding, no whitespace, no length of 4n+1, and the unused low bits of the last character are zero.
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace berth::auth {

std::string base64url_encode(std::string_view bytes);
// The decoded bytes, or nullopt when `text` is not strict base64url.
std::optional<std::string> base64url_decode(std::string_view text);

}  // namespace berth::auth
