// For the S3 client's tests: an HTTP/1.1 server on 127.0.0.1 that answers each request with the
// next reply of a script (keep-alive), and records what it received. A `silent` reply never comes
// (the connection is held until the client gives up); a `cut` one breaks off in the middle of its
// body. When the script runs out it answers 500.
// Thread-safety: runs on its own thread; requests() and connections() may be called from any thread.
#pragma once

#include <utility>  // before Asio: boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio.hpp>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace berth::s3::testing {

class fake_s3_server {
 public:
  struct reply {
    int status = 200;
    std::string headers;  // extra "Name: value\r\n" lines
    std::string body;
    bool silent = false;
    bool cut = false;  // only the first half of the body is sent, then the connection closes
  };

  explicit fake_s3_server(std::vector<reply> script);
  ~fake_s3_server();

  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // The request line and headers of each request received so far.
  std::vector<std::string> requests() const;
  int connections() const;

 private:
  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket socket);

  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::acceptor acceptor_;
  unsigned short port_ = 0;
  mutable std::mutex mutex_;
  std::deque<reply> script_;
  std::vector<std::string> requests_;
  int connections_ = 0;
  std::thread thread_;
};

}  // namespace berth::s3::testing
