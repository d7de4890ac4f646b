#include "s3/fake_s3_server.h"

#include <cctype>

namespace berth::s3::testing {
namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::size_t content_length(const std::string& head) {
  const auto l = lower(head);
  const auto at = l.find("\r\ncontent-length:");
  return at == std::string::npos ? 0 : std::stoul(l.substr(at + 17));
}

}  // namespace

fake_s3_server::fake_s3_server(std::vector<reply> script)
    : acceptor_(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
      script_(script.begin(), script.end()) {
  port_ = acceptor_.local_endpoint().port();
  asio::co_spawn(ioc_, accept_loop(), asio::detached);
  thread_ = std::thread([this] { ioc_.run(); });
}

fake_s3_server::~fake_s3_server() {
  ioc_.stop();
  thread_.join();
}

std::vector<std::string> fake_s3_server::requests() const {
  std::lock_guard lock(mutex_);
  return requests_;
}

int fake_s3_server::connections() const {
  std::lock_guard lock(mutex_);
  return connections_;
}

asio::awaitable<void> fake_s3_server::accept_loop() {
  for (;;) {
    auto socket = co_await acceptor_.async_accept(asio::use_awaitable);
    {
      std::lock_guard lock(mutex_);
      ++connections_;
    }
    asio::co_spawn(ioc_, serve(std::move(socket)), asio::detached);
  }
}

asio::awaitable<void> fake_s3_server::serve(tcp::socket socket) {
  try {
    std::string buffer;
    for (;;) {
      const std::size_t head_size = co_await asio::async_read_until(socket, asio::dynamic_buffer(buffer), "\r\n\r\n",
                                                                   asio::use_awaitable);
      const std::string head = buffer.substr(0, head_size);
      buffer.erase(0, head_size);
      if (lower(head).find("\r\nexpect: 100-continue") != std::string::npos) {
        co_await asio::async_write(socket, asio::buffer(std::string_view("HTTP/1.1 100 Continue\r\n\r\n")),
                                   asio::use_awaitable);
      }
      const std::size_t body_size = content_length(head);
      if (buffer.size() < body_size) {
        const std::size_t missing = body_size - buffer.size();
        co_await asio::async_read(socket, asio::dynamic_buffer(buffer), asio::transfer_exactly(missing),
                                  asio::use_awaitable);
      }
      buffer.erase(0, body_size);
      reply next{500, "", "<Error><Code>InternalError</Code></Error>", false};
      {
        std::lock_guard lock(mutex_);
        requests_.push_back(head);
        if (!script_.empty()) {
          next = std::move(script_.front());
          script_.pop_front();
        }
      }
      if (next.silent) {
        char byte;
        co_await socket.async_read_some(asio::buffer(&byte, 1), asio::use_awaitable);  // until the client leaves
        co_return;
      }
      const bool head_request = head.starts_with("HEAD ");
      const std::string answer = "HTTP/1.1 " + std::to_string(next.status) + " X\r\nContent-Length: " +
                                 std::to_string(next.body.size()) + "\r\n" + next.headers + "\r\n" +
                                 (head_request ? "" : next.cut ? next.body.substr(0, next.body.size() / 2) : next.body);
      co_await asio::async_write(socket, asio::buffer(answer), asio::use_awaitable);
      if (next.cut) co_return;  // closes the connection
    }
  } catch (const std::exception&) {
    // the client closed the connection
  }
}

}  // namespace berth::s3::testing
