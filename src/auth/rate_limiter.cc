#include "auth/rate_limiter.h"

#include <algorithm>

namespace berth::auth {

void rate_limiter::expire(std::deque<clock::time_point>& failures, clock::time_point now) const {
  while (!failures.empty() && now - failures.front() >= window_) failures.pop_front();
}

bool rate_limiter::allowed(const std::string& address, clock::time_point now) {
  if (limit_ == 0) return true;
  std::lock_guard lock(mutex_);
  const auto it = failures_.find(address);
  if (it == failures_.end()) return true;
  expire(it->second, now);
  if (it->second.empty()) {
    failures_.erase(it);
    return true;
  }
  return it->second.size() < limit_;
}

void rate_limiter::failed(const std::string& address, clock::time_point now) {
  if (limit_ == 0) return;
  std::lock_guard lock(mutex_);
  if (!failures_.contains(address) && failures_.size() >= max_addresses_) {
    // Drop the address whose latest failure is oldest.
    auto stalest = std::min_element(failures_.begin(), failures_.end(), [](const auto& a, const auto& b) {
      return a.second.empty() || (!b.second.empty() && a.second.back() < b.second.back());
    });
    failures_.erase(stalest);
  }
  auto& list = failures_[address];
  expire(list, now);
  list.push_back(now);
  while (list.size() > limit_) list.pop_front();
}

std::chrono::seconds rate_limiter::retry_after(const std::string& address, clock::time_point now) {
  std::lock_guard lock(mutex_);
  const auto it = failures_.find(address);
  if (it == failures_.end()) return std::chrono::seconds(0);
  expire(it->second, now);
  if (it->second.size() < limit_) return std::chrono::seconds(0);
  const auto wait = it->second.front() + window_ - now;
  return std::max(std::chrono::seconds(1), std::chrono::ceil<std::chrono::seconds>(wait));
}

}  // namespace berth::auth
