// The SQLite metadata store. Reads use a pool of read-only connections, so in WAL mode they run on
// their own snapshot and never wait for the writer; they complete inline on the caller's thread.
// Writes go through one group_committer (a single writer connection and thread) that commits
// concurrent writes together with one fsync; the caller's coroutine waits without a thread.

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <map>
#include <mutex>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>

#include "meta/group_commit.h"
#include "meta/metadata_store.h"
#include "meta/sqlite_db.h"
#include "meta/usage.h"

namespace berth::meta {
namespace {

using sqlite::blob_view;
using sqlite::connection;
using sqlite::statement;

// The namespace of repository name `name` (an SQL expression); of the repository of link or
// manifest row `row`; whether blob link `row` has a twin (its digest linked by another repository of
// its namespace).
#define BERTH_NS(name) \
  "CASE WHEN instr(" name ", '/') > 0 THEN substr(" name ", 1, instr(" name ", '/') - 1) ELSE " name " END"
#define BERTH_REPO_NS(row) "(SELECT " BERTH_NS("name") " FROM repositories WHERE id = " row ".repo_id)"
#define BERTH_LINKED_ELSEWHERE(row)                                                                          \
  "EXISTS (SELECT 1 FROM blob_links l JOIN repositories r ON r.id = l.repo_id WHERE l.digest = " row ".digest " \
  "AND l.repo_id != " row ".repo_id AND " BERTH_NS("r.name") " = " BERTH_REPO_NS(row) ")"
// Untagged manifests: the clock (unix ms; julianday keeps milliseconds, unixepoch() only seconds
// before SQLite 3.42); whether a tag points at manifest row `row`; the statements a tag's triggers
// run for the manifest it now points at (NEW) and the one it left (OLD).
#define BERTH_NOW_MS "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
#define BERTH_TAGGED(row) \
  "EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = " row ".repo_id AND t.digest = " row ".digest)"
#define BERTH_CLEAR_UNTAGGED \
  "UPDATE manifests SET untagged_since = NULL WHERE repo_id = NEW.repo_id AND digest = NEW.digest;"
#define BERTH_SET_UNTAGGED                                                                              \
  "UPDATE manifests SET untagged_since = " BERTH_NOW_MS " WHERE repo_id = OLD.repo_id AND digest = OLD.digest " \
  "AND untagged_since IS NULL AND NOT " BERTH_TAGGED("OLD") ";"

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
    // The lifecycle (tag_records.h): each manifest's total size and platforms, who set each tag
    // and when (ms), and every move of a tag. Existing rows: a tag's time is when it was last set
    // (updated_at, in seconds), its pusher "unknown"; a manifest's size counts its own bytes and
    // the blobs it links, then an index adds its children's; platforms come from an index's
    // entries (an image manifest's config is a blob this file does not hold: read after the upgrade, see
    // platforms_unread below).
    R"sql(
ALTER TABLE manifests ADD COLUMN total_size INTEGER NOT NULL DEFAULT 0;
ALTER TABLE manifests ADD COLUMN platforms TEXT NOT NULL DEFAULT '';
ALTER TABLE tags ADD COLUMN pushed_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tags ADD COLUMN pushed_by TEXT NOT NULL DEFAULT 'unknown';
UPDATE tags SET pushed_at = updated_at * 1000;
UPDATE manifests SET total_size = size + (SELECT coalesce(sum(l.size), 0) FROM manifest_refs x JOIN blob_links l
  ON l.repo_id = x.repo_id AND l.digest = x.referenced WHERE x.repo_id = manifests.repo_id AND x.manifest = manifests.digest);
UPDATE manifests SET total_size = total_size + (SELECT coalesce(sum(c.total_size), 0) FROM manifest_refs x JOIN manifests c
  ON c.repo_id = x.repo_id AND c.digest = x.referenced WHERE x.repo_id = manifests.repo_id AND x.manifest = manifests.digest);
UPDATE manifests SET platforms = coalesce((SELECT group_concat(p, ',') FROM (SELECT DISTINCT
  json_extract(e.value, '$.platform.os') || '/' || json_extract(e.value, '$.platform.architecture') ||
  coalesce('/' || json_extract(e.value, '$.platform.variant'), '') AS p
  FROM json_each(manifests.content, '$.manifests') e WHERE json_extract(e.value, '$.platform.os') NOT IN ('', 'unknown')
  AND json_extract(e.value, '$.platform.architecture') NOT IN ('', 'unknown'))), '')
  WHERE json_valid(content) AND json_type(content, '$.manifests') = 'array';
CREATE INDEX tags_by_time ON tags(repo_id, pushed_at, name);
CREATE TABLE tag_history (
  id        INTEGER PRIMARY KEY,
  repo_id   INTEGER NOT NULL REFERENCES repositories(id),
  tag       TEXT NOT NULL,
  digest    TEXT NOT NULL,
  pushed_at INTEGER NOT NULL,
  pushed_by TEXT NOT NULL,
  source    TEXT NOT NULL
);
CREATE INDEX tag_history_by_tag ON tag_history(repo_id, tag, id);
INSERT INTO tag_history(repo_id, tag, digest, pushed_at, pushed_by, source)
  SELECT repo_id, name, digest, pushed_at, pushed_by, '' FROM tags ORDER BY pushed_at, name;
)sql",
    // Garbage collection (blob_records.h): one record per blob, with the last use (unix ms) and a
    // generation; a link's time. Existing links and blobs start their grace window now.
    R"sql(
ALTER TABLE blob_links ADD COLUMN linked_at INTEGER NOT NULL DEFAULT 0;
UPDATE blob_links SET linked_at = unixepoch() * 1000;
CREATE TABLE blobs (
  digest     TEXT PRIMARY KEY,
  size       INTEGER NOT NULL,
  used_at    INTEGER NOT NULL,
  generation INTEGER NOT NULL,
  deleting   INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
INSERT INTO blobs(digest, size, used_at, generation)
  SELECT digest, max(size), unixepoch() * 1000, random() FROM blob_links GROUP BY digest;
CREATE INDEX blobs_deleting ON blobs(deleting) WHERE deleting != 0;
CREATE TABLE gc_runs (
  id          INTEGER PRIMARY KEY,
  started_at  INTEGER NOT NULL,
  duration_ms INTEGER NOT NULL,
  dry_run     INTEGER NOT NULL,
  manifests   INTEGER NOT NULL,
  links       INTEGER NOT NULL,
  link_bytes  INTEGER NOT NULL,
  blobs       INTEGER NOT NULL,
  bytes       INTEGER NOT NULL
);
)sql",
    // Quotas (quota.h): per namespace, its repositories, its distinct blobs' bytes (a digest linked
    // by several of its repositories once) and its manifests' bytes, kept by triggers in the
    // transaction of every change to repositories, blob_links and manifests, whoever makes it
    // (pushes, promotion, GC, retention, deletions). Row triggers run as each row changes, so a
    // link's trigger sees the other links of its statement that are already there or still there.
    // Existing data is counted once here.
    "CREATE TABLE namespace_usage (name TEXT PRIMARY KEY, repositories INTEGER NOT NULL DEFAULT 0, "
    "blob_bytes INTEGER NOT NULL DEFAULT 0, manifest_bytes INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
    "CREATE TRIGGER repository_counted AFTER INSERT ON repositories BEGIN "
    "INSERT INTO namespace_usage(name, repositories) VALUES (" BERTH_NS("NEW.name") ", 1) "
    "ON CONFLICT (name) DO UPDATE SET repositories = repositories + 1; END;"
    "CREATE TRIGGER repository_uncounted AFTER DELETE ON repositories BEGIN "
    "UPDATE namespace_usage SET repositories = repositories - 1 WHERE name = " BERTH_NS("OLD.name") "; END;"
    "CREATE TRIGGER link_counted AFTER INSERT ON blob_links WHEN NOT " BERTH_LINKED_ELSEWHERE("NEW") " BEGIN "
    "UPDATE namespace_usage SET blob_bytes = blob_bytes + NEW.size WHERE name = " BERTH_REPO_NS("NEW") "; END;"
    "CREATE TRIGGER link_uncounted AFTER DELETE ON blob_links WHEN NOT " BERTH_LINKED_ELSEWHERE("OLD") " BEGIN "
    "UPDATE namespace_usage SET blob_bytes = blob_bytes - OLD.size WHERE name = " BERTH_REPO_NS("OLD") "; END;"
    "CREATE TRIGGER manifest_counted AFTER INSERT ON manifests BEGIN "
    "UPDATE namespace_usage SET manifest_bytes = manifest_bytes + NEW.size WHERE name = " BERTH_REPO_NS("NEW") "; END;"
    "CREATE TRIGGER manifest_uncounted AFTER DELETE ON manifests BEGIN "
    "UPDATE namespace_usage SET manifest_bytes = manifest_bytes - OLD.size WHERE name = " BERTH_REPO_NS("OLD") "; END;"
    "INSERT INTO namespace_usage(name, repositories) SELECT " BERTH_NS("name") ", count(*) FROM repositories GROUP BY 1;"
    "UPDATE namespace_usage SET blob_bytes = (SELECT coalesce(sum(size), 0) FROM (SELECT DISTINCT l.digest, l.size "
    "FROM blob_links l JOIN repositories r ON r.id = l.repo_id WHERE " BERTH_NS("r.name") " = namespace_usage.name)), "
    "manifest_bytes = (SELECT coalesce(sum(m.size), 0) FROM manifests m JOIN repositories r ON r.id = m.repo_id "
    "WHERE " BERTH_NS("r.name") " = namespace_usage.name);",
    // The webhook outbox (webhook_records.h): one row per event and webhook. state: 0 pending,
    // 1 delivered, 2 failed (given up).
    R"sql(
CREATE TABLE webhook_deliveries (
  id          INTEGER PRIMARY KEY,
  webhook     TEXT NOT NULL,
  event_id    TEXT NOT NULL,
  event       TEXT NOT NULL,
  at          INTEGER NOT NULL,
  repository  TEXT NOT NULL,
  tag         TEXT NOT NULL,
  digest      TEXT NOT NULL,
  media_type  TEXT NOT NULL,
  size        INTEGER NOT NULL,
  actor       TEXT NOT NULL,
  source      TEXT NOT NULL,
  state       INTEGER NOT NULL DEFAULT 0,
  attempts    INTEGER NOT NULL DEFAULT 0,
  status      INTEGER NOT NULL DEFAULT 0,
  last_error  TEXT NOT NULL DEFAULT '',
  next_at     INTEGER NOT NULL,
  lease_until INTEGER NOT NULL DEFAULT 0,
  updated_at  INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_at, id) WHERE state = 0;
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries(webhook, id);
)sql",
    // The audit log (audit_records.h).
    R"sql(
CREATE TABLE audit_log (
  id         INTEGER PRIMARY KEY,
  at_ms      INTEGER NOT NULL,
  subject    TEXT NOT NULL,
  address    TEXT NOT NULL,
  action     TEXT NOT NULL,
  repository TEXT NOT NULL,
  target     TEXT NOT NULL,
  outcome    TEXT NOT NULL,
  status     INTEGER NOT NULL,
  detail     TEXT NOT NULL
);
CREATE INDEX audit_log_by_time ON audit_log(at_ms);
CREATE INDEX audit_log_by_repository ON audit_log(repository, id);
CREATE INDEX audit_log_by_subject ON audit_log(subject, id);
)sql",
    // Untagged manifests (tag_records::untagged): since when (unix ms, the database's clock) no tag
    // of its repository points at a manifest, NULL while one does. Kept by triggers on every change
    // of a tag or a new manifest, whoever makes it (a push, a tag's deletion, a promotion, retention).
    // Existing untagged manifests count from the upgrade, so upgrading deletes nothing at once.
    "ALTER TABLE manifests ADD COLUMN untagged_since INTEGER;"
    "UPDATE manifests SET untagged_since = " BERTH_NOW_MS " WHERE NOT " BERTH_TAGGED("manifests") ";"
    "CREATE INDEX manifests_untagged ON manifests(repo_id, digest) WHERE untagged_since IS NOT NULL;"
    "CREATE TRIGGER manifest_untagged AFTER INSERT ON manifests WHEN NOT " BERTH_TAGGED("NEW") " BEGIN "
    "UPDATE manifests SET untagged_since = " BERTH_NOW_MS " WHERE repo_id = NEW.repo_id AND digest = NEW.digest; END;"
    "CREATE TRIGGER tag_set AFTER INSERT ON tags BEGIN " BERTH_CLEAR_UNTAGGED " END;"
    "CREATE TRIGGER tag_moved AFTER UPDATE OF digest ON tags WHEN OLD.digest != NEW.digest BEGIN "
    BERTH_CLEAR_UNTAGGED " " BERTH_SET_UNTAGGED " END;"
    "CREATE TRIGGER tag_removed AFTER DELETE ON tags BEGIN " BERTH_SET_UNTAGGED " END;",
    // Pruning the webhook outbox (webhook_records::prune_deliveries): its finished deliveries by time.
    "CREATE INDEX webhook_deliveries_finished ON webhook_deliveries(updated_at) WHERE state != 0;",
    // Image manifests stored before platforms were recorded (tag_records::platforms_unread): their
    // config blobs are read once, after the upgrade, by lifecycle::read_platforms.
    "ALTER TABLE manifests ADD COLUMN platforms_unread INTEGER NOT NULL DEFAULT 0;"
    "UPDATE manifests SET platforms_unread = 1 WHERE platforms = '' AND media_type IN ("
    "'application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json');"
    "CREATE INDEX manifests_platforms_unread ON manifests(repo_id, digest) WHERE platforms_unread != 0;",
    // The retention rules made through the admin API (retention_rules.h), in their order, each a
    // JSON document (meta::rule_json).
    "CREATE TABLE retention_rules (position INTEGER PRIMARY KEY, rule TEXT NOT NULL);",
};
#undef BERTH_SET_UNTAGGED
#undef BERTH_CLEAR_UNTAGGED
#undef BERTH_TAGGED
#undef BERTH_NOW_MS
#undef BERTH_LINKED_ELSEWHERE
#undef BERTH_REPO_NS
#undef BERTH_NS
// ---- SQL ----

constexpr std::string_view repo_id_sql = "SELECT id FROM repositories WHERE name = ?1";
constexpr std::string_view insert_repo_sql = "INSERT INTO repositories(name) VALUES (?1)";
constexpr std::string_view linked_size_sql =
    "SELECT l.size FROM repositories r JOIN blob_links l ON l.repo_id = r.id WHERE r.name = ?1 AND l.digest = ?2";
constexpr std::string_view link_sql =
    "INSERT INTO blob_links(repo_id, digest, size, linked_at) VALUES (?1, ?2, ?3, ?4) "
    "ON CONFLICT DO UPDATE SET linked_at = excluded.linked_at";
// Garbage collection (blob_records.h). ?1 is the store's clock, ?2 the end of the grace window.
constexpr std::string_view claim_sql =
    "INSERT INTO blobs(digest, size, used_at, generation) VALUES (?1, ?2, ?3, random()) "
    "ON CONFLICT DO UPDATE SET used_at = excluded.used_at WHERE deleting = 0 RETURNING generation";
constexpr std::string_view use_generation_sql =
    "UPDATE blobs SET used_at = ?3 WHERE digest = ?1 AND generation = ?2 AND deleting = 0";
constexpr std::string_view use_linked_sql =
    "UPDATE blobs SET used_at = ?2 WHERE digest = ?1 AND deleting = 0 "
    "AND EXISTS (SELECT 1 FROM blob_links WHERE digest = ?1)";
// A link the sweep keeps: younger than the grace window, or referenced by a manifest of its repository.
#define BERTH_UNNEEDED_LINK(l) \
  l ".linked_at <= ?1 AND NOT EXISTS (SELECT 1 FROM manifest_refs x WHERE x.repo_id = " l ".repo_id AND x.referenced = " l ".digest)"
// The sweep finds unneeded links by reading, beside the writers, a batch after (?2, ?3) at a time, and
// takes the write lock only to delete each again if it is still unneeded.
constexpr std::string_view unneeded_links_sql =
    "SELECT repo_id, digest FROM blob_links AS l WHERE (l.repo_id, l.digest) > (?2, ?3) AND " BERTH_UNNEEDED_LINK("l")
    " ORDER BY l.repo_id, l.digest LIMIT ?4";
constexpr std::string_view sweep_link_sql =
    "DELETE FROM blob_links AS l WHERE l.repo_id = ?2 AND l.digest = ?3 AND " BERTH_UNNEEDED_LINK("l") " RETURNING size";
constexpr std::string_view estimate_links_sql =
    "SELECT count(*), coalesce(sum(size), 0) FROM blob_links AS l WHERE " BERTH_UNNEEDED_LINK("l");
#define BERTH_UNREFERENCED_BLOB \
  "b.deleting = 0 AND b.used_at <= ?1 AND NOT EXISTS (SELECT 1 FROM blob_links k WHERE k.digest = b.digest " \
  "AND NOT (" BERTH_UNNEEDED_LINK("k") "))"
constexpr std::string_view estimate_blobs_sql =
    "SELECT count(*), coalesce(sum(size), 0) FROM blobs b WHERE " BERTH_UNREFERENCED_BLOB;
constexpr std::string_view unreferenced_sql =
    "SELECT digest, size FROM blobs b WHERE b.digest > ?2 AND " BERTH_UNREFERENCED_BLOB " ORDER BY b.digest LIMIT ?3";
#undef BERTH_UNREFERENCED_BLOB
#undef BERTH_UNNEEDED_LINK
constexpr std::string_view mark_sql =
    "UPDATE blobs SET deleting = 1, generation = random() WHERE digest = ?1 AND deleting = 0 AND used_at <= ?2 "
    "AND NOT EXISTS (SELECT 1 FROM blob_links WHERE digest = ?1) RETURNING digest, size";
constexpr std::string_view has_record_sql = "SELECT 1 FROM blobs WHERE digest = ?1";
constexpr std::string_view adopt_sql =
    "INSERT INTO blobs(digest, size, used_at, generation) VALUES (?1, ?2, ?3, random()) ON CONFLICT DO NOTHING "
    "RETURNING digest, size";
constexpr std::string_view marked_sql = "SELECT digest, size FROM blobs WHERE deleting != 0 ORDER BY digest LIMIT ?1";
constexpr std::string_view forget_sql = "DELETE FROM blobs WHERE digest = ?1 AND deleting != 0 RETURNING digest, size";
// The audit log: every filter that is "" (or 0) matches all.
constexpr std::string_view insert_audit_sql =
    "INSERT INTO audit_log(at_ms, subject, address, action, repository, target, outcome, status, detail) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
constexpr std::string_view list_audit_sql =
    "SELECT id, at_ms, subject, address, action, repository, target, outcome, status, detail FROM audit_log "
    "WHERE (?1 = '' OR repository = ?1) AND (?2 = '' OR subject = ?2) AND (?3 = '' OR action = ?3) "
    "AND at_ms >= ?4 AND (?5 = 0 OR at_ms <= ?5) AND (?6 = 0 OR id < ?6) ORDER BY id DESC LIMIT ?7";
constexpr std::string_view prune_audit_sql = "DELETE FROM audit_log WHERE at_ms < ?1";
constexpr std::string_view retention_rules_sql = "SELECT rule FROM retention_rules ORDER BY position";
constexpr std::string_view clear_retention_rules_sql = "DELETE FROM retention_rules";
constexpr std::string_view insert_retention_rule_sql = "INSERT INTO retention_rules(position, rule) VALUES (?1, ?2)";
// What deleting the manifests ?1 (a JSON array of [repository, digest]) frees: `lost` are the links
// that no remaining manifest of their repository references, `freed` the blobs with no other link.
constexpr std::string_view freed_by_deleting_sql =
    "WITH planned(repo_id, digest) AS (SELECT DISTINCT m.repo_id, m.digest FROM json_each(?1) e "
    "JOIN repositories r ON r.name = json_extract(e.value, '$[0]') "
    "JOIN manifests m ON m.repo_id = r.id AND m.digest = json_extract(e.value, '$[1]')), "
    "lost(repo_id, digest, size) AS (SELECT DISTINCT l.repo_id, l.digest, l.size FROM planned p "
    "JOIN manifest_refs x ON x.repo_id = p.repo_id AND x.manifest = p.digest "
    "JOIN blob_links l ON l.repo_id = x.repo_id AND l.digest = x.referenced "
    "WHERE NOT EXISTS (SELECT 1 FROM manifest_refs y WHERE y.repo_id = l.repo_id AND y.referenced = l.digest "
    "AND NOT EXISTS (SELECT 1 FROM planned q WHERE q.repo_id = y.repo_id AND q.digest = y.manifest))), "
    "freed(name, size) AS (SELECT min(r.name), max(o.size) FROM lost o JOIN repositories r ON r.id = o.repo_id "
    "WHERE NOT EXISTS (SELECT 1 FROM blob_links k WHERE k.digest = o.digest "
    "AND NOT EXISTS (SELECT 1 FROM lost z WHERE z.repo_id = k.repo_id AND z.digest = k.digest)) GROUP BY o.digest) "
    "SELECT r.name, (SELECT coalesce(sum(f.size), 0) FROM freed f WHERE f.name = r.name) "
    "FROM repositories r WHERE r.id IN (SELECT repo_id FROM planned) ORDER BY r.name";
constexpr std::string_view insert_run_sql =
    "INSERT INTO gc_runs(started_at, duration_ms, dry_run, manifests, links, link_bytes, blobs, bytes) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
constexpr std::string_view runs_sql =
    "SELECT started_at, duration_ms, dry_run, manifests, links, link_bytes, blobs, bytes FROM gc_runs "
    "WHERE ?2 = 0 OR dry_run = 0 ORDER BY id DESC LIMIT ?1";
// Usage: ?1 is a namespace, or "" for all.
#define BERTH_IN_NAMESPACE(name) "(?1 = '' OR " name " = ?1 OR substr(" name ", 1, length(?1) + 1) = ?1 || '/')"
constexpr std::string_view repository_usage_sql =
    "SELECT r.name, (SELECT count(*) FROM tags t WHERE t.repo_id = r.id), "
    "(SELECT count(*) FROM manifests m WHERE m.repo_id = r.id), "
    "(SELECT coalesce(sum(size), 0) FROM blob_links l WHERE l.repo_id = r.id) "
    "FROM repositories r WHERE " BERTH_IN_NAMESPACE("r.name") " ORDER BY r.name";
constexpr std::string_view namespace_stored_sql =
    "SELECT name, blob_bytes, manifest_bytes FROM namespace_usage WHERE ?1 = '' OR name = ?1";
constexpr std::string_view namespace_counts_sql =
    "SELECT repositories, blob_bytes + manifest_bytes FROM namespace_usage WHERE name = ?1";
constexpr std::string_view all_namespace_counts_sql =
    "SELECT name, repositories, blob_bytes + manifest_bytes FROM namespace_usage ORDER BY name";
#undef BERTH_IN_NAMESPACE
constexpr std::string_view registry_stored_sql = "SELECT count(*), coalesce(sum(size), 0) FROM blobs";
constexpr std::string_view has_link_or_manifest_sql =
    "SELECT 1 FROM blob_links WHERE repo_id = ?1 AND digest = ?2 "
    "UNION ALL SELECT 1 FROM manifests WHERE repo_id = ?1 AND digest = ?2";
constexpr std::string_view unlink_sql =
    "DELETE FROM blob_links WHERE repo_id = (SELECT id FROM repositories WHERE name = ?1) AND digest = ?2";
constexpr std::string_view has_blob_sql = "SELECT 1 FROM blob_links WHERE repo_id = ?1 AND digest = ?2";
constexpr std::string_view has_manifest_sql = "SELECT 1 FROM manifests WHERE repo_id = ?1 AND digest = ?2";
constexpr std::string_view insert_manifest_sql =
    "INSERT INTO manifests(repo_id, digest, media_type, content, size, subject, artifact_type, annotations, "
    "created_at, total_size, platforms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, unixepoch(), ?9, ?10) "
    "ON CONFLICT DO NOTHING";
constexpr std::string_view insert_ref_sql =
    "INSERT INTO manifest_refs(repo_id, manifest, referenced) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING";
constexpr std::string_view tag_digest_sql = "SELECT digest FROM tags WHERE repo_id = ?1 AND name = ?2";
constexpr std::string_view set_tag_sql =
    "INSERT INTO tags(repo_id, name, digest, updated_at, pushed_at, pushed_by) VALUES (?1, ?2, ?3, unixepoch(), ?4, ?5) "
    "ON CONFLICT (repo_id, name) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at, "
    "pushed_at = excluded.pushed_at, pushed_by = excluded.pushed_by";
constexpr std::string_view insert_history_sql =
    "INSERT INTO tag_history(repo_id, tag, digest, pushed_at, pushed_by, source) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
// A page of tag records; ?2 is `last` ("" for the start), ?3 the count. By time, the cursor is the
// last tag's current (pushed_at, name).
#define BERTH_TAG_RECORDS(where, order)                                                              \
  "SELECT t.name, t.digest, m.media_type, t.pushed_at, t.pushed_by, m.total_size, m.platforms "      \
  "FROM tags t JOIN manifests m ON m.repo_id = t.repo_id AND m.digest = t.digest WHERE t.repo_id = ?1 " \
  "AND " where " ORDER BY " order " LIMIT ?3"
#define BERTH_TIME_CURSOR "(SELECT pushed_at FROM tags WHERE repo_id = ?1 AND name = ?2)"
constexpr std::string_view tag_records_sql[2][2] = {
    {BERTH_TAG_RECORDS("t.name > ?2", "t.name"), BERTH_TAG_RECORDS("(?2 = '' OR t.name < ?2)", "t.name DESC")},
    {BERTH_TAG_RECORDS("(?2 = '' OR (t.pushed_at, t.name) > (" BERTH_TIME_CURSOR ", ?2))", "t.pushed_at, t.name"),
     BERTH_TAG_RECORDS("(?2 = '' OR (t.pushed_at, t.name) < (" BERTH_TIME_CURSOR ", ?2))",
                       "t.pushed_at DESC, t.name DESC")},
};
#undef BERTH_TIME_CURSOR
#undef BERTH_TAG_RECORDS
constexpr std::string_view tag_history_sql =
    "SELECT h.digest, h.pushed_at, h.pushed_by, h.source FROM repositories r JOIN tag_history h ON h.repo_id = r.id "
    "WHERE r.name = ?1 AND h.tag = ?2 ORDER BY h.id DESC";
constexpr std::string_view tags_on_sql =
    "SELECT t.name FROM repositories r JOIN tags t ON t.repo_id = r.id WHERE r.name = ?1 AND t.digest = ?2 "
    "ORDER BY t.name";
constexpr std::string_view platforms_unread_sql =
    "SELECT r.name, m.digest, m.media_type, m.content FROM manifests m JOIN repositories r ON r.id = m.repo_id "
    "WHERE m.platforms_unread != 0 LIMIT ?1";
constexpr std::string_view set_platforms_sql =
    "UPDATE manifests SET platforms = ?3, platforms_unread = 0 WHERE repo_id = (SELECT id FROM repositories "
    "WHERE name = ?1) AND digest = ?2";
constexpr std::string_view untagged_sql =
    "SELECT m.digest, m.untagged_since, m.subject IS NOT NULL AND EXISTS (SELECT 1 FROM manifests s "
    "WHERE s.repo_id = m.repo_id AND s.digest = m.subject) FROM repositories r JOIN manifests m ON m.repo_id = r.id "
    "WHERE r.name = ?1 AND m.untagged_since IS NOT NULL ORDER BY m.digest";
constexpr std::string_view repository_summaries_sql =
    "SELECT r.name, (SELECT count(*) FROM tags t WHERE t.repo_id = r.id), "
    "(SELECT coalesce(sum(l.size), 0) FROM blob_links l WHERE l.repo_id = r.id) + "
    "(SELECT coalesce(sum(m.size), 0) FROM manifests m WHERE m.repo_id = r.id), "
    "(SELECT coalesce(max(t.pushed_at), 0) FROM tags t WHERE t.repo_id = r.id) "
    "FROM repositories r WHERE substr(r.name, 1, length(?1)) = ?1 ORDER BY r.name";
// What a promotion of ?2 from repository ?1 brings along: the manifest, the manifests it references
// (an index's children), and those whose subject is any of them (referrers), transitively.
constexpr std::string_view promotion_closure_sql =
    "WITH RECURSIVE closure(d) AS (SELECT ?2 UNION SELECT m.digest FROM closure c JOIN manifests m ON m.repo_id = ?1 "
    "AND (m.subject = c.d OR EXISTS (SELECT 1 FROM manifest_refs x WHERE x.repo_id = ?1 AND x.manifest = c.d "
    "AND x.referenced = m.digest))) SELECT d FROM closure";
// Copy manifest ?3 of repository ?2 into ?1: its row, its references, the blobs it references.
constexpr std::string_view copy_manifest_sql =
    "INSERT INTO manifests(repo_id, digest, media_type, content, size, subject, artifact_type, annotations, "
    "created_at, total_size, platforms) SELECT ?1, digest, media_type, content, size, subject, artifact_type, "
    "annotations, unixepoch(), total_size, platforms FROM manifests WHERE repo_id = ?2 AND digest = ?3 "
    "ON CONFLICT DO NOTHING";
constexpr std::string_view copy_refs_sql =
    "INSERT INTO manifest_refs(repo_id, manifest, referenced) SELECT ?1, manifest, referenced FROM manifest_refs "
    "WHERE repo_id = ?2 AND manifest = ?3 ON CONFLICT DO NOTHING";
constexpr std::string_view copy_links_sql =
    "INSERT INTO blob_links(repo_id, digest, size) SELECT ?1, l.digest, l.size FROM manifest_refs x "
    "JOIN blob_links l ON l.repo_id = x.repo_id AND l.digest = x.referenced WHERE x.repo_id = ?2 AND x.manifest = ?3 "
    "ON CONFLICT DO NOTHING";
// One statement per lookup, so the manifest and its references come from the same snapshot.
#define BERTH_MANIFEST_COLUMNS                                                                   \
  "SELECT m.digest, m.media_type, m.content, m.subject, m.artifact_type, m.annotations, "       \
  "(SELECT group_concat(x.referenced, ',') FROM manifest_refs x WHERE x.repo_id = m.repo_id " \
  "AND x.manifest = m.digest), m.total_size, m.platforms "
constexpr std::string_view manifest_by_digest_sql = BERTH_MANIFEST_COLUMNS
    "FROM repositories r JOIN manifests m ON m.repo_id = r.id WHERE r.name = ?1 AND m.digest = ?2";
constexpr std::string_view manifest_by_tag_sql = BERTH_MANIFEST_COLUMNS
    "FROM repositories r JOIN tags t ON t.repo_id = r.id "
    "JOIN manifests m ON m.repo_id = t.repo_id AND m.digest = t.digest WHERE r.name = ?1 AND t.name = ?2";
#undef BERTH_MANIFEST_COLUMNS
// A manifest of repository ?1 that needs manifest ?2 (delete_guard::keep_needed): one that lists it
// (an index, its child), or its subject when ?2 is a referrer.
constexpr std::string_view needed_by_sql =
    "SELECT x.manifest FROM repositories r JOIN manifest_refs x ON x.repo_id = r.id WHERE r.name = ?1 "
    "AND x.referenced = ?2 UNION ALL SELECT s.digest FROM repositories r JOIN manifests m ON m.repo_id = r.id "
    "JOIN manifests s ON s.repo_id = m.repo_id AND s.digest = m.subject WHERE r.name = ?1 AND m.digest = ?2 LIMIT 1";
constexpr std::string_view delete_manifest_sql =
    "DELETE FROM manifests WHERE repo_id = (SELECT id FROM repositories WHERE name = ?1) AND digest = ?2 "
    "RETURNING media_type, size";
constexpr std::string_view delete_tag_sql =
    "DELETE FROM tags WHERE repo_id = (SELECT id FROM repositories WHERE name = ?1) AND name = ?2 RETURNING digest";
constexpr std::string_view manifest_facts_sql =
    "SELECT m.media_type, m.size FROM repositories r JOIN manifests m ON m.repo_id = r.id "
    "WHERE r.name = ?1 AND m.digest = ?2";
// The webhook outbox (webhook_records.h).
constexpr std::string_view insert_delivery_sql =
    "INSERT INTO webhook_deliveries(webhook, event_id, event, at, repository, tag, digest, media_type, size, actor, "
    "source, next_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?4, ?4)";
#define BERTH_DELIVERY_COLUMNS                                                                              \
  "id, webhook, event_id, event, at, repository, tag, digest, media_type, size, actor, source, state, "    \
  "attempts, status, last_error, next_at, updated_at"
constexpr std::string_view claim_deliveries_sql =
    "UPDATE webhook_deliveries SET lease_until = ?1 + ?2 WHERE id IN (SELECT id FROM webhook_deliveries "
    "WHERE state = 0 AND next_at <= ?1 AND lease_until <= ?1 ORDER BY next_at, id LIMIT ?3) "
    "RETURNING " BERTH_DELIVERY_COLUMNS;
constexpr std::string_view finish_delivery_sql =
    "UPDATE webhook_deliveries SET state = ?2, attempts = attempts + 1, status = ?3, last_error = ?4, "
    "next_at = ?5, lease_until = 0, updated_at = ?6 WHERE id = ?1";
constexpr std::string_view list_deliveries_sql =
    "SELECT " BERTH_DELIVERY_COLUMNS " FROM webhook_deliveries WHERE webhook = ?1 AND (?2 = 0 OR id < ?2) "
    "AND (?3 = 0 OR (state != 1 AND attempts > 0)) ORDER BY id DESC LIMIT ?4";
#undef BERTH_DELIVERY_COLUMNS
constexpr std::string_view redeliver_sql =
    "UPDATE webhook_deliveries SET state = 0, next_at = ?2, lease_until = 0, updated_at = ?2 WHERE id = ?1";
constexpr std::string_view prune_deliveries_sql = "DELETE FROM webhook_deliveries WHERE state != 0 AND updated_at < ?1";
constexpr std::string_view list_tags_sql =
    "SELECT name FROM tags WHERE repo_id = ?1 AND name > ?2 ORDER BY name LIMIT ?3";
constexpr std::string_view list_repos_sql = "SELECT name FROM repositories WHERE name > ?1 ORDER BY name LIMIT ?2";
constexpr std::string_view repos_with_blob_sql =
    "SELECT r.name FROM blob_links l JOIN repositories r ON r.id = l.repo_id WHERE l.digest = ?1 "
    "ORDER BY r.name LIMIT ?2";
constexpr std::string_view list_links_sql =
    "SELECT l.digest, l.size FROM repositories r JOIN blob_links l ON l.repo_id = r.id WHERE r.name = ?1 "
    "AND l.digest > ?2 ORDER BY l.digest LIMIT ?3";
constexpr std::string_view list_manifests_sql =
    "SELECT m.digest FROM repositories r JOIN manifests m ON m.repo_id = r.id WHERE r.name = ?1 "
    "AND m.digest > ?2 ORDER BY m.digest LIMIT ?3";
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

// Platforms are stored comma-separated (they hold no commas).
std::string join_list(const std::vector<std::string>& items) { return fmt::format("{}", fmt::join(items, ",")); }
std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    const auto comma = std::min(text.find(','), text.size());
    out.emplace_back(text.substr(0, comma));
    text.remove_prefix(std::min(comma + 1, text.size()));
  }
  return out;
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
                    std::string(st.text(5)), {}, static_cast<std::uint64_t>(st.int64(7)), split_list(st.text(8))};
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

// Every row `st` steps to, each made by `make()` from `st`'s columns: a T, or a result<T> whose error
// (a stored value that does not parse) ends the reading.
template <class T, class Make>
result<std::vector<T>> read_rows(statement& st, Make make) {
  std::vector<T> out;
  for (;;) {
    auto row = st.step();
    if (!row) return std::unexpected(row.error());
    if (!*row) return out;
    if constexpr (std::is_same_v<std::invoke_result_t<Make&>, result<T>>) {
      auto made = make();
      if (!made) return std::unexpected(made.error());
      out.push_back(std::move(*made));
    } else {
      out.push_back(make());
    }
  }
}

result<std::vector<std::string>> column_strings(statement& st) {
  return read_rows<std::string>(st, [&]() { return std::string(st.text(0)); });
}

// Reads one upload row (id, repo, size, hash_state, lease_until), or nullopt when there is none.
result<std::optional<upload_record>> read_upload(statement& st) {
  auto row = st.step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return std::nullopt;
  return upload_record{std::string(st.text(0)), std::string(st.text(1)), static_cast<std::uint64_t>(st.int64(2)),
                       std::string(st.text(3))};
}

// The deliveries a statement returns (columns as BERTH_DELIVERY_COLUMNS).
result<std::vector<webhook_delivery>> read_deliveries(statement& st) {
  return read_rows<webhook_delivery>(st, [&]() {
    const auto text = [&](int column) { return std::string(st.text(column)); };
    return webhook_delivery{st.int64(0), text(1), text(2), text(3), st.int64(4), text(5), text(6), text(7),
                            text(8), static_cast<std::uint64_t>(st.int64(9)), text(10), text(11),
                            static_cast<delivery_state>(st.int64(12)), st.int64(13),
                            static_cast<unsigned>(st.int64(14)), text(15), st.int64(16), st.int64(17)};
  });
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

// The store's clock, unix milliseconds.
std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The first row's two counts (count(*), sum(size)).
result<std::pair<std::uint64_t, std::uint64_t>> two_counts(statement& st) {
  auto row = st.step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return std::pair<std::uint64_t, std::uint64_t>{};
  return std::pair{static_cast<std::uint64_t>(st.int64(0)), static_cast<std::uint64_t>(st.int64(1))};
}

result<std::vector<blob_entry>> read_blob_entries(statement& st) {
  return read_rows<blob_entry>(st, [&]() -> result<blob_entry> {
    auto d = stored_digest(st.text(0));
    if (!d) return std::unexpected(d.error());
    return blob_entry{*d, static_cast<std::uint64_t>(st.int64(1))};
  });
}

// Runs `sql` (bound by `bind`) for each of `items`; the (digest, size) rows it returns.
template <class T, class Bind>
result<std::vector<blob_entry>> each_returning(connection& db, std::span<const T> items, Bind bind,
                                               std::string_view sql) {
  std::vector<blob_entry> out;
  for (const T& item : items) {
    auto st = db.prepare(sql);
    bind(st, item);
    auto rows = read_blob_entries(st);
    if (!rows) return std::unexpected(rows.error());
    out.insert(out.end(), rows->begin(), rows->end());
  }
  return out;
}

std::unexpected<error> being_deleted(const digest& d) {
  error e{errc::unavailable, fmt::format("blob {} is being deleted by garbage collection: push it again", d.str())};
  e.retry_after = std::chrono::seconds(1);
  return std::unexpected(std::move(e));
}

class sqlite_metadata_store final : public metadata_store,
                                    public upload_records,
                                    public tag_records,
                                    public blob_records,
                                    public webhook_records,
                                    public audit_records,
                                    public retention_rule_records {
 public:
  sqlite_metadata_store(const std::string& path, upload_leases leases)
      : writer_(open_and_migrate(path, leases)), readers_(path) {
    // Open one reader now so a path readers cannot use fails at start-up, not on the first request.
    if (!readers_.acquire()) throw std::runtime_error(fmt::format("metadata store: cannot open a reader on {}", path));
  }

  upload_records& uploads() override { return *this; }
  blob_records& blobs() override { return *this; }
  webhook_records& webhooks() override { return *this; }
  audit_records& audit() override { return *this; }
  retention_rule_records& retention_rules() override { return *this; }

  awaitable<result<std::optional<std::uint64_t>>> linked_blob_size(std::string_view repo, const digest& d) override {
    co_return read([&](connection& db) { return optional_size(db.prepare(linked_size_sql).bind(repo, d.str())); });
  }

  awaitable<result<bool>> link_blob(std::string_view repo, const digest& d, std::uint64_t size) override {
    co_return co_await write([&](connection& db) -> result<bool> {
      const std::int64_t now = now_ms();
      auto st = db.prepare(use_linked_sql);
      auto used = changed_rows(db, st.bind(d.str(), now));
      if (!used || !*used) return used;
      return limited(db, repo, [&]() -> result<bool> {
        if (auto r = link(db, repo, d, size, now); !r) return std::unexpected(r.error());
        return true;
      });
    });
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

  tag_records& tags() override { return *this; }

  awaitable<result<void>> put_manifest(std::string_view repo, const manifest_record& m,
                                       std::optional<std::string_view> tag, const push_stamp& stamp) override {
    co_return co_await write([&](connection& db) { return limited(db, repo, [&]() -> result<void> {
      auto repo_id = ensure_repo(db, repo);
      if (!repo_id) return std::unexpected(repo_id.error());
      // A manifest stored already keeps its references: only a new one needs its blobs linked.
      auto held = missing(db, repo, std::span(&m.dgst, 1), has_manifest_sql);
      if (!held) return std::unexpected(held.error());
      for (const digest& ref : held->empty() ? std::span<const digest>() : std::span(m.references)) {
        auto st = db.prepare(has_link_or_manifest_sql);
        auto row = st.bind(*repo_id, ref.str()).step();
        if (!row) return std::unexpected(row.error());
        if (!*row) return fail(errc::manifest_blob_unknown, ref.str());
      }
      if (auto r = insert_manifest(db, *repo_id, m); !r) return r;
      if (tag) {
        auto moved = set_tag(db, *repo_id, *tag, m.dgst, stamp);
        if (!moved) return std::unexpected(moved.error());
      }
      return record_event(db, event_type(stamp, false), repo, tag.value_or(""), m.dgst.str(), m.media_type,
                          m.content.size(), stamp);
    }); });
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

  awaitable<result<bool>> delete_manifest(std::string_view repo, const digest& d, const push_stamp& stamp,
                                          const delete_guard& guard) override {
    co_return co_await write([&](connection& db) -> result<bool> {
      if (guard.tags) {
        auto on = db.prepare(tags_on_sql);
        auto tags = column_strings(on.bind(repo, d.str()));
        if (!tags) return std::unexpected(tags.error());
        for (const auto& tag : *tags) {
          if (auto why = guard.tags(tag)) return fail(errc::denied, std::move(*why));
        }
      }
      if (guard.keep_needed) {
        auto needed = db.prepare(needed_by_sql);
        auto row = needed.bind(repo, d.str()).step();
        if (!row) return std::unexpected(row.error());
        if (*row) return fail(errc::denied, fmt::format("manifest {} still needs it", needed.text(0)));
      }
      auto st = db.prepare(delete_manifest_sql);
      auto row = st.bind(repo, d.str()).step();
      if (!row) return std::unexpected(row.error());
      if (!*row) return false;
      const std::string media_type(st.text(0));
      const auto size = static_cast<std::uint64_t>(st.int64(1));
      if (auto done = st.step(); !done) return std::unexpected(done.error());
      if (auto r = record_event(db, event_type(stamp, true), repo, "", d.str(), media_type, size, stamp); !r)
        return std::unexpected(r.error());
      return true;
    });
  }

  awaitable<result<bool>> delete_tag(std::string_view repo, std::string_view tag, const push_stamp& stamp) override {
    co_return co_await write([&](connection& db) -> result<bool> {
      std::string d;
      {
        auto st = db.prepare(delete_tag_sql);
        auto row = st.bind(repo, tag).step();
        if (!row) return std::unexpected(row.error());
        if (!*row) return false;
        d = st.text(0);
        if (auto done = st.step(); !done) return std::unexpected(done.error());
      }
      auto st = db.prepare(manifest_facts_sql);
      auto row = st.bind(repo, d).step();
      if (!row) return std::unexpected(row.error());
      const std::string media_type = *row ? std::string(st.text(0)) : std::string();
      const auto size = *row ? static_cast<std::uint64_t>(st.int64(1)) : 0;
      if (auto r = record_event(db, event_type(stamp, true), repo, tag, d, media_type, size, stamp); !r)
        return std::unexpected(r.error());
      return true;
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
    co_return co_await write([&](connection& db) { return limited(db, repo, [&]() -> result<bool> {
      auto found = find_repo(db, repo);
      if (!found) return std::unexpected(found.error());
      if (*found) return false;
      if (auto r = db.prepare(insert_repo_sql).bind(repo).run(); !r) return std::unexpected(r.error());
      return true;
    }); });
  }

  awaitable<result<bool>> delete_repository(std::string_view repo) override {
    co_return co_await write([&](connection& db) -> result<bool> {
      auto found = find_repo(db, repo);
      if (!found) return std::unexpected(found.error());
      if (!*found) return false;
      // Manifests first: their tags and references cascade.
      for (const char* sql : {"DELETE FROM manifests WHERE repo_id = ?1", "DELETE FROM blob_links WHERE repo_id = ?1",
                              "DELETE FROM tag_history WHERE repo_id = ?1", "DELETE FROM repositories WHERE id = ?1"}) {
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

  awaitable<result<std::vector<blob_entry>>> list_blob_links(std::string_view repo, std::string_view last,
                                                            std::size_t n) override {
    co_return read([&](connection& db) {
      auto st = db.prepare(list_links_sql);
      return read_blob_entries(st.bind(repo, last, std::uint64_t{n}));
    });
  }

  awaitable<result<std::vector<digest>>> list_manifests(std::string_view repo, std::string_view last,
                                                        std::size_t n) override {
    co_return read([&](connection& db) -> result<std::vector<digest>> {
      auto st = db.prepare(list_manifests_sql);
      auto texts = column_strings(st.bind(repo, last, std::uint64_t{n}));
      if (!texts) return std::unexpected(texts.error());
      std::vector<digest> out;
      for (const auto& t : *texts) {
        auto d = stored_digest(t);
        if (!d) return std::unexpected(d.error());
        out.push_back(*d);
      }
      return out;
    });
  }

  awaitable<result<std::vector<referrer>>> referrers(std::string_view repo, const digest& subject,
                                                     std::optional<std::string_view> artifact_type) override {
    co_return read([&](connection& db) -> result<std::vector<referrer>> {
      auto st = db.prepare(referrers_sql);
      st.bind(repo, subject.str(), artifact_type);
      return read_rows<referrer>(st, [&]() -> result<referrer> {
        auto d = stored_digest(st.text(0));
        if (!d) return std::unexpected(d.error());
        return referrer{*d, std::string(st.text(1)), static_cast<std::uint64_t>(st.int64(2)), std::string(st.text(3)),
                        std::string(st.text(4))};
      });
    });
  }

  // ---- tag_records ----

  awaitable<result<std::optional<std::vector<tag_record>>>> tag_list(std::string_view repo, tag_sort sort,
                                                                     bool descending, std::string_view last,
                                                                     std::size_t n) override {
    co_return read([&](connection& db) -> result<std::optional<std::vector<tag_record>>> {
      auto repo_id = find_repo(db, repo);
      if (!repo_id) return std::unexpected(repo_id.error());
      if (!*repo_id) return std::nullopt;
      auto st = db.prepare(tag_records_sql[sort == tag_sort::time][descending]);
      st.bind(**repo_id, last, std::uint64_t{n});
      return read_rows<tag_record>(st, [&]() -> result<tag_record> {
        auto d = stored_digest(st.text(1));
        if (!d) return std::unexpected(d.error());
        return tag_record{std::string(st.text(0)), *d,
                          std::string(st.text(2)), st.int64(3),
                          std::string(st.text(4)), static_cast<std::uint64_t>(st.int64(5)),
                          split_list(st.text(6))};
      });
    });
  }

  awaitable<result<std::vector<tag_event>>> tag_history(std::string_view repo, std::string_view tag) override {
    co_return read([&](connection& db) -> result<std::vector<tag_event>> {
      auto st = db.prepare(tag_history_sql);
      st.bind(repo, tag);
      return read_rows<tag_event>(st, [&]() -> result<tag_event> {
        auto d = stored_digest(st.text(0));
        if (!d) return std::unexpected(d.error());
        return tag_event{*d, st.int64(1), std::string(st.text(2)), std::string(st.text(3))};
      });
    });
  }

  awaitable<result<std::vector<std::string>>> tags_on(std::string_view repo, const digest& d) override {
    co_return read([&](connection& db) {
      auto st = db.prepare(tags_on_sql);
      return column_strings(st.bind(repo, d.str()));
    });
  }

  awaitable<result<std::vector<unread_platforms>>> platforms_unread(std::size_t n) override {
    co_return read([&](connection& db) -> result<std::vector<unread_platforms>> {
      auto st = db.prepare(platforms_unread_sql);
      st.bind(static_cast<std::int64_t>(n));
      return read_rows<unread_platforms>(st, [&]() -> result<unread_platforms> {
        auto d = stored_digest(st.text(1));
        if (!d) return std::unexpected(d.error());
        return unread_platforms{std::string(st.text(0)), *d, std::string(st.text(2)), std::string(st.text(3))};
      });
    });
  }

  awaitable<result<void>> set_platforms(std::string_view repo, const digest& d,
                                        const std::vector<std::string>& platforms) override {
    const std::string joined = join_list(platforms);  // bound without a copy: outlives the step
    co_return co_await write([&](connection& db) -> result<void> {
      auto st = db.prepare(set_platforms_sql);
      return st.bind(repo, d.str(), joined).run();
    });
  }

  awaitable<result<std::vector<untagged_manifest>>> untagged(std::string_view repo) override {
    co_return read([&](connection& db) -> result<std::vector<untagged_manifest>> {
      auto st = db.prepare(untagged_sql);
      st.bind(repo);
      return read_rows<untagged_manifest>(st, [&]() -> result<untagged_manifest> {
        auto d = stored_digest(st.text(0));
        if (!d) return std::unexpected(d.error());
        return untagged_manifest{*d, st.int64(1), st.int64(2) != 0};
      });
    });
  }

  awaitable<result<std::vector<repository_summary>>> repository_summaries(std::string_view prefix) override {
    co_return read([&](connection& db) -> result<std::vector<repository_summary>> {
      auto st = db.prepare(repository_summaries_sql);
      st.bind(prefix);
      return read_rows<repository_summary>(st, [&]() {
        return repository_summary{std::string(st.text(0)), static_cast<std::uint64_t>(st.int64(1)),
                                  static_cast<std::uint64_t>(st.int64(2)), st.int64(3)};
      });
    });
  }

  awaitable<result<std::optional<promotion>>> promote(std::string_view dst, std::string_view tag, std::string_view src,
                                                      const digest& d, const push_stamp& stamp) override {
    co_return co_await write([&](connection& db) -> result<std::optional<promotion>> {
      auto src_id = find_repo(db, src);
      if (!src_id) return std::unexpected(src_id.error());
      if (!*src_id) return std::nullopt;
      std::vector<std::string> closure;
      {
        auto st = db.prepare(promotion_closure_sql);
        auto found = column_strings(st.bind(**src_id, d.str()));
        if (!found) return std::unexpected(found.error());
        closure = std::move(*found);
      }
      {
        auto st = db.prepare(has_manifest_sql);
        auto row = st.bind(**src_id, d.str()).step();
        if (!row) return std::unexpected(row.error());
        if (!*row) return std::nullopt;
      }
      return limited(db, dst, [&]() -> result<std::optional<promotion>> {
        auto dst_id = ensure_repo(db, dst);
        if (!dst_id) return std::unexpected(dst_id.error());
        for (const auto& m : closure) {
          for (std::string_view sql : {copy_manifest_sql, copy_refs_sql, copy_links_sql}) {
            if (auto r = db.prepare(sql).bind(*dst_id, **src_id, m).run(); !r) return std::unexpected(r.error());
          }
        }
        auto moved = set_tag(db, *dst_id, tag, d, stamp);
        if (!moved) return std::unexpected(moved.error());
        auto st = db.prepare(manifest_facts_sql);
        auto row = st.bind(dst, d.str()).step();
        if (!row) return std::unexpected(row.error());
        if (auto r = record_event(db, event_type(stamp, false), dst, tag, d.str(), *row ? st.text(0) : "",
                                  *row ? static_cast<std::uint64_t>(st.int64(1)) : 0, stamp);
            !r)
          return std::unexpected(r.error());
        return std::optional<promotion>(std::move(*moved));
      });
    });
  }

  awaitable<result<usage_report>> usage(std::string_view ns) override {
    co_return read([&](connection& db) -> result<usage_report> {
      std::vector<repository_usage> repos;
      {
        auto st = db.prepare(repository_usage_sql);
        st.bind(ns);
        for (;;) {
          auto row = st.step();
          if (!row) return std::unexpected(row.error());
          if (!*row) break;
          const auto u = [&](int column) { return static_cast<std::uint64_t>(st.int64(column)); };
          repos.push_back(repository_usage{std::string(st.text(0)), u(1), u(2), u(3)});
        }
      }
      std::map<std::string, namespace_bytes, std::less<>> stored;
      {
        auto st = db.prepare(namespace_stored_sql);
        st.bind(ns);
        for (;;) {
          auto row = st.step();
          if (!row) return std::unexpected(row.error());
          if (!*row) break;
          stored[std::string(st.text(0))] =
              namespace_bytes{static_cast<std::uint64_t>(st.int64(1)), static_cast<std::uint64_t>(st.int64(2))};
        }
      }
      auto st = db.prepare(registry_stored_sql);
      auto total = two_counts(st);
      if (!total) return std::unexpected(total.error());
      return group_usage(std::move(repos), stored, total->second);
    });
  }

  awaitable<result<std::vector<counted_namespace>>> namespace_counters() override {
    co_return read([&](connection& db) -> result<std::vector<counted_namespace>> {
      std::vector<counted_namespace> out;
      auto st = db.prepare(all_namespace_counts_sql);
      for (;;) {
        auto row = st.step();
        if (!row) return std::unexpected(row.error());
        if (!*row) return out;
        out.push_back(counted_namespace{std::string(st.text(0)), namespace_counts{static_cast<std::uint64_t>(st.int64(1)),
                                                                                  static_cast<std::uint64_t>(st.int64(2))}});
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

  awaitable<result<std::int64_t>> claim(const digest& d, std::uint64_t size) override {
    co_return co_await write(
        [&](connection& db) -> result<std::int64_t> {
          auto st = db.prepare(claim_sql);
          auto row = st.bind(d.str(), size, now_ms()).step();
          if (!row) return std::unexpected(row.error());
          if (!*row) return being_deleted(d);
          return st.int64(0);
        },
        durability::relaxed);
  }

  awaitable<result<bool>> complete(std::string_view id, std::int64_t token, const digest& d, std::uint64_t size,
                                   std::int64_t generation) override {
    co_return co_await write([&](connection& db) -> result<bool> {
      const std::int64_t now = now_ms();
      std::string repo;
      {
        auto st = db.prepare(held_upload_repo_sql);
        auto row = st.bind(id, token).step();
        if (!row) return std::unexpected(row.error());
        if (!*row) return false;
        repo = st.text(0);
      }
      auto st = db.prepare(use_generation_sql);
      auto used = changed_rows(db, st.bind(d.str(), generation, now));
      if (!used) return std::unexpected(used.error());
      if (!*used) return being_deleted(d);
      return limited(db, repo, [&]() -> result<bool> {
        if (auto r = link(db, repo, d, size, now); !r) return std::unexpected(r.error());
        if (auto r = db.prepare(delete_held_upload_sql).bind(id, token).run(); !r) return std::unexpected(r.error());
        return true;
      });
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

  // ---- blob_records ----

  // A run that finds nothing to sweep never takes the write lock, and one that does holds it only to
  // delete a batch: the pushes go on beside a collector (bench/run --only gc).
  awaitable<result<gc_counts>> sweep_links(std::int64_t grace_ms) override {
    constexpr std::size_t batch = 500;
    const std::int64_t cutoff = now_ms() - grace_ms;
    std::vector<std::pair<std::int64_t, std::string>> keys;
    std::pair<std::int64_t, std::string> after{0, ""};
    gc_counts out;
    for (;;) {
      auto found = read([&](connection& db) -> result<void> {
        keys.clear();
        auto st = db.prepare(unneeded_links_sql);
        st.bind(cutoff, after.first, after.second, std::uint64_t{batch});
        for (;;) {
          auto row = st.step();
          if (!row) return std::unexpected(row.error());
          if (!*row) return {};
          keys.emplace_back(st.int64(0), st.text(1));
        }
      });
      if (!found) co_return std::unexpected(found.error());
      if (keys.empty()) co_return out;
      auto swept = co_await write([&](connection& db) -> result<gc_counts> {
        gc_counts counts;
        for (const auto& [repo_id, dgst] : keys) {
          auto st = db.prepare(sweep_link_sql);
          auto row = st.bind(cutoff, repo_id, dgst).step();
          if (!row) return std::unexpected(row.error());
          if (!*row) continue;
          ++counts.links;
          counts.link_bytes += static_cast<std::uint64_t>(st.int64(0));
        }
        return counts;
      });
      if (!swept) co_return std::unexpected(swept.error());
      out.links += swept->links;
      out.link_bytes += swept->link_bytes;
      if (keys.size() < batch) co_return out;
      after = keys.back();
    }
  }

  awaitable<result<gc_counts>> estimate(std::int64_t grace_ms) override {
    co_return read([&](connection& db) -> result<gc_counts> {
      const std::int64_t cutoff = now_ms() - grace_ms;
      auto links = db.prepare(estimate_links_sql);
      auto l = two_counts(links.bind(cutoff));
      if (!l) return std::unexpected(l.error());
      auto blobs = db.prepare(estimate_blobs_sql);
      auto b = two_counts(blobs.bind(cutoff));
      if (!b) return std::unexpected(b.error());
      gc_counts out;
      std::tie(out.links, out.link_bytes) = *l;
      std::tie(out.blobs, out.bytes) = *b;
      return out;
    });
  }

  awaitable<result<std::vector<repository_bytes>>> freed_by_deleting(
      std::span<const repository_manifest> deleted) override {
    // Repository names and digests need no escaping in JSON (their grammars have no quotes or backslashes).
    std::string planned = "[";
    for (const auto& m : deleted) {
      if (planned.size() > 1) planned += ',';
      planned += fmt::format(R"(["{}","{}"])", m.repository, m.dgst.str());
    }
    planned += ']';
    co_return read([&](connection& db) -> result<std::vector<repository_bytes>> {
      auto st = db.prepare(freed_by_deleting_sql);
      st.bind(planned);
      return read_rows<repository_bytes>(st, [&]() {
        return repository_bytes{std::string(st.text(0)), static_cast<std::uint64_t>(st.int64(1))};
      });
    });
  }

  awaitable<result<std::vector<blob_entry>>> unreferenced(std::int64_t grace_ms, std::string_view after,
                                                          std::size_t n) override {
    co_return read([&](connection& db) {
      auto st = db.prepare(unreferenced_sql);
      return read_blob_entries(st.bind(now_ms() - grace_ms, after, std::uint64_t{n}));
    });
  }

  awaitable<result<std::vector<blob_entry>>> mark_for_deletion(std::span<const digest> ds,
                                                               std::int64_t grace_ms) override {
    co_return co_await write([&](connection& db) {
      const std::int64_t cutoff = now_ms() - grace_ms;
      return each_returning(db, ds, [&](statement& st, const digest& d) { st.bind(d.str(), cutoff); }, mark_sql);
    });
  }

  // Read first, beside the writers: a whole store's worth of digests, nearly all recorded, takes
  // the write lock only for the few that are not.
  awaitable<result<std::vector<blob_entry>>> adopt(std::span<const blob_entry> stored) override {
    auto unknown = read([&](connection& db) -> result<std::vector<blob_entry>> {
      std::vector<blob_entry> out;
      for (const auto& e : stored) {
        auto st = db.prepare(has_record_sql);
        auto row = st.bind(e.dgst.str()).step();
        if (!row) return std::unexpected(row.error());
        if (!*row) out.push_back(e);
      }
      return out;
    });
    if (!unknown) co_return std::unexpected(unknown.error());
    if (unknown->empty()) co_return std::move(*unknown);
    co_return co_await write([&](connection& db) {
      const std::int64_t now = now_ms();
      const auto bind = [&](statement& st, const blob_entry& e) { st.bind(e.dgst.str(), e.size, now); };
      return each_returning(db, std::span<const blob_entry>(*unknown), bind, adopt_sql);
    });
  }

  awaitable<result<std::vector<blob_entry>>> marked(std::size_t n) override {
    co_return read([&](connection& db) {
      auto st = db.prepare(marked_sql);
      return read_blob_entries(st.bind(std::uint64_t{n}));
    });
  }

  awaitable<result<std::vector<blob_entry>>> forget(std::span<const digest> ds) override {
    co_return co_await write([&](connection& db) {
      return each_returning(db, ds, [&](statement& st, const digest& d) { st.bind(d.str()); }, forget_sql);
    });
  }

  awaitable<result<void>> record_run(const gc_run& r) override {
    co_return co_await write([&](connection& db) {
      const gc_counts& c = r.counts;
      return db.prepare(insert_run_sql)
          .bind(r.started_ms, r.duration_ms, std::int64_t{r.dry_run}, c.manifests, c.links, c.link_bytes, c.blobs,
                c.bytes)
          .run();
    });
  }

  awaitable<result<std::vector<gc_run>>> runs(std::size_t n, bool collections_only) override {
    co_return read([&](connection& db) -> result<std::vector<gc_run>> {
      auto st = db.prepare(runs_sql);
      st.bind(std::uint64_t{n}, std::int64_t{collections_only});
      return read_rows<gc_run>(st, [&]() {
        const auto u = [&](int column) { return static_cast<std::uint64_t>(st.int64(column)); };
        return gc_run{st.int64(0), st.int64(1), st.int64(2) != 0, gc_counts{u(3), u(4), u(5), u(6), u(7)}};
      });
    });
  }

  void set_limits(namespace_limits limits) override { limits_.set(std::move(limits)); }

  // ---- webhook_records ----

  awaitable<result<std::vector<webhook_delivery>>> claim_deliveries(std::int64_t now_ms, std::int64_t lease_ms,
                                                                    std::size_t n) override {
    co_return co_await write(
        [&](connection& db) {
          auto st = db.prepare(claim_deliveries_sql);
          return read_deliveries(st.bind(now_ms, lease_ms, std::uint64_t{n}));
        },
        durability::relaxed);
  }

  awaitable<result<bool>> finish_delivery(std::int64_t id, const delivery_attempt& a) override {
    co_return co_await write([&](connection& db) {
      auto st = db.prepare(finish_delivery_sql);
      return changed_rows(db, st.bind(id, static_cast<std::int64_t>(a.state), std::int64_t{a.status}, a.error,
                                      a.next_at_ms, a.at_ms));
    });
  }

  awaitable<result<std::vector<webhook_delivery>>> deliveries(std::string_view webhook, bool failed_only,
                                                              std::int64_t before_id, std::size_t n) override {
    co_return read([&](connection& db) {
      auto st = db.prepare(list_deliveries_sql);
      return read_deliveries(st.bind(webhook, before_id, std::int64_t{failed_only}, std::uint64_t{n}));
    });
  }

  awaitable<result<bool>> redeliver(std::int64_t id, std::int64_t now_ms) override {
    co_return co_await write([&](connection& db) {
      auto st = db.prepare(redeliver_sql);
      return changed_rows(db, st.bind(id, now_ms));
    });
  }

  // ---- audit_records ----
  // Relaxed: an entry is in the WAL before the response is sent, and reaches the disk with the
  // next durable commit (see README "Audit log": what a power failure can lose).
  awaitable<result<void>> append(std::span<const audit_entry> entries) override {
    co_return co_await write(
        [&](connection& db) -> result<void> {
          for (const audit_entry& e : entries) {
            auto st = db.prepare(insert_audit_sql);
            st.bind(e.at_ms, e.subject, e.address, e.action, e.repository, e.target, e.outcome,
                    std::int64_t{e.status}, e.detail);
            if (auto r = st.run(); !r) return r;
          }
          return {};
        },
        durability::relaxed);
  }

  awaitable<result<std::vector<audit_entry>>> list(const audit_query& q) override {
    co_return read([&](connection& db) -> result<std::vector<audit_entry>> {
      auto st = db.prepare(list_audit_sql);
      st.bind(q.repository, q.subject, q.action, q.since_ms, q.until_ms, q.before_id, std::uint64_t{q.n});
      return read_rows<audit_entry>(st, [&]() {
        return audit_entry{st.int64(0),
                           st.int64(1),
                           std::string(st.text(2)),
                           std::string(st.text(3)),
                           std::string(st.text(4)),
                           std::string(st.text(5)),
                           std::string(st.text(6)),
                           std::string(st.text(7)),
                           static_cast<unsigned>(st.int64(8)),
                           std::string(st.text(9))};
      });
    });
  }

  awaitable<result<std::uint64_t>> prune(std::int64_t before_ms) override {
    co_return co_await deleted_before(prune_audit_sql, before_ms);
  }

  awaitable<result<std::uint64_t>> prune_deliveries(std::int64_t before_ms) override {
    co_return co_await deleted_before(prune_deliveries_sql, before_ms);
  }

  // ---- retention_rule_records ----
  awaitable<result<std::vector<retention_rule>>> rules() override {
    co_return read([&](connection& db) -> result<std::vector<retention_rule>> {
      auto st = db.prepare(retention_rules_sql);
      return read_rows<retention_rule>(st, [&]() { return stored_rule(st.text(0)); });
    });
  }

  awaitable<result<void>> replace_rules(std::span<const retention_rule> rules) override {
    co_return co_await write([&](connection& db) -> result<void> {
      if (auto r = db.prepare(clear_retention_rules_sql).run(); !r) return r;
      for (std::size_t i = 0; i < rules.size(); ++i) {
        auto st = db.prepare(insert_retention_rule_sql);
        if (auto r = st.bind(static_cast<std::int64_t>(i), rule_json(rules[i]).dump()).run(); !r) return r;
      }
      return {};
    });
  }

  // Runs the DELETE `sql` with ?1 = `before_ms`; how many rows it deleted.
  awaitable<result<std::uint64_t>> deleted_before(std::string_view sql, std::int64_t before_ms) {
    co_return co_await write([&](connection& db) -> result<std::uint64_t> {
      auto st = db.prepare(sql);
      if (auto r = st.bind(before_ms).run(); !r) return std::unexpected(r.error());
      return static_cast<std::uint64_t>(db.changes());
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
    // The server owns the database: whoever held an upload lease (or a webhook delivery's) before
    // it opened it is gone.
    if (leases == upload_leases::end &&
        !db.exec("UPDATE uploads SET lease_until = 0 WHERE lease_until != 0; "
                 "UPDATE webhook_deliveries SET lease_until = 0 WHERE lease_until != 0"))
      throw std::runtime_error("metadata store: cannot end the leases of a previous run (see log)");
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

  // Runs `body`, a change to repository `repo`, and fails it (DENIED) when it takes the namespace past
  // its limits (quota.h): the operation's savepoint then undoes it. The writer runs one operation at
  // a time, so the counters read before and after are this change's alone. Writer only.
  template <class F>
  auto limited(connection& db, std::string_view repo, F&& body) const -> decltype(body()) {
    const std::string_view ns = namespace_of(repo);
    const auto limit = limits_.of(ns);
    if (!limit) return body();
    auto before = counts(db, ns);
    if (!before) return std::unexpected(before.error());
    auto out = body();
    if (!out) return out;
    auto after = counts(db, ns);
    if (!after) return std::unexpected(after.error());
    if (auto refused = over_limit(ns, *limit, *before, *after)) return std::unexpected(std::move(*refused));
    return out;
  }

  static result<namespace_counts> counts(connection& db, std::string_view ns) {
    auto st = db.prepare(namespace_counts_sql);
    auto row = st.bind(ns).step();
    if (!row) return std::unexpected(row.error());
    if (!*row) return namespace_counts{};
    return namespace_counts{static_cast<std::uint64_t>(st.int64(0)), static_cast<std::uint64_t>(st.int64(1))};
  }

  // Links `d` into `repo` (created when missing) at `now`. Writer only.
  static result<void> link(connection& db, std::string_view repo, const digest& d, std::uint64_t size,
                           std::int64_t now) {
    auto repo_id = ensure_repo(db, repo);
    if (!repo_id) return std::unexpected(repo_id.error());
    return db.prepare(link_sql).bind(*repo_id, d.str(), size, now).run();
  }

  static result<std::optional<std::uint64_t>> optional_size(statement& st) {
    auto row = st.step();
    if (!row) return std::unexpected(row.error());
    if (!*row) return std::nullopt;
    return static_cast<std::uint64_t>(st.int64(0));
  }

  // Points `tag` at `d` and records the move, unless it points there already. Writer only.
  static result<promotion> set_tag(connection& db, std::int64_t repo_id, std::string_view tag, const digest& d,
                                   const push_stamp& stamp) {
    promotion out;
    {
      auto st = db.prepare(tag_digest_sql);
      auto row = st.bind(repo_id, tag).step();
      if (!row) return std::unexpected(row.error());
      if (*row) {
        auto previous = stored_digest(st.text(0));
        if (!previous) return std::unexpected(previous.error());
        out.previous = *previous;
      }
    }
    if (out.previous == d) return out;
    if (out.previous && !stamp.immutable.empty()) return fail(errc::denied, std::string(stamp.immutable));
    if (auto r = db.prepare(set_tag_sql).bind(repo_id, tag, d.str(), stamp.at_ms, stamp.by).run(); !r)
      return std::unexpected(r.error());
    if (auto r = db.prepare(insert_history_sql).bind(repo_id, tag, d.str(), stamp.at_ms, stamp.by, stamp.source).run();
        !r)
      return std::unexpected(r.error());
    out.moved = true;
    return out;
  }

  // Adds one delivery of the event to each webhook subscribed to it. Writer only.
  result<void> record_event(connection& db, std::string_view type, std::string_view repo, std::string_view tag,
                            std::string_view d, std::string_view media_type, std::uint64_t size,
                            const push_stamp& stamp) const {
    const auto names = subscribers(type, repo);
    if (names.empty()) return {};
    const std::string event_id = new_event_id();
    for (const auto& name : names) {
      if (auto r = db.prepare(insert_delivery_sql)
                       .bind(name, event_id, type, stamp.at_ms, repo, tag, d, media_type, size, stamp.by, stamp.source)
                       .run();
          !r)
        return r;
    }
    return {};
  }

  // Stores `m` with its references unless `repo_id` already holds that digest (content unchanged).
  static result<void> insert_manifest(connection& db, std::int64_t repo_id, const manifest_record& m) {
    std::optional<std::string_view> subject;
    if (m.subject) subject = m.subject->str();
    const std::string platforms = join_list(m.platforms);  // bound without a copy: outlives the step
    auto st = db.prepare(insert_manifest_sql);
    st.bind(repo_id, m.dgst.str(), m.media_type, blob_view{m.content}, std::uint64_t{m.content.size()}, subject,
            m.artifact_type, m.annotations_json, m.total_size, platforms);
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
  limits_table limits_;
};

}  // namespace

std::unique_ptr<metadata_store> make_sqlite_metadata_store(const std::string& path, upload_leases leases) {
  return std::make_unique<sqlite_metadata_store>(path, leases);
}

}  // namespace berth::meta
