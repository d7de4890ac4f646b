#include "meta/sqlite_db.h"

#include <fmt/format.h>
#include <sqlite3.h>
#include <spdlog/spdlog.h>

#include <limits>
#include <mutex>
#include <stdexcept>

namespace berth::meta::sqlite {
namespace {

// Long enough to ride out another process's checkpoint; Berth itself has a single writer.
constexpr int busy_timeout_ms = 5000;

// Process-wide settings, before SQLite initializes. Memory statistics take a global mutex on every
// allocation, which costs readers on separate connections more than anything Berth learns from them.
void configure_once() {
  static std::once_flag once;
  std::call_once(once, [] { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
}

void log_error(sqlite3* db, int rc, std::string_view what) {
  spdlog::error("sqlite: {}: {} ({})", what, db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc), rc);
}

}  // namespace

std::unexpected<error> failure() { return fail(errc::internal, "metadata store failure"); }

// ---- statement ----

statement::~statement() {
  if (stmt_ != nullptr) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
}

void statement::check_bind(int rc) {
  if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) bind_rc_ = rc;
}

void statement::bind_one(int index, std::string_view text) {
  if (stmt_ == nullptr) return;
  // A non-null pointer even for "" so the value binds as an empty string, not NULL.
  check_bind(sqlite3_bind_text64(stmt_, index, text.empty() ? "" : text.data(), text.size(), SQLITE_STATIC,
                                 SQLITE_UTF8));
}

void statement::bind_one(int index, blob_view blob) {
  if (stmt_ == nullptr) return;
  check_bind(sqlite3_bind_blob64(stmt_, index, blob.bytes.empty() ? "" : blob.bytes.data(), blob.bytes.size(),
                                 SQLITE_STATIC));
}

void statement::bind_one(int index, std::int64_t value) {
  if (stmt_ == nullptr) return;
  check_bind(sqlite3_bind_int64(stmt_, index, value));
}

void statement::bind_one(int index, std::uint64_t value) {
  if (stmt_ == nullptr) return;
  // Sizes and limits: clamp rather than wrap (LIMIT of "everything" is passed as SIZE_MAX).
  constexpr auto max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  check_bind(sqlite3_bind_int64(stmt_, index, static_cast<std::int64_t>(std::min(value, max))));
}

void statement::bind_one(int index, std::nullopt_t) {
  if (stmt_ == nullptr) return;
  check_bind(sqlite3_bind_null(stmt_, index));
}

result<bool> statement::step() {
  if (stmt_ == nullptr) return failure();  // prepare failed and was logged
  if (bind_rc_ != SQLITE_OK) {
    log_error(sqlite3_db_handle(stmt_), bind_rc_, fmt::format("bind for {}", sqlite3_sql(stmt_)));
    return failure();
  }
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  log_error(sqlite3_db_handle(stmt_), rc, sqlite3_sql(stmt_));
  return failure();
}

result<void> statement::run() {
  for (;;) {
    auto row = step();
    if (!row) return std::unexpected(row.error());
    if (!*row) return {};
  }
}

std::int64_t statement::int64(int column) const { return sqlite3_column_int64(stmt_, column); }

std::string_view statement::text(int column) const {
  // Works for TEXT and BLOB columns alike; bytes before length, as SQLite requires.
  const void* data = sqlite3_column_blob(stmt_, column);
  const int size = sqlite3_column_bytes(stmt_, column);
  return data == nullptr ? std::string_view() : std::string_view(static_cast<const char*>(data), size);
}

bool statement::is_null(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }

// ---- connection ----

void connection::db_closer::operator()(sqlite3* db) const { sqlite3_close_v2(db); }
void connection::stmt_finalizer::operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }

result<connection> connection::open(const std::string& path, mode m) {
  // NOMUTEX: each connection is confined to one thread at a time by its owner.
  configure_once();
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (m == mode::read_write ? SQLITE_OPEN_CREATE : 0);
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  connection conn(raw);  // owns the handle even when opening failed
  if (rc != SQLITE_OK) {
    log_error(raw, rc, fmt::format("open {}", path));
    return failure();
  }
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, busy_timeout_ms);
  // journal_mode=WAL is persistent in the file; setting it on every connection is harmless and
  // makes a fresh database WAL before its first write. FULL: a commit survives power loss.
  if (auto r = conn.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"); !r) {
    return std::unexpected(r.error());
  }
  if (m == mode::read_only) {
    if (auto r = conn.exec("PRAGMA query_only=ON;"); !r) return std::unexpected(r.error());
  }
  return conn;
}

result<void> connection::exec(const char* sql) {
  char* message = nullptr;
  const int rc = sqlite3_exec(db_.get(), sql, nullptr, nullptr, &message);
  if (rc == SQLITE_OK) return {};
  spdlog::error("sqlite: {}: {} ({})", sql, message != nullptr ? message : sqlite3_errstr(rc), rc);
  sqlite3_free(message);
  return failure();
}

statement connection::prepare(std::string_view sql) {
  if (auto it = cache_.find(sql); it != cache_.end()) return statement(it->second.get());
  sqlite3_stmt* raw = nullptr;
  const int rc = sqlite3_prepare_v3(db_.get(), sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                                    &raw, nullptr);
  if (rc != SQLITE_OK) {
    log_error(db_.get(), rc, fmt::format("prepare {}", sql));
    return statement(nullptr);
  }
  cache_.emplace(std::string(sql), std::unique_ptr<sqlite3_stmt, stmt_finalizer>(raw));
  return statement(raw);
}

bool connection::in_transaction() const { return sqlite3_get_autocommit(db_.get()) == 0; }
std::int64_t connection::changes() const { return sqlite3_changes64(db_.get()); }
std::int64_t connection::last_insert_rowid() const { return sqlite3_last_insert_rowid(db_.get()); }

// ---- migrations ----

void migrate(connection& db, std::span<const char* const> migrations, std::string_view name) {
  std::int64_t version = 0;
  {
    auto st = db.prepare("PRAGMA user_version");
    auto row = st.step();
    if (!row || !*row) throw std::runtime_error(fmt::format("{}: cannot read the schema version (see log)", name));
    version = st.int64(0);
  }
  const auto latest = static_cast<std::int64_t>(migrations.size());
  if (version > latest) {
    throw std::runtime_error(fmt::format("{}: written by a newer Berth (schema version {}, this one knows up to {})",
                                         name, version, latest));
  }
  for (std::int64_t v = version; v < latest; ++v) {
    const auto step = fmt::format("BEGIN IMMEDIATE; {} PRAGMA user_version = {}; COMMIT;",
                                  migrations[static_cast<std::size_t>(v)], v + 1);
    if (!db.exec(step.c_str())) {
      if (db.in_transaction()) (void)db.exec("ROLLBACK");
      throw std::runtime_error(fmt::format("{}: schema migration to version {} failed (see log)", name, v + 1));
    }
  }
}

}  // namespace berth::meta::sqlite
