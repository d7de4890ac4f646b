// Registry metadata: repositories, which blobs each repository may see (links), manifests (their
// exact bytes), tags, and the subject index behind the referrers API. Blob bytes live in
// storage::blob_store; this store only knows digests and sizes.
//
// Asynchronous: every call is awaited from the I/O threads, so an implementation never blocks the
// calling thread on a network round trip or a disk flush. It may complete inline when the answer
// costs microseconds (SQLite reads from its page cache) and must otherwise suspend (the SQLite
// writer thread, a PostgreSQL socket). Adding a backend: docs/ARCHITECTURE.md; its tests register
// with the contract suite (metadata_store_contract.h).
//
// Durability: a write completes once committed (fsynced). Each call is one transaction.
// Thread-safety: every method may be called concurrently from any thread.
// Errors: arguments are validated by the caller (names, tags, digests); a backend failure is logged
// here and returned as `internal`, or as `unavailable` (503) when a network backend cannot be reached.
#pragma once

#include <utility>  // before Asio: boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/digest.h"
#include "core/error.h"
#include "core/manifest.h"
#include "meta/audit_records.h"
#include "meta/blob_records.h"
#include "meta/quota.h"
#include "meta/retention_rules.h"
#include "meta/tag_records.h"
#include "meta/upload_records.h"
#include "meta/webhook_records.h"

namespace berth::meta {

struct manifest_record {
  digest dgst;
  std::string media_type;  // as pushed (Content-Type)
  std::string content;     // the exact bytes pushed
  std::optional<digest> subject;
  std::string artifact_type;     // as reported by referrers ("" when none)
  std::string annotations_json;  // compact JSON object, or ""
  std::vector<digest> references;  // blobs and child manifests it needs (kept for GC)
  // The image's size: its bytes, config and layers; for an index, plus each child's total size.
  std::uint64_t total_size = 0;
  std::vector<std::string> platforms;  // "linux/arm64/v8", from the index or the image's config
};

// The record of manifest `d` (bytes `content`, served as `media_type`) that `m` was parsed from.
inline manifest_record make_manifest_record(digest d, std::string media_type, std::string content,
                                            parsed_manifest&& m) {
  manifest_record rec{std::move(d), std::move(media_type), std::move(content), std::move(m.subject),
                      std::move(m.artifact_type), std::move(m.annotations_json), {}};
  rec.references.reserve(m.blobs.size() + m.manifests.size());
  for (auto& b : m.blobs) rec.references.push_back(std::move(b.dgst));
  for (auto& c : m.manifests) rec.references.push_back(std::move(c.dgst));
  return rec;
}

// A manifest whose subject is the one asked for, as the referrers API lists it.
struct referrer {
  digest dgst;
  std::string media_type;
  std::uint64_t size = 0;
  std::string artifact_type;
  std::string annotations_json;
};

// Storage use, as `berth usage` shows it. Bytes are blob bytes (manifests, kept in the database,
// are counted, not weighed). A namespace is the first component of a repository name.
struct repository_usage {
  std::string name;
  std::uint64_t tags = 0;
  std::uint64_t manifests = 0;
  std::uint64_t logical_bytes = 0;  // the blobs it links: what it would take alone
};
struct namespace_usage {
  std::string name;
  std::uint64_t stored_bytes = 0;    // the distinct blobs its repositories link, each counted once
  std::uint64_t manifest_bytes = 0;  // its manifests' bytes; with stored_bytes, what its quota counts
  std::vector<repository_usage> repositories;  // in byte order
};
struct usage_report {
  std::vector<namespace_usage> namespaces;  // in byte order
  std::uint64_t stored_bytes = 0;           // every blob the registry stores, each once (also those
                                            // awaiting garbage collection)
};

// Called by delete_manifest, in its transaction, with each tag on the manifest: a message
// refuses the deletion (DENIED with that message; an immutable tag, say).
using tag_guard = std::function<std::optional<std::string>(std::string_view tag)>;
// What refuses metadata_store::delete_manifest (DENIED, with a message), judged in its transaction.
struct delete_guard {
  tag_guard tags;  // judges each tag on the manifest
  // Refuses while the repository still needs the manifest: another of its manifests lists it (an
  // index, its child), or it is a referrer whose subject the repository holds. OCI lets a client
  // delete either; retention, deleting what it planned, must keep what was pushed since.
  bool keep_needed = false;
};

class metadata_store {
 public:
  virtual ~metadata_store() = default;

  // Blob links. The size of `d` if repository `repo` links it, else nullopt.
  virtual awaitable<result<std::optional<std::uint64_t>>> linked_blob_size(std::string_view repo, const digest& d) = 0;
  // Mounts: links `d` into `repo` (creating the repository when needed) when some repository links
  // it already, and renews the link's time; false when none does, or when garbage collection is
  // deleting it (nothing changes). Idempotent. Uploads link through upload_records::complete.
  virtual awaitable<result<bool>> link_blob(std::string_view repo, const digest& d, std::uint64_t size) = 0;
  // Unlinks `d` from `repo`; false when it was not linked.
  virtual awaitable<result<bool>> unlink_blob(std::string_view repo, const digest& d) = 0;
  // Of `ds`, the blobs that `repo` does not link (in the order given).
  virtual awaitable<result<std::vector<digest>>> missing_blobs(std::string_view repo, std::span<const digest> ds) = 0;

  // Manifests. Stores `m` in `repo` (creating the repository) and, when `tag` is set, points the tag
  // at it, in one transaction, recording the move with `stamp` (tag_records.h). Storing the same
  // digest again only moves the tag. Adds the push's webhook deliveries (webhook_records.h).
  // MANIFEST_BLOB_UNKNOWN when one of m.references is neither linked into nor a manifest of `repo`
  // at the commit (the caller checked before; this re-check is what garbage collection relies on).
  virtual awaitable<result<void>> put_manifest(std::string_view repo, const manifest_record& m,
                                               std::optional<std::string_view> tag, const push_stamp& stamp) = 0;
  virtual awaitable<result<std::optional<manifest_record>>> manifest_by_digest(std::string_view repo,
                                                                               const digest& d) = 0;
  virtual awaitable<result<std::optional<manifest_record>>> manifest_by_tag(std::string_view repo,
                                                                            std::string_view tag) = 0;
  // Of `ds`, the manifests that `repo` does not hold (in the order given).
  virtual awaitable<result<std::vector<digest>>> missing_manifests(std::string_view repo,
                                                                   std::span<const digest> ds) = 0;
  // Deletes the manifest and every tag on it; false when `repo` does not hold it. `stamp` says who
  // and why, for the webhook event (webhook_records.h) it adds in the same transaction. With a
  // `guard`, the deletion is judged in that transaction first: a tag set on the manifest meanwhile
  // is judged too, never deleted unseen, and so is a manifest pushed meanwhile that lists it.
  virtual awaitable<result<bool>> delete_manifest(std::string_view repo, const digest& d, const push_stamp& stamp,
                                                  const delete_guard& guard = {}) = 0;
  // Deletes the tag only; false when there is no such tag. `stamp` as in delete_manifest.
  virtual awaitable<result<bool>> delete_tag(std::string_view repo, std::string_view tag, const push_stamp& stamp) = 0;

  // Listings, in lexical (byte) order, starting after `last` ("" for the start), at most `n`.
  // nullopt when the repository is unknown.
  virtual awaitable<result<std::optional<std::vector<std::string>>>> list_tags(std::string_view repo,
                                                                               std::string_view last,
                                                                               std::size_t n) = 0;
  virtual awaitable<result<std::vector<std::string>>> list_repositories(std::string_view last, std::size_t n) = 0;

  // Repositories themselves. Whether `repo` exists (pushed to, or created).
  virtual awaitable<result<bool>> repository_exists(std::string_view repo) = 0;
  // Creates an empty repository; false when it already existed.
  virtual awaitable<result<bool>> create_repository(std::string_view repo) = 0;
  // Deletes the repository with its manifests, tags and blob links (the blobs stay in the blob
  // store for garbage collection); false when it did not exist.
  virtual awaitable<result<bool>> delete_repository(std::string_view repo) = 0;
  // Up to `n` repositories that link `d`, in lexical order (for automatic cross-repository mount).
  virtual awaitable<result<std::vector<std::string>>> repositories_with_blob(const digest& d, std::size_t n) = 0;
  // A repository's contents in digest (byte) order, starting after `last` ("" for the start), at most
  // `n`: its blob links and the digests of its manifests (tagged or not). Empty when the repository
  // is unknown. For copying a registry elsewhere (app/migrate.h), not for requests.
  virtual awaitable<result<std::vector<blob_entry>>> list_blob_links(std::string_view repo, std::string_view last,
                                                                    std::size_t n) = 0;
  virtual awaitable<result<std::vector<digest>>> list_manifests(std::string_view repo, std::string_view last,
                                                                std::size_t n) = 0;
  // Manifests in `repo` whose subject is `subject`, optionally only those of `artifact_type`.
  virtual awaitable<result<std::vector<referrer>>> referrers(std::string_view repo, const digest& subject,
                                                             std::optional<std::string_view> artifact_type) = 0;

  // Storage use of namespace `ns` ("" for every namespace): per repository from aggregates over the
  // indexed tables (one pass over the links and manifests asked about: milliseconds for 100,000
  // links), per namespace from its counters (quota.h).
  virtual awaitable<result<usage_report>> usage(std::string_view ns) = 0;
  // Every namespace's counters (quota.h), in byte order of their names, with those whose repositories
  // are all gone (at zero): one read of the counters' table, which has a row per namespace and none
  // per repository or blob, cheap enough for every metrics scrape.
  virtual awaitable<result<std::vector<counted_namespace>>> namespace_counters() = 0;

  // Quotas (quota.h). From now on, a call that would take a namespace past its limits changes
  // nothing and fails with DENIED naming the namespace, its use and the limit: a link (an upload's
  // completion, a mount), a manifest, a promotion, a repository created by a push or by
  // create_repository. The check is in the transaction that makes the change, after it, against the
  // namespace's counters, which every such transaction updates (and so locks, on PostgreSQL) before
  // it commits: of concurrent pushes into one namespace, only those that fit together commit.
  // May be called at any time (the namespaces of the admin API change at run time): a change
  // already in its transaction keeps the limits it read.
  virtual void set_limits(namespace_limits limits) = 0;

  // The records of unfinished uploads (upload_records.h), kept in the same database. Lives as long
  // as the store.
  virtual upload_records& uploads() = 0;
  // The tags' records and history, repository summaries, promotion (tag_records.h), kept in the
  // same database. Lives as long as the store.
  virtual tag_records& tags() = 0;
  // The blob records garbage collection decides on (blob_records.h). Lives as long as the store.
  virtual blob_records& blobs() = 0;
  // The webhook outbox (webhook_records.h), in the same database: put_manifest, delete_manifest,
  // delete_tag and tags().promote() add their events' deliveries there. Lives as long as the store.
  virtual webhook_records& webhooks() = 0;
  // The audit log (audit_records.h), kept in the same database. Lives as long as the store.
  virtual audit_records& audit() = 0;
  // The retention rules made through the admin API (retention_rules.h), kept in the same database.
  // Lives as long as the store.
  virtual retention_rule_records& retention_rules() = 0;

  // Whether the store answers now (the readiness check, /health/ready): one trivial round trip
  // (SQLite: a read, and an empty transaction on the writer, which takes the write lock).
  virtual awaitable<result<void>> probe() = 0;
};

// The SQLite store in the file `path` (created with its schema when missing; WAL, synchronous=FULL).
// Reads complete inline on the caller's thread (microseconds; readers never wait for the writer);
// writes go to one writer thread that commits concurrent writes together (group_commit.h), and the
// caller resumes on its own executor once its write is durable.
// Upload leases: the server, which owns the data directory (it holds DATA/LOCK), ends every lease
// (uploads' and webhook deliveries') when it opens the file, their holders being gone; a process that opens the file beside a server
// that may be running (offline `berth check`) keeps them.
// Throws std::runtime_error at start-up when the database cannot be opened or migrated.
// (For several instances sharing one database: make_pg_metadata_store, meta/pg_metadata_store.h.)
enum class upload_leases { end, keep };
std::unique_ptr<metadata_store> make_sqlite_metadata_store(const std::string& path,
                                                           upload_leases leases = upload_leases::end);

}  // namespace berth::meta
