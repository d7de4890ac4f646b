#include "ops/metrics.h"

#include <fmt/format.h>

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace berth::ops {
namespace {

constexpr std::array<std::string_view, 4> kReasons = {"bad_credentials", "bad_token", "denied", "rate_limited"};

void header(fmt::memory_buffer& out, std::string_view name, std::string_view type, std::string_view help) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

// One line per counter: `name{label="names[i]"} counters[i]`.
template <std::size_t N>
void labeled_lines(fmt::memory_buffer& out, std::string_view name, std::string_view label,
                   const std::array<std::string_view, N>& names, const std::array<std::atomic<std::uint64_t>, N>& counters) {
  for (std::size_t i = 0; i < N; ++i) {
    fmt::format_to(std::back_inserter(out), "{}{{{}=\"{}\"}} {}\n", name, label, names[i],
                   counters[i].load(std::memory_order_relaxed));
  }
}

// The _bucket, _sum and _count lines of histogram `name` for the series labelled `labels`
// (`k="v",...`, or "" for none), from `h`'s non-cumulative buckets over `bounds`. Nothing when it
// counted nothing.
template <std::size_t Bounds>
void histogram_lines(fmt::memory_buffer& out, std::string_view name, std::string_view labels,
                     const std::array<double, Bounds>& bounds, const duration_histogram<Bounds>& h) {
  std::array<std::uint64_t, Bounds + 1> counts{};
  std::uint64_t total = 0;
  for (std::size_t b = 0; b < counts.size(); ++b) total += counts[b] = h.buckets[b].load(std::memory_order_relaxed);
  if (total == 0) return;
  auto it = std::back_inserter(out);
  const std::string_view comma = labels.empty() ? "" : ",";
  std::uint64_t cumulative = 0;
  for (std::size_t b = 0; b < Bounds; ++b) {
    cumulative += counts[b];
    fmt::format_to(it, "{}_bucket{{{}{}le=\"{}\"}} {}\n", name, labels, comma, bounds[b], cumulative);
  }
  fmt::format_to(it, "{}_bucket{{{}{}le=\"+Inf\"}} {}\n", name, labels, comma, total);
  const std::string braced = labels.empty() ? std::string() : fmt::format("{{{}}}", labels);
  fmt::format_to(it, "{}_sum{} {}\n", name, braced,
                 static_cast<double>(h.nanoseconds.load(std::memory_order_relaxed)) / 1e9);
  fmt::format_to(it, "{}_count{} {}\n", name, braced, total);
}

// The process's start, in seconds since the epoch: its start in clock ticks after boot
// (/proc/self/stat, field 22) plus the boot time (/proc/stat, btime). Now when either is unreadable.
double process_start_time() {
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::ifstream stat("/proc/self/stat");
  std::string line;
  if (!std::getline(stat, line)) return now;
  // The command name (field 2) is in parentheses and may hold spaces: count fields after its ')'.
  std::istringstream fields(line.substr(line.rfind(')') + 2));
  std::string field;
  unsigned long long ticks = 0;
  for (int i = 3; i <= 22 && fields >> field; ++i) {
    if (i == 22) ticks = std::stoull(field);
  }
  std::ifstream system_stat("/proc/stat");
  for (std::string key; system_stat >> key;) {
    if (key == "btime") {
      double boot = 0;
      system_stat >> boot;
      return boot + static_cast<double>(ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK));
    }
    std::getline(system_stat, line);
  }
  return now;
}

std::size_t open_fds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  std::size_t n = 0;
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(dir);
  return n > 0 ? n - 1 : 0;  // not the directory's own descriptor
}

std::uint64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::uint64_t size = 0;
  std::uint64_t resident = 0;
  statm >> size >> resident;
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace

metrics::metrics(std::span<const endpoint_labels> endpoints)
    : labels_(endpoints),
      endpoints_(std::make_unique<per_endpoint[]>(endpoints.size() + 1)),
      start_time_(process_start_time()) {}

metrics::~metrics() = default;

void metrics::request(std::size_t endpoint, unsigned status, std::chrono::nanoseconds duration) {
  per_endpoint& e = endpoints_[endpoint];
  e.by_status[status - first_status].fetch_add(1, std::memory_order_relaxed);
  e.duration.observe(bucket_bounds, duration);
}

void metrics::gc_ran(std::chrono::nanoseconds duration, std::uint64_t freed_bytes) {
  gc_runs_[0].fetch_add(1, std::memory_order_relaxed);
  gc_duration_.observe(gc_bucket_bounds, duration);
  gc_freed_bytes_.fetch_add(freed_bytes, std::memory_order_relaxed);
}

void metrics::retention_ran(std::uint64_t tags, std::uint64_t manifests) {
  retention_runs_[0].fetch_add(1, std::memory_order_relaxed);
  retention_tags_.fetch_add(tags, std::memory_order_relaxed);
  retention_manifests_.fetch_add(manifests, std::memory_order_relaxed);
}

void metrics::auth_failed(auth_failure why) {
  auth_failures_[static_cast<std::size_t>(why)].fetch_add(1, std::memory_order_relaxed);
}

void metrics::set_webhooks(std::vector<std::string_view> names) {
  webhook_deliveries_ = std::make_unique<std::atomic<std::uint64_t>[]>(names.size() * webhook_outcomes);
  webhooks_ = std::move(names);
}

std::string metrics::render(const store_reading& store) const {
  fmt::memory_buffer out;
  auto it = std::back_inserter(out);
  auto route_of = [&](std::size_t i) { return i < labels_.size() ? labels_[i] : endpoint_labels{"none", "other"}; };
  const std::size_t n = labels_.size() + 1;

  header(out, "berth_http_requests_total", "counter", "HTTP requests answered, by route (API operation), method and status.");
  for (std::size_t i = 0; i < n; ++i) {
    const auto l = route_of(i);
    for (unsigned s = 0; s < statuses; ++s) {
      const auto v = endpoints_[i].by_status[s].load(std::memory_order_relaxed);
      if (v != 0)
        fmt::format_to(it, "berth_http_requests_total{{route=\"{}\",method=\"{}\",code=\"{}\"}} {}\n", l.route,
                       l.method, s + first_status, v);
    }
  }
  header(out, "berth_http_request_duration_seconds", "histogram",
         "Time from a request's header to its response's start, by route.");
  for (std::size_t i = 0; i < n; ++i) {
    // Rows may share an operation name (GET and HEAD of /v2/): the method label keeps them apart.
    const auto l = route_of(i);
    histogram_lines(out, "berth_http_request_duration_seconds", fmt::format("route=\"{}\",method=\"{}\"", l.route, l.method),
                    bucket_bounds, endpoints_[i].duration);
  }

  header(out, "berth_blob_bytes_received_total", "counter", "Blob bytes received in upload bodies.");
  fmt::format_to(it, "berth_blob_bytes_received_total {}\n", bytes_received_.load(std::memory_order_relaxed));
  header(out, "berth_blob_bytes_sent_total", "counter", "Blob bytes answered to GET requests.");
  fmt::format_to(it, "berth_blob_bytes_sent_total {}\n", bytes_sent_.load(std::memory_order_relaxed));
  header(out, "berth_uploads_in_flight", "gauge", "Upload requests being served.");
  fmt::format_to(it, "berth_uploads_in_flight {}\n", uploads_in_flight_.load(std::memory_order_relaxed));
  header(out, "berth_connections_open", "gauge", "Open client connections.");
  fmt::format_to(it, "berth_connections_open {}\n", connections_ ? connections_() : 0);
  header(out, "berth_auth_failures_total", "counter", "Refused callers, by reason.");
  labeled_lines(out, "berth_auth_failures_total", "reason", kReasons, auth_failures_);
  header(out, "berth_tokens_issued_total", "counter", "Access tokens issued by /token.");
  fmt::format_to(it, "berth_tokens_issued_total {}\n", tokens_issued_.load(std::memory_order_relaxed));
  if (!webhooks_.empty()) {
    header(out, "berth_webhook_deliveries_total", "counter", "Webhook delivery attempts, by webhook and outcome.");
    static constexpr std::array<std::string_view, webhook_outcomes> kOutcomes = {"delivered", "failed", "given_up"};
    for (std::size_t h = 0; h < webhooks_.size(); ++h) {
      for (std::size_t o = 0; o < webhook_outcomes; ++o) {
        fmt::format_to(it, "berth_webhook_deliveries_total{{webhook=\"{}\",outcome=\"{}\"}} {}\n", webhooks_[h],
                       kOutcomes[o], webhook_deliveries_[h * webhook_outcomes + o].load(std::memory_order_relaxed));
      }
    }
  }

  header(out, "berth_storage_bytes", "gauge",
         "Bytes a namespace holds: its distinct blobs, each once, and its manifests (what its quota counts).");
  for (const auto& ns : store.namespaces)
    fmt::format_to(it, "berth_storage_bytes{{namespace=\"{}\"}} {}\n", ns.name, ns.bytes);
  header(out, "berth_repositories", "gauge", "Repositories in a namespace.");
  for (const auto& ns : store.namespaces)
    fmt::format_to(it, "berth_repositories{{namespace=\"{}\"}} {}\n", ns.name, ns.repositories);
  static constexpr std::array<std::string_view, 2> kRunOutcomes = {"success", "failure"};
  header(out, "berth_gc_runs_total", "counter", "Garbage collections run by this process (not dry runs), by outcome.");
  labeled_lines(out, "berth_gc_runs_total", "outcome", kRunOutcomes, gc_runs_);
  header(out, "berth_gc_duration_seconds", "histogram", "Duration of the garbage collections that succeeded.");
  histogram_lines(out, "berth_gc_duration_seconds", "", gc_bucket_bounds, gc_duration_);
  header(out, "berth_gc_freed_bytes_total", "counter", "Blob bytes deleted by garbage collection.");
  fmt::format_to(it, "berth_gc_freed_bytes_total {}\n", gc_freed_bytes_.load(std::memory_order_relaxed));
  if (store.last_collection_ms) {
    header(out, "berth_gc_last_success_timestamp_seconds", "gauge",
           "When the newest garbage collection of any instance (not a dry run) ended, in unix seconds.");
    fmt::format_to(it, "berth_gc_last_success_timestamp_seconds {:.3f}\n",
                   static_cast<double>(*store.last_collection_ms) / 1000);
  }
  header(out, "berth_retention_runs_total", "counter", "Retention runs by this process (not previews), by outcome.");
  labeled_lines(out, "berth_retention_runs_total", "outcome", kRunOutcomes, retention_runs_);
  header(out, "berth_retention_deleted_tags_total", "counter", "Tags deleted by retention runs.");
  fmt::format_to(it, "berth_retention_deleted_tags_total {}\n", retention_tags_.load(std::memory_order_relaxed));
  header(out, "berth_retention_deleted_manifests_total", "counter", "Manifests deleted by retention runs.");
  fmt::format_to(it, "berth_retention_deleted_manifests_total {}\n", retention_manifests_.load(std::memory_order_relaxed));

  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  rlimit files{};
  ::getrlimit(RLIMIT_NOFILE, &files);
  header(out, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
  fmt::format_to(it, "process_cpu_seconds_total {}\n", seconds(usage.ru_utime) + seconds(usage.ru_stime));
  header(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
  fmt::format_to(it, "process_resident_memory_bytes {}\n", resident_bytes());
  header(out, "process_open_fds", "gauge", "Number of open file descriptors.");
  fmt::format_to(it, "process_open_fds {}\n", open_fds());
  header(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
  fmt::format_to(it, "process_max_fds {}\n", files.rlim_cur);
  header(out, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.");
  fmt::format_to(it, "process_start_time_seconds {:.2f}\n", start_time_);
  return fmt::to_string(out);
}

}  // namespace berth::ops
