#include "policy/authenticator.h"

#include <fmt/core.h>

#include "auth/password.h"
#include "auth/secret.h"
#include "core/unix_time.h"

namespace berth::policy {
namespace {

constexpr auto cache_lifetime = std::chrono::seconds(60);
constexpr std::size_t cache_max_entries = 4096;

std::unexpected<error> bad_credentials() { return fail(errc::unauthorized, "invalid username or password"); }

}  // namespace

result<grant> to_grant(const auth::stored_grant& g) {
  auto actions = action_set::parse({g.actions});
  if (!actions) return std::unexpected(actions.error());
  return grant{g.subject, *actions, {g.repository}, fmt::format("grant #{}", g.id)};
}

authenticator::authenticator(auth::identity_store& store, blocking_pool& pool, std::vector<config_user> users,
                             federation_verifier federation)
    : store_(store), pool_(pool), users_(std::move(users)), federation_(std::move(federation)),
      cache_secret_(auth::random_urlsafe(32)) {}

std::string authenticator::cache_key(std::string_view username, std::string_view password) const {
  std::string material;
  material.reserve(username.size() + 1 + password.size());
  material.append(username).append(1, '\0').append(password);
  return auth::hmac_sha256(cache_secret_, material);
}

std::optional<principal> authenticator::cached(std::string_view username, std::string_view password) {
  const auto key = cache_key(username, password);
  const auto generation = store_.generation();
  std::lock_guard lock(mutex_);
  const auto it = cache_.find(key);
  if (it == cache_.end() || !it->second.who) return std::nullopt;
  if (it->second.generation != generation || it->second.expires < std::chrono::steady_clock::now()) {
    cache_.erase(it);
    return std::nullopt;
  }
  return it->second.who;
}

auth::awaitable<result<principal>> authenticator::with_stored_grants(std::string_view subject) {
  auto stored = co_await store_.grants(subject);
  if (!stored) co_return std::unexpected(stored.error());
  auto everyone = co_await store_.grants(std::string_view("*"));
  if (!everyone) co_return std::unexpected(everyone.error());
  stored->insert(stored->end(), everyone->begin(), everyone->end());
  principal p{std::string(subject), {}, {}};
  for (const auto& g : *stored) {
    auto converted = to_grant(g);
    if (!converted) continue;  // written by a newer Berth: ignore rather than lock everyone out
    p.grants.push_back(std::move(*converted));
  }
  co_return p;
}

// Store reads are awaited where they are (inline for SQLite); argon2 and the federation, which
// block, go to the pool. A robot's token costs a SHA-256, so robots need no pool at all.
authenticator::cache_entry& authenticator::cache_slot(const std::string& key) {
  if (cache_.size() >= cache_max_entries && !cache_.contains(key)) cache_.clear();
  return cache_[key];
}

auth::awaitable<result<principal>> authenticator::basic(std::string_view username, std::string_view password) {
  const auto generation = store_.generation();
  const std::string key = cache_key(username, password);
  result<principal> who = bad_credentials();
  if (username == "oidc" && federation_) {
    auto federated = co_await pool_.run([&] { return federation_(password); });
    who = std::move(federated);
  } else if (password.starts_with(auth::robot_token_prefix)) {
    auto robot = co_await store_.robot_by_token(password);
    if (!robot) co_return std::unexpected(robot.error());
    // The name must match too: a token is not accepted under someone else's name.
    if (!*robot || !auth::constant_time_equal((*robot)->name, username)) co_return bad_credentials();
    if ((*robot)->revoked_at) co_return fail(errc::unauthorized, fmt::format("robot {} is revoked", username));
    if (!(*robot)->active(unix_seconds()))
      co_return fail(errc::unauthorized, fmt::format("robot {} has expired", username));
    const std::string subject = fmt::format("robot:{}", username);
    auto granted = co_await with_stored_grants(subject);
    who = std::move(granted);
  } else {
    std::optional<std::string> hash;
    for (const auto& u : users_) {
      if (u.name == username) hash = u.password_hash;
    }
    if (!hash) {
      auto user = co_await store_.find_user(username);
      if (!user) co_return std::unexpected(user.error());
      if (*user) hash = (*user)->password_hash;
    }
    const bool verified = co_await pool_.run([&] {
      if (hash) return verify_once(key, *hash, password);
      // Spend the same time as a wrong password, so timing does not reveal which names exist.
      static const std::string dummy = auth::hash_password("berth-dummy-password");
      (void)auth::verify_password(dummy, password);
      return false;
    });
    if (!verified) co_return bad_credentials();
    const std::string subject = fmt::format("user:{}", username);
    auto granted = co_await with_stored_grants(subject);
    who = std::move(granted);
  }
  if (!who) co_return who;
  std::lock_guard lock(mutex_);
  auto& entry = cache_slot(key);
  entry.who = *who;
  entry.generation = generation;
  entry.expires = std::chrono::steady_clock::now() + cache_lifetime;
  co_return who;
}

// At most one argon2id verification of the same credentials runs at a time, and those waiting
// behind it reuse its outcome: a burst of requests whose credentials are not cached yet (a new
// instance behind a load balancer, a CI fleet starting) would otherwise hash the same password once
// per request (3 instances on S3 + PostgreSQL, 20 connections each with Basic credentials: the p99
// of a new instance's first 8 s of load fell from 0.8-1.0 s to 0.3-0.65 s). Only a match is
// remembered: a wrong password costs a hash each time.
bool authenticator::verify_once(const std::string& key, const std::string& hash, std::string_view password) {
  std::lock_guard one(verifying_[std::hash<std::string>{}(key) % verifying_.size()]);
  {
    std::lock_guard lock(mutex_);
    const auto it = cache_.find(key);
    if (it != cache_.end() && it->second.password_hash == hash && it->second.expires > std::chrono::steady_clock::now()) {
      return true;
    }
  }
  ++hashed_;
  if (!auth::verify_password(hash, password)) return false;
  std::lock_guard lock(mutex_);
  auto& entry = cache_slot(key);
  entry.password_hash = hash;
  entry.expires = std::chrono::steady_clock::now() + cache_lifetime;
  return true;
}

auth::awaitable<result<principal>> authenticator::by_subject(std::string_view subject) {
  if (subject.starts_with("user:")) {
    const auto name = subject.substr(5);
    bool found = false;
    for (const auto& u : users_) found = found || u.name == name;
    if (!found) {
      auto user = co_await store_.find_user(name);
      if (!user) co_return std::unexpected(user.error());
      found = user->has_value();
    }
    if (!found) co_return fail(errc::unauthorized, fmt::format("{} no longer exists", subject));
    co_return co_await with_stored_grants(subject);
  }
  if (subject.starts_with("robot:")) {
    auto robot = co_await store_.find_robot(subject.substr(6));
    if (!robot) co_return std::unexpected(robot.error());
    if (!*robot || !(*robot)->active(unix_seconds()))
      co_return fail(errc::unauthorized, fmt::format("{} is revoked, expired or unknown", subject));
    co_return co_await with_stored_grants(subject);
  }
  co_return fail(errc::unauthorized, fmt::format("{} cannot be resolved without its credentials", subject));
}

}  // namespace berth::policy
