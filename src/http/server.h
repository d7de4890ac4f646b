// The HTTP/1.1 server: acceptor, one coroutine per connection (which owns the connection), a strand
// per connection, keep-alive, optional TLS. A TLS ClientHello on a plain-HTTP port gets 400 and a
// close at once. Bodies are never buffered by the server: the handler reads them through `request`.
// Thread-safety: construct, listen(), start() and shutdown() from one thread; the handler is called
// concurrently from the io_context's threads.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "http/message.h"

namespace berth::http {

struct tls_files {
  std::string certificate;  // PEM chain
  std::string private_key;  // PEM
};

struct server_options {
  std::string listen = "127.0.0.1:5000";  // host:port; port 0 picks a free one; [::1]:5000 for IPv6
  std::optional<tls_files> tls;
  std::size_t max_header_bytes = 64 * 1024;
  std::chrono::seconds idle_timeout{120};  // a keep-alive connection with no request is closed
};

class server {
 public:
  server(asio::io_context& ioc, server_options options, handler h);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // Binds and listens. Returns the bound endpoint (the real port when 0 was asked).
  // Throws std::runtime_error when the address is malformed, in use, or TLS files do not load.
  asio::ip::tcp::endpoint listen();
  // Starts accepting on the io_context. REQUIRES: listen() succeeded.
  void start();
  // Stops accepting and closes idle connections; requests in flight run to completion (their
  // connections close afterwards). After `grace`, the remaining connections are closed by force.
  // The io_context's run() returns once every connection is gone.
  void shutdown(std::chrono::milliseconds grace);

 private:
  struct state;
  std::shared_ptr<state> state_;
};

}  // namespace berth::http
