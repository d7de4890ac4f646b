// What the API keeps for the people who run the registry: the Prometheus counters, the access log,
// the readiness check's cached answer, the collections in flight, and whether the server is
// shutting down. The handlers of
// /health/live, /health/ready and /metrics are rows of the route table (operations.cc).
// Thread-safety: every member may be used concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <string>

#include "gc/progress.h"
#include "ops/access_log.h"
#include "ops/metrics.h"

namespace berth::api {

struct operations_options {
  bool metrics_public = false;  // /metrics without credentials (`metrics.public`)
  ops::access_log_format access_log = ops::access_log_format::off;
};

class operations {
 public:
  explicit operations(operations_options options);

  const operations_options& options() const { return options_; }
  ops::metrics& metrics() { return metrics_; }
  const ops::access_log& access_log() const { return access_log_; }
  // Where this instance's garbage collections show their progress (GET /api/v1/gc).
  gc::progress_board& gc_progress() { return gc_progress_; }
  // From now on /health/ready answers 503 (graceful shutdown has begun).
  void stopping() { stopping_.store(true, std::memory_order_relaxed); }
  bool is_stopping() const { return stopping_.load(std::memory_order_relaxed); }

  // The readiness check's last answer, when it is younger than `max_age`.
  struct readiness {
    bool ready = false;
    std::string body;  // {"status":…,"checks":{…}}
  };
  std::optional<readiness> cached_readiness(std::chrono::steady_clock::duration max_age) const;
  void cache_readiness(readiness r);

 private:
  operations_options options_;
  ops::metrics metrics_;
  ops::access_log access_log_;
  gc::progress_board gc_progress_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mutex_;  // guards the two below (taken once per readiness request, not per request)
  std::chrono::steady_clock::time_point checked_{};
  std::optional<readiness> last_;
};

}  // namespace berth::api
