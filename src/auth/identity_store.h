// Identities Berth keeps itself: users (argon2id password hashes), robot accounts (the SHA-256 of a
// random token that is shown once), grants added through the admin API, and the namespaces created
// through it (their settings, which the policy reads: stored here so that they share the generation
// that tells every instance to reload what it derived from this store). Config-file users and
// grants are not stored here; see policy/ and app/. The SQLite implementation keeps them in auth.db
// in the data directory (make_sqlite_identity_store); the PostgreSQL one in a database that several
// instances share (make_pg_identity_store, auth/pg_identity_store.h); app/ is the only place that
// names them.
//
// Names of users and robots: [a-z0-9][a-z0-9._-]{0,63} (callers check valid_account_name).
// Ordering: users and robots are listed by name in byte order, grants by id (creation order).
// Durability: a write completes once committed; a completed write survives a crash and is seen by
// every later read (through any object on the same store).
// Errors: a backend failure is logged by the implementation and returned as errc::internal with no
// detail about the machine; a name that is taken is errc::already_exists with a detail naming it.
// Asynchrony: every call except generation() returns an awaitable. An implementation may finish it
// inline (a local read) or suspend (a local write on the blocking pool, a network round trip); it
// never blocks the awaiting thread on disk or network. REQUIRES: string arguments stay valid until
// the awaitable completes (await it in the same statement).
// Thread-safety: every method may be called concurrently from any thread.
#pragma once

#include <utility>  // before Asio: boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace berth {
class blocking_pool;
}

namespace berth::auth {

using boost::asio::awaitable;

bool valid_account_name(std::string_view name);

struct user_record {
  std::string name;
  std::string password_hash;  // PHC argon2id; empty in list_users()
  std::int64_t created_at = 0;  // unix seconds
};

struct robot_record {
  std::string name;
  std::string description;
  std::optional<std::int64_t> expires_at;  // unix seconds; nullopt: never
  std::optional<std::int64_t> revoked_at;
  std::int64_t created_at = 0;
  std::string token_hash;  // robot_token_hash of its token

  // Usable now: not revoked, not expired.
  bool active(std::int64_t now) const { return !revoked_at && (!expires_at || *expires_at > now); }
};

// A namespace created through the admin API. Its settings are a compact JSON object that this store
// keeps as it is: policy::namespace_settings_json writes it and policy::parse_namespace_settings
// reads it, so a new setting needs no schema change.
struct namespace_record {
  std::string name;
  std::string settings;
  std::int64_t updated_at = 0;  // unix seconds
};

struct stored_grant {
  std::int64_t id = 0;
  std::string subject;  // "user:NAME", "robot:NAME", "*", "anonymous", "oidc:..."
  std::string actions;  // "pull,push"
  std::string repository;  // pattern
};

// The token of a robot account as shown to its owner once: "berth_" + 43 base64url characters.
inline constexpr std::string_view robot_token_prefix = "berth_";
// A fresh robot token (256 random bits).
std::string new_robot_token();
// What a store keeps of a robot token and looks it up by: its SHA-256, hex. Every implementation
// uses this one function, so stored robots can move between backends.
std::string robot_token_hash(std::string_view token);

class identity_store {
 public:
  virtual ~identity_store() = default;

  // Users.
  virtual awaitable<result<bool>> has_users() = 0;
  // Creates the user or replaces its password hash (keeping created_at).
  virtual awaitable<result<void>> put_user(std::string_view name, std::string_view password_hash) = 0;
  // The first start's administrator: user `admin` with `password_hash` and the grant of `admin` on
  // `*` to `user:admin`, created together when the store has no user at all; false, and nothing
  // changed, when it has one (such as the admin that another instance, starting at the same time
  // on the same database, created first).
  virtual awaitable<result<bool>> create_first_admin(std::string_view password_hash) = 0;
  virtual awaitable<result<std::optional<user_record>>> find_user(std::string_view name) = 0;
  virtual awaitable<result<std::vector<user_record>>> list_users() = 0;
  // False when there was no such user. Also deletes the user's stored grants, in the same transaction.
  virtual awaitable<result<bool>> delete_user(std::string_view name) = 0;

  // Robots. Creates robot `name` and returns its token (the only time it exists in clear; the store
  // keeps robot_token_hash of it). Fails with errc::already_exists when a robot of that name exists (revoked
  // ones included: names are not reused).
  virtual awaitable<result<std::string>> create_robot(std::string_view name, std::string_view description,
                                                      std::optional<std::int64_t> expires_at) = 0;
  // The robot whose token is `token` (revoked or expired ones too: the caller checks active()).
  virtual awaitable<result<std::optional<robot_record>>> robot_by_token(std::string_view token) = 0;
  virtual awaitable<result<std::optional<robot_record>>> find_robot(std::string_view name) = 0;
  virtual awaitable<result<std::vector<robot_record>>> list_robots() = 0;
  // False when there is no such robot or it was already revoked.
  virtual awaitable<result<bool>> revoke_robot(std::string_view name) = 0;
  // Changes an active robot's description and expiry (nullopt: never) in place; its token stays.
  // False when there is no such robot or it is revoked.
  virtual awaitable<result<bool>> update_robot(std::string_view name, std::string_view description,
                                               std::optional<std::int64_t> expires_at) = 0;
  // Stores `r` as it is (token hash, dates, revocation): a robot copied from another store, whose
  // token keeps working (berth migrate). errc::already_exists as create_robot.
  virtual awaitable<result<void>> put_robot(const robot_record& r) = 0;

  // Grants. Returns the new grant's id: positive, larger than every id handed out before.
  virtual awaitable<result<std::int64_t>> add_grant(std::string_view subject, std::string_view actions,
                                                    std::string_view repository) = 0;
  // All stored grants (nullopt), or only those whose subject is exactly `subject`.
  virtual awaitable<result<std::vector<stored_grant>>> grants(std::optional<std::string_view> subject) = 0;
  // False when there is no such grant.
  virtual awaitable<result<bool>> delete_grant(std::int64_t id) = 0;

  // Namespaces, by name in byte order.
  virtual awaitable<result<std::vector<namespace_record>>> namespaces() = 0;
  // Creates namespace `name` or replaces its settings.
  virtual awaitable<result<void>> put_namespace(std::string_view name, std::string_view settings) = 0;
  // False when there is no such namespace.
  virtual awaitable<result<bool>> delete_namespace(std::string_view name) = 0;

  // A number that advances whenever the stored identities may have changed: after every successful
  // write through this object, before its awaitable completes, and never before the change is
  // visible to reads. (A store shared by several servers must also advance it, within a bound it
  // documents, for the others' writes.) Caches of resolved identities keep the generation they were
  // filled under and drop entries when it moves on. Read on every authenticated request: it never
  // blocks, never waits for a write in flight, never fails.
  virtual std::uint64_t generation() const = 0;
};

// The SQLite implementation on the database at `path` (created and migrated when needed). Reads run
// inline on a read-only connection, so they never wait for a write; writes run on `pool` over one
// writer connection (identity writes are rare). Throws std::runtime_error when the database cannot be
// opened or migrated. REQUIRES: `pool` outlives the store.
std::unique_ptr<identity_store> make_sqlite_identity_store(const std::string& path, blocking_pool& pool);

}  // namespace berth::auth
