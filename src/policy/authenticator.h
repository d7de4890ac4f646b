// Turns credentials into a principal: a user's name and password (argon2id), a robot's name and
// token, or (username `oidc`) a CI system's OIDC token checked by the federation. Adds the grants the
// identity store keeps for the subject. Successful results are cached for a minute under an HMAC of
// the credentials (keyed by a per-process random secret), so clients that send Basic credentials on
// every request do not pay for argon2 each time; any write to the identity store empties the cache.
// Thread-safety: every method is thread-safe. cached() never blocks and never suspends (the hot path:
// one HMAC, one atomic load, one map lookup). basic() and by_subject() are coroutines for an I/O
// thread: they await the identity store and send the blocking work (argon2, a federation key fetch)
// to the blocking pool. REQUIRES: string arguments stay valid until the awaitable completes.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "auth/identity_store.h"
#include "core/offload.h"
#include "policy/policy.h"

namespace berth::policy {

// A user declared in the config file (its password hash is in the file).
struct config_user {
  std::string name;
  std::string password_hash;  // PHC argon2id
};

// Verifies a federated token and returns its principal; set when federation is configured. May
// block (a key fetch): the authenticator calls it on the blocking pool.
using federation_verifier = std::function<result<principal>(std::string_view token)>;

class authenticator {
 public:
  // REQUIRES: `store` and `pool` outlive the authenticator.
  authenticator(auth::identity_store& store, blocking_pool& pool, std::vector<config_user> users,
                federation_verifier federation = {});

  // The principal for the credentials if they were verified within the last minute (and the
  // identity store has not changed since), else nullopt. Never blocks.
  std::optional<principal> cached(std::string_view username, std::string_view password);
  // Verifies the credentials. Fails with errc::unauthorized ("invalid username or password", "robot
  // ci is revoked", the federation's reason) or errc::internal.
  auth::awaitable<result<principal>> basic(std::string_view username, std::string_view password);
  // The principal of a user or robot subject ("user:alice", "robot:ci") as it stands now: fails
  // with errc::unauthorized when it no longer exists or is revoked. Used for refresh tokens.
  auth::awaitable<result<principal>> by_subject(std::string_view subject);

  bool has_federation() const { return static_cast<bool>(federation_); }
  // How many stored passwords were checked against their argon2id hash so far.
  std::uint64_t passwords_hashed() const { return hashed_.load(); }

 private:
  // The principal `subject` with the grants stored for it and for everyone ("*").
  auth::awaitable<result<principal>> with_stored_grants(std::string_view subject);
  std::string cache_key(std::string_view username, std::string_view password) const;
  // Whether `password` matches `hash`, the credentials' cache_key being `key`. On a pool thread:
  // it blocks while another thread verifies the same credentials.
  bool verify_once(const std::string& key, const std::string& hash, std::string_view password);

  // What the credentials of one cache_key were found to be lately: the principal, and for a user
  // the stored hash the password matched, known before the principal is (it waits on the grants).
  struct cache_entry {
    std::optional<principal> who;  // none while only the password is known to match
    std::uint64_t generation = 0;  // the identity store's, when `who` was read
    std::string password_hash;     // "" for robots and OIDC
    std::chrono::steady_clock::time_point expires;
  };
  // The entry of `key`, made when absent (the cache is emptied first when full). REQUIRES: mutex_ held.
  cache_entry& cache_slot(const std::string& key);

  auth::identity_store& store_;
  blocking_pool& pool_;
  std::vector<config_user> users_;
  federation_verifier federation_;
  std::string cache_secret_;
  std::mutex mutex_;
  std::unordered_map<std::string, cache_entry> cache_;  // by cache_key; guarded by mutex_
  // One verification at a time per credentials (by a hash of their cache_key; two credentials that
  // share a lock only wait for each other).
  std::array<std::mutex, 64> verifying_;
  std::atomic<std::uint64_t> hashed_{0};
};

// The policy grant for a stored one (its source is "grant #ID").
result<grant> to_grant(const auth::stored_grant& g);

}  // namespace berth::policy
