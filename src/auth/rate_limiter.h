// Failed-login rate limiting per source address: after `limit` failures within `window`, further
// attempts from that address are refused (429 TOOMANYREQUESTS) until the oldest failure ages out.
// Successful logins do not count and do not reset. Memory is bounded: at most `max_addresses`
// addresses are tracked; the stalest is dropped first.
// Thread-safety: every method is thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <unordered_map>

namespace berth::auth {

class rate_limiter {
 public:
  using clock = std::chrono::steady_clock;

  rate_limiter(std::size_t limit, std::chrono::seconds window, std::size_t max_addresses = 10000)
      : limit_(limit), window_(window), max_addresses_(max_addresses) {}

  // True when `address` may try to log in now.
  bool allowed(const std::string& address, clock::time_point now = clock::now());
  // Records a failed login from `address`.
  void failed(const std::string& address, clock::time_point now = clock::now());
  // Seconds until `address` may try again (0 when allowed).
  std::chrono::seconds retry_after(const std::string& address, clock::time_point now = clock::now());

 private:
  void expire(std::deque<clock::time_point>& failures, clock::time_point now) const;

  std::size_t limit_;
  clock::duration window_;
  std::size_t max_addresses_;
  std::mutex mutex_;
  std::unordered_map<std::string, std::deque<clock::time_point>> failures_;  // guarded by mutex_
};

}  // namespace berth::auth
