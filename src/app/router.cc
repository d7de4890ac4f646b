#include "app/router.h"

#include "api/errors.h"

namespace berth::app {

void router::mount(std::string prefix, http::handler h) { mounts_.push_back({std::move(prefix), std::move(h)}); }

const http::handler* router::find(std::string_view path) const {
  const mount_point* best = nullptr;
  for (const auto& m : mounts_) {
    if (!path.starts_with(m.prefix)) continue;
    if (path.size() != m.prefix.size() && path[m.prefix.size()] != '/') continue;
    if (best == nullptr || m.prefix.size() > best->prefix.size()) best = &m;
  }
  return best != nullptr ? &best->handle : nullptr;
}

http::asio::awaitable<http::response> router::operator()(http::request& req) const {
  if (const auto* h = find(req.path())) co_return co_await (*h)(req);
  co_return api::error_response(error{errc::not_found, "no such endpoint"});
}

}  // namespace berth::app
