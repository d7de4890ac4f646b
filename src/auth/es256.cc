#include "auth/es256.h"

#include "auth/openssl_ptr.h"

namespace berth::auth {
namespace {

constexpr int kCoordinateSize = kEs256SignatureSize / 2;

const unsigned char* bytes_of(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

}  // namespace

std::optional<std::string> es256_der_to_jws(std::string_view der) {
  const unsigned char* p = bytes_of(der);
  const ecdsa_sig_ptr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  if (!sig || p != bytes_of(der) + der.size()) return std::nullopt;
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  std::string out(kEs256SignatureSize, '\0');
  auto* raw = reinterpret_cast<unsigned char*>(out.data());
  if (BN_bn2binpad(r, raw, kCoordinateSize) != kCoordinateSize ||
      BN_bn2binpad(s, raw + kCoordinateSize, kCoordinateSize) != kCoordinateSize)
    return std::nullopt;
  return out;
}

std::optional<std::string> es256_jws_to_der(std::string_view jws) {
  if (jws.size() != kEs256SignatureSize) return std::nullopt;
  bignum_ptr r(BN_bin2bn(bytes_of(jws), kCoordinateSize, nullptr));
  bignum_ptr s(BN_bin2bn(bytes_of(jws) + kCoordinateSize, kCoordinateSize, nullptr));
  ecdsa_sig_ptr sig(ECDSA_SIG_new());
  if (!r || !s || !sig) return std::nullopt;
  ECDSA_SIG_set0(sig.get(), r.release(), s.release());  // cannot fail with both non-null; takes them
  const int size = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (size <= 0) return std::nullopt;
  std::string der(static_cast<std::size_t>(size), '\0');
  auto* out = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_ECDSA_SIG(sig.get(), &out) != size) return std::nullopt;
  return der;
}

}  // namespace berth::auth
