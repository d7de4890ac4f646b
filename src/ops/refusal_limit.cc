#include "ops/refusal_limit.h"

#include <iterator>

namespace berth::ops {

refusal_limit::decision refusal_limit::admit(std::string_view who, std::string_view address, std::int64_t now_ms) {
  std::string key;
  key.reserve(who.size() + 1 + address.size());
  key.append(who).append(1, '\n').append(address);
  std::lock_guard lock(mutex_);
  auto it = pairs_.find(key);
  if (it == pairs_.end()) {
    if (pairs_.size() >= max_keys_) {
      std::erase_if(pairs_, [&](const auto& p) { return now_ms - p.second.window_start >= window_ms_; });
      if (pairs_.size() >= max_keys_) return {};
    }
    pairs_.emplace(std::move(key), pair_state{now_ms, 1, 0});
    return {true, 0};
  }
  pair_state& s = it->second;
  if (now_ms - s.window_start >= window_ms_) {
    const std::uint64_t left_out = s.left_out;
    s = pair_state{now_ms, 1, 0};
    return {true, left_out};
  }
  if (s.recorded < per_window_) {
    ++s.recorded;
    return {true, 0};
  }
  ++s.left_out;
  return {};
}

}  // namespace berth::ops
