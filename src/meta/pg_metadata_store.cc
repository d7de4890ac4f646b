// The PostgreSQL metadata store (pg_metadata_store.h). Reads are single prepared statements on the
// pool. Writes that touch one row are single statements; the others are transactions in READ
// COMMITTED that take their locks in one order, so they rarely deadlock and a deadlock is retried:
// the repository row first (FOR KEY SHARE to add to it, FOR UPDATE to delete it), then the
// manifest row (a manifest being stored first locks those it lists, FOR KEY SHARE), then its tags.

#include "meta/pg_metadata_store.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdint>
#include <chrono>
#include <limits>
#include <map>
#include <set>
#include <tuple>
#include <utility>

#include "meta/usage.h"
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
    // The lifecycle (tag_records.h): each manifest's total size and platforms, who set each tag
    // and when (ms), and every move of a tag. Existing rows: a tag's time is when it was last set
    // (updated_at, in seconds), its pusher "unknown"; a manifest's size counts its own bytes and
    // the blobs it links, then an index adds its children's; platforms come from an index's
    // entries (an image manifest's config is a blob the database does not hold: read after the
    // upgrade, see platforms_unread below). A manifest whose bytes jsonb refuses (a \u0000) keeps no platforms.
    R"sql(
ALTER TABLE manifests ADD COLUMN total_size bigint NOT NULL DEFAULT 0;
ALTER TABLE manifests ADD COLUMN platforms text NOT NULL DEFAULT '';
ALTER TABLE tags ADD COLUMN pushed_at bigint NOT NULL DEFAULT 0;
ALTER TABLE tags ADD COLUMN pushed_by text NOT NULL DEFAULT 'unknown';
UPDATE tags SET pushed_at = updated_at * 1000;
UPDATE manifests SET total_size = size + (SELECT coalesce(sum(l.size), 0) FROM manifest_refs x JOIN blob_links l
  ON l.repo_id = x.repo_id AND l.digest = x.referenced WHERE x.repo_id = manifests.repo_id AND x.manifest = manifests.digest);
UPDATE manifests SET total_size = total_size + (SELECT coalesce(sum(c.total_size), 0) FROM manifest_refs x JOIN manifests c
  ON c.repo_id = x.repo_id AND c.digest = x.referenced WHERE x.repo_id = manifests.repo_id AND x.manifest = manifests.digest);
DO $$
DECLARE
  r record;
  doc jsonb;
BEGIN
  FOR r IN SELECT repo_id, digest, content FROM manifests WHERE position('"manifests"'::bytea IN content) > 0 LOOP
    BEGIN
      doc := convert_from(r.content, 'UTF8')::jsonb;
    EXCEPTION WHEN others THEN
      CONTINUE;
    END;
    IF jsonb_typeof(doc->'manifests') = 'array' THEN
      UPDATE manifests SET platforms = coalesce((SELECT string_agg(p, ',' ORDER BY i) FROM (
          SELECT p, min(i) AS i FROM (
            SELECT (e->'platform'->>'os') || '/' || (e->'platform'->>'architecture') ||
                   coalesce('/' || (e->'platform'->>'variant'), '') AS p, i
            FROM jsonb_array_elements(doc->'manifests') WITH ORDINALITY AS a(e, i)
            WHERE coalesce(e->'platform'->>'os', '') NOT IN ('', 'unknown')
              AND coalesce(e->'platform'->>'architecture', '') NOT IN ('', 'unknown')) y
          GROUP BY p) z), '')
        WHERE repo_id = r.repo_id AND digest = r.digest;
    END IF;
  END LOOP;
END $$;
CREATE INDEX tags_by_time ON tags(repo_id, pushed_at, name);
CREATE TABLE tag_history (
  id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  repo_id   bigint NOT NULL REFERENCES repositories(id),
  tag       text COLLATE "C" NOT NULL,
  digest    text NOT NULL,
  pushed_at bigint NOT NULL,
  pushed_by text NOT NULL,
  source    text NOT NULL
);
CREATE INDEX tag_history_by_tag ON tag_history(repo_id, tag, id);
INSERT INTO tag_history(repo_id, tag, digest, pushed_at, pushed_by, source)
  SELECT repo_id, name, digest, pushed_at, pushed_by, '' FROM tags ORDER BY pushed_at, name;
)sql",
    // Garbage collection (blob_records.h): one record per blob, with the last use (unix ms) and a
    // generation; a link's time. Existing links and blobs start their grace window now.
    R"sql(
ALTER TABLE blob_links ADD COLUMN linked_at bigint NOT NULL DEFAULT 0;
UPDATE blob_links SET linked_at = (extract(epoch FROM now()) * 1000)::bigint;
CREATE TABLE blobs (
  digest     text PRIMARY KEY,
  size       bigint NOT NULL,
  used_at    bigint NOT NULL,
  generation bigint NOT NULL,
  deleting   boolean NOT NULL DEFAULT false
);
INSERT INTO blobs(digest, size, used_at, generation)
  SELECT digest, max(size), (extract(epoch FROM now()) * 1000)::bigint, (random() * 9e15)::bigint
  FROM blob_links GROUP BY digest;
CREATE INDEX blobs_deleting ON blobs(digest) WHERE deleting;
CREATE TABLE gc_runs (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  started_at  bigint NOT NULL,
  duration_ms bigint NOT NULL,
  dry_run     integer NOT NULL,
  manifests   bigint NOT NULL,
  links       bigint NOT NULL,
  link_bytes  bigint NOT NULL,
  blobs       bigint NOT NULL,
  bytes       bigint NOT NULL
);
)sql",
    // Quotas (quota.h): per namespace, its repositories, its distinct blobs' bytes (a digest linked
    // by several of its repositories once) and its manifests' bytes, kept by triggers in the
    // transaction of every change to repositories, blob_links and manifests, whoever makes it.
    // A link's trigger runs BEFORE the row changes and first locks its namespace's row, then looks
    // for the digest elsewhere in the namespace in a statement of its own: it sees what committed
    // before the lock and the rows its own statement changed so far, so concurrent and multi-row
    // changes (the GC sweep, a repository's deletion) count each digest once. Existing data is
    // counted once here.
    R"sql(
CREATE TABLE namespace_usage (
  name           text COLLATE "C" PRIMARY KEY,
  repositories   bigint NOT NULL DEFAULT 0,
  blob_bytes     bigint NOT NULL DEFAULT 0,
  manifest_bytes bigint NOT NULL DEFAULT 0
);
CREATE FUNCTION berth_count_repository() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO namespace_usage AS u (name, repositories) VALUES (split_part(NEW.name, '/', 1), 1)
      ON CONFLICT (name) DO UPDATE SET repositories = u.repositories + 1;
  ELSE
    UPDATE namespace_usage SET repositories = repositories - 1 WHERE name = split_part(OLD.name, '/', 1);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER repository_counted AFTER INSERT OR DELETE ON repositories
  FOR EACH ROW EXECUTE PROCEDURE berth_count_repository();
CREATE FUNCTION berth_count_link() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  changed blob_links;
  ns text;
BEGIN
  IF TG_OP = 'INSERT' THEN changed := NEW; ELSE changed := OLD; END IF;
  SELECT split_part(name, '/', 1) INTO ns FROM repositories WHERE id = changed.repo_id;
  PERFORM 1 FROM namespace_usage WHERE name = ns FOR UPDATE;
  -- An insert that conflicts (the repository links the digest already) finds its own row.
  IF NOT EXISTS (SELECT 1 FROM blob_links l JOIN repositories r ON r.id = l.repo_id WHERE l.digest = changed.digest
                 AND (TG_OP = 'INSERT' OR l.repo_id <> changed.repo_id) AND split_part(r.name, '/', 1) = ns) THEN
    UPDATE namespace_usage SET blob_bytes = blob_bytes + CASE TG_OP WHEN 'INSERT' THEN changed.size ELSE -changed.size END
      WHERE name = ns;
  END IF;
  IF TG_OP = 'INSERT' THEN RETURN NEW; END IF;
  RETURN OLD;
END $$;
CREATE TRIGGER link_counted BEFORE INSERT OR DELETE ON blob_links
  FOR EACH ROW EXECUTE PROCEDURE berth_count_link();
CREATE FUNCTION berth_count_manifest() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    UPDATE namespace_usage SET manifest_bytes = manifest_bytes + NEW.size
      WHERE name = (SELECT split_part(name, '/', 1) FROM repositories WHERE id = NEW.repo_id);
  ELSE
    UPDATE namespace_usage SET manifest_bytes = manifest_bytes - OLD.size
      WHERE name = (SELECT split_part(name, '/', 1) FROM repositories WHERE id = OLD.repo_id);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER manifest_counted AFTER INSERT OR DELETE ON manifests
  FOR EACH ROW EXECUTE PROCEDURE berth_count_manifest();
INSERT INTO namespace_usage(name, repositories) SELECT split_part(name, '/', 1), count(*) FROM repositories GROUP BY 1;
UPDATE namespace_usage u SET
  blob_bytes = (SELECT coalesce(sum(size), 0) FROM (SELECT DISTINCT l.digest, l.size FROM blob_links l
                JOIN repositories r ON r.id = l.repo_id WHERE split_part(r.name, '/', 1) = u.name) s),
  manifest_bytes = (SELECT coalesce(sum(m.size), 0) FROM manifests m JOIN repositories r ON r.id = m.repo_id
                    WHERE split_part(r.name, '/', 1) = u.name);
)sql",
    // The webhook outbox (webhook_records.h): one row per event and webhook. state: 0 pending,
    // 1 delivered, 2 failed (given up). Claims take rows FOR UPDATE SKIP LOCKED and lease them.
    R"sql(
CREATE TABLE webhook_deliveries (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  webhook     text NOT NULL,
  event_id    text NOT NULL,
  event       text NOT NULL,
  at          bigint NOT NULL,
  repository  text NOT NULL,
  tag         text NOT NULL,
  digest      text NOT NULL,
  media_type  bytea NOT NULL,
  size        bigint NOT NULL,
  actor       text NOT NULL,
  source      text NOT NULL,
  state       integer NOT NULL DEFAULT 0,
  attempts    integer NOT NULL DEFAULT 0,
  status      integer NOT NULL DEFAULT 0,
  last_error  text NOT NULL DEFAULT '',
  next_at     bigint NOT NULL,
  lease_until bigint NOT NULL DEFAULT 0,
  updated_at  bigint NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_at, id) WHERE state = 0;
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries(webhook, id);
)sql",
    // The audit log (audit_records.h).
    R"sql(
CREATE TABLE audit_log (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at_ms      bigint NOT NULL,
  subject    text NOT NULL,
  address    text NOT NULL,
  action     text NOT NULL,
  repository text NOT NULL,
  target     text NOT NULL,
  outcome    text NOT NULL,
  status     integer NOT NULL,
  detail     text NOT NULL
);
CREATE INDEX audit_log_by_time ON audit_log(at_ms);
CREATE INDEX audit_log_by_repository ON audit_log(repository, id);
CREATE INDEX audit_log_by_subject ON audit_log(subject, id);
)sql",
    // Untagged manifests (tag_records::untagged): since when (unix ms, the database's clock) no tag
    // of its repository points at a manifest, NULL while one does. A new manifest starts untagged
    // (the column's default); a trigger on every change of a tag, whoever makes it (a push, a tag's
    // deletion, a promotion, retention), clears it for the manifest the tag now points at and sets
    // it for the one it left when no other tag points there. Existing untagged manifests count
    // from the upgrade (the default, evaluated per row), so upgrading deletes nothing at once.
    // The trigger locks the manifest's row before it looks for other tags: two transactions that
    // delete a manifest's last two tags at once would otherwise each see the other's tag (not yet
    // committed) and neither set the time. Locked, the second waits for the first, and its next
    // statement (a new snapshot under READ COMMITTED) sees the first's deletion.
    R"sql(
ALTER TABLE manifests ADD COLUMN untagged_since bigint DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
UPDATE manifests m SET untagged_since = NULL
  WHERE EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = m.repo_id AND t.digest = m.digest);
CREATE INDEX manifests_untagged ON manifests(repo_id, digest) WHERE untagged_since IS NOT NULL;
CREATE FUNCTION berth_untagged_since() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'DELETE' THEN
    UPDATE manifests SET untagged_since = NULL
      WHERE repo_id = NEW.repo_id AND digest = NEW.digest AND untagged_since IS NOT NULL;
  END IF;
  IF TG_OP <> 'INSERT' THEN
    PERFORM 1 FROM manifests WHERE repo_id = OLD.repo_id AND digest = OLD.digest FOR UPDATE;
    UPDATE manifests m SET untagged_since = (extract(epoch FROM clock_timestamp()) * 1000)::bigint
      WHERE m.repo_id = OLD.repo_id AND m.digest = OLD.digest AND m.untagged_since IS NULL
      AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = OLD.repo_id AND t.digest = OLD.digest);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER tag_untagged AFTER INSERT OR DELETE OR UPDATE OF digest ON tags
  FOR EACH ROW EXECUTE PROCEDURE berth_untagged_since();
)sql",
    // Pruning the webhook outbox (webhook_records::prune_deliveries): its finished deliveries by time.
    "CREATE INDEX webhook_deliveries_finished ON webhook_deliveries(updated_at) WHERE state <> 0;",
    // Image manifests stored before platforms were recorded (tag_records::platforms_unread): their
    // config blobs are read once, after the upgrade, by lifecycle::read_platforms.
    "ALTER TABLE manifests ADD COLUMN platforms_unread boolean NOT NULL DEFAULT false;"
    "UPDATE manifests SET platforms_unread = true WHERE platforms = '' AND media_type IN ("
    "'application/vnd.oci.image.manifest.v1+json'::bytea, 'application/vnd.docker.distribution.manifest.v2+json'::bytea);"
    "CREATE INDEX manifests_platforms_unread ON manifests(repo_id, digest) WHERE platforms_unread;",
    // The retention rules made through the admin API (retention_rules.h), in their order, each a
    // JSON document (meta::rule_json).
    "CREATE TABLE retention_rules (position bigint NOT NULL, rule text NOT NULL);",
};

// ---- SQL ----

#define BERTH_NOW "extract(epoch FROM now())::bigint"
#define BERTH_NOW_MS "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
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
    "INSERT INTO blob_links(repo_id, digest, size, linked_at) VALUES ($1, $2, $3, " BERTH_NOW_MS
    ") ON CONFLICT (repo_id, digest) DO UPDATE SET linked_at = excluded.linked_at";
// Garbage collection (blob_records.h). Every transaction that adds a link first updates the blob's
// record (locking it), and mark_for_deletion locks that record before it looks for links: of a
// link and a mark, the later sees the earlier.
constexpr std::string_view claim_sql =
    "INSERT INTO blobs(digest, size, used_at, generation) VALUES ($1, $2, " BERTH_NOW_MS
    ", (random() * 9e15)::bigint) "
    "ON CONFLICT (digest) DO UPDATE SET used_at = excluded.used_at WHERE NOT blobs.deleting RETURNING generation";
constexpr std::string_view use_generation_sql =
    "UPDATE blobs SET used_at = " BERTH_NOW_MS " WHERE digest = $1 AND generation = $2 AND NOT deleting";
constexpr std::string_view use_linked_sql =
    "UPDATE blobs SET used_at = " BERTH_NOW_MS " WHERE digest = $1 AND NOT deleting";
constexpr std::string_view any_link_sql = "SELECT 1 FROM blob_links WHERE digest = $1 LIMIT 1";
// A link the sweep removes: older than the grace window ($1: its end), needed by no manifest of
// its repository.
#define BERTH_CUTOFF(grace) "(" BERTH_NOW_MS " - " grace "::bigint)"
#define BERTH_UNNEEDED_LINK(l)                                                                    \
  l ".linked_at <= " BERTH_CUTOFF("$1") " AND NOT EXISTS (SELECT 1 FROM manifest_refs x WHERE x.repo_id = " l \
  ".repo_id AND x.referenced = " l ".digest)"
// Locks the candidates, then deletes them in a second statement, whose snapshot is taken after the
// locks: a manifest committed meanwhile (it held its links FOR KEY SHARE) is seen and keeps them.
constexpr std::string_view lock_unneeded_links_sql =
    "SELECT l.repo_id, l.digest FROM blob_links l WHERE " BERTH_UNNEEDED_LINK("l") " FOR UPDATE OF l";
constexpr std::string_view delete_unneeded_links_sql =
    "DELETE FROM blob_links l USING unnest($2::bigint[], $3::text[]) AS c(repo_id, digest) "
    "WHERE l.repo_id = c.repo_id AND l.digest = c.digest AND " BERTH_UNNEEDED_LINK("l") " RETURNING l.size";
constexpr std::string_view estimate_links_sql =
    "SELECT count(*), coalesce(sum(size), 0) FROM blob_links l WHERE " BERTH_UNNEEDED_LINK("l");
#define BERTH_UNREFERENCED_BLOB                                                                                \
  "NOT b.deleting AND b.used_at <= " BERTH_CUTOFF("$1") " AND NOT EXISTS (SELECT 1 FROM blob_links k WHERE k.digest = b.digest " \
  "AND NOT (" BERTH_UNNEEDED_LINK("k") "))"
constexpr std::string_view estimate_blobs_sql =
    "SELECT count(*), coalesce(sum(size), 0) FROM blobs b WHERE " BERTH_UNREFERENCED_BLOB;
constexpr std::string_view unreferenced_sql = "SELECT digest, size FROM blobs b WHERE b.digest COLLATE \"C\" > $2 AND "
    BERTH_UNREFERENCED_BLOB " ORDER BY b.digest COLLATE \"C\" LIMIT $3";
#undef BERTH_UNREFERENCED_BLOB
#undef BERTH_UNNEEDED_LINK
// What deleting the manifests $1[i] of repositories $2[i] frees: `lost` are the links that no
// remaining manifest of their repository references, `freed` the blobs with no other link.
constexpr std::string_view freed_by_deleting_sql =
    "WITH planned AS (SELECT DISTINCT m.repo_id, m.digest FROM unnest($1::text[], $2::text[]) AS e(name, digest) "
    "JOIN repositories r ON r.name = e.name JOIN manifests m ON m.repo_id = r.id AND m.digest = e.digest), "
    "lost AS (SELECT DISTINCT l.repo_id, l.digest, l.size FROM planned p "
    "JOIN manifest_refs x ON x.repo_id = p.repo_id AND x.manifest = p.digest "
    "JOIN blob_links l ON l.repo_id = x.repo_id AND l.digest = x.referenced "
    "WHERE NOT EXISTS (SELECT 1 FROM manifest_refs y WHERE y.repo_id = l.repo_id AND y.referenced = l.digest "
    "AND NOT EXISTS (SELECT 1 FROM planned q WHERE q.repo_id = y.repo_id AND q.digest = y.manifest))), "
    "freed AS (SELECT min(r.name) AS name, max(o.size) AS size FROM lost o JOIN repositories r ON r.id = o.repo_id "
    "WHERE NOT EXISTS (SELECT 1 FROM blob_links k WHERE k.digest = o.digest "
    "AND NOT EXISTS (SELECT 1 FROM lost z WHERE z.repo_id = k.repo_id AND z.digest = k.digest)) GROUP BY o.digest) "
    "SELECT r.name, (SELECT coalesce(sum(f.size), 0) FROM freed f WHERE f.name = r.name)::bigint "
    "FROM repositories r WHERE r.id IN (SELECT repo_id FROM planned) ORDER BY r.name";
constexpr std::string_view lock_blobs_sql =
    "SELECT 1 FROM blobs WHERE digest = ANY($1::text[]) ORDER BY digest FOR UPDATE";
constexpr std::string_view mark_sql =
    "UPDATE blobs b SET deleting = true, generation = (random() * 9e15)::bigint WHERE digest = ANY($1::text[]) "
    "AND NOT deleting AND used_at <= " BERTH_CUTOFF("$2") " AND NOT EXISTS (SELECT 1 FROM blob_links l "
    "WHERE l.digest = b.digest) RETURNING digest, size";
// Digests $1 with sizes $2 (arrays in the same order), each recorded unless it is already.
constexpr std::string_view adopt_sql =
    "INSERT INTO blobs(digest, size, used_at, generation) SELECT d, s, " BERTH_NOW_MS ", (random() * 9e15)::bigint "
    "FROM unnest($1::text[], $2::bigint[]) AS f(d, s) ON CONFLICT (digest) DO NOTHING RETURNING digest, size";
constexpr std::string_view marked_sql = "SELECT digest, size FROM blobs WHERE deleting ORDER BY digest LIMIT $1";
constexpr std::string_view forget_sql =
    "DELETE FROM blobs WHERE digest = ANY($1::text[]) AND deleting RETURNING digest, size";
// The audit log: one statement appends a batch (arrays, one per column, in order); every filter
// that is "" (or 0) matches all.
constexpr std::string_view insert_audit_sql =
    "INSERT INTO audit_log(at_ms, subject, address, action, repository, target, outcome, status, detail) "
    "SELECT a, b, c, d, f, g, h, i, j FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], "
    "$6::text[], $7::text[], $8::integer[], $9::text[]) WITH ORDINALITY AS e(a, b, c, d, f, g, h, i, j, n) ORDER BY n";
constexpr std::string_view list_audit_sql =
    "SELECT id, at_ms, subject, address, action, repository, target, outcome, status, detail FROM audit_log "
    "WHERE ($1 = '' OR repository = $1) AND ($2 = '' OR subject = $2) AND ($3 = '' OR action = $3) "
    "AND at_ms >= $4::bigint AND ($5::bigint = 0 OR at_ms <= $5::bigint) AND ($6::bigint = 0 OR id < $6::bigint) "
    "ORDER BY id DESC LIMIT $7";
constexpr std::string_view prune_audit_sql = "DELETE FROM audit_log WHERE at_ms < $1";
// The retention rules: replaced as a whole under a table lock taken first, so that the DELETE of a
// replacement that waited for another sees (and deletes) the rules that one inserted.
constexpr std::string_view retention_rules_sql = "SELECT rule FROM retention_rules ORDER BY position";
constexpr std::string_view lock_retention_rules_sql = "LOCK TABLE retention_rules IN SHARE ROW EXCLUSIVE MODE";
constexpr std::string_view replace_retention_rules_sql =
    "WITH gone AS (DELETE FROM retention_rules) INSERT INTO retention_rules(position, rule) "
    "SELECT n, r FROM unnest($1::text[]) WITH ORDINALITY AS u(r, n)";
constexpr std::string_view insert_run_sql =
    "INSERT INTO gc_runs(started_at, duration_ms, dry_run, manifests, links, link_bytes, blobs, bytes) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
constexpr std::string_view runs_sql =
    "SELECT started_at, duration_ms, dry_run, manifests, links, link_bytes, blobs, bytes FROM gc_runs "
    "WHERE $2::integer = 0 OR dry_run = 0 ORDER BY id DESC LIMIT $1";
// The references of a manifest being stored that the repository holds: links (locked, so that the
// link sweep waits for this transaction and then sees the manifest) and manifests.
constexpr std::string_view held_references_sql =
    "SELECT digest FROM blob_links WHERE repo_id = $1 AND digest = ANY($2::text[]) FOR KEY SHARE";
// Usage: $1 is a namespace, or "" for all.
#define BERTH_IN_NAMESPACE(name) "($1 = '' OR split_part(" name ", '/', 1) = $1)"
constexpr std::string_view repository_usage_sql =
    "SELECT r.name, (SELECT count(*) FROM tags t WHERE t.repo_id = r.id), "
    "(SELECT count(*) FROM manifests m WHERE m.repo_id = r.id), "
    "(SELECT coalesce(sum(size), 0) FROM blob_links l WHERE l.repo_id = r.id) "
    "FROM repositories r WHERE " BERTH_IN_NAMESPACE("r.name") " ORDER BY r.name";
constexpr std::string_view namespace_stored_sql =
    "SELECT name, blob_bytes, manifest_bytes FROM namespace_usage WHERE $1 = '' OR name = $1";
constexpr std::string_view namespace_counts_sql =
    "SELECT repositories, blob_bytes + manifest_bytes FROM namespace_usage WHERE name = $1";
constexpr std::string_view all_namespace_counts_sql =
    "SELECT name, repositories, blob_bytes + manifest_bytes FROM namespace_usage ORDER BY name";
#undef BERTH_IN_NAMESPACE
constexpr std::string_view registry_stored_sql = "SELECT coalesce(sum(size), 0) FROM blobs";
// Of manifest $3 and its references $2, those repository $1 holds. The references are locked until
// the transaction ends, so that a deletion refused while a manifest lists them (delete_guard::
// keep_needed, which locks the row first) waits for this one and then sees it.
constexpr std::string_view held_manifests_sql =
    "WITH refs AS (SELECT digest FROM manifests WHERE repo_id = $1 AND digest = ANY($2::text[]) FOR KEY SHARE) "
    "SELECT digest FROM refs UNION ALL SELECT digest FROM manifests WHERE repo_id = $1 AND digest = $3";
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
    "annotations, created_at, total_size, platforms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, " BERTH_NOW
    ", $10, $11) "
    "ON CONFLICT (repo_id, digest) DO UPDATE SET size = manifests.size WHERE false RETURNING repo_id, digest) "
    "INSERT INTO manifest_refs(repo_id, manifest, referenced) "
    "SELECT m.repo_id, m.digest, r FROM m, unnest($9::text[]) AS r ON CONFLICT DO NOTHING";
// The tag's digest, its row locked until the transaction ends (no row: the tag is new).
constexpr std::string_view lock_tag_sql = "SELECT digest FROM tags WHERE repo_id = $1 AND name = $2 FOR UPDATE";
constexpr std::string_view set_tag_sql =
    "INSERT INTO tags(repo_id, name, digest, updated_at, pushed_at, pushed_by) VALUES ($1, $2, $3, " BERTH_NOW
    ", $4, $5) "
    "ON CONFLICT (repo_id, name) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at, "
    "pushed_at = excluded.pushed_at, pushed_by = excluded.pushed_by";
// After set_tag_sql, which holds the tag's row lock: concurrent moves of one tag get history ids in
// the order they move it, so the newest entry is always the tag's digest.
constexpr std::string_view insert_history_sql =
    "INSERT INTO tag_history(repo_id, tag, digest, pushed_at, pushed_by, source) VALUES ($1, $2, $3, $4, $5, $6)";
// A page of tag records of repository $1 (its id NULL, no rows, when it is unknown); $2 is `last`
// ("" for the start), $3 the count. By time, the cursor is the last tag's current (pushed_at, name).
#define BERTH_TAG_RECORDS(where, order)                                                                      \
  "SELECT r.id, t.name, t.digest, t.media_type, t.pushed_at, t.pushed_by, t.total_size, t.platforms "         \
  "FROM repositories r LEFT JOIN LATERAL (SELECT t.name, t.digest, m.media_type, t.pushed_at, t.pushed_by, "    \
  "m.total_size, m.platforms FROM tags t JOIN manifests m ON m.repo_id = t.repo_id AND m.digest = t.digest "   \
  "WHERE t.repo_id = r.id AND " where " ORDER BY " order " LIMIT $3) t ON true WHERE r.name = $1 ORDER BY " order
#define BERTH_TIME_CURSOR "(SELECT pushed_at FROM tags WHERE repo_id = r.id AND name = $2)"
constexpr std::string_view tag_records_sql[2][2] = {
    {BERTH_TAG_RECORDS("t.name > $2", "t.name"), BERTH_TAG_RECORDS("($2 = '' OR t.name < $2)", "t.name DESC")},
    {BERTH_TAG_RECORDS("($2 = '' OR (t.pushed_at, t.name) > (" BERTH_TIME_CURSOR ", $2))", "t.pushed_at, t.name"),
     BERTH_TAG_RECORDS("($2 = '' OR (t.pushed_at, t.name) < (" BERTH_TIME_CURSOR ", $2))",
                       "t.pushed_at DESC, t.name DESC")},
};
#undef BERTH_TIME_CURSOR
#undef BERTH_TAG_RECORDS
constexpr std::string_view tag_history_sql =
    "SELECT h.digest, h.pushed_at, h.pushed_by, h.source FROM repositories r JOIN tag_history h ON h.repo_id = r.id "
    "WHERE r.name = $1 AND h.tag = $2 ORDER BY h.id DESC";
constexpr std::string_view tags_on_sql =
    "SELECT t.name FROM repositories r JOIN tags t ON t.repo_id = r.id WHERE r.name = $1 AND t.digest = $2 "
    "ORDER BY t.name";
constexpr std::string_view platforms_unread_sql =
    "SELECT r.name, m.digest, m.media_type, m.content FROM manifests m JOIN repositories r ON r.id = m.repo_id "
    "WHERE m.platforms_unread LIMIT $1";
constexpr std::string_view set_platforms_sql =
    "UPDATE manifests SET platforms = $3, platforms_unread = false WHERE repo_id = (SELECT id FROM repositories "
    "WHERE name = $1) AND digest = $2";
constexpr std::string_view untagged_sql =
    "SELECT m.digest, m.untagged_since, (m.subject IS NOT NULL AND EXISTS (SELECT 1 FROM manifests s "
    "WHERE s.repo_id = m.repo_id AND s.digest = m.subject))::int FROM repositories r "
    "JOIN manifests m ON m.repo_id = r.id WHERE r.name = $1 AND m.untagged_since IS NOT NULL "
    "ORDER BY m.digest COLLATE \"C\"";
constexpr std::string_view repository_summaries_sql =
    "SELECT r.name, (SELECT count(*) FROM tags t WHERE t.repo_id = r.id), "
    "(SELECT coalesce(sum(l.size), 0) FROM blob_links l WHERE l.repo_id = r.id) + "
    "(SELECT coalesce(sum(m.size), 0) FROM manifests m WHERE m.repo_id = r.id), "
    "(SELECT coalesce(max(t.pushed_at), 0) FROM tags t WHERE t.repo_id = r.id) "
    "FROM repositories r WHERE left(r.name, length($1)) = $1 ORDER BY r.name";
constexpr std::string_view lock_source_repo_sql = "SELECT id FROM repositories WHERE name = $1 FOR KEY SHARE";
// What a promotion of $2 from repository $1 brings along: the manifest (when $1 holds it), the
// manifests it references (an index's children), and those whose subject is any of them
// (referrers), transitively.
constexpr std::string_view promotion_closure_sql =
    "WITH RECURSIVE closure(d) AS (SELECT digest FROM manifests WHERE repo_id = $1 AND digest = $2 UNION "
    "SELECT m.digest FROM closure c JOIN manifests m ON m.repo_id = $1 AND (m.subject = c.d OR EXISTS "
    "(SELECT 1 FROM manifest_refs x WHERE x.repo_id = $1 AND x.manifest = c.d AND x.referenced = m.digest))) "
    "SELECT d FROM closure";
// Copies manifests $3 (text[]) of repository $2 into $1: their rows, references, referenced blobs.
constexpr std::string_view copy_manifests_sql =
    "INSERT INTO manifests(repo_id, digest, media_type, content, size, subject, artifact_type, annotations, "
    "created_at, total_size, platforms) SELECT $1, digest, media_type, content, size, subject, artifact_type, "
    "annotations, " BERTH_NOW ", total_size, platforms FROM manifests WHERE repo_id = $2 AND digest = ANY($3::text[]) "
    "ON CONFLICT DO NOTHING";
constexpr std::string_view copy_refs_sql =
    "INSERT INTO manifest_refs(repo_id, manifest, referenced) SELECT $1, manifest, referenced FROM manifest_refs "
    "WHERE repo_id = $2 AND manifest = ANY($3::text[]) ON CONFLICT DO NOTHING";
constexpr std::string_view copy_links_sql =
    "INSERT INTO blob_links(repo_id, digest, size) SELECT DISTINCT $1::bigint, l.digest, l.size FROM manifest_refs x "
    "JOIN blob_links l ON l.repo_id = x.repo_id AND l.digest = x.referenced WHERE x.repo_id = $2 "
    "AND x.manifest = ANY($3::text[]) ON CONFLICT DO NOTHING";
#define BERTH_MANIFEST_COLUMNS                                                                          \
  "SELECT m.digest, m.media_type, m.content, m.subject, m.artifact_type, m.annotations, "               \
  "(SELECT string_agg(x.referenced, ',' ORDER BY x.referenced) FROM manifest_refs x WHERE x.repo_id = " \
  "m.repo_id AND x.manifest = m.digest), m.total_size, m.platforms "
constexpr std::string_view manifest_by_digest_sql = BERTH_MANIFEST_COLUMNS
    "FROM repositories r JOIN manifests m ON m.repo_id = r.id WHERE r.name = $1 AND m.digest = $2";
constexpr std::string_view manifest_by_tag_sql = BERTH_MANIFEST_COLUMNS
    "FROM repositories r JOIN tags t ON t.repo_id = r.id "
    "JOIN manifests m ON m.repo_id = t.repo_id AND m.digest = t.digest WHERE r.name = $1 AND t.name = $2";
#undef BERTH_MANIFEST_COLUMNS
constexpr std::string_view lock_manifest_sql =
    "SELECT 1 FROM manifests WHERE repo_id = (SELECT id FROM repositories WHERE name = $1) AND digest = $2 FOR UPDATE";
// A manifest of repository $1 that needs manifest $2 (delete_guard::keep_needed): one that lists it
// (an index, its child), or its subject when $2 is a referrer. After lock_manifest_sql: a manifest
// being stored that lists $2 holds $2's row (held_manifests_sql), so it committed before this reads.
constexpr std::string_view needed_by_sql =
    "SELECT x.manifest FROM repositories r JOIN manifest_refs x ON x.repo_id = r.id WHERE r.name = $1 "
    "AND x.referenced = $2 UNION ALL SELECT s.digest FROM repositories r JOIN manifests m ON m.repo_id = r.id "
    "JOIN manifests s ON s.repo_id = m.repo_id AND s.digest = m.subject WHERE r.name = $1 AND m.digest = $2 LIMIT 1";
constexpr std::string_view delete_manifest_sql =
    "DELETE FROM manifests WHERE repo_id = (SELECT id FROM repositories WHERE name = $1) AND digest = $2 "
    "RETURNING media_type, size";
constexpr std::string_view delete_tag_sql =
    "DELETE FROM tags WHERE repo_id = (SELECT id FROM repositories WHERE name = $1) AND name = $2 RETURNING digest";
// The webhook outbox (webhook_records.h). The event's media type and size come from the manifest
// ($7 of repository $5), NULL-safe for a manifest gone meanwhile.
constexpr std::string_view insert_delivery_sql =
    "INSERT INTO webhook_deliveries(webhook, event_id, event, at, repository, tag, digest, media_type, size, actor, "
    "source, next_at, updated_at) SELECT w, $2::text, $3::text, $4::bigint, $5::text, $6::text, $7::text, "
    "coalesce($8::bytea, m.media_type, ''::bytea), coalesce($9::bigint, m.size, 0), $10::text, $11::text, $4, $4 "
    "FROM unnest($1::text[]) AS w LEFT JOIN (SELECT m.media_type, m.size FROM repositories r "
    "JOIN manifests m ON m.repo_id = r.id WHERE r.name = $5 AND m.digest = $7) m ON true";
#define BERTH_DELIVERY_COLUMNS(t)                                                                               \
  t "id, " t "webhook, " t "event_id, " t "event, " t "at, " t "repository, " t "tag, " t "digest, " t           \
  "media_type, " t "size, " t "actor, " t "source, " t "state, " t "attempts, " t "status, " t "last_error, " t \
  "next_at, " t "updated_at"
constexpr std::string_view claim_deliveries_sql =
    "UPDATE webhook_deliveries d SET lease_until = $1::bigint + $2::bigint FROM (SELECT id FROM webhook_deliveries "
    "WHERE state = 0 AND next_at <= $1 AND lease_until <= $1 ORDER BY next_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) c "
    "WHERE d.id = c.id RETURNING " BERTH_DELIVERY_COLUMNS("d.");
constexpr std::string_view finish_delivery_sql =
    "UPDATE webhook_deliveries SET state = $2, attempts = attempts + 1, status = $3, last_error = $4, "
    "next_at = $5, lease_until = 0, updated_at = $6 WHERE id = $1";
constexpr std::string_view list_deliveries_sql =
    "SELECT " BERTH_DELIVERY_COLUMNS("") " FROM webhook_deliveries WHERE webhook = $1 AND ($2::bigint = 0 OR id < $2) "
    "AND ($3 = 0 OR (state != 1 AND attempts > 0)) ORDER BY id DESC LIMIT $4";
#undef BERTH_DELIVERY_COLUMNS
constexpr std::string_view redeliver_sql =
    "UPDATE webhook_deliveries SET state = 0, next_at = $2, lease_until = 0, updated_at = $2 WHERE id = $1";
constexpr std::string_view prune_deliveries_sql = "DELETE FROM webhook_deliveries WHERE state <> 0 AND updated_at < $1";
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
constexpr std::string_view list_links_sql =
    "SELECT l.digest, l.size FROM repositories r JOIN blob_links l ON l.repo_id = r.id WHERE r.name = $1 "
    "AND l.digest > $2 ORDER BY l.digest LIMIT $3";
constexpr std::string_view list_manifests_sql =
    "SELECT m.digest FROM repositories r JOIN manifests m ON m.repo_id = r.id WHERE r.name = $1 "
    "AND m.digest > $2 ORDER BY m.digest LIMIT $3";
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
#undef BERTH_NOW_MS
#undef BERTH_CUTOFF

// ---- helpers ----

// A count for LIMIT: callers pass SIZE_MAX for "all".
std::int64_t limit(std::size_t n) {
  return static_cast<std::int64_t>(std::min<std::size_t>(n, std::numeric_limits<std::int64_t>::max()));
}

// A text[] literal of `items`, the text of each quoted, quotes and backslashes escaped
// ("{"a","b\\"c"}"): any text but NUL.
template <class Range, class Text>
std::string quoted_array(const Range& items, Text text) {
  std::string out = "{";
  for (const auto& item : items) {
    if (out.size() > 1) out += ',';
    out += '"';
    for (char c : text(item)) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}
std::string text_array(std::span<const digest> ds) {
  return quoted_array(ds, [](const digest& d) -> std::string_view { return d.str(); });
}
std::string text_array(const std::vector<std::string>& names) {
  return quoted_array(names, [](const std::string& s) -> std::string_view { return s; });
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

// The manifest in the first row (columns as in BERTH_MANIFEST_COLUMNS), or nullopt when none.
result<std::optional<manifest_record>> read_manifest(const pg::rows& rows) {
  if (rows.size() == 0) return std::nullopt;
  auto d = stored_digest(rows.text(0, 0));
  if (!d) return std::unexpected(d.error());
  manifest_record m{*d, {}, {}, std::nullopt, {}, {}, {}, stored_size(rows, 0, 7), split_list(rows.text(0, 8))};
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

// A refusal decided inside a transaction: the body records it and fails, which rolls back.
pg::result<void> refuse(std::optional<error>& refusal, std::unexpected<error> why) {
  refusal = std::move(why.error());
  return pg::fail(pg::errc::failed, "refused");
}

// Points `tag` of repository `repo_id` at `d` in `tx` and records the move, unless it points there
// already; refuses (`refusal`) to move an immutable tag (push_stamp::immutable).
awaitable<pg::result<promotion>> set_tag(transaction& tx, std::int64_t repo_id, std::string_view tag, const digest& d,
                                         const push_stamp& stamp, std::optional<error>& refusal) {
  promotion out;
  params lock_args{repo_id, tag};
  auto current = co_await tx.query(lock_tag_sql, std::move(lock_args));
  if (!current) co_return std::unexpected(std::move(current.error()));
  if (current->size() > 0) {
    auto previous = digest::parse(current->text(0, 0));
    if (!previous) co_return pg::fail(pg::errc::failed, fmt::format("stored digest does not parse: {}", current->text(0, 0)));
    out.previous = *previous;
  }
  if (out.previous == d) co_return out;
  if (out.previous && !stamp.immutable.empty()) {
    auto refused = refuse(refusal, fail(errc::denied, std::string(stamp.immutable)));
    co_return std::unexpected(std::move(refused.error()));
  }
  params tag_args{repo_id, tag, d.str(), stamp.at_ms, stamp.by};
  auto tagged = co_await tx.query(set_tag_sql, std::move(tag_args));
  if (!tagged) co_return std::unexpected(std::move(tagged.error()));
  params history_args{repo_id, tag, d.str(), stamp.at_ms, stamp.by, stamp.source};
  auto recorded = co_await tx.query(insert_history_sql, std::move(history_args));
  if (!recorded) co_return std::unexpected(std::move(recorded.error()));
  out.moved = true;
  co_return out;
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

std::unexpected<error> being_deleted(const digest& d) {
  error e{errc::unavailable, fmt::format("blob {} is being deleted by garbage collection: push it again", d.str())};
  e.retry_after = std::chrono::seconds(1);
  return std::unexpected(std::move(e));
}

result<std::vector<blob_entry>> blob_entries(const pg::rows& rows) {
  std::vector<blob_entry> out;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    auto d = stored_digest(rows.text(i, 0));
    if (!d) return std::unexpected(d.error());
    out.push_back(blob_entry{*d, stored_size(rows, i, 1)});
  }
  return out;
}

// The deliveries in `rows` (columns as BERTH_DELIVERY_COLUMNS).
std::vector<webhook_delivery> read_deliveries(const pg::rows& rows) {
  std::vector<webhook_delivery> out;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto text = [&](std::size_t column) { return std::string(rows.text(i, column)); };
    const auto number = [&](std::size_t column) { return rows.int64(i, column).value_or(0); };
    out.push_back(webhook_delivery{number(0), text(1), text(2), text(3), number(4), text(5), text(6), text(7),
                                   rows.bytes(i, 8).value_or(""), stored_size(rows, i, 9), text(10), text(11),
                                   static_cast<delivery_state>(number(12)), number(13),
                                   static_cast<unsigned>(number(14)), text(15), number(16), number(17)});
  }
  return out;
}

class pg_metadata_store final : public metadata_store,
                                public upload_records,
                                public tag_records,
                                public blob_records,
                                public webhook_records,
                                public audit_records,
                                public retention_rule_records {
 public:
  explicit pg_metadata_store(std::shared_ptr<pg::pool> pool) : pool_(std::move(pool)) {
    pg::migrate(*pool_, "meta", migrations);
  }

  upload_records& uploads() override { return *this; }
  blob_records& blobs() override { return *this; }
  webhook_records& webhooks() override { return *this; }
  audit_records& audit() override { return *this; }
  retention_rule_records& retention_rules() override { return *this; }

  awaitable<result<std::optional<std::uint64_t>>> linked_blob_size(std::string_view repo, const digest& d) override {
    params args{repo, d.str()};
    auto r = co_await query("linked_blob_size", linked_size_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    if (r->size() == 0) co_return std::nullopt;
    co_return stored_size(*r, 0, 0);
  }

  awaitable<result<bool>> link_blob(std::string_view repo, const digest& d, std::uint64_t size) override {
    std::optional<error> refusal;
    auto body = [&](transaction& tx) -> awaitable<pg::result<bool>> {
      params use_args{d.str()};
      auto used = co_await tx.query(use_linked_sql, std::move(use_args));
      if (!used) co_return std::unexpected(std::move(used.error()));
      if (used->affected() == 0) co_return false;
      params link_args{d.str()};
      auto linked = co_await tx.query(any_link_sql, std::move(link_args));
      if (!linked) co_return std::unexpected(std::move(linked.error()));
      if (linked->size() == 0) co_return false;
      co_return co_await link_limited(tx, repo, d, size, refusal);
    };
    co_return co_await transact("link_blob", body, &refusal);
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

  tag_records& tags() override { return *this; }

  awaitable<result<void>> put_manifest(std::string_view repo, const manifest_record& m,
                                       std::optional<std::string_view> tag, const push_stamp& stamp) override {
    std::optional<error> refusal;
    auto store = [&](transaction& tx) -> awaitable<pg::result<void>> {
      auto repo_id = co_await ensure_repo(tx, repo);
      if (!repo_id) co_return std::unexpected(std::move(repo_id.error()));
      // A manifest stored already keeps its references: only a new one needs its blobs linked.
      std::set<std::string, std::less<>> held;
      params manifests_args{*repo_id, text_array(m.references), m.dgst.str()};
      auto manifests = co_await tx.query(held_manifests_sql, std::move(manifests_args));
      if (!manifests) co_return std::unexpected(std::move(manifests.error()));
      for (std::size_t i = 0; i < manifests->size(); ++i) held.emplace(manifests->text(i, 0));
      if (!held.contains(m.dgst.str()) && !m.references.empty()) {
        params links_args{*repo_id, text_array(m.references)};
        auto links = co_await tx.query(held_references_sql, std::move(links_args));
        if (!links) co_return std::unexpected(std::move(links.error()));
        for (std::size_t i = 0; i < links->size(); ++i) held.emplace(links->text(i, 0));
        for (const digest& ref : m.references) {
          if (!held.contains(ref.str())) co_return refuse(refusal, fail(errc::manifest_blob_unknown, ref.str()));
        }
      }
      params manifest_args{*repo_id,
                           m.dgst.str(),
                           param::bytes(m.media_type),
                           param::bytes(m.content),
                           std::uint64_t{m.content.size()},
                           m.subject ? param(m.subject->str()) : param(std::nullopt),
                           param::bytes(m.artifact_type),
                           param::bytes(m.annotations_json),
                           text_array(m.references),
                           m.total_size,
                           join_list(m.platforms)};
      auto stored = co_await tx.query(insert_manifest_sql, std::move(manifest_args));
      if (!stored) co_return std::unexpected(std::move(stored.error()));
      if (tag) {
        auto tagged = co_await set_tag(tx, *repo_id, *tag, m.dgst, stamp, refusal);
        if (!tagged) co_return std::unexpected(std::move(tagged.error()));
      }
      const std::optional<std::string_view> media_type = m.media_type;
      const std::optional<std::uint64_t> size = m.content.size();
      co_return co_await record_event(tx, event_type(stamp, false), repo, tag.value_or(""), m.dgst.str(), media_type,
                                      size, stamp);
    };
    auto body = [&](transaction& tx) -> awaitable<pg::result<void>> {
      auto stored = [&]() { return store(tx); };
      co_return co_await limited(tx, repo, refusal, stored);
    };
    co_return co_await transact("put_manifest", body, &refusal);
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

  awaitable<result<bool>> delete_manifest(std::string_view repo, const digest& d, const push_stamp& stamp,
                                          const delete_guard& guard) override {
    std::optional<error> refusal;
    auto body = [&](transaction& tx) -> awaitable<pg::result<bool>> {
      if (guard.tags || guard.keep_needed) {
        // The manifest's row first: setting a tag on it (a foreign key check), or storing a
        // manifest that lists it, waits for this transaction, and one done before is seen by the
        // next statements.
        params lock_args{repo, d.str()};
        auto locked = co_await tx.query(lock_manifest_sql, std::move(lock_args));
        if (!locked) co_return std::unexpected(std::move(locked.error()));
        if (locked->size() == 0) co_return false;
      }
      if (guard.tags) {
        params tag_args{repo, d.str()};
        auto tags = co_await tx.query(tags_on_sql, std::move(tag_args));
        if (!tags) co_return std::unexpected(std::move(tags.error()));
        for (const auto& tag : string_column(*tags)) {
          if (auto why = guard.tags(tag)) {
            auto refused = refuse(refusal, fail(errc::denied, std::move(*why)));
            co_return std::unexpected(std::move(refused.error()));
          }
        }
      }
      if (guard.keep_needed) {
        params needed_args{repo, d.str()};
        auto needed = co_await tx.query(needed_by_sql, std::move(needed_args));
        if (!needed) co_return std::unexpected(std::move(needed.error()));
        if (needed->size() != 0) {
          auto refused =
              refuse(refusal, fail(errc::denied, fmt::format("manifest {} still needs it", needed->text(0, 0))));
          co_return std::unexpected(std::move(refused.error()));
        }
      }
      params args{repo, d.str()};
      auto deleted = co_await tx.query(delete_manifest_sql, std::move(args));
      if (!deleted) co_return std::unexpected(std::move(deleted.error()));
      if (deleted->size() == 0) co_return false;
      const std::string media_type = deleted->bytes(0, 0).value_or("");
      const std::optional<std::string_view> type = media_type;
      const std::optional<std::uint64_t> size = stored_size(*deleted, 0, 1);
      auto recorded = co_await record_event(tx, event_type(stamp, true), repo, "", d.str(), type, size, stamp);
      if (!recorded) co_return std::unexpected(std::move(recorded.error()));
      co_return true;
    };
    co_return co_await transact("delete_manifest", body, &refusal);
  }

  awaitable<result<bool>> delete_tag(std::string_view repo, std::string_view tag, const push_stamp& stamp) override {
    auto body = [&](transaction& tx) -> awaitable<pg::result<bool>> {
      params args{repo, tag};
      auto deleted = co_await tx.query(delete_tag_sql, std::move(args));
      if (!deleted) co_return std::unexpected(std::move(deleted.error()));
      if (deleted->size() == 0) co_return false;
      const std::string d(deleted->text(0, 0));
      const std::optional<std::string_view> from_manifest;
      const std::optional<std::uint64_t> no_size;
      auto recorded = co_await record_event(tx, event_type(stamp, true), repo, tag, d, from_manifest, no_size, stamp);
      if (!recorded) co_return std::unexpected(std::move(recorded.error()));
      co_return true;
    };
    co_return co_await transact("delete_tag", body);
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
    std::optional<error> refusal;
    auto body = [&](transaction& tx) -> awaitable<pg::result<bool>> {
      auto create = [&]() -> awaitable<pg::result<bool>> {
        params args{repo};
        auto created = co_await tx.query(create_repo_sql, std::move(args));
        if (!created) co_return std::unexpected(std::move(created.error()));
        co_return created->affected() > 0;
      };
      co_return co_await limited(tx, repo, refusal, create);
    };
    co_return co_await transact("create_repository", body, &refusal);
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
                              "DELETE FROM tag_history WHERE repo_id = $1", "DELETE FROM repositories WHERE id = $1"}) {
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

  awaitable<result<std::vector<blob_entry>>> list_blob_links(std::string_view repo, std::string_view last,
                                                            std::size_t n) override {
    params args{repo, text_bound(last), limit(n)};
    auto r = co_await query("list_blob_links", list_links_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    co_return blob_entries(*r);
  }

  awaitable<result<std::vector<digest>>> list_manifests(std::string_view repo, std::string_view last,
                                                        std::size_t n) override {
    params args{repo, text_bound(last), limit(n)};
    auto r = co_await query("list_manifests", list_manifests_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    co_return digest_column(*r);
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

  // ---- tag_records ----

  awaitable<result<std::optional<std::vector<tag_record>>>> tag_list(std::string_view repo, tag_sort sort,
                                                                     bool descending, std::string_view last,
                                                                     std::size_t n) override {
    params args{repo, text_bound(last), limit(n)};
    auto r = co_await query("tag_list", tag_records_sql[sort == tag_sort::time][descending], std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    if (r->size() == 0) co_return std::nullopt;  // no such repository
    std::vector<tag_record> out;
    for (std::size_t i = 0; i < r->size(); ++i) {
      if (r->is_null(i, 1)) continue;  // the repository has no tag in range
      auto d = stored_digest(r->text(i, 2));
      if (!d) co_return std::unexpected(d.error());
      auto media_type = stored_bytes(*r, i, 3);
      if (!media_type) co_return std::unexpected(media_type.error());
      out.push_back(tag_record{std::string(r->text(i, 1)), *d, std::move(*media_type), r->int64(i, 4).value_or(0),
                               std::string(r->text(i, 5)), stored_size(*r, i, 6), split_list(r->text(i, 7))});
    }
    co_return out;
  }

  awaitable<result<std::vector<tag_event>>> tag_history(std::string_view repo, std::string_view tag) override {
    params args{repo, tag};
    auto r = co_await query("tag_history", tag_history_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    std::vector<tag_event> out;
    for (std::size_t i = 0; i < r->size(); ++i) {
      auto d = stored_digest(r->text(i, 0));
      if (!d) co_return std::unexpected(d.error());
      out.push_back(tag_event{*d, r->int64(i, 1).value_or(0), std::string(r->text(i, 2)), std::string(r->text(i, 3))});
    }
    co_return out;
  }

  awaitable<result<std::vector<std::string>>> tags_on(std::string_view repo, const digest& d) override {
    params args{repo, d.str()};
    auto r = co_await query("tags_on", tags_on_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    co_return string_column(*r);
  }

  awaitable<result<std::vector<unread_platforms>>> platforms_unread(std::size_t n) override {
    params args{limit(n)};
    auto r = co_await query("manifests with unread platforms", platforms_unread_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    std::vector<unread_platforms> out;
    for (std::size_t i = 0; i < r->size(); ++i) {
      auto d = stored_digest(r->text(i, 1));
      if (!d) co_return std::unexpected(d.error());
      auto media_type = stored_bytes(*r, i, 2);
      if (!media_type) co_return std::unexpected(media_type.error());
      auto content = stored_bytes(*r, i, 3);
      if (!content) co_return std::unexpected(content.error());
      out.push_back(unread_platforms{std::string(r->text(i, 0)), *d, std::move(*media_type), std::move(*content)});
    }
    co_return out;
  }

  awaitable<result<void>> set_platforms(std::string_view repo, const digest& d,
                                        const std::vector<std::string>& platforms) override {
    params args{repo, d.str(), join_list(platforms)};
    auto r = co_await query("set platforms", set_platforms_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    co_return result<void>{};
  }

  awaitable<result<std::vector<untagged_manifest>>> untagged(std::string_view repo) override {
    params args{repo};
    auto r = co_await query("untagged manifests", untagged_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    std::vector<untagged_manifest> out;
    for (std::size_t i = 0; i < r->size(); ++i) {
      auto d = stored_digest(r->text(i, 0));
      if (!d) co_return std::unexpected(d.error());
      out.push_back(untagged_manifest{*d, r->int64(i, 1).value_or(0), r->int64(i, 2).value_or(0) != 0});
    }
    co_return out;
  }

  awaitable<result<std::vector<repository_summary>>> repository_summaries(std::string_view prefix) override {
    params args{text_bound(prefix)};
    auto r = co_await query("repository_summaries", repository_summaries_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    std::vector<repository_summary> out;
    for (std::size_t i = 0; i < r->size(); ++i) {
      out.push_back(repository_summary{std::string(r->text(i, 0)), stored_size(*r, i, 1), stored_size(*r, i, 2),
                                       r->int64(i, 3).value_or(0)});
    }
    co_return out;
  }

  awaitable<result<std::optional<promotion>>> promote(std::string_view dst, std::string_view tag, std::string_view src,
                                                      const digest& d, const push_stamp& stamp) override {
    std::optional<error> refusal;
    auto body = [&](transaction& tx) -> awaitable<pg::result<std::optional<promotion>>> {
      // Locks in the usual order: repositories (source, then target), manifests, tags.
      params src_args{src};
      auto src_row = co_await tx.query(lock_source_repo_sql, std::move(src_args));
      if (!src_row) co_return std::unexpected(std::move(src_row.error()));
      if (src_row->size() == 0) co_return std::nullopt;
      const std::int64_t src_id = src_row->int64(0, 0).value_or(0);
      params closure_args{src_id, d.str()};
      auto closure = co_await tx.query(promotion_closure_sql, std::move(closure_args));
      if (!closure) co_return std::unexpected(std::move(closure.error()));
      if (closure->size() == 0) co_return std::nullopt;  // the source does not hold `d`
      const std::vector<std::string> digests = string_column(*closure);
      auto copy = [&]() -> awaitable<pg::result<std::optional<promotion>>> {
        auto dst_id = co_await ensure_repo(tx, dst);
        if (!dst_id) co_return std::unexpected(std::move(dst_id.error()));
        std::string array = "{" + join_list(digests) + "}";  // digests hold no quotes, commas or braces
        for (std::string_view sql : {copy_manifests_sql, copy_refs_sql, copy_links_sql}) {
          params copy_args{*dst_id, src_id, array};
          auto copied = co_await tx.query(sql, std::move(copy_args));
          if (!copied) co_return std::unexpected(std::move(copied.error()));
        }
        auto moved = co_await set_tag(tx, *dst_id, tag, d, stamp, refusal);
        if (!moved) co_return std::unexpected(std::move(moved.error()));
        const std::optional<std::string_view> from_manifest;
        const std::optional<std::uint64_t> no_size;
        auto recorded = co_await record_event(tx, event_type(stamp, false), dst, tag, d.str(), from_manifest, no_size,
                                              stamp);
        if (!recorded) co_return std::unexpected(std::move(recorded.error()));
        co_return std::optional<promotion>(std::move(*moved));
      };
      co_return co_await limited(tx, dst, refusal, copy);
    };
    co_return co_await transact("promote", body, &refusal);
  }

  awaitable<result<usage_report>> usage(std::string_view ns) override {
    params repo_args{ns};
    auto repos = co_await query("usage", repository_usage_sql, std::move(repo_args));
    if (!repos) co_return std::unexpected(std::move(repos.error()));
    params ns_args{ns};
    auto stored = co_await query("usage", namespace_stored_sql, std::move(ns_args));
    if (!stored) co_return std::unexpected(std::move(stored.error()));
    params none;
    auto total = co_await query("usage", registry_stored_sql, std::move(none));
    if (!total) co_return std::unexpected(std::move(total.error()));
    std::vector<repository_usage> out;
    for (std::size_t i = 0; i < repos->size(); ++i) {
      out.push_back(repository_usage{std::string(repos->text(i, 0)), stored_size(*repos, i, 1),
                                     stored_size(*repos, i, 2), stored_size(*repos, i, 3)});
    }
    std::map<std::string, namespace_bytes, std::less<>> by_namespace;
    for (std::size_t i = 0; i < stored->size(); ++i)
      by_namespace[std::string(stored->text(i, 0))] = namespace_bytes{stored_size(*stored, i, 1), stored_size(*stored, i, 2)};
    co_return group_usage(std::move(out), by_namespace, stored_size(*total, 0, 0));
  }

  awaitable<result<std::vector<counted_namespace>>> namespace_counters() override {
    params none;
    auto rows = co_await query("namespace counters", all_namespace_counts_sql, std::move(none));
    if (!rows) co_return std::unexpected(std::move(rows.error()));
    std::vector<counted_namespace> out;
    for (std::size_t i = 0; i < rows->size(); ++i) {
      out.push_back(counted_namespace{std::string(rows->text(i, 0)),
                                      namespace_counts{stored_size(*rows, i, 1), stored_size(*rows, i, 2)}});
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

  awaitable<result<std::int64_t>> claim(const digest& d, std::uint64_t size) override {
    params args{d.str(), size};
    auto r = co_await query("claim blob", claim_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    if (r->size() == 0) co_return being_deleted(d);
    co_return r->int64(0, 0).value_or(0);
  }

  awaitable<result<bool>> complete(std::string_view id, std::int64_t token, const digest& d, std::uint64_t size,
                                   std::int64_t generation) override {
    std::optional<error> refusal;
    auto body = [&](transaction& tx) -> awaitable<pg::result<bool>> {
      params args{id, token};
      auto removed = co_await tx.query(delete_held_upload_sql, std::move(args));
      if (!removed) co_return std::unexpected(std::move(removed.error()));
      if (removed->size() == 0) co_return false;
      params use_args{d.str(), generation};
      auto used = co_await tx.query(use_generation_sql, std::move(use_args));
      if (!used) co_return std::unexpected(std::move(used.error()));
      if (used->affected() == 0) {
        auto refused = refuse(refusal, being_deleted(d));
        co_return std::unexpected(std::move(refused.error()));
      }
      const std::string repo(removed->text(0, 0));
      co_return co_await link_limited(tx, repo, d, size, refusal);
    };
    co_return co_await transact("complete upload", body, &refusal);
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

  // ---- blob_records ----

  awaitable<result<gc_counts>> sweep_links(std::int64_t grace_ms) override {
    auto body = [&](transaction& tx) -> awaitable<pg::result<gc_counts>> {
      params lock_args{grace_ms};
      auto locked = co_await tx.query(lock_unneeded_links_sql, std::move(lock_args));
      if (!locked) co_return std::unexpected(std::move(locked.error()));
      gc_counts out;
      if (locked->size() == 0) co_return out;
      std::string ids = "{";
      std::vector<digest> digests;
      for (std::size_t i = 0; i < locked->size(); ++i) {
        if (i > 0) ids += ',';
        ids += locked->text(i, 0);
        auto d = digest::parse(locked->text(i, 1));
        if (!d) co_return pg::fail(pg::errc::failed, fmt::format("stored digest does not parse: {}", locked->text(i, 1)));
        digests.push_back(*d);
      }
      params delete_args{grace_ms, ids + "}", text_array(digests)};
      auto deleted = co_await tx.query(delete_unneeded_links_sql, std::move(delete_args));
      if (!deleted) co_return std::unexpected(std::move(deleted.error()));
      for (std::size_t i = 0; i < deleted->size(); ++i) {
        ++out.links;
        out.link_bytes += stored_size(*deleted, i, 0);
      }
      co_return out;
    };
    co_return co_await transact("sweep links", body);
  }

  awaitable<result<gc_counts>> estimate(std::int64_t grace_ms) override {
    gc_counts out;
    for (auto [sql, count, bytes] : {std::tuple{estimate_links_sql, &out.links, &out.link_bytes},
                                     std::tuple{estimate_blobs_sql, &out.blobs, &out.bytes}}) {
      params args{grace_ms};
      auto r = co_await query("gc estimate", sql, std::move(args));
      if (!r) co_return std::unexpected(std::move(r.error()));
      *count = stored_size(*r, 0, 0);
      *bytes = stored_size(*r, 0, 1);
    }
    co_return out;
  }

  awaitable<result<std::vector<repository_bytes>>> freed_by_deleting(
      std::span<const repository_manifest> deleted) override {
    params args{quoted_array(deleted, [](const repository_manifest& m) -> std::string_view { return m.repository; }),
                quoted_array(deleted, [](const repository_manifest& m) -> std::string_view { return m.dgst.str(); })};
    auto r = co_await query("bytes freed by deleting", freed_by_deleting_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    std::vector<repository_bytes> out;
    for (std::size_t i = 0; i < r->size(); ++i) out.push_back(repository_bytes{std::string(r->text(i, 0)), stored_size(*r, i, 1)});
    co_return out;
  }

  awaitable<result<std::vector<blob_entry>>> unreferenced(std::int64_t grace_ms, std::string_view after,
                                                          std::size_t n) override {
    params args{grace_ms, after, limit(n)};
    auto r = co_await query("unreferenced blobs", unreferenced_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    co_return blob_entries(*r);
  }

  // The records are locked first, in digest order, and looked at again by a second statement whose
  // snapshot sees every link committed while the locks were awaited.
  awaitable<result<std::vector<blob_entry>>> mark_for_deletion(std::span<const digest> ds,
                                                               std::int64_t grace_ms) override {
    auto body = [&](transaction& tx) -> awaitable<pg::result<pg::rows>> {
      params lock_args{text_array(ds)};
      auto locked = co_await tx.query(lock_blobs_sql, std::move(lock_args));
      if (!locked) co_return std::unexpected(std::move(locked.error()));
      params args{text_array(ds), grace_ms};
      co_return co_await tx.query(mark_sql, std::move(args));
    };
    auto marked = co_await transact("mark blobs", body);
    if (!marked) co_return std::unexpected(std::move(marked.error()));
    co_return blob_entries(*marked);
  }

  awaitable<result<std::vector<blob_entry>>> adopt(std::span<const blob_entry> stored) override {
    std::vector<digest> ds;
    std::vector<std::uint64_t> sizes;
    for (const auto& e : stored) {
      ds.push_back(e.dgst);
      sizes.push_back(e.size);
    }
    params args{text_array(ds), fmt::format("{{{}}}", fmt::join(sizes, ","))};
    auto r = co_await query("adopt blobs", adopt_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    co_return blob_entries(*r);
  }

  awaitable<result<std::vector<blob_entry>>> marked(std::size_t n) override {
    params args{limit(n)};
    auto r = co_await query("marked blobs", marked_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    co_return blob_entries(*r);
  }

  awaitable<result<std::vector<blob_entry>>> forget(std::span<const digest> ds) override {
    params args{text_array(ds)};
    auto r = co_await query("forget blobs", forget_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    co_return blob_entries(*r);
  }

  awaitable<result<void>> record_run(const gc_run& r) override {
    const gc_counts& c = r.counts;
    params args{r.started_ms, r.duration_ms, int{r.dry_run}, c.manifests, c.links, c.link_bytes, c.blobs, c.bytes};
    auto done = co_await query("record gc run", insert_run_sql, std::move(args));
    if (!done) co_return std::unexpected(std::move(done.error()));
    co_return result<void>{};
  }

  awaitable<result<std::vector<gc_run>>> runs(std::size_t n, bool collections_only) override {
    params args{limit(n), int{collections_only}};
    auto r = co_await query("gc runs", runs_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    std::vector<gc_run> out;
    for (std::size_t i = 0; i < r->size(); ++i) {
      const auto u = [&](std::size_t column) { return stored_size(*r, i, column); };
      out.push_back(gc_run{r->int64(i, 0).value_or(0), r->int64(i, 1).value_or(0), r->int64(i, 2).value_or(0) != 0,
                           gc_counts{u(3), u(4), u(5), u(6), u(7)}});
    }
    co_return out;
  }

  void set_limits(namespace_limits limits) override { limits_.set(std::move(limits)); }

  // ---- webhook_records ----

  awaitable<result<std::vector<webhook_delivery>>> claim_deliveries(std::int64_t now_ms, std::int64_t lease_ms,
                                                                    std::size_t n) override {
    params args{now_ms, lease_ms, limit(n)};
    auto r = co_await query("claim_deliveries", claim_deliveries_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    co_return read_deliveries(*r);
  }

  awaitable<result<bool>> finish_delivery(std::int64_t id, const delivery_attempt& a) override {
    params args{id, static_cast<int>(a.state), a.status, a.error, a.next_at_ms, a.at_ms};
    co_return co_await changes("finish_delivery", finish_delivery_sql, std::move(args));
  }

  awaitable<result<std::vector<webhook_delivery>>> deliveries(std::string_view webhook, bool failed_only,
                                                              std::int64_t before_id, std::size_t n) override {
    params args{webhook, before_id, int{failed_only}, limit(n)};
    auto r = co_await query("deliveries", list_deliveries_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    co_return read_deliveries(*r);
  }

  awaitable<result<bool>> redeliver(std::int64_t id, std::int64_t now_ms) override {
    params args{id, now_ms};
    co_return co_await changes("redeliver", redeliver_sql, std::move(args));
  }

  // ---- audit_records ----
  awaitable<result<void>> append(std::span<const audit_entry> entries) override {
    if (entries.empty()) co_return result<void>{};
    const auto column = [&](auto field) { return quoted_array(entries, field); };
    params args{column([](const audit_entry& e) { return std::to_string(e.at_ms); }),
                column([](const audit_entry& e) -> const std::string& { return e.subject; }),
                column([](const audit_entry& e) -> const std::string& { return e.address; }),
                column([](const audit_entry& e) -> const std::string& { return e.action; }),
                column([](const audit_entry& e) -> const std::string& { return e.repository; }),
                column([](const audit_entry& e) -> const std::string& { return e.target; }),
                column([](const audit_entry& e) -> const std::string& { return e.outcome; }),
                column([](const audit_entry& e) { return std::to_string(e.status); }),
                column([](const audit_entry& e) -> const std::string& { return e.detail; })};
    auto done = co_await query("append audit entries", insert_audit_sql, std::move(args));
    if (!done) co_return std::unexpected(std::move(done.error()));
    co_return result<void>{};
  }

  awaitable<result<std::vector<audit_entry>>> list(const audit_query& q) override {
    params args{q.repository, q.subject, q.action, q.since_ms, q.until_ms, q.before_id, limit(q.n)};
    auto r = co_await query("audit entries", list_audit_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    std::vector<audit_entry> out;
    for (std::size_t i = 0; i < r->size(); ++i) {
      const auto text = [&](std::size_t c) { return std::string(r->text(i, c)); };
      out.push_back(audit_entry{r->int64(i, 0).value_or(0), r->int64(i, 1).value_or(0), text(2), text(3), text(4),
                                text(5), text(6), text(7), static_cast<unsigned>(r->int64(i, 8).value_or(0)),
                                text(9)});
    }
    co_return out;
  }

  awaitable<result<std::uint64_t>> prune(std::int64_t before_ms) override {
    co_return co_await deleted_before("prune audit entries", prune_audit_sql, before_ms);
  }

  awaitable<result<std::uint64_t>> prune_deliveries(std::int64_t before_ms) override {
    co_return co_await deleted_before("prune webhook deliveries", prune_deliveries_sql, before_ms);
  }

  // ---- retention_rule_records ----
  awaitable<result<std::vector<retention_rule>>> rules() override {
    auto r = co_await query("retention rules", retention_rules_sql, {});
    if (!r) co_return std::unexpected(std::move(r.error()));
    std::vector<retention_rule> out;
    for (std::size_t i = 0; i < r->size(); ++i) {
      auto rule = stored_rule(r->text(i, 0));
      if (!rule) co_return std::unexpected(std::move(rule.error()));
      out.push_back(std::move(*rule));
    }
    co_return out;
  }

  awaitable<result<void>> replace_rules(std::span<const retention_rule> rules) override {
    std::vector<std::string> docs;
    for (const auto& rule : rules) docs.push_back(rule_json(rule).dump());
    auto body = [&](transaction& tx) -> awaitable<pg::result<void>> {
      auto locked = co_await tx.query(lock_retention_rules_sql);
      if (!locked) co_return std::unexpected(std::move(locked.error()));
      params args{text_array(docs)};
      auto replaced = co_await tx.query(replace_retention_rules_sql, std::move(args));
      if (!replaced) co_return std::unexpected(std::move(replaced.error()));
      co_return pg::result<void>{};
    };
    co_return co_await transact("replace retention rules", body);
  }

  // Runs the DELETE `sql` with $1 = `before_ms`; how many rows it deleted.
  awaitable<result<std::uint64_t>> deleted_before(std::string_view what, std::string_view sql, std::int64_t before_ms) {
    params args{before_ms};
    auto r = co_await query(what, sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    co_return static_cast<std::uint64_t>(r->affected());
  }

  awaitable<result<void>> probe() override {
    auto r = co_await query("probe", "SELECT 1", {});
    if (!r) co_return std::unexpected(std::move(r.error()));
    co_return result<void>{};
  }

 private:
  // Runs change(), a change to repository `repo` in `tx`, and refuses it (`refusal`, DENIED) when it
  // takes the namespace past its limits (quota.h). The counters read after it are exact: a change
  // that adds to a namespace updates its row (triggers), which holds that row's lock until the
  // commit, so every concurrent change to the namespace either committed before (and is counted) or
  // waits for this one. Those read before are taken without a lock: a change committed in between
  // counts as this one's, which can only refuse a change that added nothing to a namespace that is
  // then over its quota.
  template <class F>
  auto limited(transaction& tx, std::string_view repo, std::optional<error>& refusal, F& change)
      -> decltype(change()) {
    const std::string_view ns = namespace_of(repo);
    const auto limit = limits_.of(ns);
    if (!limit) {
      auto out = co_await change();
      co_return out;
    }
    auto before = co_await counts(tx, ns);
    if (!before) co_return std::unexpected(std::move(before.error()));
    auto out = co_await change();
    if (!out) co_return out;
    auto after = co_await counts(tx, ns);
    if (!after) co_return std::unexpected(std::move(after.error()));
    if (auto refused = over_limit(ns, *limit, *before, *after)) {
      auto failed = refuse(refusal, std::unexpected(std::move(*refused)));
      co_return std::unexpected(std::move(failed.error()));
    }
    co_return out;
  }

  // Links `d` (of `size` bytes) into `repo` in `tx`, refused as limited() says; true once linked.
  awaitable<pg::result<bool>> link_limited(transaction& tx, std::string_view repo, const digest& d, std::uint64_t size,
                                           std::optional<error>& refusal) {
    auto link = [&]() -> awaitable<pg::result<bool>> {
      auto linked = co_await link_in(tx, repo, d, size);
      if (!linked) co_return std::unexpected(std::move(linked.error()));
      co_return true;
    };
    co_return co_await limited(tx, repo, refusal, link);
  }

  static awaitable<pg::result<namespace_counts>> counts(transaction& tx, std::string_view ns) {
    params args{ns};
    auto r = co_await tx.query(namespace_counts_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    if (r->size() == 0) co_return namespace_counts{};
    co_return namespace_counts{stored_size(*r, 0, 0), stored_size(*r, 0, 1)};
  }

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
  // A body that refuses (refuse()) rolls back, and its refusal is the answer.
  template <class F>
  auto transact(std::string_view what, F& body, std::optional<error>* refusal = nullptr)
      -> awaitable<result<typename decltype(body(std::declval<transaction&>()))::value_type::value_type>> {
    auto r = co_await pg::in_transaction(*pool_, body);
    if (!r && refusal && *refusal) co_return std::unexpected(std::move(**refusal));
    if (!r) co_return pg::failure(store_name, what, r.error());
    if constexpr (std::is_void_v<typename decltype(r)::value_type>) {
      co_return result<void>{};
    } else {
      co_return std::move(*r);
    }
  }

  // Adds one delivery of the event to each webhook subscribed to it, in `tx`. The media type and
  // size, when not given, are those of the manifest `d` of `repo`.
  awaitable<pg::result<void>> record_event(transaction& tx, std::string_view type, std::string_view repo,
                                           std::string_view tag, std::string_view d,
                                           const std::optional<std::string_view>& media_type,
                                           const std::optional<std::uint64_t>& size, const push_stamp& stamp) const {
    const auto names = subscribers(type, repo);
    if (names.empty()) co_return pg::result<void>{};
    params args{text_array(names),
                new_event_id(),
                type,
                stamp.at_ms,
                repo,
                tag,
                d,
                media_type ? param::bytes(*media_type) : param(std::nullopt),
                size ? param(*size) : param(std::nullopt),
                stamp.by,
                stamp.source};
    auto inserted = co_await tx.query(insert_delivery_sql, std::move(args));
    if (!inserted) co_return std::unexpected(std::move(inserted.error()));
    co_return pg::result<void>{};
  }

  std::shared_ptr<pg::pool> pool_;
  limits_table limits_;
};

}  // namespace

std::unique_ptr<metadata_store> make_pg_metadata_store(std::shared_ptr<pg::pool> pool) {
  return std::make_unique<pg_metadata_store>(std::move(pool));
}

}  // namespace berth::meta
