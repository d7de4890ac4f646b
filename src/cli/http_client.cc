#include "cli/http_client.h"

#include <utility>  // before Asio: boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <stdexcept>

namespace berth::cli {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

struct url_parts {
  bool tls = false;
  std::string host;
  std::string port;
};

url_parts split(const std::string& base) {
  url_parts u;
  std::string rest = base;
  if (rest.starts_with("https://")) {
    u.tls = true;
    rest = rest.substr(8);
  } else if (rest.starts_with("http://")) {
    rest = rest.substr(7);
  }
  if (const auto slash = rest.find('/'); slash != std::string::npos) rest = rest.substr(0, slash);
  if (rest.starts_with("[")) {
    const auto close = rest.find(']');
    if (close == std::string::npos) throw std::runtime_error("malformed registry URL " + base);
    u.host = rest.substr(1, close - 1);
    u.port = close + 2 <= rest.size() && rest[close + 1] == ':' ? rest.substr(close + 2) : "";
  } else if (const auto colon = rest.rfind(':'); colon != std::string::npos) {
    u.host = rest.substr(0, colon);
    u.port = rest.substr(colon + 1);
  } else {
    u.host = rest;
  }
  if (u.port.empty()) u.port = u.tls ? "443" : "80";
  if (u.host.empty()) throw std::runtime_error("malformed registry URL " + base);
  return u;
}

template <class Stream>
http_reply exchange(Stream& stream, http::request<http::string_body>& req) {
  http::write(stream, req);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  http::read(stream, buffer, parser);
  auto res = parser.release();
  http_reply reply;
  reply.status = res.result_int();
  reply.body = std::move(res.body());
  for (const auto& f : res) {
    std::string name(f.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    reply.headers[name] = std::string(f.value());
  }
  return reply;
}

}  // namespace

http_reply http_call(const std::string& method, const std::string& base_url, const std::string& target,
                     const std::map<std::string, std::string>& headers, const std::string& body) {
  const url_parts u = split(base_url);
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, u.host + ":" + u.port);
  req.set(http::field::user_agent, "berth-cli");
  for (const auto& [k, v] : headers) req.set(k, v);
  req.body() = body;
  req.prepare_payload();
  try {
    asio::io_context ioc;
    asio::ip::tcp::resolver resolver(ioc);
    const auto endpoints = resolver.resolve(u.host, u.port);
    if (!u.tls) {
      beast::tcp_stream stream(ioc);
      stream.connect(endpoints);
      return exchange(stream, req);
    }
    asio::ssl::context ssl(asio::ssl::context::tls_client);
    ssl.set_default_verify_paths();
    ssl.set_verify_mode(asio::ssl::verify_peer);
    beast::ssl_stream<beast::tcp_stream> stream(ioc, ssl);
    if (!SSL_set_tlsext_host_name(stream.native_handle(), u.host.c_str()))
      throw std::runtime_error("cannot set the TLS server name");
    stream.set_verify_callback(asio::ssl::host_name_verification(u.host));
    beast::get_lowest_layer(stream).connect(endpoints);
    stream.handshake(asio::ssl::stream_base::client);
    return exchange(stream, req);
  } catch (const boost::system::system_error& e) {
    throw std::runtime_error("cannot reach " + base_url + ": " + e.code().message());
  }
}

}  // namespace berth::cli
