// A thin RAII layer over the SQLite C API, used by the SQLite metadata store (meta/) and the SQLite
// identity store (auth/): a `connection` owns a database handle and caches its prepared statements;
// a `statement` is a borrowed cached statement that is reset when it goes out of scope; migrate()
// brings a database to its schema version.
//
// Errors: every SQLite failure is logged here (with the SQL and SQLite's message) and surfaces as
// errc::internal with a generic detail, so callers only propagate it.
// Thread-safety: a connection (and its statements) is used by one thread at a time; different
// connections may be used concurrently (REQUIRES: a thread-safe SQLite build, as Debian's is).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/error.h"

struct sqlite3;
struct sqlite3_stmt;

namespace berth::meta::sqlite {

// The error every SQLite failure becomes (the cause is in the log).
std::unexpected<error> failure();

// Marks a value to bind as a BLOB rather than TEXT.
struct blob_view {
  std::string_view bytes;
};

// A cached prepared statement borrowed from its connection. If preparing failed, the statement is
// empty and step() returns the (already logged) error, so callers check errors once, at step().
// REQUIRES: buffers bound with bind() outlive the last step() (they are bound without copying).
class statement {
 public:
  explicit statement(sqlite3_stmt* stmt) : stmt_(stmt) {}
  statement(const statement&) = delete;
  statement& operator=(const statement&) = delete;
  ~statement();

  // Binds the arguments to parameters 1..N in order.
  template <class... Args>
  statement& bind(const Args&... args) {
    int index = 0;
    (bind_one(++index, args), ...);
    return *this;
  }

  // Advances: true when a row is available, false when done.
  result<bool> step();
  // Runs a statement that returns no rows (or ignores them).
  result<void> run();

  std::int64_t int64(int column) const;
  std::string_view text(int column) const;  // valid until the next step()
  bool is_null(int column) const;

 private:
  void bind_one(int index, std::string_view text);
  void bind_one(int index, const std::string& text) { bind_one(index, std::string_view(text)); }
  void bind_one(int index, blob_view blob);
  void bind_one(int index, std::int64_t value);
  void bind_one(int index, std::uint64_t value);
  void bind_one(int index, std::nullopt_t);
  template <class T>
  void bind_one(int index, const std::optional<T>& value) {
    if (value) {
      bind_one(index, *value);
    } else {
      bind_one(index, std::nullopt);
    }
  }
  void check_bind(int rc);

  sqlite3_stmt* stmt_;
  int bind_rc_ = 0;  // first failed bind, reported by step()
};

class connection {
 public:
  enum class mode { read_write, read_only };

  // Opens (creating when `m` is read_write) the database at `path` with Berth's settings: WAL,
  // synchronous=FULL, foreign keys, a busy timeout; read_only connections also set query_only.
  static result<connection> open(const std::string& path, mode m);

  connection(connection&&) noexcept = default;
  connection& operator=(connection&&) noexcept = default;
  ~connection() = default;

  // Runs one or more statements without caching them (DDL, PRAGMA, transaction control).
  result<void> exec(const char* sql);
  // The statement for `sql`, prepared once per connection (SQLITE_PREPARE_PERSISTENT).
  // REQUIRES: a statement for `sql` is not already borrowed (no nested use of the same SQL).
  statement prepare(std::string_view sql);

  bool in_transaction() const;
  std::int64_t changes() const;
  std::int64_t last_insert_rowid() const;

 private:
  struct db_closer {
    void operator()(sqlite3* db) const;
  };
  struct stmt_finalizer {
    void operator()(sqlite3_stmt* stmt) const;
  };
  struct sql_hash : std::hash<std::string_view> {
    using is_transparent = void;
  };

  explicit connection(sqlite3* db) : db_(db) {}

  // Declared before the cache so statements are finalized before the database is closed.
  std::unique_ptr<sqlite3, db_closer> db_;
  std::unordered_map<std::string, std::unique_ptr<sqlite3_stmt, stmt_finalizer>, sql_hash, std::equal_to<>>
      cache_;
};

// Brings the database to schema version migrations.size(), recorded in PRAGMA user_version:
// migrations[v] is the SQL that takes it from version v to v + 1, and each step commits in its own
// transaction together with the new version, so a failed step leaves the previous version intact.
// `name` (e.g. the file's path) is used in messages. Throws std::runtime_error, for start-up, when
// the version cannot be read, when the database was written by a newer Berth (a higher version), or
// when a step fails (the cause is in the log).
void migrate(connection& db, std::span<const char* const> migrations, std::string_view name);

}  // namespace berth::meta::sqlite
