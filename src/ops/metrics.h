// Berth's Prometheus metrics: counters that the request path updates without a lock or a map (each
// is an atomic in an array indexed by the route table's endpoint), rendered in the Prometheus text
// format (version 0.0.4) when /metrics is scraped. Names follow Prometheus conventions: a `berth_`
// prefix, base units (seconds, bytes), `_total` on counters; plus the standard `process_` set.
// Thread-safety: every method may be called concurrently; render() reads each counter once, so a
// scrape taken during traffic is consistent per series, not across series.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace berth::ops {

// The labels of one endpoint: its operation name (the route table's, e.g. "manifest_get") and method.
struct endpoint_labels {
  std::string_view route;
  std::string_view method;
};

// Why a caller was refused (berth_auth_failures_total{reason}).
enum class auth_failure {
  bad_credentials,  // Basic credentials (or a robot or OIDC token as password) refused
  bad_token,        // a bearer token invalid, expired or without the scope the route needs
  denied,           // authenticated, but the grants do not allow it (403)
  rate_limited,     // too many failed logins from the address (429)
};

// How one webhook delivery attempt ended (berth_webhook_deliveries_total{webhook,outcome}).
enum class webhook_outcome {
  delivered,  // a 2xx answer
  failed,     // no answer or another status: retried later
  given_up,   // failed, and the event is older than the retry window: no more attempts
};

// One namespace's storage, from the metadata store's counters at scrape time
// (berth_storage_bytes{namespace}, berth_repositories{namespace}).
struct namespace_storage {
  std::string name;
  std::uint64_t bytes = 0;  // its distinct blobs, each once, plus its manifests (what its quota counts)
  std::uint64_t repositories = 0;
};

// What a scrape reads from the metadata store, which every instance shares.
struct store_reading {
  std::vector<namespace_storage> namespaces;
  // When the newest garbage collection of any instance (not a dry run) ended, unix ms
  // (berth_gc_last_success_timestamp_seconds); none before the first.
  std::optional<std::int64_t> last_collection_ms;
};

// A histogram of durations: a count per bucket of `Bounds` (upper bounds in seconds, then +Inf) and
// their sum, each an atomic.
template <std::size_t Bounds>
struct duration_histogram {
  // Non-cumulative: buckets[i] counts durations in (bound[i-1], bound[i]]; the last is +Inf.
  std::array<std::atomic<std::uint64_t>, Bounds + 1> buckets{};
  std::atomic<std::uint64_t> nanoseconds{0};

  void observe(const std::array<double, Bounds>& bounds, std::chrono::nanoseconds duration) {
    const double seconds = std::chrono::duration<double>(duration).count();
    std::size_t bucket = 0;
    while (bucket < Bounds && seconds > bounds[bucket]) ++bucket;
    buckets[bucket].fetch_add(1, std::memory_order_relaxed);
    nanoseconds.fetch_add(static_cast<std::uint64_t>(duration.count()), std::memory_order_relaxed);
  }
};

class metrics {
 public:
  // `endpoints` labels the counters: index i is endpoint i; index endpoints.size() counts the
  // requests that matched no endpoint (route "none"). The views must outlive the object.
  explicit metrics(std::span<const endpoint_labels> endpoints);
  ~metrics();

  // One answered request. REQUIRES: endpoint <= endpoints.size(); 100 <= status <= 599.
  void request(std::size_t endpoint, unsigned status, std::chrono::nanoseconds duration);
  void auth_failed(auth_failure why);
  void token_issued() { tokens_issued_.fetch_add(1, std::memory_order_relaxed); }
  void blob_bytes_received(std::uint64_t n) { bytes_received_.fetch_add(n, std::memory_order_relaxed); }
  void blob_bytes_sent(std::uint64_t n) { bytes_sent_.fetch_add(n, std::memory_order_relaxed); }
  // An upload request began (true) or ended (false) receiving its body.
  void upload(bool begins) { uploads_in_flight_.fetch_add(begins ? 1 : -1, std::memory_order_relaxed); }
  // The webhooks' names (config order) label berth_webhook_deliveries_total. REQUIRES: called once,
  // before any webhook_delivery(), and the views outlive the object.
  void set_webhooks(std::vector<std::string_view> names);
  // One delivery attempt to webhook `hook` (its index in set_webhooks). REQUIRES: hook < names.size().
  void webhook_delivery(std::size_t hook, webhook_outcome outcome) {
    webhook_deliveries_[hook * webhook_outcomes + static_cast<std::size_t>(outcome)].fetch_add(1, std::memory_order_relaxed);
  }
  // A garbage collection that finished (dry runs are not counted: they change nothing): how long it
  // took and the blob bytes it deleted. A failed one counts in berth_gc_runs_total{outcome="failure"}.
  void gc_ran(std::chrono::nanoseconds duration, std::uint64_t freed_bytes);
  void gc_failed() { gc_runs_[1].fetch_add(1, std::memory_order_relaxed); }
  // A retention run that finished (not a preview), and the tags and manifests it deleted; or failed.
  void retention_ran(std::uint64_t tags, std::uint64_t manifests);
  void retention_failed() { retention_runs_[1].fetch_add(1, std::memory_order_relaxed); }
  // Where berth_connections_open comes from (the HTTP server); set before the first scrape.
  void set_connections_source(std::function<std::size_t()> source) { connections_ = std::move(source); }

  // Every series in the Prometheus text format, with what `store` read (nothing when the store
  // could not answer).
  std::string render(const store_reading& store = {}) const;

  // The request histogram's upper bounds, in seconds (Prometheus' defaults).
  static constexpr std::array<double, 11> bucket_bounds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                           0.5,   1,    2.5,   5,    10};
  // Garbage collection's: from a small registry's milliseconds to a large one's hour.
  static constexpr std::array<double, 8> gc_bucket_bounds = {0.1, 1, 10, 60, 300, 900, 1800, 3600};

 private:
  static constexpr unsigned first_status = 100;
  static constexpr unsigned statuses = 500;  // 100..599
  struct per_endpoint {
    std::array<std::atomic<std::uint64_t>, statuses> by_status{};
    duration_histogram<bucket_bounds.size()> duration;
  };

  std::span<const endpoint_labels> labels_;
  std::unique_ptr<per_endpoint[]> endpoints_;
  std::array<std::atomic<std::uint64_t>, 4> auth_failures_{};
  std::atomic<std::uint64_t> tokens_issued_{0};
  std::atomic<std::uint64_t> bytes_received_{0};
  std::atomic<std::uint64_t> bytes_sent_{0};
  std::atomic<std::int64_t> uploads_in_flight_{0};
  std::function<std::size_t()> connections_;
  std::array<std::atomic<std::uint64_t>, 2> gc_runs_{};  // success, failure
  duration_histogram<gc_bucket_bounds.size()> gc_duration_;
  std::atomic<std::uint64_t> gc_freed_bytes_{0};
  std::array<std::atomic<std::uint64_t>, 2> retention_runs_{};  // success, failure
  std::atomic<std::uint64_t> retention_tags_{0};
  std::atomic<std::uint64_t> retention_manifests_{0};
  static constexpr std::size_t webhook_outcomes = 3;
  std::vector<std::string_view> webhooks_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> webhook_deliveries_;  // webhooks_.size() * webhook_outcomes
  double start_time_;  // seconds since the epoch
};

}  // namespace berth::ops
