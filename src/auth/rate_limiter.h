// Failed-login limiting per (source address, account): after `limit` failed attempts at one account
// from one address within `window`, further attempts at that account from that address are held off
// (429 TOOMANYREQUESTS) until the oldest failure ages out; wait() says how long, to the second.
// Failures at other accounts, or from other addresses, never count against an account: behind a
// proxy that reports the real client (trust_forwarded_headers) nobody can lock out everyone.
// An attempt is the credentials tried, not the request: the same wrong password sent again within
// the window (containerd sends it as an OAuth2 POST, then as a GET with Basic) fails once.
// Credentials that succeeded within `remember` are never held off (they are still verified): a
// known good password is not refused because someone else guessed at the same account.
// Credentials are kept only as an HMAC under a per-process random key. Memory is bounded: at most
// `max_keys` (address, account) pairs and as many good credentials; the stalest go first.
// Thread-safety: every method is thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace berth::auth {

class rate_limiter {
 public:
  using clock = std::chrono::steady_clock;

  // One login attempt: who tried which credentials from where (built once, used for each call).
  struct attempt {
    std::string key;          // address and account
    std::string credentials;  // HMAC of account and password
  };

  rate_limiter(std::size_t limit, std::chrono::seconds window, std::size_t max_keys = 10000,
               std::chrono::hours remember = std::chrono::hours(24));

  attempt make_attempt(std::string_view address, std::string_view account, std::string_view password) const;
  // How long the attempt must wait before it may be verified: zero when it may be now.
  std::chrono::seconds wait(const attempt& a, clock::time_point now = clock::now());
  // Records a failed attempt (once per distinct credentials within the window).
  void failed(const attempt& a, clock::time_point now = clock::now());
  // Records a successful attempt: these credentials are not held off for `remember`.
  void succeeded(const attempt& a, clock::time_point now = clock::now());

 private:
  struct failure {
    clock::time_point at;
    std::string credentials;
  };
  void expire(std::deque<failure>& failures, clock::time_point now) const;
  bool known_good(const std::string& credentials, clock::time_point now);

  std::size_t limit_;
  clock::duration window_;
  std::size_t max_keys_;
  clock::duration remember_;
  std::string secret_;
  std::mutex mutex_;
  std::unordered_map<std::string, std::deque<failure>> failures_;  // guarded by mutex_
  std::unordered_map<std::string, clock::time_point> good_;        // credentials -> last success; mutex_
};

}  // namespace berth::auth
