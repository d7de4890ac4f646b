// The SQLite metadata store. Reads use a pool of read-only connections, so in WAL mode they run on
// their own snapshot and never wait for the writer. Writes go through one group_committer (a single
// writer connection and thread) that commits concurrent writes together with one fsync.

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
};
// ---- SQL ----

constexpr std::string_view repo_id_sql = "SELECT id FROM repositories WHERE name = ?1";
constexpr std::string_view insert_repo_sql = "INSERT INTO repositories(name) VALUES (?1)";
constexpr std::string_view linked_size_sql =
    "SELECT l.size FROM repositories r JOIN blob_links l ON l.repo_id = r.id WHERE r.name = ?1 AND l.digest = ?2";
constexpr std::string_view any_size_sql = "SELECT size FROM blob_links WHERE digest = ?1 LIMIT 1";
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

class sqlite_metadata_store final : public metadata_store {
 public:
  explicit sqlite_metadata_store(const std::string& path)
      : writer_(open_and_migrate(path)), readers_(path) {
    // Open one reader now so a path readers cannot use fails at start-up, not on the first request.
    if (!readers_.acquire()) throw std::runtime_error(fmt::format("metadata store: cannot open a reader on {}", path));
  }

  result<std::optional<std::uint64_t>> linked_blob_size(std::string_view repo, const digest& d) override {
    return read([&](connection& db) { return optional_size(db.prepare(linked_size_sql).bind(repo, d.str())); });
  }

  result<std::optional<std::uint64_t>> any_blob_size(const digest& d) override {
    return read([&](connection& db) { return optional_size(db.prepare(any_size_sql).bind(d.str())); });
  }

  result<void> link_blob(std::string_view repo, const digest& d, std::uint64_t size) override {
    return write([&](connection& db) -> result<void> {
      auto repo_id = ensure_repo(db, repo);
      if (!repo_id) return std::unexpected(repo_id.error());
      return db.prepare(link_sql).bind(*repo_id, d.str(), size).run();
    });
  }

  result<bool> unlink_blob(std::string_view repo, const digest& d) override {
    return write([&](connection& db) {
      auto st = db.prepare(unlink_sql);
      return changed_rows(db, st.bind(repo, d.str()));
    });
  }

  result<std::vector<digest>> missing_blobs(std::string_view repo, std::span<const digest> ds) override {
    return read([&](connection& db) { return missing(db, repo, ds, has_blob_sql); });
  }

  result<void> put_manifest(std::string_view repo, const manifest_record& m,
                            std::optional<std::string_view> tag) override {
    return write([&](connection& db) -> result<void> {
      auto repo_id = ensure_repo(db, repo);
      if (!repo_id) return std::unexpected(repo_id.error());
      if (auto r = insert_manifest(db, *repo_id, m); !r) return r;
      if (!tag) return {};
      return db.prepare(set_tag_sql).bind(*repo_id, *tag, m.dgst.str()).run();
    });
  }

  result<std::optional<manifest_record>> manifest_by_digest(std::string_view repo, const digest& d) override {
    return read([&](connection& db) {
      auto st = db.prepare(manifest_by_digest_sql);
      return read_manifest(st.bind(repo, d.str()));
    });
  }

  result<std::optional<manifest_record>> manifest_by_tag(std::string_view repo, std::string_view tag) override {
    return read([&](connection& db) {
      auto st = db.prepare(manifest_by_tag_sql);
      return read_manifest(st.bind(repo, tag));
    });
  }

  result<std::vector<digest>> missing_manifests(std::string_view repo, std::span<const digest> ds) override {
    return read([&](connection& db) { return missing(db, repo, ds, has_manifest_sql); });
  }

  result<bool> delete_manifest(std::string_view repo, const digest& d) override {
    return write([&](connection& db) {
      auto st = db.prepare(delete_manifest_sql);
      return changed_rows(db, st.bind(repo, d.str()));
    });
  }

  result<bool> delete_tag(std::string_view repo, std::string_view tag) override {
    return write([&](connection& db) {
      auto st = db.prepare(delete_tag_sql);
      return changed_rows(db, st.bind(repo, tag));
    });
  }

  result<std::optional<std::vector<std::string>>> list_tags(std::string_view repo, std::string_view last,
                                                            std::size_t n) override {
    return read([&](connection& db) -> result<std::optional<std::vector<std::string>>> {
      auto repo_id = find_repo(db, repo);
      if (!repo_id) return std::unexpected(repo_id.error());
      if (!*repo_id) return std::nullopt;
      auto st = db.prepare(list_tags_sql);
      return column_strings(st.bind(**repo_id, last, std::uint64_t{n}));
    });
  }

  result<std::vector<std::string>> list_repositories(std::string_view last, std::size_t n) override {
    return read([&](connection& db) {
      auto st = db.prepare(list_repos_sql);
      return column_strings(st.bind(last, std::uint64_t{n}));
    });
  }

  result<bool> repository_exists(std::string_view repo) override {
    return read([&](connection& db) -> result<bool> {
      auto id = find_repo(db, repo);
      if (!id) return std::unexpected(id.error());
      return id->has_value();
    });
  }

  result<bool> create_repository(std::string_view repo) override {
    return write([&](connection& db) -> result<bool> {
      auto found = find_repo(db, repo);
      if (!found) return std::unexpected(found.error());
      if (*found) return false;
      if (auto r = db.prepare(insert_repo_sql).bind(repo).run(); !r) return std::unexpected(r.error());
      return true;
    });
  }

  result<bool> delete_repository(std::string_view repo) override {
    return write([&](connection& db) -> result<bool> {
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

  result<std::vector<std::string>> repositories_with_blob(const digest& d, std::size_t n) override {
    return read([&](connection& db) {
      auto st = db.prepare(repos_with_blob_sql);
      return column_strings(st.bind(d.str(), std::uint64_t{n}));
    });
  }

  result<std::vector<referrer>> referrers(std::string_view repo, const digest& subject,
                                          std::optional<std::string_view> artifact_type) override {
    return read([&](connection& db) -> result<std::vector<referrer>> {
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

 private:
  static connection open_and_migrate(const std::string& path) {
    auto db = open_or_throw(path, connection::mode::read_write);
    sqlite::migrate(db, migrations, path);
    return db;
  }

  // Runs `body` on a borrowed read connection.
  template <class F>
  auto read(F&& body) -> decltype(body(std::declval<connection&>())) {
    auto db = readers_.acquire();
    if (!db) return std::unexpected(db.error());
    return body(**db);
  }

  // Runs `body` in the writer's next batch; returns its value once committed.
  template <class F>
  auto write(F&& body) -> decltype(body(std::declval<connection&>())) {
    using value_type = typename decltype(body(std::declval<connection&>()))::value_type;
    if constexpr (std::is_void_v<value_type>) {
      return writer_.submit(body);
    } else {
      std::optional<value_type> value;
      auto committed = writer_.submit([&](connection& db) -> result<void> {
        auto r = body(db);
        if (!r) return std::unexpected(r.error());
        value = std::move(*r);
        return {};
      });
      if (!committed) return std::unexpected(committed.error());
      return std::move(*value);
    }
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

std::unique_ptr<metadata_store> make_sqlite_metadata_store(const std::string& path) {
  return std::make_unique<sqlite_metadata_store>(path);
}

}  // namespace berth::meta
