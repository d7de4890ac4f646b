// Bounds what refusals write to the audit log. A flood of refusals of one `who` (a subject; or all
// failed logins) at one address (a CI job retrying with a token that lacks a grant, someone guessing
// passwords) records at most `per_window` entries per window; the others are counted, and the first
// entry of that pair in a later window says how many were left out. Refusals are 403s and failed
// logins; changes are always recorded. The state is per instance and bounded: at most `max_keys`
// pairs, those whose window has ended dropped first; past that, refusals of new pairs are not
// recorded (berth_auth_failures_total still counts every one).
// Thread-safety: admit() may be called concurrently.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace berth::ops {

class refusal_limit {
 public:
  struct decision {
    bool record = false;
    std::uint64_t left_out = 0;  // refusals of this pair not recorded in its earlier window
  };

  explicit refusal_limit(std::size_t per_window = 10, std::chrono::milliseconds window = std::chrono::minutes(1),
                         std::size_t max_keys = 10'000)
      : per_window_(per_window), window_ms_(window.count()), max_keys_(max_keys) {}

  // Whether a refusal of `who` at `address` at `now_ms` (unix ms) is recorded.
  decision admit(std::string_view who, std::string_view address, std::int64_t now_ms);

 private:
  struct pair_state {
    std::int64_t window_start = 0;
    std::size_t recorded = 0;
    std::uint64_t left_out = 0;
  };

  const std::size_t per_window_;
  const std::int64_t window_ms_;
  const std::size_t max_keys_;
  std::mutex mutex_;
  std::unordered_map<std::string, pair_state> pairs_;  // guarded by mutex_; key: who '\n' address
};

}  // namespace berth::ops
