// A small synchronous HTTP(S) client for the CLI's calls to the admin API (Boost.Beast).
// Thread-safety: none needed (the CLI is single-threaded).
#pragma once

#include <map>
#include <string>

namespace berth::cli {

struct http_reply {
  unsigned status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
};

// Sends one request to `base_url` + `target` ("http://host:port" or "https://host:port").
// Throws std::runtime_error with a short message when the registry cannot be reached.
http_reply http_call(const std::string& method, const std::string& base_url, const std::string& target,
                     const std::map<std::string, std::string>& headers, const std::string& body = {});

}  // namespace berth::cli
