#include "auth/identity_store.h"

#include <fmt/core.h>

#include <chrono>
#include <iterator>
#include <stdexcept>

#include "auth/secret.h"
#include "core/unix_time.h"

namespace berth::auth {
namespace {

using meta::sqlite::connection;
using meta::sqlite::statement;

constexpr const char* migrations[] = {
    R"sql(
CREATE TABLE users (
  name          TEXT PRIMARY KEY,
  password_hash TEXT NOT NULL,
  created_at    INTEGER NOT NULL
);
CREATE TABLE robots (
  name        TEXT PRIMARY KEY,
  token_hash  TEXT NOT NULL UNIQUE,
  description TEXT NOT NULL,
  expires_at  INTEGER,
  revoked_at  INTEGER,
  created_at  INTEGER NOT NULL
);
CREATE TABLE grants (
  id         INTEGER PRIMARY KEY,
  subject    TEXT NOT NULL,
  actions    TEXT NOT NULL,
  repository TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX grants_by_subject ON grants(subject);
)sql",
};
constexpr std::int64_t schema_version = std::size(migrations);

constexpr std::string_view robot_columns = "SELECT name, description, expires_at, revoked_at, created_at FROM robots ";

void migrate(connection& db) {
  auto st = db.prepare("PRAGMA user_version");
  auto row = st.step();
  if (!row || !*row) throw std::runtime_error("identity store: cannot read the schema version");
  const std::int64_t version = st.int64(0);
  if (version > schema_version)
    throw std::runtime_error(fmt::format("identity store: auth.db was written by a newer Berth (schema {})", version));
  for (std::int64_t v = version; v < schema_version; ++v) {
    const auto step = fmt::format("BEGIN IMMEDIATE; {} PRAGMA user_version = {}; COMMIT;", migrations[v], v + 1);
    if (!db.exec(step.c_str())) {
      (void)db.exec("ROLLBACK");
      throw std::runtime_error("identity store: schema migration failed (see log)");
    }
  }
}

std::optional<std::int64_t> optional_int(const statement& st, int column) {
  if (st.is_null(column)) return std::nullopt;
  return st.int64(column);
}

robot_record read_robot(const statement& st) {
  return robot_record{std::string(st.text(0)), std::string(st.text(1)), optional_int(st, 2), optional_int(st, 3),
                      st.int64(4)};
}

result<std::optional<robot_record>> one_robot(statement& st) {
  auto row = st.step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return std::nullopt;
  return read_robot(st);
}

}  // namespace

bool valid_account_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!(alnum || (i > 0 && (c == '.' || c == '_' || c == '-')))) return false;
  }
  return true;
}

std::unique_ptr<identity_store> identity_store::open(const std::string& path) {
  auto db = connection::open(path, connection::mode::read_write);
  if (!db) throw std::runtime_error(fmt::format("identity store: cannot open {} (see log)", path));
  migrate(*db);
  return std::unique_ptr<identity_store>(new identity_store(std::move(*db)));
}

std::uint64_t identity_store::generation() const {
  std::lock_guard lock(mutex_);
  return generation_;
}

result<bool> identity_store::has_users() {
  std::lock_guard lock(mutex_);
  auto st = db_.prepare("SELECT 1 FROM users LIMIT 1");
  return st.step();
}

result<void> identity_store::put_user(std::string_view name, std::string_view password_hash) {
  std::lock_guard lock(mutex_);
  ++generation_;
  return db_
      .prepare("INSERT INTO users(name, password_hash, created_at) VALUES (?1, ?2, ?3) "
               "ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash")
      .bind(name, password_hash, unix_seconds())
      .run();
}

result<std::optional<user_record>> identity_store::find_user(std::string_view name) {
  std::lock_guard lock(mutex_);
  auto st = db_.prepare("SELECT name, password_hash, created_at FROM users WHERE name = ?1");
  auto row = st.bind(name).step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return std::nullopt;
  return user_record{std::string(st.text(0)), std::string(st.text(1)), st.int64(2)};
}

result<std::vector<user_record>> identity_store::list_users() {
  std::lock_guard lock(mutex_);
  auto st = db_.prepare("SELECT name, created_at FROM users ORDER BY name");
  std::vector<user_record> out;
  for (;;) {
    auto row = st.step();
    if (!row) return std::unexpected(row.error());
    if (!*row) return out;
    out.push_back(user_record{std::string(st.text(0)), {}, st.int64(1)});
  }
}

result<bool> identity_store::delete_user(std::string_view name) {
  std::lock_guard lock(mutex_);
  ++generation_;
  const std::string subject = fmt::format("user:{}", name);
  if (auto r = db_.prepare("DELETE FROM grants WHERE subject = ?1").bind(subject).run(); !r)
    return std::unexpected(r.error());
  if (auto r = db_.prepare("DELETE FROM users WHERE name = ?1").bind(name).run(); !r) return std::unexpected(r.error());
  return db_.changes() > 0;
}

result<std::string> identity_store::create_robot(std::string_view name, std::string_view description,
                                                 std::optional<std::int64_t> expires_at) {
  std::lock_guard lock(mutex_);
  {
    auto st = db_.prepare("SELECT 1 FROM robots WHERE name = ?1");
    auto row = st.bind(name).step();
    if (!row) return std::unexpected(row.error());
    if (*row) return fail(errc::already_exists, fmt::format("robot {} already exists", name));
  }
  ++generation_;
  std::string token = std::string(robot_token_prefix) + random_urlsafe(32);
  const std::string hash = sha256_hex(token);
  auto r = db_
               .prepare("INSERT INTO robots(name, token_hash, description, expires_at, revoked_at, created_at) "
                        "VALUES (?1, ?2, ?3, ?4, NULL, ?5)")
               .bind(name, hash, description, expires_at, unix_seconds())
               .run();
  if (!r) return std::unexpected(r.error());
  return token;
}

result<std::optional<robot_record>> identity_store::robot_by_token(std::string_view token) {
  // The lookup is by hash of a 256-bit random secret: timing reveals nothing usable.
  const std::string hash = sha256_hex(token);
  std::lock_guard lock(mutex_);
  auto st = db_.prepare(fmt::format("{} WHERE token_hash = ?1", robot_columns));
  return one_robot(st.bind(hash));
}

result<std::optional<robot_record>> identity_store::find_robot(std::string_view name) {
  std::lock_guard lock(mutex_);
  auto st = db_.prepare(fmt::format("{} WHERE name = ?1", robot_columns));
  return one_robot(st.bind(name));
}

result<std::vector<robot_record>> identity_store::list_robots() {
  std::lock_guard lock(mutex_);
  auto st = db_.prepare(fmt::format("{} ORDER BY name", robot_columns));
  std::vector<robot_record> out;
  for (;;) {
    auto row = st.step();
    if (!row) return std::unexpected(row.error());
    if (!*row) return out;
    out.push_back(read_robot(st));
  }
}

result<bool> identity_store::revoke_robot(std::string_view name) {
  std::lock_guard lock(mutex_);
  ++generation_;
  auto r = db_.prepare("UPDATE robots SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL")
               .bind(name, unix_seconds())
               .run();
  if (!r) return std::unexpected(r.error());
  return db_.changes() > 0;
}

result<std::int64_t> identity_store::add_grant(std::string_view subject, std::string_view actions,
                                               std::string_view repository) {
  std::lock_guard lock(mutex_);
  ++generation_;
  auto r = db_.prepare("INSERT INTO grants(subject, actions, repository, created_at) VALUES (?1, ?2, ?3, ?4)")
               .bind(subject, actions, repository, unix_seconds())
               .run();
  if (!r) return std::unexpected(r.error());
  return db_.last_insert_rowid();
}

result<std::vector<stored_grant>> identity_store::grants(std::optional<std::string_view> subject) {
  std::lock_guard lock(mutex_);
  auto st = db_.prepare(
      "SELECT id, subject, actions, repository FROM grants WHERE ?1 IS NULL OR subject = ?1 ORDER BY id");
  st.bind(subject);
  std::vector<stored_grant> out;
  for (;;) {
    auto row = st.step();
    if (!row) return std::unexpected(row.error());
    if (!*row) return out;
    out.push_back(stored_grant{st.int64(0), std::string(st.text(1)), std::string(st.text(2)), std::string(st.text(3))});
  }
}

result<bool> identity_store::delete_grant(std::int64_t id) {
  std::lock_guard lock(mutex_);
  ++generation_;
  auto r = db_.prepare("DELETE FROM grants WHERE id = ?1").bind(id).run();
  if (!r) return std::unexpected(r.error());
  return db_.changes() > 0;
}

}  // namespace berth::auth
