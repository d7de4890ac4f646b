// The policy requests are decided by: the server config's policy plus the namespaces created through
// the admin API, which the identity store keeps (so that they share its generation, the counter that
// already tells every instance over one PostgreSQL to drop what it derived from stored identities).
// The policy is rebuilt when that generation has moved on since it was built: a write through this
// instance advances it before the write completes, another instance's write is seen within
// auth::generation_poll_interval (PostgreSQL). So a namespace created, changed or deleted through the
// API applies without a restart, and an unchanged registry costs a request one atomic load, a mutex
// and a shared_ptr copy, never a store round trip.
// Precedence: a namespace the config declares is authoritative; a stored one of the same name (which
// the admin API refuses to create) is ignored.
// Thread-safety: every method is thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "auth/identity_store.h"
#include "policy/policy.h"

namespace berth::policy {

// `config` with the stored namespaces added after its own (origin::api), those it names skipped.
// A stored record whose settings do not parse is skipped and logged.
policy_config with_stored_namespaces(const policy_config& config, const std::vector<auth::namespace_record>& stored);

class live_policy {
 public:
  // Called with the namespaces of each policy built (the config's, then the stored ones), under
  // the live policy's lock and before the policy is used, so the newest build is the last call:
  // the server gives the metadata store the quotas it enforces.
  using namespaces_hook = std::function<void(const std::vector<namespace_rule>&)>;

  // REQUIRES: `store` outlives the live_policy.
  live_policy(policy_config config, auth::identity_store& store, namespaces_hook on_build = {});

  // The current policy. Reads the stored namespaces (one store read) only when the store's generation
  // moved on since the last build; when that read fails, answers the last policy built (and logs),
  // or the failure when none was built yet.
  auth::awaitable<result<std::shared_ptr<const policy>>> current();

 private:
  const policy_config config_;
  auth::identity_store& store_;
  const namespaces_hook on_build_;
  std::mutex mutex_;
  std::shared_ptr<const policy> built_;  // guarded by mutex_; null until the first build
  std::uint64_t built_under_ = 0;        // the generation built_ was read under; guarded by mutex_
};

}  // namespace berth::policy
