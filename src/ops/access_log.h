// The access log (config `log.access`): one line per answered request on standard output, as text
// or as one JSON object, with the time, the client's address, the caller's identity, the method, the
// route (the route table's operation name, never the raw path), the repository, the status, the
// body bytes in and out, the duration and the User-Agent. What it never holds: the request target
// (query strings may carry tokens), credentials, or any header but the User-Agent.
// Lines are buffered and reach standard output within a second (and when the log is destroyed).
// Thread-safety: write() may be called concurrently; each line is written whole. One access_log
// with a format other than off at a time (its logger is registered as "access").
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace spdlog {
class logger;
}

namespace berth::ops {

enum class access_log_format { off, text, json };

struct access_entry {
  std::chrono::system_clock::time_point time;
  std::string_view remote_address;
  std::string_view identity;  // "" for an anonymous caller
  std::string_view method;
  std::string_view route;
  std::string_view repository;  // "" when the route names none
  unsigned status = 0;
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  std::chrono::nanoseconds duration{0};
  std::string_view user_agent;
};

// The line for `e` (without its newline). REQUIRES: `format` is not off.
std::string format_access(const access_entry& e, access_log_format format);

class access_log {
 public:
  explicit access_log(access_log_format format);
  ~access_log();
  bool enabled() const { return format_ != access_log_format::off; }
  void write(const access_entry& e) const;

 private:
  access_log_format format_;
  std::shared_ptr<spdlog::logger> out_;
};

}  // namespace berth::ops
