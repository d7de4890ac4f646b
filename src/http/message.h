// HTTP request and response as the handlers see them. No OCI knowledge lives here.
// A request is valid for the duration of one handler call; its body is read at most once, through
// read_body() or stream_body(). Thread-safety: one request is used by one coroutine.
#pragma once

#include <utility>  // before Asio: boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/verb.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace berth::http {

namespace asio = boost::asio;
namespace beast = boost::beast;

// Where a request body comes from: the connection (or a fake in tests).
class body_source {
 public:
  virtual ~body_source() = default;
  // Reads up to buf.size() body bytes. Returns 0 at the end of the body. Fails with SIZE_INVALID
  // when the peer sent fewer bytes than announced or broke the chunked framing, or BLOB_UPLOAD_INVALID
  // when the connection failed.
  virtual asio::awaitable<result<std::size_t>> read_some(std::span<char> buf) = 0;

  // A buffer of scratch_size bytes owned by the source, allocated on first use and then reused:
  // the server keeps one source per connection, so a connection allocates it at most once however
  // many bodies it streams. Used by request::stream_body (and by the server for TLS file bodies).
  // Page-aligned (scratch_alignment).
  static constexpr std::size_t scratch_size = 1024 * 1024;
  static constexpr std::size_t scratch_alignment = 4096;
  std::span<char> scratch();

 private:
  struct aligned_delete {
    void operator()(char* p) const { ::operator delete[](p, std::align_val_t{scratch_alignment}); }
  };
  std::unique_ptr<char[], aligned_delete> scratch_;
};

class request {
 public:
  request(beast::http::verb method, std::string target, beast::http::fields headers,
          std::optional<std::uint64_t> content_length, bool chunked, std::string remote_address,
          body_source* body);

  beast::http::verb method() const { return method_; }
  // The raw request target, e.g. "/v2/library/ubuntu/tags/list?n=10".
  const std::string& target() const { return target_; }
  // The target up to '?', not decoded (OCI names and references never need decoding).
  std::string_view path() const;
  // The first value of the query parameter `key`, percent-decoded; nullopt when absent.
  std::optional<std::string> query(std::string_view key) const;
  // All values of the query parameter `key`, percent-decoded, in order.
  std::vector<std::string> query_all(std::string_view key) const;
  // The header's value; nullopt when absent.
  std::optional<std::string_view> header(std::string_view name) const;
  const beast::http::fields& headers() const { return headers_; }
  std::optional<std::uint64_t> content_length() const { return content_length_; }
  bool chunked() const { return chunked_; }
  bool has_body() const { return chunked_ || content_length_.value_or(0) > 0; }
  const std::string& remote_address() const { return remote_address_; }
  // The body bytes read so far (by read_body or stream_body).
  std::uint64_t body_bytes() const { return body_bytes_; }

  // Reads the whole body into memory, allocating as the bytes arrive (never the announced size
  // ahead of them). Fails with payload_too_large (413) past `limit` bytes (without reading the
  // rest), or as body_source::read_some does.
  asio::awaitable<result<std::string>> read_body(std::size_t limit);
  // Passes the body to `sink` piece by piece as it arrives (pieces of up to 1 MiB; every piece but
  // the last is exactly 1 MiB and each starts at a 4096-byte aligned address), awaiting each before
  // reading the next into the same buffer. Returns the number of bytes passed; stops at and returns
  // the first error of `sink` or of the source. The bytes that arrived before the source failed are
  // passed to `sink` first, so that an upload interrupted by the client keeps them and can resume
  // after them.
  using body_sink = std::function<asio::awaitable<result<void>>(std::string_view)>;
  asio::awaitable<result<std::uint64_t>> stream_body(const body_sink& sink);

 private:
  beast::http::verb method_;
  std::string target_;
  beast::http::fields headers_;
  std::optional<std::uint64_t> content_length_;
  bool chunked_;
  std::string remote_address_;
  body_source* body_;
  std::uint64_t body_bytes_ = 0;
};

// Where a response body that is not in memory comes from (a blob): read piece by piece at
// increasing offsets, one read at a time, each in a coroutine of its own on the connection's strand
// that runs while the server writes the piece before.
class body_reader {
 public:
  virtual ~body_reader() = default;
  // Reads up to buf.size() bytes at `offset`; returns how many, 0 only past the end.
  virtual asio::awaitable<result<std::size_t>> read(std::uint64_t offset, std::span<char> buf) = 0;
  // The size of the pieces the server asks read() for; it holds two of them per response.
  virtual std::size_t read_size() const { return 256 * 1024; }
  // An open file holding the same bytes at the same offsets, which the server sends with
  // sendfile(2) on plain TCP; -1 when there is none (then read() is used).
  virtual int native_handle() const { return -1; }
};

// The `length` bytes at `offset` of `reader`, sent as the body.
struct streamed_body {
  std::shared_ptr<body_reader> reader;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
};

struct response {
  unsigned status = 200;
  beast::http::fields headers;
  // The body when `stream` is empty. Content-Length is set by the server.
  std::string body;
  std::optional<streamed_body> stream;
  // For HEAD: the Content-Length to announce; no body is sent.
  std::optional<std::uint64_t> head_length;
};

// %XX escapes decoded; a malformed escape is kept as it is. In a form (a query), '+' is a space too.
enum class encoding { path, form };
std::string percent_decode(std::string_view s, encoding e);

// All values of `key` in an application/x-www-form-urlencoded string (a query without its '?'),
// percent-decoded, in order.
std::vector<std::string> form_values(std::string_view form, std::string_view key);

using handler = std::function<asio::awaitable<response>(request&)>;

}  // namespace berth::http
