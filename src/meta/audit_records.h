// The audit log: who changed what, when, from where, and with what outcome (manifest pushes and
// deletions, promotions, repositories, users, robots, grants, retention and GC runs), and who was
// refused (403, failed logins). Entries are appended by the API (api/audit.h) and by the scheduled
// runs, listed newest first by GET /api/v1/audit, and pruned after audit.retention_days.
//
// Entries hold no secret: the API builds them from the route and the identity, never from a
// request's body, headers or query. Times are unix milliseconds from the caller's clock.
// Thread-safety: every method may be called concurrently, from any instance. Errors as in
// metadata_store.h.
#pragma once

#include <utility>  // before Asio: boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/error.h"

namespace berth::meta {

using boost::asio::awaitable;

struct audit_entry {
  std::int64_t id = 0;  // assigned by the store, increasing; ignored by append()
  std::int64_t at_ms = 0;
  std::string subject;     // "user:alice", "robot:ci", "oidc:...", "anonymous", "system" (scheduled runs)
  std::string address;     // the client's address; "" for scheduled runs
  std::string action;      // "manifest_push", "tag_delete", "login", ... (README "Audit log")
  std::string repository;  // "" when the action names none
  std::string target;      // what was acted on: "team/app:v1", "user:bob", "grant:7"
  std::string outcome;     // "ok", "denied", "failed" (a login), "error"
  unsigned status = 0;     // the HTTP status answered; 0 for scheduled runs
  std::string detail;      // what a run did, or why a request failed ("" when nothing to say)
};

// Which entries list() returns: every field that is set must match exactly; times are inclusive.
struct audit_query {
  std::string repository;
  std::string subject;
  std::string action;
  std::int64_t since_ms = 0;         // 0: from the first
  std::int64_t until_ms = 0;         // 0: to the last
  std::int64_t before_id = 0;        // paging: entries older than this id; 0 from the newest
  std::size_t n = 100;
};

class audit_records {
 public:
  virtual ~audit_records() = default;

  // Appends `entries` in one transaction, in their order (later ones get larger ids).
  virtual awaitable<result<void>> append(std::span<const audit_entry> entries) = 0;
  // Up to q.n entries matching `q`, newest (largest id) first.
  virtual awaitable<result<std::vector<audit_entry>>> list(const audit_query& q) = 0;
  // Deletes the entries older than `before_ms`; returns how many.
  virtual awaitable<result<std::uint64_t>> prune(std::int64_t before_ms) = 0;
};

}  // namespace berth::meta
