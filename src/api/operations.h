// What the API keeps for the people who run the registry: the Prometheus counters, the access log,
// the readiness check's and the storage gauges' cached answers, the collections in flight, the
// bound on refusals in the audit log, and whether the server is shutting down. The handlers of /health/live, /health/ready and /metrics are
// rows of the route table (operations.cc).
// Thread-safety: every member may be used concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "gc/collector.h"
#include "gc/progress.h"
#include "lifecycle/retention.h"
#include "meta/blob_records.h"
#include "ops/access_log.h"
#include "ops/metrics.h"
#include "ops/refusal_limit.h"

namespace berth::api {

struct operations_options {
  bool metrics_public = false;  // /metrics without credentials (`metrics.public`)
  ops::access_log_format access_log = ops::access_log_format::off;
};

// A value and when it was set, for answers reused while they are young. Thread-safety: a mutex,
// taken once per request that asks (readiness probes, scrapes), never on the registry's hot path.
template <class T>
class recent {
 public:
  // The value, when it was set less than `max_age` ago.
  std::optional<T> get(std::chrono::steady_clock::duration max_age) const {
    std::lock_guard lock(mutex_);
    if (!value_ || std::chrono::steady_clock::now() - set_ >= max_age) return std::nullopt;
    return value_;
  }
  void set(T value) {
    std::lock_guard lock(mutex_);
    set_ = std::chrono::steady_clock::now();
    value_ = std::move(value);
  }

 private:
  mutable std::mutex mutex_;
  std::chrono::steady_clock::time_point set_{};
  std::optional<T> value_;
};

class operations {
 public:
  explicit operations(operations_options options);

  const operations_options& options() const { return options_; }
  ops::metrics& metrics() { return metrics_; }
  const ops::access_log& access_log() const { return access_log_; }
  // Where this instance's garbage collections show their progress (GET /api/v1/gc).
  gc::progress_board& gc_progress() { return gc_progress_; }
  // Where this instance's collections look for blobs stored without a record (gc::orphan_search).
  gc::orphan_search& gc_orphans() { return gc_orphans_; }
  // Which refusals (403s, failed logins) the audit log records (ops/refusal_limit.h).
  ops::refusal_limit& audited_refusals() { return audited_refusals_; }
  // From now on /health/ready answers 503 (graceful shutdown has begun).
  void stopping() { stopping_.store(true, std::memory_order_relaxed); }
  bool is_stopping() const { return stopping_.load(std::memory_order_relaxed); }

  // The readiness check's last answer, when it is younger than `max_age`.
  struct readiness {
    bool ready = false;
    std::string body;  // {"status":…,"checks":{…}}
  };
  recent<readiness>& last_readiness() { return readiness_; }
  // What /metrics last read from the metadata store.
  recent<ops::store_reading>& last_store_reading() { return store_reading_; }

 private:
  operations_options options_;
  ops::metrics metrics_;
  ops::access_log access_log_;
  gc::progress_board gc_progress_;
  gc::orphan_search gc_orphans_;
  ops::refusal_limit audited_refusals_;
  std::atomic<bool> stopping_{false};
  recent<readiness> readiness_;
  recent<ops::store_reading> store_reading_;
};

// Counts a garbage collection's end in `m`, unless it was a dry run (which changes nothing).
void count_gc_run(ops::metrics& m, bool dry_run, const result<meta::gc_run>& run);
// Counts a retention run's end in `m`: what it deleted, or its failure.
void count_retention_run(ops::metrics& m, const result<std::vector<lifecycle::repository_plan>>& deleted);

}  // namespace berth::api
