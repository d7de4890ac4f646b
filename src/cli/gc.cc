// berth gc [--dry-run] [--json]: runs a garbage collection on the registry (POST /api/v1/gc) and
// prints what it freed (a dry run: what it would free), with a progress bar on a terminal; --runs
// lists the last collections.
#include <fmt/core.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <future>
#include <string>
#include <thread>

#include "cli/commands.h"
#include "cli/common.h"

namespace berth::cli {
namespace {

// 1536 -> "1.5 KiB".
std::string bytes_text(std::uint64_t n) {
  static constexpr const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  std::size_t u = 0;
  while (v >= 1024 && u + 1 < std::size(units)) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", n) : fmt::format("{:.1f} {}", v, units[u]);
}

void print_run(const json& r) {
  const bool dry = r.value("dry_run", false);
  fmt::print("{}{} blob(s), {}; {} link(s) ({}); {} manifest(s); {} ms\n", dry ? "would free " : "freed ",
             r.value("blobs", 0), bytes_text(r.value("bytes", std::uint64_t{0})), r.value("links", 0),
             bytes_text(r.value("link_bytes", std::uint64_t{0})), r.value("manifests", 0), r.value("duration_ms", 0));
}

// "[########------------]  40%".
std::string bar(double fraction) {
  constexpr int width = 20;
  const int full = static_cast<int>(std::clamp(fraction, 0.0, 1.0) * width);
  return fmt::format("[{}{}] {:3.0f}%", std::string(full, '#'), std::string(width - full, '-'),
                     std::clamp(fraction, 0.0, 1.0) * 100);
}

// On a terminal: estimates what the collection will free (a dry run), then runs it on another thread
// and redraws one line on stderr from `GET /api/v1/gc` (the instance's runs in flight) until it
// ends: its phase, and the blobs and bytes freed against the estimate. Behind a load balancer the
// progress may be asked of another instance, which shows nothing running: the line then says only
// that the collection goes on. Returns the collection's answer.
json collect_with_progress(const session& s, const std::string& target) {
  fmt::print(stderr, "estimating garbage on {} ...\r", s.url);
  std::fflush(stderr);
  const json estimate = call(s, "POST", "/api/v1/gc?dry_run=true", nullptr, job_timeout);
  const auto total_blobs = estimate.value("blobs", std::uint64_t{0});
  const auto total_bytes = estimate.value("bytes", std::uint64_t{0});
  const auto asked_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  std::promise<json> done;
  auto answer = done.get_future();
  std::thread worker([&] {
    try {
      done.set_value(call(s, "POST", target, nullptr, job_timeout));
    } catch (...) {
      done.set_exception(std::current_exception());
    }
  });
  while (answer.wait_for(std::chrono::milliseconds(250)) != std::future_status::ready) {
    std::string line = "collecting garbage ...";
    try {
      // The newest run that began after we asked (the clocks of CLI and server may differ a little).
      json mine;
      for (const auto& r : call(s, "GET", "/api/v1/gc").value("running", json::array())) {
        if (r.value("started_at_ms", std::int64_t{0}) >= asked_ms - 5000 &&
            (mine.is_null() ||
             r.value("started_at_ms", std::int64_t{0}) > mine.value("started_at_ms", std::int64_t{0}))) {
          mine = r;
        }
      }
      if (!mine.is_null()) {
        const auto blobs = mine.value("blobs", std::uint64_t{0});
        const auto bytes = mine.value("bytes", std::uint64_t{0});
        line = fmt::format("{:<9} {} {}/{} blobs, {}/{}", mine.value("phase", ""),
                           bar(total_bytes   ? static_cast<double>(bytes) / static_cast<double>(total_bytes)
                               : total_blobs ? static_cast<double>(blobs) / static_cast<double>(total_blobs)
                                             : 1.0),
                           blobs, std::max(blobs, total_blobs), bytes_text(bytes),
                           bytes_text(std::max(bytes, total_bytes)));
      }
    } catch (const std::exception&) {
      // The progress is only a view: when a look fails the line says only that the collection goes on.
    }
    fmt::print(stderr, "\r\33[2K{}", line);
    std::fflush(stderr);
  }
  worker.join();
  fmt::print(stderr, "\r\33[2K");
  std::fflush(stderr);
  return answer.get();
}

}  // namespace

void add_gc_commands(CLI::App& cli) {
  struct options {
    std::string registry;
    bool dry_run = false;
    bool as_json = false;
    bool runs = false;
  };
  auto o = std::make_shared<options>();
  auto* gc = cli.add_subcommand("gc", "Free the blobs nothing references (online; admin)");
  gc->add_flag("--dry-run", o->dry_run, "Only count what a collection would free");
  gc->add_flag("--json", o->as_json, "Print the answer as JSON");
  gc->add_flag("--runs", o->runs, "List the last collections instead of running one");
  gc->add_option("--registry", o->registry, "Registry URL (default: the last `berth login`)");
  gc->callback([o] {
    const auto s = open_session(o->registry);
    if (o->runs) {
      const auto r = call(s, "GET", "/api/v1/gc");
      if (o->as_json) {
        fmt::print("{}\n", r.dump(2));
        return;
      }
      for (const auto& run : r.value("runs", json::array())) {
        fmt::print("{}  ", time_text(run.value("started_at_ms", std::int64_t{0}) / 1000));
        print_run(run);
      }
      return;
    }
    const std::string target = fmt::format("/api/v1/gc?dry_run={}", o->dry_run ? "true" : "false");
    const json r = !o->as_json && !o->dry_run && ::isatty(STDERR_FILENO)
                       ? collect_with_progress(s, target)
                       : call(s, "POST", target, nullptr, job_timeout);
    if (o->as_json) {
      fmt::print("{}\n", r.dump(2));
    } else {
      print_run(r);
    }
  });
}

}  // namespace berth::cli
