// The PostgreSQL metadata store (pg_metadata_store.h). Reads are single prepared statements on the
// pool. Writes that touch one row are single statements; the others are transactions in READ
// COMMITTED that take their locks in one order, so they rarely deadlock and a deadlock is retried:
// the repository row first (FOR KEY SHARE to add to it, FOR UPDATE to delete it), then the
// manifest row, then its tags.

#include "meta/pg_metadata_store.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>

#include "pg/store_support.h"

namespace berth::meta {
namespace {

using pg::param;
using pg::params;
using pg::transaction;

constexpr std::string_view store_name = "metadata store";

// Schema migrations (pg::migrate): migrations[v] takes the tables from version v to v + 1.
// Names that are listed in order are COLLATE "C" (byte order). Manifest bytes and the strings
// taken from clients as they are (media type, artifact type, annotations) are bytea, so they come
// back byte-exact whatever their encoding. Tags and references cascade from their manifest.
constexpr const char* migrations[] = {
    R"sql(
CREATE TABLE repositories (
  id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name text COLLATE "C" NOT NULL UNIQUE CHECK (name <> '')
);
CREATE TABLE blob_links (
  repo_id bigint NOT NULL REFERENCES repositories(id),
  digest  text NOT NULL,
  size    bigint NOT NULL,
  PRIMARY KEY (repo_id, digest)
);
CREATE INDEX blob_links_by_digest ON blob_links(digest);
CREATE TABLE manifests (
  repo_id       bigint NOT NULL REFERENCES repositories(id),
  digest        text NOT NULL,
  media_type    bytea NOT NULL,
  content       bytea NOT NULL,
  size          bigint NOT NULL,
  subject       text,
  artifact_type bytea NOT NULL,
  annotations   bytea NOT NULL,
  created_at    bigint NOT NULL,
  PRIMARY KEY (repo_id, digest)
);
CREATE INDEX manifests_by_subject ON manifests(repo_id, subject, digest);
CREATE TABLE manifest_refs (
  repo_id    bigint NOT NULL,
  manifest   text NOT NULL,
  referenced text NOT NULL,
  PRIMARY KEY (repo_id, manifest, referenced),
  FOREIGN KEY (repo_id, manifest) REFERENCES manifests(repo_id, digest) ON DELETE CASCADE
);
CREATE INDEX manifest_refs_by_target ON manifest_refs(repo_id, referenced);
CREATE TABLE tags (
  repo_id    bigint NOT NULL,
  name       text COLLATE "C" NOT NULL CHECK (name <> ''),
  digest     text NOT NULL,
  updated_at bigint NOT NULL,
  PRIMARY KEY (repo_id, name),
  FOREIGN KEY (repo_id, digest) REFERENCES manifests(repo_id, digest) ON DELETE CASCADE
);
CREATE INDEX tags_by_digest ON tags(repo_id, digest);
-- Unfinished uploads (upload_records.h). `repo` is a name, not a repositories row: an upload does
-- not create its repository, only its completion does.
CREATE TABLE uploads (
  id          text COLLATE "C" PRIMARY KEY,
  repo        text NOT NULL,
  size        bigint NOT NULL,
  hash_state  bytea NOT NULL,
  lease_token bigint NOT NULL,
  lease_until bigint NOT NULL,
  updated_at  bigint NOT NULL
);
CREATE INDEX uploads_by_age ON uploads(updated_at);
)sql",
};

// ---- SQL ----

#define BERTH_NOW "extract(epoch FROM now())::bigint"
// The id of repository $1, locked against deletion until the transaction ends; created when
// missing. No row when a concurrent transaction created it meanwhile (run it again: it is seen then).
constexpr std::string_view ensure_repo_sql =
    "WITH found AS (SELECT id FROM repositories WHERE name = $1 FOR KEY SHARE), "
    "created AS (INSERT INTO repositories(name) SELECT $1 WHERE NOT EXISTS (SELECT 1 FROM found) "
    "ON CONFLICT (name) DO NOTHING RETURNING id) "
    "SELECT id FROM found UNION ALL SELECT id FROM created";
constexpr std::string_view lock_repo_for_delete_sql = "SELECT id FROM repositories WHERE name = $1 FOR UPDATE";
constexpr std::string_view create_repo_sql = "INSERT INTO repositories(name) VALUES ($1) ON CONFLICT (name) DO NOTHING";
constexpr std::string_view repo_exists_sql = "SELECT 1 FROM repositories WHERE name = $1";
constexpr std::string_view linked_size_sql =
    "SELECT l.size FROM repositories r JOIN blob_links l ON l.repo_id = r.id WHERE r.name = $1 AND l.digest = $2";
constexpr std::string_view link_sql =
    "INSERT INTO blob_links(repo_id, digest, size) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
constexpr std::string_view unlink_sql =
    "DELETE FROM blob_links WHERE repo_id = (SELECT id FROM repositories WHERE name = $1) AND digest = $2";
// Of the digests in $2 (in order), those `repo` $1 does not hold in `table`.
#define BERTH_MISSING_SQL(table)                                                                         \
  "SELECT a.d FROM unnest($2::text[]) WITH ORDINALITY AS a(d, i) WHERE NOT EXISTS (SELECT 1 FROM " table \
  " x JOIN repositories r ON r.id = x.repo_id WHERE r.name = $1 AND x.digest = a.d) ORDER BY a.i"
constexpr std::string_view missing_blobs_sql = BERTH_MISSING_SQL("blob_links");
constexpr std::string_view missing_manifests_sql = BERTH_MISSING_SQL("manifests");
#undef BERTH_MISSING_SQL
// Stores the manifest with its references ($9, a text[]) unless the repository holds the digest
// already; then it only locks that row (DO UPDATE ... WHERE false), so a concurrent delete waits
// for the tag this transaction sets next.
constexpr std::string_view insert_manifest_sql =
    "WITH m AS (INSERT INTO manifests(repo_id, digest, media_type, content, size, subject, artifact_type, "
    "annotations, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, " BERTH_NOW
    ") "
    "ON CONFLICT (repo_id, digest) DO UPDATE SET size = manifests.size WHERE false RETURNING repo_id, digest) "
    "INSERT INTO manifest_refs(repo_id, manifest, referenced) "
    "SELECT m.repo_id, m.digest, r FROM m, unnest($9::text[]) AS r ON CONFLICT DO NOTHING";
constexpr std::string_view set_tag_sql =
    "INSERT INTO tags(repo_id, name, digest, updated_at) VALUES ($1, $2, $3, " BERTH_NOW
    ") "
    "ON CONFLICT (repo_id, name) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at";
#define BERTH_MANIFEST_COLUMNS                                                                          \
  "SELECT m.digest, m.media_type, m.content, m.subject, m.artifact_type, m.annotations, "               \
  "(SELECT string_agg(x.referenced, ',' ORDER BY x.referenced) FROM manifest_refs x WHERE x.repo_id = " \
  "m.repo_id AND x.manifest = m.digest) "
constexpr std::string_view manifest_by_digest_sql = BERTH_MANIFEST_COLUMNS
    "FROM repositories r JOIN manifests m ON m.repo_id = r.id WHERE r.name = $1 AND m.digest = $2";
constexpr std::string_view manifest_by_tag_sql = BERTH_MANIFEST_COLUMNS
    "FROM repositories r JOIN tags t ON t.repo_id = r.id "
    "JOIN manifests m ON m.repo_id = t.repo_id AND m.digest = t.digest WHERE r.name = $1 AND t.name = $2";
#undef BERTH_MANIFEST_COLUMNS
constexpr std::string_view delete_manifest_sql =
    "DELETE FROM manifests WHERE repo_id = (SELECT id FROM repositories WHERE name = $1) AND digest = $2";
constexpr std::string_view delete_tag_sql =
    "DELETE FROM tags WHERE repo_id = (SELECT id FROM repositories WHERE name = $1) AND name = $2";
// One round trip: the repository's id (NULL when unknown) with its page of tags.
// A listing's `last` as PostgreSQL text can hold it, ordering against every stored name as `last`
// itself does. `last` is the client's, unchecked; names are ASCII by their grammar. So at the first
// byte text cannot hold (NUL, or one of a UTF-8 sequence, maybe invalid) `last` is cut, and a byte
// >= 0x80 is replaced by DEL, which is above every name character as that byte was.
std::string text_bound(std::string_view last) {
  const auto bad = std::find_if(last.begin(), last.end(), [](char c) { return c == '\0' || (c & 0x80) != 0; });
  std::string bound(last.begin(), bad);
  if (bad != last.end() && *bad != '\0') bound += '\x7f';
  return bound;
}

constexpr std::string_view list_tags_sql =
    "SELECT r.id, t.name FROM repositories r LEFT JOIN LATERAL (SELECT name FROM tags WHERE repo_id = r.id "
    "AND name > $2 ORDER BY name LIMIT $3) t ON true WHERE r.name = $1 ORDER BY t.name";
constexpr std::string_view list_repos_sql = "SELECT name FROM repositories WHERE name > $1 ORDER BY name LIMIT $2";
constexpr std::string_view repos_with_blob_sql =
    "SELECT r.name FROM blob_links l JOIN repositories r ON r.id = l.repo_id WHERE l.digest = $1 "
    "ORDER BY r.name LIMIT $2";
constexpr std::string_view referrers_sql =
    "SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations FROM repositories r "
    "JOIN manifests m ON m.repo_id = r.id WHERE r.name = $1 AND m.subject = $2 "
    "AND ($3::bytea IS NULL OR m.artifact_type = $3::bytea) ORDER BY m.digest";
constexpr std::string_view insert_upload_sql =
    "INSERT INTO uploads(id, repo, size, hash_state, lease_token, lease_until, updated_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7)";
constexpr std::string_view find_upload_sql = "SELECT id, repo, size, hash_state FROM uploads WHERE id = $1";
constexpr std::string_view upload_exists_sql = "SELECT 1 FROM uploads WHERE id = $1 AND repo = $2";
// Takes the upload when nobody holds it at $5: of concurrent takers, the first one's update makes
// the lease current and the others' WHERE false when they re-check the row.
constexpr std::string_view acquire_upload_sql =
    "UPDATE uploads SET lease_token = $3, lease_until = $4 WHERE id = $1 AND repo = $2 AND lease_until <= $5 "
    "RETURNING id, repo, size, hash_state";
// A holder's token counts only while its lease is not given up (lease_until 0).
constexpr std::string_view update_upload_sql =
    "UPDATE uploads SET size = $3, hash_state = $4, lease_until = $5, updated_at = $6 "
    "WHERE id = $1 AND lease_token = $2 AND lease_until <> 0";
constexpr std::string_view delete_held_upload_sql =
    "DELETE FROM uploads WHERE id = $1 AND lease_token = $2 AND lease_until <> 0 RETURNING repo";
constexpr std::string_view idle_uploads_sql =
    "SELECT id, repo, size, hash_state FROM uploads WHERE updated_at < $1 AND lease_until <= $2 "
    "ORDER BY updated_at, id LIMIT $3";
#undef BERTH_NOW

// ---- helpers ----

// A count for LIMIT: callers pass SIZE_MAX for "all".
std::int64_t limit(std::size_t n) {
  return static_cast<std::int64_t>(std::min<std::size_t>(n, std::numeric_limits<std::int64_t>::max()));
}

// A text[] literal of `ds` (digests hold no quotes or backslashes; escaped all the same).
std::string text_array(std::span<const digest> ds) {
  std::string out = "{";
  for (const digest& d : ds) {
    if (out.size() > 1) out += ',';
    out += '"';
    for (char c : d.str()) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

std::unexpected<error> corrupt(std::string_view what, std::string_view value) {
  return pg::failure(store_name, what, pg::error{pg::errc::failed, "", fmt::format("stored value: {}", value)});
}

// A digest read back from the database; one that does not parse means corruption.
result<digest> stored_digest(std::string_view text) {
  auto d = digest::parse(text);
  if (!d) return corrupt("stored digest does not parse", text);
  return *d;
}

result<std::string> stored_bytes(const pg::rows& rows, std::size_t row, std::size_t column) {
  auto b = rows.bytes(row, column);
  if (!b) return corrupt("stored bytea does not decode", rows.text(row, column));
  return std::move(*b);
}

std::uint64_t stored_size(const pg::rows& rows, std::size_t row, std::size_t column) {
  return static_cast<std::uint64_t>(rows.int64(row, column).value_or(0));
}

// The manifest in the first row (columns as in BERTH_MANIFEST_COLUMNS), or nullopt when none.
result<std::optional<manifest_record>> read_manifest(const pg::rows& rows) {
  if (rows.size() == 0) return std::nullopt;
  auto d = stored_digest(rows.text(0, 0));
  if (!d) return std::unexpected(d.error());
  manifest_record m{*d, {}, {}, std::nullopt, {}, {}, {}};
  const std::pair<std::size_t, std::string*> byte_columns[] = {
      {1, &m.media_type}, {2, &m.content}, {4, &m.artifact_type}, {5, &m.annotations_json}};
  for (auto [column, field] : byte_columns) {
    auto bytes = stored_bytes(rows, 0, column);
    if (!bytes) return std::unexpected(bytes.error());
    *field = std::move(*bytes);
  }
  if (!rows.is_null(0, 3)) {
    auto subject = stored_digest(rows.text(0, 3));
    if (!subject) return std::unexpected(subject.error());
    m.subject = *subject;
  }
  std::string_view refs = rows.text(0, 6);
  while (!refs.empty()) {
    const auto comma = std::min(refs.find(','), refs.size());
    auto ref = stored_digest(refs.substr(0, comma));
    if (!ref) return std::unexpected(ref.error());
    m.references.push_back(*ref);
    refs.remove_prefix(std::min(comma + 1, refs.size()));
  }
  return m;
}

result<std::vector<digest>> digest_column(const pg::rows& rows) {
  std::vector<digest> out;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    auto d = stored_digest(rows.text(i, 0));
    if (!d) return std::unexpected(d.error());
    out.push_back(*d);
  }
  return out;
}

std::vector<std::string> string_column(const pg::rows& rows, std::size_t column = 0) {
  std::vector<std::string> out;
  out.reserve(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) out.emplace_back(rows.text(i, column));
  return out;
}

// The upload in row `row` (id, repo, size, hash_state).
result<upload_record> read_upload(const pg::rows& rows, std::size_t row) {
  auto state = stored_bytes(rows, row, 3);
  if (!state) return std::unexpected(state.error());
  return upload_record{std::string(rows.text(row, 0)), std::string(rows.text(row, 1)), stored_size(rows, row, 2),
                       std::move(*state)};
}

// The id of repository `name` in `tx`, created when missing and locked against deletion.
awaitable<pg::result<std::int64_t>> ensure_repo(transaction& tx, std::string_view name) {
  // A concurrent creator that committed after this statement's snapshot shows up on the next try.
  for (int attempt = 0; attempt < 3; ++attempt) {
    params args{name};
    auto r = co_await tx.query(ensure_repo_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    if (r->size() > 0) co_return r->int64(0, 0).value_or(0);
  }
  co_return pg::fail(pg::errc::failed, fmt::format("repository {} neither found nor created", name));
}

// Links `d` into `repo` (created when missing) in `tx`.
awaitable<pg::result<void>> link_in(transaction& tx, std::string_view repo, const digest& d, std::uint64_t size) {
  auto repo_id = co_await ensure_repo(tx, repo);
  if (!repo_id) co_return std::unexpected(std::move(repo_id.error()));
  params args{*repo_id, d.str(), size};
  auto linked = co_await tx.query(link_sql, std::move(args));
  if (!linked) co_return std::unexpected(std::move(linked.error()));
  co_return pg::result<void>{};
}

class pg_metadata_store final : public metadata_store, public upload_records {
 public:
  explicit pg_metadata_store(std::shared_ptr<pg::pool> pool) : pool_(std::move(pool)) {
    pg::migrate(*pool_, "meta", migrations);
  }

  upload_records& uploads() override { return *this; }

  awaitable<result<std::optional<std::uint64_t>>> linked_blob_size(std::string_view repo, const digest& d) override {
    params args{repo, d.str()};
    auto r = co_await query("linked_blob_size", linked_size_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    if (r->size() == 0) co_return std::nullopt;
    co_return stored_size(*r, 0, 0);
  }

  awaitable<result<void>> link_blob(std::string_view repo, const digest& d, std::uint64_t size) override {
    auto body = [&](transaction& tx) { return link_in(tx, repo, d, size); };
    co_return co_await transact("link_blob", body);
  }

  awaitable<result<bool>> unlink_blob(std::string_view repo, const digest& d) override {
    params args{repo, d.str()};
    co_return co_await changes("unlink_blob", unlink_sql, std::move(args));
  }

  awaitable<result<std::vector<digest>>> missing_blobs(std::string_view repo, std::span<const digest> ds) override {
    params args{repo, text_array(ds)};
    auto r = co_await query("missing_blobs", missing_blobs_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    co_return digest_column(*r);
  }

  awaitable<result<void>> put_manifest(std::string_view repo, const manifest_record& m,
                                       std::optional<std::string_view> tag) override {
    auto body = [&](transaction& tx) -> awaitable<pg::result<void>> {
      auto repo_id = co_await ensure_repo(tx, repo);
      if (!repo_id) co_return std::unexpected(std::move(repo_id.error()));
      params manifest_args{*repo_id,
                           m.dgst.str(),
                           param::bytes(m.media_type),
                           param::bytes(m.content),
                           std::uint64_t{m.content.size()},
                           m.subject ? param(m.subject->str()) : param(std::nullopt),
                           param::bytes(m.artifact_type),
                           param::bytes(m.annotations_json),
                           text_array(m.references)};
      auto stored = co_await tx.query(insert_manifest_sql, std::move(manifest_args));
      if (!stored) co_return std::unexpected(std::move(stored.error()));
      if (!tag) co_return pg::result<void>{};
      params tag_args{*repo_id, *tag, m.dgst.str()};
      auto tagged = co_await tx.query(set_tag_sql, std::move(tag_args));
      if (!tagged) co_return std::unexpected(std::move(tagged.error()));
      co_return pg::result<void>{};
    };
    co_return co_await transact("put_manifest", body);
  }

  awaitable<result<std::optional<manifest_record>>> manifest_by_digest(std::string_view repo,
                                                                       const digest& d) override {
    params args{repo, d.str()};
    auto r = co_await query("manifest_by_digest", manifest_by_digest_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    co_return read_manifest(*r);
  }

  awaitable<result<std::optional<manifest_record>>> manifest_by_tag(std::string_view repo,
                                                                    std::string_view tag) override {
    params args{repo, tag};
    auto r = co_await query("manifest_by_tag", manifest_by_tag_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    co_return read_manifest(*r);
  }

  awaitable<result<std::vector<digest>>> missing_manifests(std::string_view repo, std::span<const digest> ds) override {
    params args{repo, text_array(ds)};
    auto r = co_await query("missing_manifests", missing_manifests_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    co_return digest_column(*r);
  }

  awaitable<result<bool>> delete_manifest(std::string_view repo, const digest& d) override {
    params args{repo, d.str()};
    co_return co_await changes("delete_manifest", delete_manifest_sql, std::move(args));
  }

  awaitable<result<bool>> delete_tag(std::string_view repo, std::string_view tag) override {
    params args{repo, tag};
    co_return co_await changes("delete_tag", delete_tag_sql, std::move(args));
  }

  awaitable<result<std::optional<std::vector<std::string>>>> list_tags(std::string_view repo, std::string_view last,
                                                                       std::size_t n) override {
    params args{repo, text_bound(last), limit(n)};
    auto r = co_await query("list_tags", list_tags_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    if (r->size() == 0) co_return std::nullopt;  // no such repository
    std::vector<std::string> tags;
    for (std::size_t i = 0; i < r->size(); ++i) {
      if (!r->is_null(i, 1)) tags.emplace_back(r->text(i, 1));  // NULL: the repository has no tag in range
    }
    co_return tags;
  }

  awaitable<result<std::vector<std::string>>> list_repositories(std::string_view last, std::size_t n) override {
    params args{text_bound(last), limit(n)};
    auto r = co_await query("list_repositories", list_repos_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    co_return string_column(*r);
  }

  awaitable<result<bool>> repository_exists(std::string_view repo) override {
    params args{repo};
    auto r = co_await query("repository_exists", repo_exists_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    co_return r->size() > 0;
  }

  awaitable<result<bool>> create_repository(std::string_view repo) override {
    params args{repo};
    co_return co_await changes("create_repository", create_repo_sql, std::move(args));
  }

  awaitable<result<bool>> delete_repository(std::string_view repo) override {
    auto body = [&](transaction& tx) -> awaitable<pg::result<bool>> {
      params args{repo};
      auto found = co_await tx.query(lock_repo_for_delete_sql, std::move(args));
      if (!found) co_return std::unexpected(std::move(found.error()));
      if (found->size() == 0) co_return false;
      const std::int64_t id = found->int64(0, 0).value_or(0);
      // Manifests first: their tags and references cascade.
      for (const char* sql : {"DELETE FROM manifests WHERE repo_id = $1", "DELETE FROM blob_links WHERE repo_id = $1",
                              "DELETE FROM repositories WHERE id = $1"}) {
        params id_arg{id};
        auto deleted = co_await tx.query(sql, std::move(id_arg));
        if (!deleted) co_return std::unexpected(std::move(deleted.error()));
      }
      co_return true;
    };
    co_return co_await transact("delete_repository", body);
  }

  awaitable<result<std::vector<std::string>>> repositories_with_blob(const digest& d, std::size_t n) override {
    params args{d.str(), limit(n)};
    auto r = co_await query("repositories_with_blob", repos_with_blob_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    co_return string_column(*r);
  }

  awaitable<result<std::vector<referrer>>> referrers(std::string_view repo, const digest& subject,
                                                     std::optional<std::string_view> artifact_type) override {
    params args{repo, subject.str(), artifact_type ? param::bytes(*artifact_type) : param(std::nullopt)};
    auto r = co_await query("referrers", referrers_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    std::vector<referrer> out;
    for (std::size_t i = 0; i < r->size(); ++i) {
      auto d = stored_digest(r->text(i, 0));
      auto media_type = stored_bytes(*r, i, 1);
      auto type = stored_bytes(*r, i, 3);
      auto annotations = stored_bytes(*r, i, 4);
      if (!d) co_return std::unexpected(d.error());
      if (!media_type) co_return std::unexpected(media_type.error());
      if (!type) co_return std::unexpected(type.error());
      if (!annotations) co_return std::unexpected(annotations.error());
      out.push_back(
          referrer{*d, std::move(*media_type), stored_size(*r, i, 2), std::move(*type), std::move(*annotations)});
    }
    co_return out;
  }

  // ---- upload_records ----

  awaitable<result<void>> create(const upload_record& r, const upload_lease& lease, std::int64_t now_ms) override {
    params args{r.id, r.repo, r.size, param::bytes(r.hash_state), lease.token, lease.until_ms, now_ms};
    auto created = co_await query("create upload", insert_upload_sql, std::move(args));
    if (!created) co_return std::unexpected(std::move(created.error()));
    co_return result<void>{};
  }

  awaitable<result<std::optional<upload_record>>> find(std::string_view id) override {
    params args{id};
    auto r = co_await query("find upload", find_upload_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    if (r->size() == 0) co_return std::nullopt;
    co_return read_upload(*r, 0);
  }

  awaitable<result<std::optional<upload_record>>> acquire(std::string_view repo, std::string_view id,
                                                          const upload_lease& lease, std::int64_t now_ms) override {
    params args{id, repo, lease.token, lease.until_ms, now_ms};
    auto taken = co_await query("acquire upload", acquire_upload_sql, std::move(args));
    if (!taken) co_return std::unexpected(std::move(taken.error()));
    if (taken->size() > 0) co_return read_upload(*taken, 0);
    // Not taken: held by someone else, or not an upload of `repo` at all.
    params exists_args{id, repo};
    auto exists = co_await query("acquire upload", upload_exists_sql, std::move(exists_args));
    if (!exists) co_return std::unexpected(std::move(exists.error()));
    if (exists->size() > 0) co_return fail(errc::upload_busy);
    co_return std::nullopt;
  }

  awaitable<result<bool>> update(const upload_record& r, std::int64_t token, std::int64_t until_ms,
                                 std::int64_t now_ms) override {
    params args{r.id, token, r.size, param::bytes(r.hash_state), until_ms, now_ms};
    co_return co_await changes("update upload", update_upload_sql, std::move(args));
  }

  awaitable<result<bool>> remove(std::string_view id, std::int64_t token) override {
    params args{id, token};
    co_return co_await changes("remove upload", delete_held_upload_sql, std::move(args));
  }

  awaitable<result<bool>> complete(std::string_view id, std::int64_t token, const digest& d,
                                   std::uint64_t size) override {
    auto body = [&](transaction& tx) -> awaitable<pg::result<bool>> {
      params args{id, token};
      auto removed = co_await tx.query(delete_held_upload_sql, std::move(args));
      if (!removed) co_return std::unexpected(std::move(removed.error()));
      if (removed->size() == 0) co_return false;
      auto linked = co_await link_in(tx, removed->text(0, 0), d, size);
      if (!linked) co_return std::unexpected(std::move(linked.error()));
      co_return true;
    };
    co_return co_await transact("complete upload", body);
  }

  awaitable<result<std::vector<upload_record>>> idle(std::int64_t before_ms, std::int64_t now_ms,
                                                     std::size_t n) override {
    params args{before_ms, now_ms, limit(n)};
    auto r = co_await query("idle uploads", idle_uploads_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    std::vector<upload_record> out;
    for (std::size_t i = 0; i < r->size(); ++i) {
      auto u = read_upload(*r, i);
      if (!u) co_return std::unexpected(u.error());
      out.push_back(std::move(*u));
    }
    co_return out;
  }

  awaitable<result<void>> probe() override {
    auto r = co_await query("probe", "SELECT 1", {});
    if (!r) co_return std::unexpected(std::move(r.error()));
    co_return result<void>{};
  }

 private:
  // One statement on the pool, retried on conflict; a failure is logged (pg::failure).
  awaitable<result<pg::rows>> query(std::string_view what, std::string_view sql, params args) {
    auto r = co_await pg::query_retrying(*pool_, sql, args);
    if (!r) co_return pg::failure(store_name, what, r.error());
    co_return std::move(*r);
  }

  // One statement, as query(); whether it changed a row.
  awaitable<result<bool>> changes(std::string_view what, std::string_view sql, params args) {
    auto r = co_await query(what, sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    co_return r->affected() > 0;
  }

  // body(transaction&) in one transaction (pg::in_transaction); a failure is logged (pg::failure).
  template <class F>
  auto transact(std::string_view what, F& body)
      -> awaitable<result<typename decltype(body(std::declval<transaction&>()))::value_type::value_type>> {
    auto r = co_await pg::in_transaction(*pool_, body);
    if (!r) co_return pg::failure(store_name, what, r.error());
    if constexpr (std::is_void_v<typename decltype(r)::value_type>) {
      co_return result<void>{};
    } else {
      co_return std::move(*r);
    }
  }

  std::shared_ptr<pg::pool> pool_;
};

}  // namespace

std::unique_ptr<metadata_store> make_pg_metadata_store(std::shared_ptr<pg::pool> pool) {
  return std::make_unique<pg_metadata_store>(std::move(pool));
}

}  // namespace berth::meta
