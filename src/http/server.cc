#include "http/server.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
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
#include <charconv>
#include <csignal>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "core/background.h"

namespace berth::http {
namespace {

namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using parser_type = bhttp::request_parser<bhttp::buffer_body>;
using steady_clock = std::chrono::steady_clock;

// Expected network errors are values, not exceptions.
auto with(error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

constexpr std::size_t first_read_size = 4096;
constexpr std::size_t max_sendfile = 1 << 30;
// A blob file no longer in the page cache (pushed long ago, or before a restart) is read from the disk
// with about one read-ahead window (read_ahead_kb) in flight behind sendfile. A file body of at least
// `read_ahead_from` bytes asks the kernel (POSIX_FADV_WILLNEED) for the `read_ahead` bytes past
// what has been sent, so the disk streams while the socket drains (the first download of a blob
// written with O_DIRECT, as blobs were, bench/run --only download on a loaded VM: 0.21-0.33x
// Distribution before, 0.43-0.69x with it).
// The kernel reads at most max(read_ahead_kb, max_sectors_kb) per advice, so advice goes in pieces
// of `read_ahead_piece`. On a file in the page cache an advice is a lookup of its pages.
constexpr std::uint64_t read_ahead_from = 4 << 20;
constexpr std::uint64_t read_ahead = 32 << 20;
constexpr std::uint64_t read_ahead_piece = 1 << 20;
// How long a closing connection with unread input is drained, so that our response is not
// destroyed by the RST the kernel sends when a socket is closed with unread data.
constexpr std::chrono::milliseconds linger_time{500};
constexpr std::string_view tls_on_plain_body = "this port speaks plain HTTP\n";
// A connection past a cap: the time for its request header, the answer and the close.
constexpr std::chrono::seconds refusal_time{2};
constexpr std::string_view retry_after = "Retry-After: 5\r\n";
// Descriptors kept for the rest of the process (stores, log, event loop, listener) when the
// connection cap is derived from RLIMIT_NOFILE; an idle server holds about 20.
constexpr std::size_t reserved_descriptors = 32;
constexpr std::size_t max_default_connections = 4096;

// Why a new connection is turned away. Past max_refusing such answers in flight (each holds a
// descriptor for up to refusal_time), it is closed without one: a flood must not exhaust the
// descriptors that the caps protect.
enum class refusal { none, server_full, address_full, dropped };

class live_connection;

// Everything the acceptor and the connections share; it outlives the server object while
// coroutines still run. Thread-safety: `stopping` and `live` are guarded by `mutex`; the acceptor
// is used on its own strand, the grace timer on `control`.
struct shared_state : std::enable_shared_from_this<shared_state> {
  shared_state(asio::io_context& io, server_options o, handler h)
      : ioc(io),
        options(std::move(o)),
        handle(std::move(h)),
        max_connections(options.max_connections != 0 ? options.max_connections : default_max_connections()),
        max_per_address(options.max_connections_per_address != 0 ? options.max_connections_per_address
                                                                 : std::max<std::size_t>(1, max_connections / 4)),
        max_refusing(std::max<std::size_t>(1, max_connections / 4)),
        acceptor(asio::make_strand(io)),
        control(asio::make_strand(io)),
        grace_timer(control) {}

  tcp::endpoint listen();
  void start();
  void shutdown(std::chrono::milliseconds grace);
  struct admission {
    bool stopping;  // the caller then asks the connection to stop after the request it may have sent
    refusal refused;
  };
  // Registers a new connection and counts it against the caps, making room by closing an idle
  // keep-alive connection when one is at its cap; says whether it must be turned away instead.
  admission enroll(const std::shared_ptr<live_connection>& c);
  void withdraw(const live_connection* c);

  asio::io_context& ioc;
  const server_options options;
  const handler handle;
  const std::size_t max_connections;
  const std::size_t max_per_address;
  const std::size_t max_refusing;
  tcp::acceptor acceptor;
  std::optional<asio::ssl::context> tls;
  asio::strand<asio::io_context::executor_type> control;
  asio::steady_timer grace_timer;
  std::mutex mutex;
  bool stopping = false;
  std::chrono::milliseconds grace{0};
  bool grace_armed = false;
  std::unordered_map<const live_connection*, std::weak_ptr<live_connection>> live;
  std::size_t admitted = 0;  // live connections counted against the caps (not the ones turned away)
  std::unordered_map<std::string, std::size_t> admitted_from;  // by source address
  std::size_t refusing = 0;                                    // connections being answered 503 or 429

 private:
  static asio::awaitable<void> accept_loop(std::shared_ptr<shared_state> self);
  void serve(tcp::socket socket);
  template <class Connection, class... StreamArgs>
  void spawn(std::string remote, StreamArgs&&... stream_args);
  void stop_all(bool force);
  void arm_grace_timer();  // REQUIRES: `mutex` held, `stopping`
  // Asks the least recently used idle keep-alive connection (from `address` if given) to close.
  // Returns false when there is none. REQUIRES: `mutex` held.
  bool evict_idle(const std::string* address);
};

// A connection as the registry sees it, so that shutdown() and the caps can reach it.
class live_connection {
 public:
  live_connection(std::shared_ptr<shared_state> s, std::string remote)
      : state_(std::move(s)), remote_(std::move(remote)) {}
  virtual ~live_connection() { state_->withdraw(this); }
  live_connection(const live_connection&) = delete;
  live_connection& operator=(const live_connection&) = delete;

  // REQUIRES: called on executor(). Polite: close now if waiting for a request, else after the
  // response in progress. Force: close now, failing whatever I/O is pending.
  virtual void stop(bool force) = 0;
  virtual asio::any_io_executor executor() = 0;
  const std::string& remote() const { return remote_; }

  // Since when the connection has been waiting for another request after serving one (steady
  // clock ticks), 0 when it is not: the connections the caps may close. Set by the connection,
  // read and cleared by enroll() under the registry's mutex.
  std::atomic<steady_clock::rep> idle_since{0};
  enum class tally { none, admitted, refusing };
  tally counted = tally::none;  // where shared_state counts it; guarded by shared_state::mutex

 protected:
  std::shared_ptr<shared_state> state_;
  const std::string remote_;
};

// The wait on the peer in the middle of a message (a body read, a response write), which the
// connection's watchdog ends when it makes no progress for body_idle_timeout. One per connection,
// used on its strand.
struct peer_wait {
  std::optional<steady_clock::time_point> since;  // set while such a wait is pending
  bool expired = false;                           // the watchdog cancelled it

  void begin() {
    since = steady_clock::now();
    expired = false;
  }
  // Ends the wait; returns whether it failed because the watchdog cancelled it.
  bool end(const error_code& ec) {
    since.reset();
    return expired && ec == asio::error::operation_aborted;
  }
};

error body_error(const error_code& ec) {
  spdlog::debug("http: reading a request body failed: {}", ec.message());
  if (ec == beast::error::timeout) return error{errc::request_timeout, "no byte of the body arrived in time"};
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
  parser_source(Stream& stream, beast::flat_buffer& buffer, peer_wait& wait)
      : stream_(stream), buffer_(buffer), wait_(wait) {}

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
        wait_.begin();
        n = co_await stream_.async_read_some(asio::buffer(buf.data(), want), with(ec));
        if (wait_.end(ec)) ec = beast::error::timeout;
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
      wait_.begin();
      co_await bhttp::async_read_some(stream_, buffer_, *parser_, with(ec));
      if (wait_.end(ec)) ec = beast::error::timeout;
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
  peer_wait& wait_;
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

// A request the server answers itself, before any handler: a status line and a plain-text body.
struct refused_request {
  std::string_view status_line;
  std::string_view body;
};

// RFC 9112 framing checks that Beast 1.74 leaves to us. It frames a body as chunked when the last
// Transfer-Encoding is chunked ("gzip, chunked" too), ignores any other coding (the body of
// "xchunked" or "chunked, identity" then runs as the next request: smuggling, when a proxy in
// front framed it differently), and checks Host not at all. Conflicts it does see (Content-Length
// and chunked in either order, two chunked) fail the header read, which is answered 400.
std::optional<refused_request> framing_error(const bhttp::request_header<>& msg) {
  // 3.2: exactly one Host on HTTP/1.1, at most one before.
  const std::size_t hosts = msg.count(bhttp::field::host);
  if (hosts > 1 || (hosts == 0 && msg.version() >= 11)) {
    return refused_request{"400 Bad Request", "a request needs exactly one Host header\n"};
  }
  auto [first, last] = msg.equal_range(bhttp::field::transfer_encoding);
  if (first == last) return std::nullopt;
  // 6.1: a server may refuse both; whoever framed it by Content-Length disagrees with us.
  if (msg.count(bhttp::field::content_length) > 0 || msg.version() < 11) {
    return refused_request{"400 Bad Request", "Transfer-Encoding needs HTTP/1.1 and no Content-Length\n"};
  }
  std::vector<std::string_view> codings;
  for (auto it = first; it != last; ++it) {
    for (auto coding : bhttp::token_list(it->value())) codings.emplace_back(coding.data(), coding.size());
  }
  if (codings.size() == 1 && beast::iequals(codings.front(), "chunked")) return std::nullopt;
  // 6.3: without chunked last the length of the body cannot be known: 400 and a close. A coding
  // before chunked is one Berth does not decode: 501 (6.1).
  if (codings.empty() || !beast::iequals(codings.back(), "chunked")) {
    return refused_request{"400 Bad Request", "Transfer-Encoding must end in chunked\n"};
  }
  return refused_request{"501 Not Implemented", "the only transfer coding supported is chunked\n"};
}

// Whether a header's bytes fold a line (obs-fold: a line that starts with a space or a tab). Beast
// unfolds it; RFC 9112 5.2 lets a server refuse it instead, which keeps us reading the same fields
// as a proxy that does not unfold.
bool folded(asio::const_buffer header) {
  std::string_view text(static_cast<const char*>(header.data()), header.size());
  for (auto at = text.find('\n'); at != std::string_view::npos && at + 1 < text.size(); at = text.find('\n', at + 1)) {
    if (text[at + 1] == ' ' || text[at + 1] == '\t') return true;
  }
  return false;
}

void set_limits(parser_type& parser, std::size_t max_header_bytes) {
  parser.header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(max_header_bytes, UINT32_MAX)));
  // The handler decides. Not boost::none: Boost 1.74 compares a Content-Length against an empty
  // optional as greater, and fails every body.
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
}

// One connection: the coroutine run() owns it (through the shared_ptr in its frame) and every
// step runs on the stream's strand. A watchdog coroutine (watch()) times its waits on the peer.
template <class Stream>
class connection final : public live_connection {
 public:
  template <class... StreamArgs>
  connection(std::shared_ptr<shared_state> s, std::string remote, StreamArgs&&... stream_args)
      : live_connection(std::move(s), std::move(remote)),
        stream_(std::forward<StreamArgs>(stream_args)...),
        watchdog_(stream_.get_executor()),
        source_(stream_, buffer_, wait_) {}

  static asio::awaitable<void> run(std::shared_ptr<connection> self, refusal refused) {
    // GCC 12 miscompiles co_await inside conditions: every await here is a plain statement.
    if (refused == refusal::dropped) {
      self->tcp().close();
      co_return;
    }
    if (refused != refusal::none) {
      co_await self->refuse(refused);
      co_return;
    }
    struct end_watch {  // also when a step throws: the watchdog holds the connection until then
      connection& c;
      ~end_watch() {
        c.closed_ = true;
        c.watchdog_.cancel();
      }
    } guard{*self};
    asio::co_spawn(self->executor(), watch(self), asio::detached);
    self->tcp().expires_after(self->state_->options.idle_timeout);
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

  // Cancels a wait on the peer (a body read, a response write) that has made no progress for
  // body_idle_timeout; the waiting code sees peer_wait::end() return true. Wakes at least once per
  // timeout; ends when run() does.
  static asio::awaitable<void> watch(std::shared_ptr<connection> self) {
    const auto limit = self->state_->options.body_idle_timeout;
    peer_wait& wait = self->wait_;
    while (!self->closed_) {
      const bool timing = wait.since && !wait.expired;
      self->watchdog_.expires_at(timing ? *wait.since + limit : steady_clock::now() + limit);
      error_code ec;
      co_await self->watchdog_.async_wait(with(ec));
      if (self->closed_ || !wait.since || wait.expired || steady_clock::now() - *wait.since < limit) continue;
      spdlog::info("http: {} sent or took nothing for {} s in the middle of a message; closing", self->remote_,
                   limit.count());
      wait.expired = true;
      self->tcp().socket().cancel(ec);
    }
  }

  // Marks the connection as waiting for another request after serving one (or no longer).
  void set_idle(bool idle) {
    const auto now = std::max<steady_clock::rep>(1, steady_clock::now().time_since_epoch().count());
    idle_since.store(idle ? now : 0, std::memory_order_relaxed);
  }

  // A request that has reached us, even in part, is served before the connection closes: a client
  // cannot tell "closed while idle" from "closed after I sent my request". A new connection counts
  // as arriving (clients connect, then write); the grace timer bounds both.
  bool request_arriving() {
    error_code ec;
    return served_ == 0 || buffer_.size() > 0 || tcp().socket().available(ec) > 0;
  }

  // TLS: the handshake. Plain: looks at the first byte, and turns a TLS ClientHello away at once
  // (clients probing with verification off would otherwise wait for a timeout).
  // REQUIRES: a deadline on tcp().
  asio::awaitable<bool> open() {
    error_code ec;
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

  // A connection past a cap: its request header is read, so that the answer is a response to it
  // (503, or 429 for the per-address cap, with Retry-After), then it is closed. No handler runs.
  asio::awaitable<void> refuse(refusal why) {
    tcp().expires_after(refusal_time);
    const bool opened = co_await open();
    parser_type parser;
    set_limits(parser, state_->options.max_header_bytes);
    error_code ec = asio::error::not_connected;
    if (opened) {
      ec = co_await read_header(parser);
    }
    if (!ec && why == refusal::address_full) {
      co_await reject("429 Too Many Requests", "too many connections from this address\n", retry_after);
    } else if (!ec) {
      co_await reject("503 Service Unavailable", "too many connections\n", retry_after);
    }
    co_await close();
  }

  // Reads a request header into `parser`, from buffer_ and then the stream, as
  // http::async_read_header does; but refuses obs-fold (see folded()) with bad_value.
  asio::awaitable<error_code> read_header(parser_type& parser) {
    error_code ec;
    for (;;) {
      if (buffer_.size() > 0) {
        // The parser takes nothing until the whole header is there, then exactly the header.
        const std::size_t used = parser.put(buffer_.data(), ec);
        if (!ec && parser.is_header_done() && folded(asio::buffer(buffer_.data(), used))) ec = bhttp::error::bad_value;
        buffer_.consume(used);
        if (ec != bhttp::error::need_more) co_return ec;
      }
      ec = {};
      const std::size_t n =
          co_await stream_.async_read_some(buffer_.prepare(beast::read_size(buffer_, 65536)), with(ec));
      if (ec == asio::error::eof) {
        co_return parser.got_some() ? bhttp::error::partial_message : bhttp::error::end_of_stream;
      }
      if (ec) co_return ec;
      buffer_.commit(n);
      set_idle(false);  // a request is arriving
    }
  }

  // Serves one request. Returns whether the connection stays open for another.
  asio::awaitable<bool> serve_one() {
    parser_type parser;
    set_limits(parser, state_->options.max_header_bytes);

    idle_ = true;
    if (served_ > 0 && buffer_.size() == 0) set_idle(true);
    tcp().expires_after(state_->options.idle_timeout);
    error_code ec = co_await read_header(parser);
    set_idle(false);
    idle_ = false;
    if (ec) {
      co_await refuse_header(ec);
      co_return false;
    }
    auto& msg = parser.get();
    if (auto refused = framing_error(msg)) {
      co_await reject(refused->status_line, refused->body);
      co_return false;
    }
    tcp().expires_never();  // a handler may take long: a 5 GiB upload (the watchdog times the body)
    ++served_;

    bool keep = parser.keep_alive() && msg.version() >= 11;
    source_.bind(&parser, msg.version() >= 11 && beast::iequals(msg[bhttp::field::expect], "100-continue"));
    auto length = parser.content_length();
    std::string target(msg.target());  // before the fields move: they hold the target's storage
    request req(msg.method(), std::move(target), std::move(static_cast<bhttp::fields&>(msg)),
                length ? std::optional<std::uint64_t>(*length) : std::nullopt, parser.chunked(), remote_, &source_);

    response res = co_await call_handler(req, keep);
    if (!source_.done()) {
      keep = false;
      drain_on_close_ = true;  // the client may still be sending the body
    }
    keep = keep && !stop_requested_;
    bool written = co_await write_response(res, req.method() == bhttp::verb::head, keep);
    source_.bind(nullptr, false);
    co_return written&& keep;
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

  // Sends a fixed response and marks the connection for a draining close. `extra_headers`: whole
  // lines, each ending in CRLF. REQUIRES: a deadline on tcp().
  asio::awaitable<void> reject(std::string_view status_line, std::string_view body,
                               std::string_view extra_headers = {}) {
    std::string raw =
        fmt::format("HTTP/1.1 {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n{}",
                    status_line, body.size(), extra_headers, body);
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

  // Writes piece by piece, so that the watchdog sees progress (a whole-message deadline would cut
  // a slow but steady client).
  template <class Body>
  asio::awaitable<bool> write(bhttp::response<Body>& msg) {
    bhttp::serializer<false, Body> sr(msg);
    error_code ec;
    while (!ec && !sr.is_done()) {
      wait_.begin();
      co_await bhttp::async_write_some(stream_, sr, with(ec));
      wait_.end(ec);
    }
    co_return !ec || ec == bhttp::error::end_of_stream;  // end_of_stream: "now close", not a failure
  }

  // Writes all of `data`, piece by piece as write() does. Returns false when the connection broke.
  asio::awaitable<bool> write_all(asio::const_buffer data) {
    while (data.size() > 0) {
      error_code ec;
      wait_.begin();
      const std::size_t n = co_await stream_.async_write_some(data, with(ec));
      wait_.end(ec);
      if (ec) co_return false;
      data += n;
    }
    co_return true;
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
    const std::uint64_t end = b.offset + b.length;
    std::uint64_t advised = b.length >= read_ahead_from ? b.offset : end;  // read-ahead asked up to here
    while (left > 0) {
      for (const auto upto = std::min(end, static_cast<std::uint64_t>(offset) + read_ahead); advised < upto;) {
        const std::uint64_t piece = std::min(read_ahead_piece, upto - advised);
        ::posix_fadvise(fd, static_cast<off_t>(advised), static_cast<off_t>(piece), POSIX_FADV_WILLNEED);
        advised += piece;
      }
      ssize_t n = ::sendfile(sock.native_handle(), fd, &offset, std::min<std::uint64_t>(left, max_sendfile));
      if (n > 0) {
        left -= static_cast<std::uint64_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        wait_.begin();
        co_await sock.async_wait(tcp::socket::wait_write, with(ec));
        wait_.end(ec);
        if (ec) co_return false;
      } else {
        log_file_failure(n, left);
        co_return false;
      }
    }
    co_return true;
  }

  // Reads the body in pieces of the reader's read_size() and writes each, the read of the next
  // piece running (in a coroutine of its own, on this strand) while the last one is written: a
  // backend across the network fetches while the socket drains. The read fills the buffer that
  // is written, with no copy in between. Memory: two pieces per response (S3: 2 × 4 MiB), or
  // one of the body's size when it fits in one (a config blob: a few KiB).
  // A failed or short read ends the connection after the bytes before it (never others); the
  // read in flight is awaited before returning, since it borrows the buffer and the reader.
  asio::awaitable<bool> send_read(const streamed_body& b) {
    if (b.length == 0) co_return true;
    const std::size_t piece =
        static_cast<std::size_t>(std::min<std::uint64_t>(std::max<std::size_t>(b.reader->read_size(), 1), b.length));
    const auto buffers = std::make_unique_for_overwrite<char[]>(b.length > piece ? 2 * piece : piece);
    std::uint64_t offset = b.offset;  // of the read in flight
    std::uint64_t left = b.length;    // from `offset`
    std::size_t next = 0;             // the buffer the read in flight fills
    background<result<std::size_t>> fetch;
    auto read_next = [&] {
      const std::span<char> buf(buffers.get() + next * piece, std::min<std::uint64_t>(left, piece));
      fetch.start(stream_.get_executor(), b.reader->read(offset, buf));
    };
    read_next();
    for (;;) {
      auto n = co_await fetch.wait();
      if (!n) co_return false;  // the reader logged why
      if (*n == 0) {
        log_file_failure(0, left);
        co_return false;
      }
      const asio::const_buffer ready(buffers.get() + next * piece, *n);
      offset += *n;
      left -= *n;
      next ^= 1;
      if (left > 0) read_next();
      bool written = co_await write_all(ready);
      if (!written) {
        if (fetch.started()) {
          auto dropped = co_await fetch.wait();
          (void)dropped;
        }
        co_return false;
      }
      if (left == 0) co_return true;
    }
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
  peer_wait wait_;
  asio::steady_timer watchdog_;
  bool closed_ = false;  // run() has ended: so does the watchdog
  parser_source<Stream> source_;
  bool idle_ = true;          // waiting for a request: shutdown() may close at once
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
                  asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1 |
                  asio::ssl::context::single_dh_use);
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
  spdlog::info("http: at most {} connections, {} from one address", max_connections, max_per_address);
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
  auto c =
      std::make_shared<Connection>(shared_from_this(), std::move(remote), std::forward<StreamArgs>(stream_args)...);
  const admission a = enroll(c);
  auto ex = c->executor();
  asio::co_spawn(ex, Connection::run(c, a.refused), log_failure);
  if (a.stopping) asio::post(ex, [c] { c->stop(false); });
}

shared_state::admission shared_state::enroll(const std::shared_ptr<live_connection>& c) {
  std::lock_guard lock(mutex);
  live.emplace(c.get(), c);
  if (stopping) arm_grace_timer();
  std::size_t& mine = admitted_from[c->remote()];
  refusal refused = refusal::none;
  // Making room from the same address frees a place under both caps.
  if (mine >= max_per_address) {
    if (!evict_idle(&c->remote())) refused = refusal::address_full;
  } else if (admitted >= max_connections && !evict_idle(nullptr)) {
    refused = refusal::server_full;
  }
  if (refused == refusal::none) {
    c->counted = live_connection::tally::admitted;
    ++admitted;
    ++mine;
    return {stopping, refused};
  }
  if (mine == 0) admitted_from.erase(c->remote());
  spdlog::debug("http: turned a connection from {} away: {}", c->remote(),
                refused == refusal::address_full ? "max_connections_per_address" : "max_connections");
  if (refusing < max_refusing) {
    c->counted = live_connection::tally::refusing;
    ++refusing;
  } else {
    refused = refusal::dropped;
  }
  return {stopping, refused};
}

bool shared_state::evict_idle(const std::string* address) {
  // Through the keys, not weak_ptr::lock(): a shared_ptr dropped here could be the last one, and
  // the destructor's withdraw() would wait for the mutex held here. A connection in `live` has not
  // yet passed withdraw(), so its base part is still alive.
  const live_connection* oldest = nullptr;
  steady_clock::rep oldest_since = 0;
  for (const auto& [c, weak] : live) {
    if (address != nullptr && c->remote() != *address) continue;
    const auto since = c->idle_since.load(std::memory_order_relaxed);
    if (since != 0 && (oldest == nullptr || since < oldest_since)) {
      oldest = c;
      oldest_since = since;
    }
  }
  if (oldest == nullptr) return false;
  auto victim = live.at(oldest).lock();
  if (!victim) return true;  // already closing: its place is about to be free
  // Claimed, so that the next new connection picks another. It closes if still idle, else after
  // the request that has just arrived (overdrawing the cap by one for that long).
  victim->idle_since.store(0, std::memory_order_relaxed);
  auto ex = victim->executor();
  asio::post(ex, [victim = std::move(victim)] { victim->stop(false); });
  return true;
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
  if (c->counted == live_connection::tally::admitted) {
    --admitted;
    auto it = admitted_from.find(c->remote());
    if (--it->second == 0) admitted_from.erase(it);
  } else if (c->counted == live_connection::tally::refusing) {
    --refusing;
  }
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
    {
      std::lock_guard lock(self->mutex);
      if (self->stopping) return;
      // Before the backlog is drained: the connections it holds are admitted as stopping, so each
      // is answered with Connection: close.
      self->stopping = true;
      self->grace = grace_period;
    }
    error_code ec;
    self->acceptor.non_blocking(true, ec);
    while (!ec) {
      tcp::socket socket = self->acceptor.accept(asio::make_strand(self->ioc), ec);
      if (!ec) self->serve(std::move(socket));
    }
    self->acceptor.close(ec);
    {
      std::lock_guard lock(self->mutex);
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

std::size_t default_max_connections() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return max_default_connections;
  const auto descriptors = static_cast<std::size_t>(limit.rlim_cur);
  if (descriptors <= reserved_descriptors + 2) return 1;
  return std::min(max_default_connections, (descriptors - reserved_descriptors) / 2);
}

struct server::state : shared_state {
  using shared_state::shared_state;
};

// sendfile(2) takes no MSG_NOSIGNAL: a write into a connection the client reset raises SIGPIPE, whose
// default action ends the process (a `podman pull` interrupted mid-layer stopped the registry). The
// server ignores it, as Asio does on the systems where send() cannot be told either, and sees EPIPE.
server::server(asio::io_context& ioc, server_options options, handler h)
    : state_(std::make_shared<state>(ioc, std::move(options), std::move(h))) {
  std::signal(SIGPIPE, SIG_IGN);
}

server::~server() = default;

asio::ip::tcp::endpoint server::listen() { return state_->listen(); }

void server::start() { state_->start(); }

void server::shutdown(std::chrono::milliseconds grace) { state_->shutdown(grace); }

std::size_t server::open_connections() const {
  std::lock_guard lock(state_->mutex);
  return state_->live.size();
}

}  // namespace berth::http
