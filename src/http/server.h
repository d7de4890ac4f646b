// The HTTP/1.1 server: acceptor, one coroutine per connection (which owns the connection), a strand
// per connection, keep-alive, optional TLS. A TLS ClientHello on a plain-HTTP port gets 400 and a
// close at once. Bodies are never buffered by the server: the handler reads them through `request`.
// Framing the server refuses (400 and a close): a Transfer-Encoding other than `chunked` alone (501
// when it ends in chunked), Transfer-Encoding with Content-Length, no or several Host on HTTP/1.1,
// obs-fold. A body read or a response write that makes no progress for `body_idle_timeout` ends
// the request (408 when it was the body) and the connection. Past `max_connections`, or
// `max_connections_per_address` from one address, the least recently used idle keep-alive
// connection is closed to make room (of that address, for the second cap); when there is none, the
// new connection's request is answered 503 (429 for the address cap) with Retry-After, and closed;
// with a quarter of max_connections such answers already in flight, it is closed at once.
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
  std::chrono::seconds body_idle_timeout{30};  // no byte of a body in or out for this long: closed
  std::size_t max_connections = 0;              // 0: default_max_connections()
  std::size_t max_connections_per_address = 0;  // 0: a quarter of max_connections
};

// A connection may hold two descriptors (its socket, and the blob file or upload it serves): half of
// what RLIMIT_NOFILE leaves after a reserve for the rest of the process, at most 4096, at least 1.
std::size_t default_max_connections();

class server {
 public:
  // Sets SIGPIPE to be ignored, for the whole process (see server.cc).
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
  // The connections open now (berth_connections_open). Thread-safe.
  std::size_t open_connections() const;

 private:
  struct state;
  std::shared_ptr<state> state_;
};

}  // namespace berth::http
