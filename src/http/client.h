// A small blocking HTTP(S) client (Boost.Beast): the CLI's calls to the admin API, and the OIDC
// issuer documents the federation fetches (discovery document, JWKS). One request per connection,
// no redirects, a size cap and one deadline for the whole exchange; over https the peer's
// certificate is verified (system trust store, or a PEM bundle for private CAs) against the host.
// Thread-safety: both functions are thread-safe (each call has its own io_context). They block:
// call them from a blocking pool, at start-up or in the CLI, never on an I/O thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <string>
#include <string_view>

#include "core/error.h"

namespace berth::http {

struct client_options {
  std::string ca_file;  // PEM bundle to trust instead of the system store ("" = system store)
  std::chrono::milliseconds timeout{10'000};
  std::size_t max_bytes = 1 << 20;  // of the answer's body
};

struct client_reply {
  unsigned status = 0;
  std::string body;
};

// Sends `method` to `url` (http:// or https://host[:port][/path?query]) and returns the answer,
// whatever its status. Fails with errc::unavailable and a detail "METHOD URL: cause" (bad URL, DNS,
// connection, TLS verification, size, timeout).
result<client_reply> send_request(std::string_view method, std::string_view url,
                                  const std::map<std::string, std::string>& headers = {}, std::string body = {},
                                  const client_options& options = {});

// The body of a 200 answer to GET `url`, which must be https://. Fails like send_request, and when
// the status is not 200.
result<std::string> https_get(std::string_view url, const client_options& options = {});

}  // namespace berth::http
