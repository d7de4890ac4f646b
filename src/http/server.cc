#include "http/server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cerrno>
#include <cstring>
#include <charconv>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <type_traits>
#include <unordered_map>
#include <vector>

namespace berth::http {
namespace {

namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using parser_type = bhttp::request_parser<bhttp::buffer_body>;

// Expected network errors are values, not exceptions.
auto with(error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

constexpr std::size_t first_read_size = 4096;
constexpr std::size_t stream_piece = 256 * 1024;
constexpr std::size_t max_sendfile = 1 << 30;
// How long a closing connection with unread input is drained, so that our response is not
// destroyed by the RST the kernel sends when a socket is closed with unread data.
constexpr std::chrono::milliseconds linger_time{500};
constexpr std::string_view tls_on_plain_body = "this port speaks plain HTTP\n";

class live_connection;

// Everything the acceptor and the connections share; it outlives the server object while
// coroutines still run. Thread-safety: `stopping` and `live` are guarded by `mutex`; the acceptor
// is used on its own strand, the grace timer on `control`.
struct shared_state : std::enable_shared_from_this<shared_state> {
  shared_state(asio::io_context& io, server_options o, handler h)
      : ioc(io),
        options(std::move(o)),
        handle(std::move(h)),
        acceptor(asio::make_strand(io)),
        control(asio::make_strand(io)),
        grace_timer(control) {}

  tcp::endpoint listen();
  void start();
  void shutdown(std::chrono::milliseconds grace);
  // Registers a new connection; returns whether the server is stopping (the caller then asks it
  // to stop after the request it may already have sent).
  bool enroll(const std::shared_ptr<live_connection>& c);
  void withdraw(const live_connection* c);

  asio::io_context& ioc;
  const server_options options;
  const handler handle;
  tcp::acceptor acceptor;
  std::optional<asio::ssl::context> tls;
  asio::strand<asio::io_context::executor_type> control;
  asio::steady_timer grace_timer;
  std::mutex mutex;
  bool stopping = false;
  std::chrono::milliseconds grace{0};
  bool grace_armed = false;
  std::unordered_map<const live_connection*, std::weak_ptr<live_connection>> live;

 private:
  static asio::awaitable<void> accept_loop(std::shared_ptr<shared_state> self);
  void serve(tcp::socket socket);
  template <class Connection, class... StreamArgs>
  void spawn(std::string remote, StreamArgs&&... stream_args);
  void stop_all(bool force);
  void arm_grace_timer();  // REQUIRES: `mutex` held, `stopping`
};

// A connection as the registry sees it, so that shutdown() can reach it.
class live_connection {
 public:
  explicit live_connection(std::shared_ptr<shared_state> s) : state_(std::move(s)) {}
  virtual ~live_connection() { state_->withdraw(this); }
  live_connection(const live_connection&) = delete;
  live_connection& operator=(const live_connection&) = delete;

  // REQUIRES: called on executor(). Polite: close now if waiting for a request, else after the
  // response in progress. Force: close now, failing whatever I/O is pending.
  virtual void stop(bool force) = 0;
  virtual asio::any_io_executor executor() = 0;

 protected:
  std::shared_ptr<shared_state> state_;
};

error body_error(const error_code& ec) {
  spdlog::debug("http: reading a request body failed: {}", ec.message());
  if (ec.category() == bhttp::make_error_code(bhttp::error::partial_message).category()) {
    return error{errc::size_invalid, "the request body is shorter than announced or badly framed"};
  }
  return error{errc::blob_upload_invalid, "the connection failed while reading the body"};
}

// The body of the request being served, read from the connection's stream. One per connection (so
// its scratch buffer is reused); bound to each request in turn. A Content-Length body bypasses the
// parser: after the bytes already buffered with the header, it is read straight into the caller's
// buffer, one system call per piece of up to 1 MiB, instead of through the parser's small buffer
// (4 KiB reads and a copy each: a 1 GiB upload cost 260,000 reads). Chunked bodies need the parser.
template <class Stream>
class parser_source final : public body_source {
 public:
  parser_source(Stream& stream, beast::flat_buffer& buffer) : stream_(stream), buffer_(buffer) {}

  // `expect_continue`: the client waits for "100 Continue" before sending the body.
  void bind(parser_type* parser, bool expect_continue) {
    parser_ = parser;
    continue_pending_ = expect_continue;
    remaining_.reset();
    if (parser != nullptr && !parser->chunked() && parser->content_length()) remaining_ = *parser->content_length();
  }

  // Whether the whole body has been read (the connection may then serve another request).
  bool done() const { return remaining_ ? *remaining_ == 0 : parser_ == nullptr || parser_->is_done(); }

  asio::awaitable<result<std::size_t>> read_some(std::span<char> buf) override {
    if (parser_ == nullptr || done() || buf.empty()) co_return 0;
    error_code ec;
    if (continue_pending_) {
      continue_pending_ = false;
      static constexpr std::string_view line = "HTTP/1.1 100 Continue\r\n\r\n";
      co_await asio::async_write(stream_, asio::buffer(line.data(), line.size()), with(ec));
      if (ec) co_return std::unexpected(body_error(ec));
    }
    if (remaining_) {
      const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), *remaining_));
      std::size_t n = 0;
      if (buffer_.size() > 0) {  // body bytes that arrived with the header
        n = asio::buffer_copy(asio::buffer(buf.data(), want), buffer_.data());
        buffer_.consume(n);
      } else {
        n = co_await stream_.async_read_some(asio::buffer(buf.data(), want), with(ec));
        if (ec == asio::error::eof) ec = bhttp::error::partial_message;
        if (ec) co_return std::unexpected(body_error(ec));
      }
      *remaining_ -= n;
      co_return n;
    }
    // Chunked: a read can parse only framing (a chunk header); go on until body bytes or the end arrive.
    if (buffer_.capacity() < chunked_read_size) buffer_.reserve(chunked_read_size);
    for (;;) {
      auto& body = parser_->get().body();
      body.data = buf.data();
      body.size = buf.size();
      co_await bhttp::async_read_some(stream_, buffer_, *parser_, with(ec));
      if (ec == bhttp::error::need_buffer) ec = {};  // `buf` is full
      if (ec) co_return std::unexpected(body_error(ec));
      std::size_t n = buf.size() - body.size;
      if (n > 0 || parser_->is_done()) co_return n;
    }
  }

 private:
  // Beast reads as much as the buffer's free capacity (up to 64 KiB): give chunked bodies that much.
  static constexpr std::size_t chunked_read_size = 64 * 1024;

  Stream& stream_;
  beast::flat_buffer& buffer_;
  parser_type* parser_ = nullptr;
  std::optional<std::uint64_t> remaining_;  // Content-Length bodies: bytes still to read
  bool continue_pending_ = false;
};

// Moves the handler's headers into a Beast message; Content-Length is the server's to set.
template <class Body, class... BodyArgs>
bhttp::response<Body> make_message(response& res, bool keep, std::uint64_t length, BodyArgs&&... body) {
  bhttp::response_header<> head(std::move(res.headers));
  head.version(11);
  head.result(res.status);
  bhttp::response<Body> msg(std::move(head), std::forward<BodyArgs>(body)...);
  msg.keep_alive(keep);
  // RFC 9110 8.6: no Content-Length on 1xx and 204; 304 describes another response.
  bool bodiless = res.status < 200 || res.status == 204 || res.status == 304;
  msg.content_length(bodiless ? boost::none : boost::optional<std::uint64_t>(length));
  return msg;
}

// One connection: the coroutine run() owns it (through the shared_ptr in its frame) and every
// step runs on the stream's strand.
template <class Stream>
class connection final : public live_connection {
 public:
  template <class... StreamArgs>
  connection(std::shared_ptr<shared_state> s, std::string remote, StreamArgs&&... stream_args)
      : live_connection(std::move(s)),
        stream_(std::forward<StreamArgs>(stream_args)...),
        source_(stream_, buffer_),
        remote_(std::move(remote)) {}

  static asio::awaitable<void> run(std::shared_ptr<connection> self) {
    // GCC 12 miscompiles co_await inside conditions: every await here is a plain statement.
    bool open = co_await self->open();
    while (open && (!self->stop_requested_ || self->request_arriving())) {
      open = co_await self->serve_one();
    }
    co_await self->close();
  }

  void stop(bool force) override {
    stop_requested_ = true;
    if (force || (idle_ && !request_arriving())) tcp().close();
  }

  asio::any_io_executor executor() override { return stream_.get_executor(); }

 private:
  static constexpr bool is_tls = !std::is_same_v<Stream, beast::tcp_stream>;

  beast::tcp_stream& tcp() { return beast::get_lowest_layer(stream_); }

  // A request that has reached us, even in part, is served before the connection closes: a client
  // cannot tell "closed while idle" from "closed after I sent my request". A new connection counts
  // as arriving (clients connect, then write); the grace timer bounds both.
  bool request_arriving() {
    error_code ec;
    return served_ == 0 || buffer_.size() > 0 || tcp().socket().available(ec) > 0;
  }

  // TLS: the handshake. Plain: looks at the first byte, and turns a TLS ClientHello away at once
  // (clients probing with verification off would otherwise wait for a timeout).
  asio::awaitable<bool> open() {
    error_code ec;
    tcp().expires_after(state_->options.idle_timeout);
    if constexpr (is_tls) {
      co_await stream_.async_handshake(asio::ssl::stream_base::server, with(ec));
      co_return !ec;
    } else {
      std::size_t n = co_await stream_.async_read_some(buffer_.prepare(first_read_size), with(ec));
      if (ec) co_return false;
      buffer_.commit(n);
      if (static_cast<const unsigned char*>(buffer_.data().data())[0] == 0x16) {
        co_await reject("400 Bad Request", tls_on_plain_body);
        co_return false;
      }
      co_return true;
    }
  }

  // Serves one request. Returns whether the connection stays open for another.
  asio::awaitable<bool> serve_one() {
    parser_type parser;
    parser.header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(state_->options.max_header_bytes, UINT32_MAX)));
    // The handler decides. Not boost::none: Boost 1.74 compares a Content-Length against an empty
    // optional as greater, and fails every body.
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());

    error_code ec;
    idle_ = true;
    tcp().expires_after(state_->options.idle_timeout);
    co_await bhttp::async_read_header(stream_, buffer_, parser, with(ec));
    idle_ = false;
    if (ec) {
      co_await refuse_header(ec);
      co_return false;
    }
    tcp().expires_never();  // a handler may take long: a 5 GiB upload
    ++served_;

    auto& msg = parser.get();
    bool keep = parser.keep_alive() && msg.version() >= 11;
    source_.bind(&parser, msg.version() >= 11 && beast::iequals(msg[bhttp::field::expect], "100-continue"));
    auto length = parser.content_length();
    std::string target(msg.target());  // before the fields move: they hold the target's storage
    request req(msg.method(), std::move(target), std::move(static_cast<bhttp::fields&>(msg)),
                length ? std::optional<std::uint64_t>(*length) : std::nullopt, parser.chunked(), remote_,
                &source_);

    response res = co_await call_handler(req, keep);
    if (!source_.done()) {
      keep = false;
      drain_on_close_ = true;  // the client may still be sending the body
    }
    keep = keep && !stop_requested_;
    bool written = co_await write_response(res, req.method() == bhttp::verb::head, keep);
    source_.bind(nullptr, false);
    co_return written && keep;
  }

  // Returns the handler's response, or 500 (and keep = false) when it throws.
  asio::awaitable<response> call_handler(request& req, bool& keep) {
    std::string what;
    try {
      co_return co_await state_->handle(req);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
      what = "unknown exception";
    }
    spdlog::error("http: handler failed on {} {}: {}", bhttp::to_string(req.method()), req.path(), what);
    keep = false;
    response res;
    res.status = 500;
    co_return res;
  }

  // Answers a request whose header could not be read, when there is anyone to answer.
  asio::awaitable<void> refuse_header(const error_code& ec) {
    if (ec == bhttp::error::header_limit) {
      co_await reject("431 Request Header Fields Too Large", {});
    } else if (ec != bhttp::error::end_of_stream &&
               ec.category() == bhttp::make_error_code(bhttp::error::bad_target).category()) {
      co_await reject("400 Bad Request", {});
    }
  }

  // Sends a fixed response and marks the connection for a draining close.
  asio::awaitable<void> reject(std::string_view status_line, std::string_view body) {
    std::string raw = fmt::format(
        "HTTP/1.1 {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        status_line, body.size(), body);
    error_code ec;
    co_await asio::async_write(stream_, asio::buffer(raw), with(ec));
    drain_on_close_ = true;
  }

  // Returns false when the connection broke and must close.
  asio::awaitable<bool> write_response(response& res, bool head, bool keep) {
    if (head || res.stream) {
      std::uint64_t length = res.stream ? res.stream->length : res.body.size();
      if (head) length = res.head_length.value_or(length);
      auto msg = make_message<bhttp::empty_body>(res, keep, length);
      bool written = co_await write(msg);
      if (!written || head) co_return written;
      co_return co_await send_stream(*res.stream);
    }
    std::uint64_t length = res.body.size();
    auto msg = make_message<bhttp::string_body>(res, keep, length, std::move(res.body));
    co_return co_await write(msg);
  }

  template <class Message>
  asio::awaitable<bool> write(Message& msg) {
    error_code ec;
    co_await bhttp::async_write(stream_, msg, with(ec));
    co_return !ec || ec == bhttp::error::end_of_stream;  // end_of_stream: "now close", not a failure
  }

  // sendfile(2) when the reader has a file and the connection is plain TCP; otherwise read into
  // the connection's scratch buffer and write (TLS must encrypt in user space anyway).
  asio::awaitable<bool> send_stream(const streamed_body& b) {
    if constexpr (!is_tls) {
      if (b.reader->native_handle() >= 0) co_return co_await send_file_plain(b.reader->native_handle(), b);
    }
    co_return co_await send_read(b);
  }

  // sendfile(2) on the non-blocking socket: no copy through user space.
  asio::awaitable<bool> send_file_plain(int fd, const streamed_body& b) {
    auto& sock = tcp().socket();
    error_code ec;
    sock.native_non_blocking(true, ec);
    if (ec) co_return false;
    off_t offset = static_cast<off_t>(b.offset);
    std::uint64_t left = b.length;
    while (left > 0) {
      ssize_t n = ::sendfile(sock.native_handle(), fd, &offset, std::min<std::uint64_t>(left, max_sendfile));
      if (n > 0) {
        left -= static_cast<std::uint64_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        co_await sock.async_wait(tcp::socket::wait_write, with(ec));
        if (ec) co_return false;
      } else {
        log_file_failure(n, left);
        co_return false;
      }
    }
    co_return true;
  }

  asio::awaitable<bool> send_read(const streamed_body& b) {
    std::span<char> buf = source_.scratch().first(stream_piece);
    std::uint64_t offset = b.offset;
    std::uint64_t left = b.length;
    while (left > 0) {
      auto n = co_await b.reader->read(offset, buf.first(std::min<std::uint64_t>(left, buf.size())));
      if (!n) co_return false;  // the reader logged why
      if (*n == 0) {
        log_file_failure(0, left);
        co_return false;
      }
      error_code ec;
      co_await asio::async_write(stream_, asio::buffer(buf.data(), *n), with(ec));
      if (ec) co_return false;
      offset += *n;
      left -= *n;
    }
    co_return true;
  }

  void log_file_failure(ssize_t n, std::uint64_t left) {
    // A client going away is routine; a file shorter than its slice is a bug upstream.
    if (n == 0) {
      spdlog::error("http: file body ended {} bytes early; closing the connection", left);
    } else {
      spdlog::debug("http: sending a file body failed: {}", std::strerror(errno));
    }
  }

  asio::awaitable<void> close() {
    auto& sock = tcp().socket();
    if (drain_on_close_ && sock.is_open()) {
      // Half-close and read what the client still sends, so that it sees our response.
      error_code ec;
      sock.shutdown(tcp::socket::shutdown_send, ec);
      idle_ = true;
      tcp().expires_after(linger_time);
      while (!ec) {
        co_await tcp().async_read_some(buffer_.prepare(first_read_size), with(ec));
      }
    }
    tcp().close();
  }

  Stream stream_;
  beast::flat_buffer buffer_;  // kept across requests: it may hold the next pipelined request
  parser_source<Stream> source_;
  std::string remote_;
  bool idle_ = true;  // waiting for a request: shutdown() may close at once
  std::uint64_t served_ = 0;  // requests whose header was read
  bool stop_requested_ = false;
  bool drain_on_close_ = false;
};

void log_failure(const std::exception_ptr& e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    spdlog::error("http: connection failed: {}", x.what());
  } catch (...) {
    spdlog::error("http: connection failed");
  }
}

std::uint16_t parse_port(std::string_view spec, std::string_view port) {
  std::uint16_t value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc{} || end != port.data() + port.size()) {
    throw std::runtime_error(fmt::format("listen address '{}': bad port '{}'", spec, port));
  }
  return value;
}

// "host:port", "[v6]:port" or ":port" (all IPv4 interfaces). A host name is resolved once.
tcp::endpoint parse_listen_address(asio::io_context& ioc, std::string_view spec) {
  std::string_view host;
  std::string_view port;
  if (spec.starts_with('[')) {
    auto close = spec.find(']');
    if (close == std::string_view::npos || spec.substr(close + 1, 1) != ":") {
      throw std::runtime_error(fmt::format("listen address '{}': expected [address]:port", spec));
    }
    host = spec.substr(1, close - 1);
    port = spec.substr(close + 2);
  } else {
    auto colon = spec.rfind(':');
    if (colon == std::string_view::npos || spec.substr(0, colon).find(':') != std::string_view::npos) {
      throw std::runtime_error(fmt::format("listen address '{}': expected host:port or [address]:port", spec));
    }
    host = spec.substr(0, colon);
    port = spec.substr(colon + 1);
  }
  std::uint16_t number = parse_port(spec, port);
  if (host.empty()) return {asio::ip::address_v4::any(), number};
  error_code ec;
  auto address = asio::ip::make_address(std::string(host), ec);
  if (!ec) return {address, number};
  tcp::resolver resolver(ioc);
  auto results = resolver.resolve(std::string(host), std::string(port), ec);
  if (ec || results.empty()) {
    throw std::runtime_error(fmt::format("listen address '{}': cannot resolve '{}': {}", spec, host, ec.message()));
  }
  return results.begin()->endpoint();
}

asio::ssl::context make_tls_context(const tls_files& files) {
  asio::ssl::context ctx(asio::ssl::context::tls_server);
  ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                  asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                  asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
  error_code ec;
  ctx.use_certificate_chain_file(files.certificate, ec);
  if (ec) throw std::runtime_error(fmt::format("TLS certificate '{}': {}", files.certificate, ec.message()));
  ctx.use_private_key_file(files.private_key, asio::ssl::context::pem, ec);
  if (ec) throw std::runtime_error(fmt::format("TLS private key '{}': {}", files.private_key, ec.message()));
  return ctx;
}

tcp::endpoint shared_state::listen() {
  tcp::endpoint endpoint = parse_listen_address(ioc, options.listen);
  if (options.tls) tls.emplace(make_tls_context(*options.tls));
  auto check = [&](const error_code& ec, std::string_view step) {
    if (ec) throw std::runtime_error(fmt::format("cannot listen on '{}' ({}): {}", options.listen, step, ec.message()));
  };
  error_code ec;
  acceptor.open(endpoint.protocol(), ec);
  check(ec, "socket");
  acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  check(ec, "SO_REUSEADDR");
  acceptor.bind(endpoint, ec);
  check(ec, "bind");
  acceptor.listen(asio::socket_base::max_listen_connections, ec);
  check(ec, "listen");
  auto bound = acceptor.local_endpoint(ec);
  check(ec, "local address");
  return bound;
}

void shared_state::start() { asio::co_spawn(acceptor.get_executor(), accept_loop(shared_from_this()), log_failure); }

asio::awaitable<void> shared_state::accept_loop(std::shared_ptr<shared_state> self) {
  asio::steady_timer backoff(self->acceptor.get_executor());
  for (;;) {
    error_code ec;
    tcp::socket socket = co_await self->acceptor.async_accept(asio::make_strand(self->ioc), with(ec));
    // A connection accepted just before shutdown closed the acceptor is still served.
    if (!ec) self->serve(std::move(socket));
    if (!self->acceptor.is_open()) co_return;
    if (!ec) continue;
    // Out of descriptors and the like: pause rather than spin on the same error.
    spdlog::warn("http: accept failed: {}", ec.message());
    backoff.expires_after(std::chrono::milliseconds(50));
    co_await backoff.async_wait(with(ec));
  }
}

void shared_state::serve(tcp::socket socket) {
  error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  auto peer = socket.remote_endpoint(ec);
  std::string remote = ec ? std::string() : peer.address().to_string();
  if (tls) {
    spawn<connection<beast::ssl_stream<beast::tcp_stream>>>(std::move(remote), std::move(socket), *tls);
  } else {
    spawn<connection<beast::tcp_stream>>(std::move(remote), std::move(socket));
  }
}

template <class Connection, class... StreamArgs>
void shared_state::spawn(std::string remote, StreamArgs&&... stream_args) {
  auto c = std::make_shared<Connection>(shared_from_this(), std::move(remote), std::forward<StreamArgs>(stream_args)...);
  bool stop = enroll(c);
  auto ex = c->executor();
  asio::co_spawn(ex, Connection::run(c), log_failure);
  if (stop) asio::post(ex, [c] { c->stop(false); });
}

bool shared_state::enroll(const std::shared_ptr<live_connection>& c) {
  std::lock_guard lock(mutex);
  live.emplace(c.get(), c);
  if (stopping) arm_grace_timer();
  return stopping;
}

void shared_state::arm_grace_timer() {
  if (grace_armed) return;
  grace_armed = true;
  asio::post(control, [self = shared_from_this()] {
    self->grace_timer.expires_after(self->grace);
    self->grace_timer.async_wait([self](error_code ec) {
      if (!ec) self->stop_all(true);
    });
  });
}

void shared_state::withdraw(const live_connection* c) {
  std::lock_guard lock(mutex);
  live.erase(c);
  // The last connection is gone: nothing is left for the grace timer to force, and a pending
  // timer would keep run() from returning. Posted under the mutex, so after shutdown()'s arming.
  if (stopping && live.empty()) {
    asio::post(control, [self = shared_from_this()] { self->grace_timer.cancel(); });
  }
}

// Connections the kernel has already completed wait in the listen backlog, and their clients may
// have sent a request: they are accepted and served like the others before the acceptor closes
// (closing it would reset them). Runs on the acceptor's strand, so the accept loop is not in a step.
void shared_state::shutdown(std::chrono::milliseconds grace_period) {
  asio::post(acceptor.get_executor(), [self = shared_from_this(), grace_period] {
    error_code ec;
    self->acceptor.non_blocking(true, ec);
    while (!ec) {
      tcp::socket socket = self->acceptor.accept(asio::make_strand(self->ioc), ec);
      if (!ec) self->serve(std::move(socket));
    }
    self->acceptor.close(ec);
    {
      std::lock_guard lock(self->mutex);
      if (self->stopping) return;
      self->stopping = true;
      self->grace = grace_period;
      if (!self->live.empty()) self->arm_grace_timer();
    }
    self->stop_all(false);
  });
}

void shared_state::stop_all(bool force) {
  std::vector<std::shared_ptr<live_connection>> connections;
  {
    std::lock_guard lock(mutex);
    connections.reserve(live.size());
    for (auto& [key, weak] : live) {
      if (auto c = weak.lock()) connections.push_back(std::move(c));
    }
  }
  for (auto& c : connections) {
    asio::post(c->executor(), [c, force] { c->stop(force); });
  }
}

}  // namespace

struct server::state : shared_state {
  using shared_state::shared_state;
};

server::server(asio::io_context& ioc, server_options options, handler h)
    : state_(std::make_shared<state>(ioc, std::move(options), std::move(h))) {}

server::~server() = default;

asio::ip::tcp::endpoint server::listen() { return state_->listen(); }

void server::start() { state_->start(); }

void server::shutdown(std::chrono::milliseconds grace) { state_->shutdown(grace); }

}  // namespace berth::http
