// The SQLite metadata store. Reads use a pool of read-only connections, so in WAL mode they run on
// their own snapshot and never wait for the writer; they complete inline on the caller's thread.
// Writes go through one group_committer (a single writer connection and thread) that commits
// concurrent writes together with one fsync; the caller's coroutine waits without a thread.

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <mutex>
#include <stdexcept>
#include <utility>

#include "meta/group_commit.h"
#include "meta/metadata_store.h"
#include "meta/sqlite_db.h"

namespace berth::meta {
namespace {

using sqlite::blob_view;
using sqlite::connection;
using sqlite::statement;

// Schema migrations (sqlite::migrate): migrations[v] takes a database from user_version v to v + 1.
// Text columns use the default BINARY collation, so ORDER BY and `>` follow byte order.
// manifests stays a rowid table: its rows carry the manifest bytes, and WITHOUT ROWID suits small
// rows only. Tags and references cascade from their manifest, so deleting one removes them.
constexpr const char* migrations[] = {
    R"sql(
CREATE TABLE repositories (
  id   INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE CHECK (length(name) > 0)
);
CREATE TABLE blob_links (
  repo_id INTEGER NOT NULL REFERENCES repositories(id),
  digest  TEXT NOT NULL,
  size    INTEGER NOT NULL,
  PRIMARY KEY (repo_id, digest)
) WITHOUT ROWID;
CREATE INDEX blob_links_by_digest ON blob_links(digest);
CREATE TABLE manifests (
  repo_id       INTEGER NOT NULL REFERENCES repositories(id),
  digest        TEXT NOT NULL,
  media_type    TEXT NOT NULL,
  content       BLOB NOT NULL,
  size          INTEGER NOT NULL,
  subject       TEXT,
  artifact_type TEXT NOT NULL,
  annotations   TEXT NOT NULL,
  created_at    INTEGER NOT NULL,
  PRIMARY KEY (repo_id, digest)
);
CREATE INDEX manifests_by_subject ON manifests(repo_id, subject, digest);  -- digest: referrers in order, no sort
CREATE TABLE manifest_refs (
  repo_id    INTEGER NOT NULL,
  manifest   TEXT NOT NULL,
  referenced TEXT NOT NULL,
  PRIMARY KEY (repo_id, manifest, referenced),
  FOREIGN KEY (repo_id, manifest) REFERENCES manifests(repo_id, digest) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX manifest_refs_by_target ON manifest_refs(repo_id, referenced);
CREATE TABLE tags (
  repo_id    INTEGER NOT NULL,
  name       TEXT NOT NULL CHECK (length(name) > 0),
  digest     TEXT NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (repo_id, name),
  FOREIGN KEY (repo_id, digest) REFERENCES manifests(repo_id, digest) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX tags_by_digest ON tags(repo_id, digest);
)sql",
    // Unfinished uploads (upload_records.h). `repo` is a name, not a repositories row: an upload
    // does not create its repository, only its completion does.
    R"sql(
CREATE TABLE uploads (
  id          TEXT PRIMARY KEY,
  repo        TEXT NOT NULL,
  size        INTEGER NOT NULL,
  hash_state  BLOB NOT NULL,
  lease_token INTEGER NOT NULL,
  lease_until INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX uploads_by_age ON uploads(updated_at);
)sql",
};
// ---- SQL ----

constexpr std::string_view repo_id_sql = "SELECT id FROM repositories WHERE name = ?1";
constexpr std::string_view insert_repo_sql = "INSERT INTO repositories(name) VALUES (?1)";
constexpr std::string_view linked_size_sql =
    "SELECT l.size FROM repositories r JOIN blob_links l ON l.repo_id = r.id WHERE r.name = ?1 AND l.digest = ?2";
constexpr std::string_view link_sql =
    "INSERT INTO blob_links(repo_id, digest, size) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING";
constexpr std::string_view unlink_sql =
    "DELETE FROM blob_links WHERE repo_id = (SELECT id FROM repositories WHERE name = ?1) AND digest = ?2";
constexpr std::string_view has_blob_sql = "SELECT 1 FROM blob_links WHERE repo_id = ?1 AND digest = ?2";
constexpr std::string_view has_manifest_sql = "SELECT 1 FROM manifests WHERE repo_id = ?1 AND digest = ?2";
constexpr std::string_view insert_manifest_sql =
    "INSERT INTO manifests(repo_id, digest, media_type, content, size, subject, artifact_type, annotations, "
    "created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, unixepoch()) ON CONFLICT DO NOTHING";
constexpr std::string_view insert_ref_sql =
    "INSERT INTO manifest_refs(repo_id, manifest, referenced) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING";
constexpr std::string_view set_tag_sql =
    "INSERT INTO tags(repo_id, name, digest, updated_at) VALUES (?1, ?2, ?3, unixepoch()) "
    "ON CONFLICT (repo_id, name) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at";
// One statement per lookup, so the manifest and its references come from the same snapshot.
#define BERTH_MANIFEST_COLUMNS                                                                   \
  "SELECT m.digest, m.media_type, m.content, m.subject, m.artifact_type, m.annotations, "       \
  "(SELECT group_concat(x.referenced, ',') FROM manifest_refs x WHERE x.repo_id = m.repo_id " \
  "AND x.manifest = m.digest) "
constexpr std::string_view manifest_by_digest_sql = BERTH_MANIFEST_COLUMNS
    "FROM repositories r JOIN manifests m ON m.repo_id = r.id WHERE r.name = ?1 AND m.digest = ?2";
constexpr std::string_view manifest_by_tag_sql = BERTH_MANIFEST_COLUMNS
    "FROM repositories r JOIN tags t ON t.repo_id = r.id "
    "JOIN manifests m ON m.repo_id = t.repo_id AND m.digest = t.digest WHERE r.name = ?1 AND t.name = ?2";
#undef BERTH_MANIFEST_COLUMNS
constexpr std::string_view delete_manifest_sql =
    "DELETE FROM manifests WHERE repo_id = (SELECT id FROM repositories WHERE name = ?1) AND digest = ?2";
constexpr std::string_view delete_tag_sql =
    "DELETE FROM tags WHERE repo_id = (SELECT id FROM repositories WHERE name = ?1) AND name = ?2";
constexpr std::string_view list_tags_sql =
    "SELECT name FROM tags WHERE repo_id = ?1 AND name > ?2 ORDER BY name LIMIT ?3";
constexpr std::string_view list_repos_sql = "SELECT name FROM repositories WHERE name > ?1 ORDER BY name LIMIT ?2";
constexpr std::string_view repos_with_blob_sql =
    "SELECT r.name FROM blob_links l JOIN repositories r ON r.id = l.repo_id WHERE l.digest = ?1 "
    "ORDER BY r.name LIMIT ?2";
constexpr std::string_view referrers_sql =
    "SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations FROM repositories r "
    "JOIN manifests m ON m.repo_id = r.id WHERE r.name = ?1 AND m.subject = ?2 "
    "AND (?3 IS NULL OR m.artifact_type = ?3) ORDER BY m.digest";
constexpr std::string_view insert_upload_sql =
    "INSERT INTO uploads(id, repo, size, hash_state, lease_token, lease_until, updated_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
constexpr std::string_view find_upload_sql =
    "SELECT id, repo, size, hash_state, lease_until FROM uploads WHERE id = ?1";
constexpr std::string_view find_own_upload_sql =
    "SELECT id, repo, size, hash_state, lease_until FROM uploads WHERE id = ?1 AND repo = ?2";
constexpr std::string_view lease_upload_sql = "UPDATE uploads SET lease_token = ?2, lease_until = ?3 WHERE id = ?1";
// A holder's token counts only while its lease is not given up (lease_until 0).
constexpr std::string_view update_upload_sql =
    "UPDATE uploads SET size = ?3, hash_state = ?4, lease_until = ?5, updated_at = ?6 "
    "WHERE id = ?1 AND lease_token = ?2 AND lease_until != 0";
constexpr std::string_view held_upload_repo_sql =
    "SELECT repo FROM uploads WHERE id = ?1 AND lease_token = ?2 AND lease_until != 0";
constexpr std::string_view delete_held_upload_sql =
    "DELETE FROM uploads WHERE id = ?1 AND lease_token = ?2 AND lease_until != 0";
constexpr std::string_view idle_uploads_sql =
    "SELECT id, repo, size, hash_state, lease_until FROM uploads WHERE updated_at < ?1 AND lease_until <= ?2 "
    "ORDER BY updated_at LIMIT ?3";

// ---- helpers ----

// A digest read back from the database; one that does not parse means corruption.
result<digest> stored_digest(std::string_view text) {
  auto d = digest::parse(text);
  if (!d) {
    spdlog::error("sqlite metadata: stored digest does not parse: {}", text);
    return sqlite::failure();
  }
  return d;
}

// The id of repository `name`, or nullopt when it does not exist.
result<std::optional<std::int64_t>> find_repo(connection& db, std::string_view name) {
  auto st = db.prepare(repo_id_sql);
  auto row = st.bind(name).step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return std::nullopt;
  return st.int64(0);
}

// The id of repository `name`, created when missing. Writer only.
result<std::int64_t> ensure_repo(connection& db, std::string_view name) {
  auto found = find_repo(db, name);
  if (!found) return std::unexpected(found.error());
  if (*found) return **found;
  if (auto r = db.prepare(insert_repo_sql).bind(name).run(); !r) return std::unexpected(r.error());
  return db.last_insert_rowid();
}

// Runs a statement and reports whether it changed any row.
result<bool> changed_rows(connection& db, statement& st) {
  if (auto r = st.run(); !r) return std::unexpected(r.error());
  return db.changes() > 0;
}

// Reads one manifest row (columns as in BERTH_MANIFEST_COLUMNS), or nullopt when there is none.
result<std::optional<manifest_record>> read_manifest(statement& st) {
  auto row = st.step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return std::nullopt;
  auto d = stored_digest(st.text(0));
  if (!d) return std::unexpected(d.error());
  manifest_record m{*d, std::string(st.text(1)), std::string(st.text(2)), std::nullopt, std::string(st.text(4)),
                    std::string(st.text(5)), {}};
  if (!st.is_null(3)) {
    auto subject = stored_digest(st.text(3));
    if (!subject) return std::unexpected(subject.error());
    m.subject = *subject;
  }
  std::string_view refs = st.text(6);
  while (!refs.empty()) {
    const auto comma = std::min(refs.find(','), refs.size());
    auto ref = stored_digest(refs.substr(0, comma));
    if (!ref) return std::unexpected(ref.error());
    m.references.push_back(*ref);
    refs.remove_prefix(std::min(comma + 1, refs.size()));
  }
  return m;
}

// Of `ds`, those for which `exists_sql` (parameters repo id, digest) finds no row.
result<std::vector<digest>> missing(connection& db, std::string_view repo, std::span<const digest> ds,
                                    std::string_view exists_sql) {
  auto repo_id = find_repo(db, repo);
  if (!repo_id) return std::unexpected(repo_id.error());
  if (!*repo_id) return std::vector<digest>(ds.begin(), ds.end());
  std::vector<digest> out;
  for (const digest& d : ds) {
    auto st = db.prepare(exists_sql);
    auto row = st.bind(**repo_id, d.str()).step();
    if (!row) return std::unexpected(row.error());
    if (!*row) out.push_back(d);
  }
  return out;
}

result<std::vector<std::string>> column_strings(statement& st) {
  std::vector<std::string> out;
  for (;;) {
    auto row = st.step();
    if (!row) return std::unexpected(row.error());
    if (!*row) return out;
    out.emplace_back(st.text(0));
  }
}

// Reads one upload row (id, repo, size, hash_state, lease_until), or nullopt when there is none.
result<std::optional<upload_record>> read_upload(statement& st) {
  auto row = st.step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return std::nullopt;
  return upload_record{std::string(st.text(0)), std::string(st.text(1)), static_cast<std::uint64_t>(st.int64(2)),
                       std::string(st.text(3))};
}

connection open_or_throw(const std::string& path, connection::mode m) {
  auto db = connection::open(path, m);
  if (!db) throw std::runtime_error(fmt::format("metadata store: cannot open {} (see log)", path));
  return std::move(*db);
}

// Read-only connections, reused across calls. A call borrows one for its duration; the pool grows
// to the number of concurrent readers (bounded by the caller's thread pool).
class reader_pool {
 public:
  explicit reader_pool(std::string path) : path_(std::move(path)) {}

  class lease {
   public:
    lease(reader_pool& pool, std::unique_ptr<connection> conn) : pool_(&pool), conn_(std::move(conn)) {}
    lease(lease&&) = default;
    ~lease() {
      if (conn_) pool_->give_back(std::move(conn_));
    }
    connection& operator*() const { return *conn_; }

   private:
    reader_pool* pool_;
    std::unique_ptr<connection> conn_;
  };

  result<lease> acquire() {
    {
      std::lock_guard lock(mutex_);
      if (!idle_.empty()) {
        auto conn = std::move(idle_.back());
        idle_.pop_back();
        return lease(*this, std::move(conn));
      }
    }
    auto conn = connection::open(path_, connection::mode::read_only);
    if (!conn) return std::unexpected(conn.error());
    return lease(*this, std::make_unique<connection>(std::move(*conn)));
  }

 private:
  void give_back(std::unique_ptr<connection> conn) {
    std::lock_guard lock(mutex_);
    idle_.push_back(std::move(conn));
  }

  std::string path_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<connection>> idle_;  // guarded by mutex_
};

using sqlite::durability;

class sqlite_metadata_store final : public metadata_store, public upload_records {
 public:
  sqlite_metadata_store(const std::string& path, upload_leases leases)
      : writer_(open_and_migrate(path, leases)), readers_(path) {
    // Open one reader now so a path readers cannot use fails at start-up, not on the first request.
    if (!readers_.acquire()) throw std::runtime_error(fmt::format("metadata store: cannot open a reader on {}", path));
  }

  upload_records& uploads() override { return *this; }

  awaitable<result<std::optional<std::uint64_t>>> linked_blob_size(std::string_view repo, const digest& d) override {
    co_return read([&](connection& db) { return optional_size(db.prepare(linked_size_sql).bind(repo, d.str())); });
  }

  awaitable<result<void>> link_blob(std::string_view repo, const digest& d, std::uint64_t size) override {
    co_return co_await write([&](connection& db) { return link(db, repo, d, size); });
  }

  awaitable<result<bool>> unlink_blob(std::string_view repo, const digest& d) override {
    co_return co_await write([&](connection& db) {
      auto st = db.prepare(unlink_sql);
      return changed_rows(db, st.bind(repo, d.str()));
    });
  }

  awaitable<result<std::vector<digest>>> missing_blobs(std::string_view repo, std::span<const digest> ds) override {
    co_return read([&](connection& db) { return missing(db, repo, ds, has_blob_sql); });
  }

  awaitable<result<void>> put_manifest(std::string_view repo, const manifest_record& m,
                                       std::optional<std::string_view> tag) override {
    co_return co_await write([&](connection& db) -> result<void> {
      auto repo_id = ensure_repo(db, repo);
      if (!repo_id) return std::unexpected(repo_id.error());
      if (auto r = insert_manifest(db, *repo_id, m); !r) return r;
      if (!tag) return {};
      return db.prepare(set_tag_sql).bind(*repo_id, *tag, m.dgst.str()).run();
    });
  }

  awaitable<result<std::optional<manifest_record>>> manifest_by_digest(std::string_view repo,
                                                                       const digest& d) override {
    co_return read([&](connection& db) {
      auto st = db.prepare(manifest_by_digest_sql);
      return read_manifest(st.bind(repo, d.str()));
    });
  }

  awaitable<result<std::optional<manifest_record>>> manifest_by_tag(std::string_view repo,
                                                                    std::string_view tag) override {
    co_return read([&](connection& db) {
      auto st = db.prepare(manifest_by_tag_sql);
      return read_manifest(st.bind(repo, tag));
    });
  }

  awaitable<result<std::vector<digest>>> missing_manifests(std::string_view repo, std::span<const digest> ds) override {
    co_return read([&](connection& db) { return missing(db, repo, ds, has_manifest_sql); });
  }

  awaitable<result<bool>> delete_manifest(std::string_view repo, const digest& d) override {
    co_return co_await write([&](connection& db) {
      auto st = db.prepare(delete_manifest_sql);
      return changed_rows(db, st.bind(repo, d.str()));
    });
  }

  awaitable<result<bool>> delete_tag(std::string_view repo, std::string_view tag) override {
    co_return co_await write([&](connection& db) {
      auto st = db.prepare(delete_tag_sql);
      return changed_rows(db, st.bind(repo, tag));
    });
  }

  awaitable<result<std::optional<std::vector<std::string>>>> list_tags(std::string_view repo, std::string_view last,
                                                                       std::size_t n) override {
    co_return read([&](connection& db) -> result<std::optional<std::vector<std::string>>> {
      auto repo_id = find_repo(db, repo);
      if (!repo_id) return std::unexpected(repo_id.error());
      if (!*repo_id) return std::nullopt;
      auto st = db.prepare(list_tags_sql);
      return column_strings(st.bind(**repo_id, last, std::uint64_t{n}));
    });
  }

  awaitable<result<std::vector<std::string>>> list_repositories(std::string_view last, std::size_t n) override {
    co_return read([&](connection& db) {
      auto st = db.prepare(list_repos_sql);
      return column_strings(st.bind(last, std::uint64_t{n}));
    });
  }

  awaitable<result<bool>> repository_exists(std::string_view repo) override {
    co_return read([&](connection& db) -> result<bool> {
      auto id = find_repo(db, repo);
      if (!id) return std::unexpected(id.error());
      return id->has_value();
    });
  }

  awaitable<result<bool>> create_repository(std::string_view repo) override {
    co_return co_await write([&](connection& db) -> result<bool> {
      auto found = find_repo(db, repo);
      if (!found) return std::unexpected(found.error());
      if (*found) return false;
      if (auto r = db.prepare(insert_repo_sql).bind(repo).run(); !r) return std::unexpected(r.error());
      return true;
    });
  }

  awaitable<result<bool>> delete_repository(std::string_view repo) override {
    co_return co_await write([&](connection& db) -> result<bool> {
      auto found = find_repo(db, repo);
      if (!found) return std::unexpected(found.error());
      if (!*found) return false;
      // Manifests first: their tags and references cascade.
      for (const char* sql : {"DELETE FROM manifests WHERE repo_id = ?1", "DELETE FROM blob_links WHERE repo_id = ?1",
                              "DELETE FROM repositories WHERE id = ?1"}) {
        if (auto r = db.prepare(sql).bind(**found).run(); !r) return std::unexpected(r.error());
      }
      return true;
    });
  }

  awaitable<result<std::vector<std::string>>> repositories_with_blob(const digest& d, std::size_t n) override {
    co_return read([&](connection& db) {
      auto st = db.prepare(repos_with_blob_sql);
      return column_strings(st.bind(d.str(), std::uint64_t{n}));
    });
  }

  awaitable<result<std::vector<referrer>>> referrers(std::string_view repo, const digest& subject,
                                                     std::optional<std::string_view> artifact_type) override {
    co_return read([&](connection& db) -> result<std::vector<referrer>> {
      auto st = db.prepare(referrers_sql);
      st.bind(repo, subject.str(), artifact_type);
      std::vector<referrer> out;
      for (;;) {
        auto row = st.step();
        if (!row) return std::unexpected(row.error());
        if (!*row) return out;
        auto d = stored_digest(st.text(0));
        if (!d) return std::unexpected(d.error());
        out.push_back(referrer{*d, std::string(st.text(1)), static_cast<std::uint64_t>(st.int64(2)),
                               std::string(st.text(3)), std::string(st.text(4))});
      }
    });
  }

  // ---- upload_records: none of these fsyncs but complete(), which links a blob ----

  awaitable<result<void>> create(const upload_record& r, const upload_lease& lease, std::int64_t now_ms) override {
    co_return co_await write(
        [&](connection& db) {
          return db.prepare(insert_upload_sql)
              .bind(r.id, r.repo, r.size, blob_view{r.hash_state}, lease.token, lease.until_ms, now_ms)
              .run();
        },
        durability::relaxed);
  }

  awaitable<result<std::optional<upload_record>>> find(std::string_view id) override {
    co_return read([&](connection& db) {
      auto st = db.prepare(find_upload_sql);
      return read_upload(st.bind(id));
    });
  }

  awaitable<result<std::optional<upload_record>>> acquire(std::string_view repo, std::string_view id,
                                                          const upload_lease& lease, std::int64_t now_ms) override {
    co_return co_await write(
        [&](connection& db) -> result<std::optional<upload_record>> {
          auto st = db.prepare(find_own_upload_sql);
          auto found = read_upload(st.bind(id, repo));
          if (!found || !*found) return found;
          if (st.int64(4) > now_ms) return fail(errc::upload_busy);
          if (auto r = db.prepare(lease_upload_sql).bind(id, lease.token, lease.until_ms).run(); !r)
            return std::unexpected(r.error());
          return found;
        },
        durability::relaxed);
  }

  awaitable<result<bool>> update(const upload_record& r, std::int64_t token, std::int64_t until_ms,
                                 std::int64_t now_ms) override {
    co_return co_await write(
        [&](connection& db) {
          auto st = db.prepare(update_upload_sql);
          return changed_rows(db, st.bind(r.id, token, r.size, blob_view{r.hash_state}, until_ms, now_ms));
        },
        durability::relaxed);
  }

  awaitable<result<bool>> remove(std::string_view id, std::int64_t token) override {
    co_return co_await write(
        [&](connection& db) {
          auto st = db.prepare(delete_held_upload_sql);
          return changed_rows(db, st.bind(id, token));
        },
        durability::relaxed);
  }

  awaitable<result<bool>> complete(std::string_view id, std::int64_t token, const digest& d,
                                   std::uint64_t size) override {
    co_return co_await write([&](connection& db) -> result<bool> {
      std::string repo;
      {
        auto st = db.prepare(held_upload_repo_sql);
        auto row = st.bind(id, token).step();
        if (!row) return std::unexpected(row.error());
        if (!*row) return false;
        repo = st.text(0);
      }
      if (auto r = link(db, repo, d, size); !r) return std::unexpected(r.error());
      if (auto r = db.prepare(delete_held_upload_sql).bind(id, token).run(); !r) return std::unexpected(r.error());
      return true;
    });
  }

  awaitable<result<std::vector<upload_record>>> idle(std::int64_t before_ms, std::int64_t now_ms,
                                                     std::size_t n) override {
    co_return read([&](connection& db) -> result<std::vector<upload_record>> {
      auto st = db.prepare(idle_uploads_sql);
      st.bind(before_ms, now_ms, std::uint64_t{n});
      std::vector<upload_record> out;
      for (;;) {
        auto r = read_upload(st);
        if (!r) return std::unexpected(r.error());
        if (!*r) return out;
        out.push_back(std::move(**r));
      }
    });
  }

  awaitable<result<void>> probe() override {
    auto answered = read([](connection& db) -> result<void> {
      auto st = db.prepare("SELECT 1 FROM repositories LIMIT 1");
      auto row = st.step();
      if (!row) return std::unexpected(row.error());
      return {};
    });
    if (!answered) co_return answered;
    co_return co_await write([](connection&) -> result<void> { return {}; }, durability::relaxed);
  }

 private:
  static connection open_and_migrate(const std::string& path, upload_leases leases) {
    auto db = open_or_throw(path, connection::mode::read_write);
    sqlite::migrate(db, migrations, path);
    // The server owns the database: whoever held an upload lease before it opened it is gone.
    if (leases == upload_leases::end && !db.exec("UPDATE uploads SET lease_until = 0 WHERE lease_until != 0"))
      throw std::runtime_error("metadata store: cannot end the upload leases of a previous run (see log)");
    return db;
  }

  // Runs `body` on a borrowed read connection.
  template <class F>
  auto read(F&& body) -> decltype(body(std::declval<connection&>())) {
    auto db = readers_.acquire();
    if (!db) return std::unexpected(db.error());
    return body(**db);
  }

  // Runs `body` in the writer's next batch; completes with its value once committed.
  template <class F>
  auto write(F body, durability d = durability::durable) -> awaitable<decltype(body(std::declval<connection&>()))> {
    using R = decltype(body(std::declval<connection&>()));
    using value_type = typename R::value_type;
    if constexpr (std::is_void_v<value_type>) {
      const sqlite::write_operation op = std::move(body);
      co_return co_await writer_.commit(op, d);
    } else {
      std::optional<value_type> value;
      const sqlite::write_operation op = [&](connection& db) -> result<void> {
        auto r = body(db);
        if (!r) return std::unexpected(r.error());
        value = std::move(*r);
        return {};
      };
      auto committed = co_await writer_.commit(op, d);
      if (!committed) co_return std::unexpected(committed.error());
      co_return std::move(*value);
    }
  }

  // Links `d` into `repo` (created when missing). Writer only.
  static result<void> link(connection& db, std::string_view repo, const digest& d, std::uint64_t size) {
    auto repo_id = ensure_repo(db, repo);
    if (!repo_id) return std::unexpected(repo_id.error());
    return db.prepare(link_sql).bind(*repo_id, d.str(), size).run();
  }

  static result<std::optional<std::uint64_t>> optional_size(statement& st) {
    auto row = st.step();
    if (!row) return std::unexpected(row.error());
    if (!*row) return std::nullopt;
    return static_cast<std::uint64_t>(st.int64(0));
  }

  // Stores `m` with its references unless `repo_id` already holds that digest (content unchanged).
  static result<void> insert_manifest(connection& db, std::int64_t repo_id, const manifest_record& m) {
    std::optional<std::string_view> subject;
    if (m.subject) subject = m.subject->str();
    auto st = db.prepare(insert_manifest_sql);
    st.bind(repo_id, m.dgst.str(), m.media_type, blob_view{m.content}, std::uint64_t{m.content.size()}, subject,
            m.artifact_type, m.annotations_json);
    auto inserted = changed_rows(db, st);
    if (!inserted) return std::unexpected(inserted.error());
    if (!*inserted) return {};  // already stored: the caller only moves the tag
    for (const digest& ref : m.references) {
      if (auto r = db.prepare(insert_ref_sql).bind(repo_id, m.dgst.str(), ref.str()).run(); !r) return r;
    }
    return {};
  }

  sqlite::group_committer writer_;
  reader_pool readers_;
};

}  // namespace

std::unique_ptr<metadata_store> make_sqlite_metadata_store(const std::string& path, upload_leases leases) {
  return std::make_unique<sqlite_metadata_store>(path, leases);
}

}  // namespace berth::meta
