#include "http/client.h"

#include <utility>  // before Asio: boost 1.74 awaitable.hpp uses std::exchange without it

#include <fmt/format.h>
#include <openssl/ssl.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <charconv>

namespace berth::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;

struct url_parts {
  bool tls = false;
  std::string authority;  // for the Host header
  std::string host;
  std::string port;
  std::string target = "/";
};

result<url_parts> parse_url(std::string_view url) {
  url_parts parts;
  if (url.starts_with("https://")) {
    parts.tls = true;
    url.remove_prefix(8);
  } else if (url.starts_with("http://")) {
    url.remove_prefix(7);
  } else {
    return fail(errc::unavailable, "only http:// and https:// URLs");
  }
  const auto slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  if (slash != std::string_view::npos) parts.target = std::string(url.substr(slash));
  if (authority.find('@') != std::string_view::npos) return fail(errc::unavailable, "credentials in the URL");
  parts.authority = std::string(authority);
  std::string_view host = authority;
  std::string_view port = parts.tls ? "443" : "80";
  if (authority.starts_with('[')) {  // [v6]:port
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return fail(errc::unavailable, "malformed IPv6 host");
    host = authority.substr(1, close - 1);
    if (authority.substr(close + 1).starts_with(':')) port = authority.substr(close + 2);
  } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  unsigned number = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
  if (host.empty() || ec != std::errc{} || end != port.data() + port.size() || number == 0 || number > 65535)
    return fail(errc::unavailable, "malformed host or port");
  parts.host = std::string(host);
  parts.port = std::string(port);
  return parts;
}

// The exchange on a connected (and, for TLS, handshaken) stream. Asynchronous steps run by
// ioc.run(), so that beast::tcp_stream's deadline applies to each.
template <class Stream>
result<client_reply> exchange(asio::io_context& ioc, Stream& stream, bhttp::request<bhttp::string_body>& req,
                              std::size_t max_bytes) {
  auto step = [&ioc](auto&& start) {
    beast::error_code ec;
    start([&ec](beast::error_code e, std::size_t) { ec = e; });
    ioc.restart();
    ioc.run();
    return ec;
  };
  auto ec = step([&](auto done) { bhttp::async_write(stream, req, done); });
  if (ec) return fail(errc::unavailable, fmt::format("sending the request failed: {}", ec.message()));

  // Content-Length is checked after the header: Beast 1.74 let a 106-byte body pass a 50-byte
  // body_limit when the whole message was read in one async_read.
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(max_bytes);
  const auto too_large = fail(errc::unavailable, fmt::format("answer larger than {} bytes", max_bytes));
  ec = step([&](auto done) { bhttp::async_read_header(stream, buffer, parser, done); });
  if (!ec && parser.content_length() && *parser.content_length() > max_bytes) return too_large;
  if (!ec) ec = step([&](auto done) { bhttp::async_read(stream, buffer, parser, done); });
  if (ec == bhttp::error::body_limit) return too_large;
  if (ec) return fail(errc::unavailable, fmt::format("reading the answer failed: {}", ec.message()));
  auto res = parser.release();
  return client_reply{res.result_int(), std::move(res.body())};
}

result<client_reply> send_parsed(std::string_view method, const url_parts& url,
                                 const std::map<std::string, std::string>& headers, std::string body,
                                 const client_options& options) {
  bhttp::request<bhttp::string_body> req(bhttp::string_to_verb(method), url.target, 11);
  req.set(bhttp::field::host, url.authority);
  req.set(bhttp::field::user_agent, "berth");
  req.set(bhttp::field::connection, "close");
  for (const auto& [name, value] : headers) req.set(name, value);
  req.body() = std::move(body);
  req.prepare_payload();

  asio::io_context ioc;
  beast::error_code ec;
  tcp::resolver resolver(ioc);
  const auto addresses = resolver.resolve(url.host, url.port, ec);
  if (ec) return fail(errc::unavailable, fmt::format("cannot resolve {}: {}", url.host, ec.message()));
  auto connect = [&](beast::tcp_stream& tcp_layer) {
    tcp_layer.expires_after(options.timeout);  // one deadline for every step from here
    beast::error_code connect_ec;
    tcp_layer.async_connect(addresses, [&connect_ec](beast::error_code e, const tcp::endpoint&) { connect_ec = e; });
    ioc.run();
    return connect_ec;
  };

  if (!url.tls) {
    beast::tcp_stream stream(ioc);
    if (ec = connect(stream); ec) return fail(errc::unavailable, fmt::format("cannot connect: {}", ec.message()));
    return exchange(ioc, stream, req, options.max_bytes);
  }
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                  asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
  if (options.ca_file.empty()) {
    ctx.set_default_verify_paths(ec);
  } else {
    ctx.load_verify_file(options.ca_file, ec);
  }
  if (ec) return fail(errc::unavailable, fmt::format("cannot load trusted certificates: {}", ec.message()));
  ctx.set_verify_mode(asio::ssl::verify_peer);
  ctx.set_verify_callback(asio::ssl::host_name_verification(url.host));
  beast::ssl_stream<beast::tcp_stream> stream(ioc, ctx);
  if (!SSL_set_tlsext_host_name(stream.native_handle(), url.host.c_str()))
    return fail(errc::unavailable, "cannot set the TLS server name");
  if (ec = connect(beast::get_lowest_layer(stream)); ec)
    return fail(errc::unavailable, fmt::format("cannot connect: {}", ec.message()));
  stream.async_handshake(asio::ssl::stream_base::client, [&ec](beast::error_code e) { ec = e; });
  ioc.restart();
  ioc.run();
  if (ec) return fail(errc::unavailable, fmt::format("TLS handshake failed: {}", ec.message()));
  return exchange(ioc, stream, req, options.max_bytes);
}

}  // namespace

result<client_reply> send_request(std::string_view method, std::string_view url,
                                  const std::map<std::string, std::string>& headers, std::string body,
                                  const client_options& options) {
  auto parts = parse_url(url);
  auto reply = parts ? send_parsed(method, *parts, headers, std::move(body), options)
                     : result<client_reply>(std::unexpected(parts.error()));
  if (!reply) return fail(errc::unavailable, fmt::format("{} {}: {}", method, url, reply.error().detail));
  return reply;
}

result<std::string> https_get(std::string_view url, const client_options& options) {
  if (!url.starts_with("https://")) return fail(errc::unavailable, fmt::format("GET {}: only https:// URLs", url));
  auto reply = send_request("GET", url, {{"Accept", "application/json"}}, {}, options);
  if (!reply) return std::unexpected(reply.error());
  if (reply->status != 200) return fail(errc::unavailable, fmt::format("GET {}: HTTP status {}", url, reply->status));
  return std::move(reply->body);
}

}  // namespace berth::http
