// A small blocking HTTPS client for configuration that lives on other servers: an OIDC issuer's
// discovery document and JWKS. One GET, no redirects, a size cap and a deadline; the peer's
// certificate is verified (system trust store, or a PEM bundle for private CAs) against the host.
// Thread-safety: https_get is thread-safe (each call has its own io_context). It blocks: call it
// from a blocking pool or at start-up, never on an I/O thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "core/error.h"

namespace berth::http {

struct fetch_options {
  std::string ca_file;  // PEM bundle to trust instead of the system store ("" = system store)
  std::chrono::milliseconds timeout{10'000};
  std::size_t max_bytes = 1 << 20;
};

// The body of a 200 answer to GET `url` (https://host[:port]/path). Fails with errc::unavailable
// and a detail naming the URL and the cause (bad URL, DNS, TLS verification, status, size, timeout).
result<std::string> https_get(std::string_view url, const fetch_options& options = {});

}  // namespace berth::http
