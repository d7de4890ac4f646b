// The SQLite identity store (auth.db). Reads run inline on one read-only connection: in WAL mode
// they read their own snapshot and never wait for the writer, and they take microseconds, so a
// mutex among readers costs nothing worth a pool. Writes run on the blocking pool, one at a time, on
// the writer connection; each commits (fsync) before it completes. The generation is an atomic
// advanced after each commit, so reading it never waits for a write in flight.

#include <fmt/core.h>

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <type_traits>

#include "auth/identity_store.h"
#include "core/offload.h"
#include "core/unix_time.h"
#include "meta/sqlite_db.h"

namespace berth::auth {
namespace {

using meta::sqlite::connection;
using meta::sqlite::statement;

// Schema migrations (meta::sqlite::migrate): migrations[v] takes auth.db from user_version v to v + 1.
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
    // Grant ids are never reused (AUTOINCREMENT): a plain rowid table hands a deleted highest id to
    // the next grant, so a retried DELETE /grants/<id> could remove a grant it never saw.
    R"sql(
CREATE TABLE grants_v2 (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  subject    TEXT NOT NULL,
  actions    TEXT NOT NULL,
  repository TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
INSERT INTO grants_v2(id, subject, actions, repository, created_at)
  SELECT id, subject, actions, repository, created_at FROM grants;
DROP TABLE grants;
ALTER TABLE grants_v2 RENAME TO grants;
CREATE INDEX grants_by_subject ON grants(subject);
)sql",
    // Namespaces created through the admin API (the config's are not stored).
    R"sql(
CREATE TABLE namespaces (
  name       TEXT PRIMARY KEY,
  settings   TEXT NOT NULL,
  updated_at INTEGER NOT NULL
);
)sql",
};

// ---- SQL ----

constexpr std::string_view has_users_sql = "SELECT 1 FROM users LIMIT 1";
constexpr std::string_view put_user_sql =
    "INSERT INTO users(name, password_hash, created_at) VALUES (?1, ?2, ?3) "
    "ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash";
constexpr std::string_view find_user_sql = "SELECT name, password_hash, created_at FROM users WHERE name = ?1";
constexpr std::string_view list_users_sql = "SELECT name, created_at FROM users ORDER BY name";
constexpr std::string_view delete_user_grants_sql = "DELETE FROM grants WHERE subject = ?1";
constexpr std::string_view delete_user_sql = "DELETE FROM users WHERE name = ?1";
// ON CONFLICT DO NOTHING: an existing name is reported through changes() == 0, in one statement.
constexpr std::string_view insert_robot_sql =
    "INSERT INTO robots(name, token_hash, description, expires_at, revoked_at, created_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (name) DO NOTHING";
#define BERTH_ROBOT_COLUMNS "SELECT name, description, expires_at, revoked_at, created_at, token_hash FROM robots "
constexpr std::string_view robot_by_hash_sql = BERTH_ROBOT_COLUMNS "WHERE token_hash = ?1";
constexpr std::string_view find_robot_sql = BERTH_ROBOT_COLUMNS "WHERE name = ?1";
constexpr std::string_view list_robots_sql = BERTH_ROBOT_COLUMNS "ORDER BY name";
#undef BERTH_ROBOT_COLUMNS
constexpr std::string_view revoke_robot_sql =
    "UPDATE robots SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL";
constexpr std::string_view update_robot_sql =
    "UPDATE robots SET description = ?2, expires_at = ?3 WHERE name = ?1 AND revoked_at IS NULL";
constexpr std::string_view namespaces_sql = "SELECT name, settings, updated_at FROM namespaces ORDER BY name";
constexpr std::string_view put_namespace_sql =
    "INSERT INTO namespaces(name, settings, updated_at) VALUES (?1, ?2, ?3) "
    "ON CONFLICT (name) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at";
constexpr std::string_view delete_namespace_sql = "DELETE FROM namespaces WHERE name = ?1";
constexpr std::string_view add_grant_sql =
    "INSERT INTO grants(subject, actions, repository, created_at) VALUES (?1, ?2, ?3, ?4)";
constexpr std::string_view grants_sql =
    "SELECT id, subject, actions, repository FROM grants WHERE ?1 IS NULL OR subject = ?1 ORDER BY id";
constexpr std::string_view delete_grant_sql = "DELETE FROM grants WHERE id = ?1";

// ---- rows ----

std::optional<std::int64_t> optional_int(const statement& st, int column) {
  if (st.is_null(column)) return std::nullopt;
  return st.int64(column);
}

robot_record read_robot(const statement& st) {
  return robot_record{std::string(st.text(0)), std::string(st.text(1)), optional_int(st, 2), optional_int(st, 3),
                      st.int64(4),                 std::string(st.text(5))};
}

result<std::optional<robot_record>> one_robot(statement& st) {
  auto row = st.step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return std::nullopt;
  return read_robot(st);
}

// Every row of `st`, each turned into a value by `read`.
template <class Read>
auto all_rows(statement& st, Read read) -> result<std::vector<decltype(read(st))>> {
  std::vector<decltype(read(st))> out;
  for (;;) {
    auto row = st.step();
    if (!row) return std::unexpected(row.error());
    if (!*row) return out;
    out.push_back(read(st));
  }
}

result<bool> changed_rows(connection& db, statement& st) {
  if (auto r = st.run(); !r) return std::unexpected(r.error());
  return db.changes() > 0;
}

connection open_or_throw(const std::string& path, connection::mode m) {
  auto db = connection::open(path, m);
  if (!db) throw std::runtime_error(fmt::format("identity store: cannot open {} (see log)", path));
  return std::move(*db);
}

connection open_and_migrate(const std::string& path) {
  auto db = open_or_throw(path, connection::mode::read_write);
  meta::sqlite::migrate(db, migrations, path);
  return db;
}

class sqlite_identity_store final : public identity_store {
 public:
  sqlite_identity_store(const std::string& path, blocking_pool& pool)
      : pool_(pool), writer_(open_and_migrate(path)), reader_(open_or_throw(path, connection::mode::read_only)) {}

  awaitable<result<bool>> has_users() override {
    co_return read([](connection& db) { return db.prepare(has_users_sql).step(); });
  }

  awaitable<result<void>> put_user(std::string_view name, std::string_view password_hash) override {
    auto op = [&](connection& db) {
      return db.prepare(put_user_sql).bind(name, password_hash, unix_seconds()).run();
    };
    co_return co_await write(op);
  }

  awaitable<result<bool>> create_first_admin(std::string_view password_hash) override {
    auto op = [&](connection& db) -> result<bool> {
      auto users = db.prepare(has_users_sql);
      auto any = users.step();
      if (!any) return std::unexpected(any.error());
      if (*any) return false;
      const std::int64_t now = unix_seconds();
      using namespace std::string_view_literals;
      if (auto r = db.prepare(put_user_sql).bind("admin"sv, password_hash, now).run(); !r) return std::unexpected(r.error());
      if (auto r = db.prepare(add_grant_sql).bind("user:admin"sv, "admin"sv, "*"sv, now).run(); !r)
        return std::unexpected(r.error());
      return true;
    };
    co_return co_await write(op);
  }

  awaitable<result<std::optional<user_record>>> find_user(std::string_view name) override {
    co_return read([&](connection& db) -> result<std::optional<user_record>> {
      auto st = db.prepare(find_user_sql);
      auto row = st.bind(name).step();
      if (!row) return std::unexpected(row.error());
      if (!*row) return std::nullopt;
      return user_record{std::string(st.text(0)), std::string(st.text(1)), st.int64(2)};
    });
  }

  awaitable<result<std::vector<user_record>>> list_users() override {
    co_return read([](connection& db) {
      auto st = db.prepare(list_users_sql);
      return all_rows(st, [](const statement& row) { return user_record{std::string(row.text(0)), {}, row.int64(1)}; });
    });
  }

  awaitable<result<bool>> delete_user(std::string_view name) override {
    auto op = [&](connection& db) -> result<bool> {
      return in_transaction(db, [&]() -> result<bool> {
        auto grants = db.prepare(delete_user_grants_sql).bind(fmt::format("user:{}", name)).run();
        if (!grants) return std::unexpected(grants.error());
        auto st = db.prepare(delete_user_sql);
        return changed_rows(db, st.bind(name));
      });
    };
    co_return co_await write(op);
  }

  awaitable<result<std::string>> create_robot(std::string_view name, std::string_view description,
                                              std::optional<std::int64_t> expires_at) override {
    std::string token = new_robot_token();
    robot_record r{std::string(name), std::string(description), expires_at, std::nullopt, unix_seconds(),
                   robot_token_hash(token)};
    auto stored = co_await put_robot(r);
    if (!stored) co_return std::unexpected(stored.error());
    co_return token;
  }

  awaitable<result<void>> put_robot(const robot_record& r) override {
    auto op = [&](connection& db) {
      auto st = db.prepare(insert_robot_sql);
      return changed_rows(db, st.bind(r.name, r.token_hash, r.description, r.expires_at, r.revoked_at, r.created_at));
    };
    auto created = co_await write(op);
    if (!created) co_return std::unexpected(created.error());
    if (!*created) co_return fail(errc::already_exists, fmt::format("robot {} already exists", r.name));
    co_return result<void>{};
  }

  awaitable<result<std::optional<robot_record>>> robot_by_token(std::string_view token) override {
    const std::string hash = robot_token_hash(token);
    co_return read([&](connection& db) {
      auto st = db.prepare(robot_by_hash_sql);
      return one_robot(st.bind(hash));
    });
  }

  awaitable<result<std::optional<robot_record>>> find_robot(std::string_view name) override {
    co_return read([&](connection& db) {
      auto st = db.prepare(find_robot_sql);
      return one_robot(st.bind(name));
    });
  }

  awaitable<result<std::vector<robot_record>>> list_robots() override {
    co_return read([](connection& db) {
      auto st = db.prepare(list_robots_sql);
      return all_rows(st, read_robot);
    });
  }

  awaitable<result<bool>> revoke_robot(std::string_view name) override {
    auto op = [&](connection& db) {
      auto st = db.prepare(revoke_robot_sql);
      return changed_rows(db, st.bind(name, unix_seconds()));
    };
    co_return co_await write(op);
  }

  awaitable<result<bool>> update_robot(std::string_view name, std::string_view description,
                                       std::optional<std::int64_t> expires_at) override {
    auto op = [&](connection& db) {
      auto st = db.prepare(update_robot_sql);
      return changed_rows(db, st.bind(name, description, expires_at));
    };
    co_return co_await write(op);
  }

  awaitable<result<std::vector<namespace_record>>> namespaces() override {
    co_return read([](connection& db) {
      auto st = db.prepare(namespaces_sql);
      return all_rows(st, [](const statement& row) {
        return namespace_record{std::string(row.text(0)), std::string(row.text(1)), row.int64(2)};
      });
    });
  }

  awaitable<result<void>> put_namespace(std::string_view name, std::string_view settings) override {
    auto op = [&](connection& db) { return db.prepare(put_namespace_sql).bind(name, settings, unix_seconds()).run(); };
    co_return co_await write(op);
  }

  awaitable<result<bool>> delete_namespace(std::string_view name) override {
    auto op = [&](connection& db) {
      auto st = db.prepare(delete_namespace_sql);
      return changed_rows(db, st.bind(name));
    };
    co_return co_await write(op);
  }

  awaitable<result<std::int64_t>> add_grant(std::string_view subject, std::string_view actions,
                                            std::string_view repository) override {
    auto op = [&](connection& db) -> result<std::int64_t> {
      auto r = db.prepare(add_grant_sql).bind(subject, actions, repository, unix_seconds()).run();
      if (!r) return std::unexpected(r.error());
      return db.last_insert_rowid();
    };
    co_return co_await write(op);
  }

  awaitable<result<std::vector<stored_grant>>> grants(std::optional<std::string_view> subject) override {
    co_return read([&](connection& db) {
      auto st = db.prepare(grants_sql);
      st.bind(subject);
      return all_rows(st, [](const statement& row) {
        return stored_grant{row.int64(0), std::string(row.text(1)), std::string(row.text(2)),
                            std::string(row.text(3))};
      });
    });
  }

  awaitable<result<bool>> delete_grant(std::int64_t id) override {
    auto op = [&](connection& db) {
      auto st = db.prepare(delete_grant_sql);
      return changed_rows(db, st.bind(id));
    };
    co_return co_await write(op);
  }

  std::uint64_t generation() const override { return generation_.load(std::memory_order_acquire); }

 private:
  // Runs `body` on the reader connection, on the calling thread.
  template <class F>
  auto read(F&& body) -> std::invoke_result_t<F&, connection&> {
    std::lock_guard lock(reader_mutex_);
    return body(reader_);
  }

  // Runs `body` on the writer connection on the blocking pool; a success advances the generation
  // after the commit, so whoever sees the new generation also sees the change. `body` is a named
  // lambda of the caller: GCC 12 mishandles class temporaries passed by value into coroutines.
  template <class F>
  awaitable<std::invoke_result_t<F&, connection&>> write(F& body) {
    auto r = co_await pool_.run([&] {
      std::lock_guard lock(writer_mutex_);
      auto written = body(writer_);
      if (written) generation_.fetch_add(1, std::memory_order_release);
      return written;
    });
    co_return r;
  }

  // Runs `body` (several statements) as one transaction on `db`.
  template <class F>
  static auto in_transaction(connection& db, F&& body) -> std::invoke_result_t<F&> {
    if (auto begun = db.exec("BEGIN IMMEDIATE"); !begun) return std::unexpected(begun.error());
    auto r = body();
    if (r) {
      if (auto committed = db.exec("COMMIT"); !committed) r = std::unexpected(committed.error());
    }
    if (db.in_transaction()) (void)db.exec("ROLLBACK");
    return r;
  }

  blocking_pool& pool_;
  std::mutex writer_mutex_;
  connection writer_;  // guarded by writer_mutex_
  std::mutex reader_mutex_;
  connection reader_;  // guarded by reader_mutex_
  std::atomic<std::uint64_t> generation_{0};
};

}  // namespace

std::unique_ptr<identity_store> make_sqlite_identity_store(const std::string& path, blocking_pool& pool) {
  return std::make_unique<sqlite_identity_store>(path, pool);
}

}  // namespace berth::auth
