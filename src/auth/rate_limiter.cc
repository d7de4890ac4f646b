#include "auth/rate_limiter.h"

#include <algorithm>

#include "auth/secret.h"

namespace berth::auth {
namespace {

// Appends `field` so that no two different (first, second) pairs give the same string.
void append_field(std::string& out, std::string_view field) {
  out.append(std::to_string(field.size())).append(1, ':').append(field);
}

}  // namespace

rate_limiter::rate_limiter(std::size_t limit, std::chrono::seconds window, std::size_t max_keys,
                           std::chrono::hours remember)
    : limit_(limit), window_(window), max_keys_(max_keys), remember_(remember), secret_(random_urlsafe(32)) {}

rate_limiter::attempt rate_limiter::make_attempt(std::string_view address, std::string_view account,
                                                 std::string_view password) const {
  attempt a;
  append_field(a.key, address);
  append_field(a.key, account);
  std::string material;
  append_field(material, account);
  append_field(material, password);
  a.credentials = hmac_sha256(secret_, material);
  return a;
}

void rate_limiter::expire(std::deque<failure>& failures, clock::time_point now) const {
  while (!failures.empty() && now - failures.front().at >= window_) failures.pop_front();
}

bool rate_limiter::known_good(const std::string& credentials, clock::time_point now) {
  const auto it = good_.find(credentials);
  if (it == good_.end()) return false;
  if (now - it->second < remember_) return true;
  good_.erase(it);
  return false;
}

std::chrono::seconds rate_limiter::wait(const attempt& a, clock::time_point now) {
  if (limit_ == 0) return std::chrono::seconds(0);
  std::lock_guard lock(mutex_);
  const auto it = failures_.find(a.key);
  if (it == failures_.end()) return std::chrono::seconds(0);
  expire(it->second, now);
  if (it->second.empty()) {
    failures_.erase(it);
    return std::chrono::seconds(0);
  }
  if (it->second.size() < limit_ || known_good(a.credentials, now)) return std::chrono::seconds(0);
  const auto remaining = it->second.front().at + window_ - now;
  return std::max(std::chrono::seconds(1), std::chrono::ceil<std::chrono::seconds>(remaining));
}

void rate_limiter::failed(const attempt& a, clock::time_point now) {
  if (limit_ == 0) return;
  std::lock_guard lock(mutex_);
  if (!failures_.contains(a.key) && failures_.size() >= max_keys_) {
    // Drop the key whose latest failure is oldest.
    auto stalest = std::min_element(failures_.begin(), failures_.end(), [](const auto& x, const auto& y) {
      return x.second.empty() || (!y.second.empty() && x.second.back().at < y.second.back().at);
    });
    failures_.erase(stalest);
  }
  auto& list = failures_[a.key];
  expire(list, now);
  const bool repeated = std::any_of(list.begin(), list.end(), [&](const failure& f) { return f.credentials == a.credentials; });
  if (repeated) return;
  list.push_back(failure{now, a.credentials});
  while (list.size() > limit_) list.pop_front();
}

void rate_limiter::succeeded(const attempt& a, clock::time_point now) {
  if (limit_ == 0) return;
  std::lock_guard lock(mutex_);
  if (!good_.contains(a.credentials) && good_.size() >= max_keys_) {
    good_.erase(std::min_element(good_.begin(), good_.end(),
                                 [](const auto& x, const auto& y) { return x.second < y.second; }));
  }
  good_[a.credentials] = now;
}

}  // namespace berth::auth
