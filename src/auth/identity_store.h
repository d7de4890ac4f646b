// Identities Berth keeps itself, in the SQLite file auth.db in the data directory: users (argon2id
// password hashes), robot accounts (SHA-256 of a random token that is shown once), and grants added
// through the admin API. Config-file users and grants are not stored here; see policy/ and app/.
//
// Names of users and robots: [a-z0-9][a-z0-9._-]{0,63} (checked by valid_account_name).
// Errors: a backend failure is logged and returned as errc::internal; a conflict (the name exists)
// is errc::already_exists with a detail naming it. Calls block on disk and on argon2: from a coroutine, run
// them through blocking_pool.
// Thread-safety: every method is thread-safe (one connection behind a mutex: identity writes are rare).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "meta/sqlite_db.h"

namespace berth::auth {

bool valid_account_name(std::string_view name);

struct user_record {
  std::string name;
  std::string password_hash;  // PHC argon2id
  std::int64_t created_at = 0;  // unix seconds
};

struct robot_record {
  std::string name;
  std::string description;
  std::optional<std::int64_t> expires_at;  // unix seconds; nullopt: never
  std::optional<std::int64_t> revoked_at;
  std::int64_t created_at = 0;

  // Usable now: not revoked, not expired.
  bool active(std::int64_t now) const { return !revoked_at && (!expires_at || *expires_at > now); }
};

struct stored_grant {
  std::int64_t id = 0;
  std::string subject;  // "user:NAME", "robot:NAME", "*", "anonymous", "oidc:..."
  std::string actions;  // "pull,push"
  std::string repository;  // pattern
};

// The token of a robot account as shown to its owner once: "berth_" + 43 base64url characters.
inline constexpr std::string_view robot_token_prefix = "berth_";

class identity_store {
 public:
  // Opens (creating and migrating) the database at `path`. Throws std::runtime_error when it cannot.
  static std::unique_ptr<identity_store> open(const std::string& path);

  result<bool> has_users();
  // Creates the user or replaces its password hash.
  result<void> put_user(std::string_view name, std::string_view password_hash);
  result<std::optional<user_record>> find_user(std::string_view name);
  result<std::vector<user_record>> list_users();
  // False when there was no such user. Also deletes the user's stored grants.
  result<bool> delete_user(std::string_view name);

  // Creates robot `name` and returns its token (the only time it exists in clear). Fails with
  // errc::already_exists when a robot of that name exists (revoked ones included: names are not reused).
  result<std::string> create_robot(std::string_view name, std::string_view description,
                                   std::optional<std::int64_t> expires_at);
  // The robot whose token is `token` (revoked or expired ones too: the caller checks active()).
  result<std::optional<robot_record>> robot_by_token(std::string_view token);
  result<std::optional<robot_record>> find_robot(std::string_view name);
  result<std::vector<robot_record>> list_robots();
  // False when there is no such robot or it was already revoked.
  result<bool> revoke_robot(std::string_view name);

  result<std::int64_t> add_grant(std::string_view subject, std::string_view actions, std::string_view repository);
  // All stored grants, or only those of `subject`.
  result<std::vector<stored_grant>> grants(std::optional<std::string_view> subject = std::nullopt);
  result<bool> delete_grant(std::int64_t id);

  // Bumped by every write: caches of resolved identities compare it to notice changes.
  std::uint64_t generation() const;

 private:
  explicit identity_store(meta::sqlite::connection db) : db_(std::move(db)) {}

  mutable std::mutex mutex_;
  meta::sqlite::connection db_;  // guarded by mutex_
  std::uint64_t generation_ = 0;  // guarded by mutex_
};

}  // namespace berth::auth
