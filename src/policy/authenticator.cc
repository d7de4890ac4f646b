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

authenticator::authenticator(auth::identity_store& store, std::vector<config_user> users,
                             federation_verifier federation)
    : store_(store), users_(std::move(users)), federation_(std::move(federation)),
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
  if (it == cache_.end()) return std::nullopt;
  if (it->second.generation != generation || it->second.expires < std::chrono::steady_clock::now()) {
    cache_.erase(it);
    return std::nullopt;
  }
  return it->second.who;
}

result<principal> authenticator::with_stored_grants(principal p) {
  auto stored = store_.grants(std::string_view(p.subject));
  if (!stored) return std::unexpected(stored.error());
  auto everyone = store_.grants(std::string_view("*"));
  if (!everyone) return std::unexpected(everyone.error());
  stored->insert(stored->end(), everyone->begin(), everyone->end());
  for (const auto& g : *stored) {
    auto converted = to_grant(g);
    if (!converted) continue;  // written by a newer Berth: ignore rather than lock everyone out
    p.grants.push_back(std::move(*converted));
  }
  return p;
}

result<principal> authenticator::basic(std::string_view username, std::string_view password) {
  const auto generation = store_.generation();
  result<principal> who = bad_credentials();
  if (username == "oidc" && federation_) {
    who = federation_(password);
  } else if (password.starts_with(auth::robot_token_prefix)) {
    auto robot = store_.robot_by_token(password);
    if (!robot) return std::unexpected(robot.error());
    // The name must match too: a token is not accepted under someone else's name.
    if (!*robot || !auth::constant_time_equal((*robot)->name, username)) return bad_credentials();
    if ((*robot)->revoked_at) return fail(errc::unauthorized, fmt::format("robot {} is revoked", username));
    if (!(*robot)->active(unix_seconds())) return fail(errc::unauthorized, fmt::format("robot {} has expired", username));
    who = with_stored_grants(principal{fmt::format("robot:{}", username), {}, {}});
  } else {
    std::optional<std::string> hash;
    for (const auto& u : users_) {
      if (u.name == username) hash = u.password_hash;
    }
    if (!hash) {
      auto user = store_.find_user(username);
      if (!user) return std::unexpected(user.error());
      if (*user) hash = (*user)->password_hash;
    }
    if (!hash) {
      // Spend the same time as a wrong password, so timing does not reveal which names exist.
      static const std::string dummy = auth::hash_password("berth-dummy-password");
      (void)auth::verify_password(dummy, password);
      return bad_credentials();
    }
    if (!auth::verify_password(*hash, password)) return bad_credentials();
    who = with_stored_grants(principal{fmt::format("user:{}", username), {}, {}});
  }
  if (!who) return who;
  std::lock_guard lock(mutex_);
  if (cache_.size() >= cache_max_entries) cache_.clear();
  cache_[cache_key(username, password)] = cache_entry{*who, generation, std::chrono::steady_clock::now() + cache_lifetime};
  return who;
}

result<principal> authenticator::by_subject(std::string_view subject) {
  if (subject.starts_with("user:")) {
    const auto name = subject.substr(5);
    bool found = false;
    for (const auto& u : users_) found = found || u.name == name;
    if (!found) {
      auto user = store_.find_user(name);
      if (!user) return std::unexpected(user.error());
      found = user->has_value();
    }
    if (!found) return fail(errc::unauthorized, fmt::format("{} no longer exists", subject));
    return with_stored_grants(principal{std::string(subject), {}, {}});
  }
  if (subject.starts_with("robot:")) {
    auto robot = store_.find_robot(subject.substr(6));
    if (!robot) return std::unexpected(robot.error());
    if (!*robot || !(*robot)->active(unix_seconds()))
      return fail(errc::unauthorized, fmt::format("{} is revoked, expired or unknown", subject));
    return with_stored_grants(principal{std::string(subject), {}, {}});
  }
  return fail(errc::unauthorized, fmt::format("{} cannot be resolved without its credentials", subject));
}

}  // namespace berth::policy
