// Moving a registry's contents into the stores a configuration names (docs/scale-out.md "Moving an
// existing registry"):
//   migrate()             an embedded Berth (filesystem + SQLite under a data directory), read
//                         through its stores: repositories (empty ones too), blobs, manifests, tags,
//                         referrers, users, robots (their tokens keep working), stored grants,
//                         the admin API's namespaces and retention rules, the audit log and the
//                         token-signing key;
//   import_distribution() a Distribution (registry:2) filesystem store, read from its files.
// Both write through the target's stores only: a blob goes through the upload service (hashed on
// the way and refused when its bytes do not match its digest, linked once stored), and a blob the
// target holds already is linked, not copied again. Everything is idempotent, so a run that was
// interrupted is simply run again: what is there is skipped.
//
// Progress goes to `progress` (stderr): a line redrawn in place on a terminal, one line per
// repository otherwise.
// Errors: throws std::runtime_error naming what failed (a source that cannot be read, a blob whose
// bytes do not hash to its digest, a backend that fails); what was copied before stays copied.
// Thread-safety: one call at a time per target.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "app/config.h"

namespace berth::app {

struct copy_summary {
  std::uint64_t repositories = 0;
  std::uint64_t blobs_copied = 0, blobs_present = 0;  // present: held by the target already (dedup, rerun)
  std::uint64_t bytes_copied = 0;
  std::uint64_t links = 0;  // blob links made
  std::uint64_t manifests_copied = 0, manifests_present = 0;
  std::uint64_t tags_set = 0, tags_present = 0;
  std::uint64_t users = 0, robots = 0, grants = 0, namespaces = 0;  // copied (those present are skipped)
  std::uint64_t retention_rules = 0, audit_entries = 0;            // copied (only into a target without any)
  std::vector<std::string> notes;                    // things the operator should know (a different signing key)
};

// Copies the embedded registry under `from_data` into the stores `to` configures. Holds
// FROM_DATA/LOCK for the whole run, so it refuses to start while a server uses the directory (and
// no server starts on it meanwhile); so too the target's data directory when a target store lives
// there.
copy_summary migrate(const std::string& from_data, const config& to, std::FILE* progress);

// Imports the Distribution filesystem store under `root` (the directory holding docker/registry/v2)
// into the stores `to` configures: repositories, blob links, manifests (with their media type, from
// the manifest itself) and tags. Distribution must not be running on `root`.
copy_summary import_distribution(const std::string& root, const config& to, std::FILE* progress);

// The summary as printed at the end of a run, one line per kind.
std::string describe(const copy_summary& s);

}  // namespace berth::app
