// ES256 signature encodings: JWS carries r||s as two 32-byte big-endian integers (RFC 7518 §3.4);
// OpenSSL's EVP_DigestSign/Verify speak DER ECDSA-Sig-Value. Internal to berth_auth and its tests.
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace berth::auth {

inline constexpr std::size_t kEs256SignatureSize = 64;

// The 64-byte r||s of a DER signature, or nullopt when `der` is not one or r or s exceed 32 bytes.
std::optional<std::string> es256_der_to_jws(std::string_view der);
// The DER encoding of a 64-byte r||s, or nullopt when `jws` is not 64 bytes.
std::optional<std::string> es256_jws_to_der(std::string_view jws);

}  // namespace berth::auth
