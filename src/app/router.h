// The top-level HTTP router: each part of Berth is mounted under a path prefix (/v2, /token and
// /api/v1 today; /health, /metrics and the web UI as they come), matched whole or at a '/' boundary
// ("/v2" takes /v2 and /v2/..., not /v2x); the longest prefix wins. Anything else is answered 404
// NOT_FOUND in the OCI error envelope.
// Thread-safety: mount() before the server starts; the call operator is then used concurrently.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "http/message.h"

namespace berth::app {

class router {
 public:
  void mount(std::string prefix, http::handler h);
  // Answers `req` with the handler mounted under its path.
  http::asio::awaitable<http::response> operator()(http::request& req) const;
  // The handler for `path`, or nullptr (exposed for tests).
  const http::handler* find(std::string_view path) const;

 private:
  struct mount_point {
    std::string prefix;
    http::handler handle;
  };
  std::vector<mount_point> mounts_;
};

}  // namespace berth::app
