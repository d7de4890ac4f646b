// The audit log's entries, made in three places only: registry_api::handle records every answered
// request of an endpoint that changes something (route_table.h: `audit`), whatever its outcome, and
// every 403 DENIED of any endpoint; login() records each failed login (Basic credentials, /token);
// serve.cc records the scheduled retention and GC runs. Entries are built from the route, the
// identity and what a handler notes (audit_note), never from a body, a header or a query string, so
// no password or token reaches them. Pulls that succeed record nothing.
//
// Written synchronously: the entry is committed (SQLite: into the WAL, without an fsync of its own;
// PostgreSQL: one INSERT) before the response is sent, so an acknowledged change always has its
// entry after a crash of the process. A failure to record is logged and does not change the answer.
// Thread-safety: free functions over thread-safe stores.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "api/handlers.h"
#include "lifecycle/retention.h"
#include "meta/metadata_store.h"

namespace berth::api {

// What a handler adds to its request's entry (context::audit) when the route alone does not say it:
// the repository or the target its body names, what a run did.
struct audit_note {
  std::string repository;
  std::string target;
  std::string detail;
};

// The entry of an answered request, when it is one to record (see above).
awaitable<void> audit_request(context& ctx, const request& req, const route& r, const endpoint* e,
                              const result<response>& res, unsigned status, std::string_view identity,
                              const audit_note& note);
// A login refused with UNAUTHORIZED: the subject the name claims (user:NAME, robot:NAME, oidc), never
// the password; `why` is the authenticator's reason.
awaitable<void> audit_failed_login(context& ctx, const request& req, std::string_view username,
                                   std::string_view password, std::string_view why);
// A scheduled run by `system` ("retention_run", "gc_run") and what it did.
awaitable<void> audit_scheduled_run(meta::metadata_store& meta, std::string_view action, std::string_view outcome,
                                    std::string_view detail);

// What a run did, in words, for its entry's detail.
std::string describe_gc_run(const meta::gc_run& run);
std::string describe_retention_run(const std::vector<lifecycle::repository_plan>& deleted);

}  // namespace berth::api
