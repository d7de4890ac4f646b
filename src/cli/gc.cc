// berth gc [--dry-run] [--json]: runs a garbage collection on the registry (POST /api/v1/gc) and
// prints what it freed (a dry run: what it would free); --runs lists the last collections.
#include <fmt/core.h>
#include <unistd.h>

#include <cstdio>

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
    if (!o->as_json && ::isatty(STDERR_FILENO)) {
      fmt::print(stderr, "{} on {} ...\r", o->dry_run ? "estimating garbage" : "collecting garbage", s.url);
      std::fflush(stderr);
    }
    const auto r = call(s, "POST", fmt::format("/api/v1/gc?dry_run={}", o->dry_run ? "true" : "false"));
    if (!o->as_json && ::isatty(STDERR_FILENO)) fmt::print(stderr, "\33[2K");
    if (o->as_json) {
      fmt::print("{}\n", r.dump(2));
    } else {
      print_run(r);
    }
  });
}

}  // namespace berth::cli
