#include "http/fetch.h"

#include <fmt/format.h>
#include <openssl/ssl.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/version.hpp>
#include <charconv>

namespace berth::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;

struct url_parts {
  std::string authority;  // for the Host header
  std::string host;
  std::string port = "443";
  std::string target = "/";
};

result<url_parts> parse_https_url(std::string_view url) {
  constexpr std::string_view scheme = "https://";
  if (!url.starts_with(scheme)) return fail(errc::unavailable, "only https:// URLs are fetched");
  std::string_view rest = url.substr(scheme.size());
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  url_parts parts;
  parts.authority = std::string(authority);
  if (slash != std::string_view::npos) parts.target = std::string(rest.substr(slash));
  if (authority.find('@') != std::string_view::npos) return fail(errc::unavailable, "credentials in the URL");
  std::string_view host = authority;
  if (authority.starts_with('[')) {  // [v6]:port
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return fail(errc::unavailable, "malformed IPv6 host");
    host = authority.substr(1, close - 1);
    authority.remove_prefix(close + 1);
    if (authority.starts_with(':')) parts.port = std::string(authority.substr(1));
  } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    parts.port = std::string(authority.substr(colon + 1));
  }
  unsigned port = 0;
  auto [end, ec] = std::from_chars(parts.port.data(), parts.port.data() + parts.port.size(), port);
  if (host.empty() || ec != std::errc{} || end != parts.port.data() + parts.port.size() || port == 0 || port > 65535)
    return fail(errc::unavailable, "malformed host or port");
  parts.host = std::string(host);
  return parts;
}

result<std::string> get(const url_parts& url, const fetch_options& options) {
  asio::io_context ioc;
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                  asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
  beast::error_code ec;
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
  auto& tcp_layer = beast::get_lowest_layer(stream);
  tcp_layer.expires_after(options.timeout);  // one deadline for every step below

  tcp::resolver resolver(ioc);
  const auto addresses = resolver.resolve(url.host, url.port, ec);
  if (ec) return fail(errc::unavailable, fmt::format("cannot resolve {}: {}", url.host, ec.message()));
  // Asynchronous steps run by ioc.run(): beast::tcp_stream's deadline applies only to them.
  auto step = [&](auto&& start) -> beast::error_code {
    beast::error_code step_ec;
    start(step_ec);
    ioc.restart();
    ioc.run();
    return step_ec;
  };
  ec = step([&](beast::error_code& out) {
    tcp_layer.async_connect(addresses, [&out](beast::error_code e, const tcp::endpoint&) { out = e; });
  });
  if (ec) return fail(errc::unavailable, fmt::format("cannot connect: {}", ec.message()));
  ec = step([&](beast::error_code& out) {
    stream.async_handshake(asio::ssl::stream_base::client, [&out](beast::error_code e) { out = e; });
  });
  if (ec) return fail(errc::unavailable, fmt::format("TLS handshake failed: {}", ec.message()));

  bhttp::request<bhttp::empty_body> req(bhttp::verb::get, url.target, 11);
  req.set(bhttp::field::host, url.authority);
  req.set(bhttp::field::user_agent, "berth");
  req.set(bhttp::field::accept, "application/json");
  req.set(bhttp::field::connection, "close");
  ec = step([&](beast::error_code& out) {
    bhttp::async_write(stream, req, [&out](beast::error_code e, std::size_t) { out = e; });
  });
  if (ec) return fail(errc::unavailable, fmt::format("sending the request failed: {}", ec.message()));

  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(options.max_bytes);
  const auto too_large = fail(errc::unavailable, fmt::format("answer larger than {} bytes", options.max_bytes));
  ec = step([&](beast::error_code& out) {
    bhttp::async_read_header(stream, buffer, parser, [&out](beast::error_code e, std::size_t) { out = e; });
  });
  if (!ec && parser.content_length() && *parser.content_length() > options.max_bytes) return too_large;
  if (!ec) {
    ec = step([&](beast::error_code& out) {
      bhttp::async_read(stream, buffer, parser, [&out](beast::error_code e, std::size_t) { out = e; });
    });
  }
  if (ec == bhttp::error::body_limit) return too_large;
  if (ec) return fail(errc::unavailable, fmt::format("reading the answer failed: {}", ec.message()));
  auto res = parser.release();
  if (res.result() != bhttp::status::ok) return fail(errc::unavailable, fmt::format("HTTP status {}", res.result_int()));
  return std::move(res.body());
}

}  // namespace

result<std::string> https_get(std::string_view url, const fetch_options& options) {
  auto parts = parse_https_url(url);
  if (!parts) return fail(errc::unavailable, fmt::format("GET {}: {}", url, parts.error().detail));
  auto body = get(*parts, options);
  if (!body) return fail(errc::unavailable, fmt::format("GET {}: {}", url, body.error().detail));
  return body;
}

}  // namespace berth::http
