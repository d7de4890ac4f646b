// berth retention preview [--repo PATTERN] [--json]   what a retention run would delete now
// berth retention run [--repo PATTERN] [--yes]        deletes it (asks first on a terminal without --yes)
#include <fmt/core.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include <unistd.h>

#include "cli/commands.h"
#include "cli/common.h"

namespace berth::cli {
namespace {

struct retention_options {
  std::string registry;
  std::string repo;
  bool json_out = false;
  bool yes = false;
};

json retention_call(const retention_options& o, const std::string& what) {
  const json body = o.repo.empty() ? json::object() : json{{"repository", o.repo}};
  return call(open_session(o.registry), "POST", "/api/v1/retention/" + what, body, job_timeout);
}

void print_plan(const json& r, std::string_view verb) {
  for (const auto& repo : r["repositories"]) {
    fmt::print("{}\n", repo.value("repository", ""));
    for (const auto& t : repo["tags"]) {
      fmt::print("  {:<30} {}  {}  {} bytes\n", t.value("tag", ""), t.value("digest", "").substr(0, 19),
                 time_text(t.value("pushed_at_ms", std::int64_t{0}) / 1000), t.value("size", std::uint64_t{0}));
    }
    const auto untagged = repo.value("untagged", std::size_t{0});
    const auto manifests = repo["manifests"].size() - untagged;
    if (manifests > 0) fmt::print("  and {} manifest(s) they leave untagged, with their referrers\n", manifests);
    if (untagged > 0) fmt::print("  and {} manifest(s) untagged for longer than untagged_days, with their referrers\n", untagged);
    fmt::print("  a garbage collection after it frees {}\n", human_size(repo.value("bytes_freed_by_gc", std::uint64_t{0})));
  }
  fmt::print("{} tag(s) and {} manifest(s) {} ({} of the manifests untagged for longer than untagged_days); a "
             "garbage collection after it would free {}\n",
             r.value("tags", 0), r.value("manifests", 0), verb, r.value("untagged", 0),
             human_size(r.value("bytes_freed_by_gc", std::uint64_t{0})));
}

}  // namespace

void add_retention_commands(CLI::App& cli) {
  auto o = std::make_shared<retention_options>();
  auto* group = cli.add_subcommand("retention", "Delete tags and untagged manifests that no retention rule keeps (admin)");
  group->require_subcommand(1);
  auto* preview = group->add_subcommand("preview", "Show what a retention run would delete now");
  auto* run = group->add_subcommand("run", "Delete what no retention rule keeps");
  for (auto* c : {preview, run}) {
    c->add_option("--registry", o->registry, "Registry URL (default: the last `berth login`)");
    c->add_option("--repo", o->repo, "Only repositories matching this pattern, e.g. 'dev/*'");
    c->add_flag("--json", o->json_out, "Print the API's JSON answer");
  }
  run->add_flag("--yes", o->yes, "Do not ask for confirmation");

  preview->callback([o] {
    const auto r = retention_call(*o, "preview");
    if (o->json_out) {
      fmt::print("{}\n", r.dump(2));
      return;
    }
    print_plan(r, "would be deleted");
  });
  run->callback([o] {
    if (!o->yes) {
      if (!::isatty(STDIN_FILENO)) throw cli_error("retention run deletes tags: confirm with --yes");
      const auto planned = retention_call(*o, "preview");
      print_plan(planned, "would be deleted");
      if (planned.value("tags", 0) == 0 && planned.value("manifests", 0) == 0) return;
      fmt::print("Delete them? [y/N] ");
      std::fflush(stdout);
      std::string answer;
      std::getline(std::cin, answer);
      if (answer != "y" && answer != "yes") throw cli_error("nothing deleted");
    }
    const auto r = retention_call(*o, "run");
    if (o->json_out) {
      fmt::print("{}\n", r.dump(2));
      return;
    }
    print_plan(r, "deleted");
  });
}

}  // namespace berth::cli
