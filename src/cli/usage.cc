// berth usage [--namespace NS] [--json]: storage use per namespace and repository, the dedup
// ratio, and each namespace's quota with the share used (GET /api/v1/usage).
#include <fmt/core.h>

#include "cli/commands.h"
#include "cli/common.h"

namespace berth::cli {

void add_usage_commands(CLI::App& cli) {
  struct options {
    std::string registry;
    std::string ns;
    bool as_json = false;
  };
  auto o = std::make_shared<options>();
  auto* usage = cli.add_subcommand("usage", "Storage use per namespace and repository, with dedup savings (admin)");
  usage->add_option("--namespace", o->ns, "Only this namespace (the first component of repository names)");
  usage->add_flag("--json", o->as_json, "Print the answer as JSON");
  usage->add_option("--registry", o->registry, "Registry URL (default: the last `berth login`)");
  usage->callback([o] {
    const auto s = open_session(o->registry);
    const auto r = call(s, "GET", o->ns.empty() ? "/api/v1/usage" : "/api/v1/usage?namespace=" + percent_encode(o->ns));
    if (o->as_json) {
      fmt::print("{}\n", r.dump(2));
      return;
    }
    fmt::print("{:<40} {:>6} {:>9} {:>16} {:>16} {:>6} {:>16} {:>6}\n", "NAMESPACE / REPOSITORY", "TAGS",
               "MANIFESTS", "LOGICAL BYTES", "STORED BYTES", "DEDUP", "QUOTA", "USED");
    for (const auto& n : r.value("namespaces", json::array())) {
      const auto quota = n.value("quota_bytes", json());
      const auto max_repos = n.value("max_repositories", json());
      fmt::print("{:<40} {:>6} {:>9} {:>16} {:>16} {:>5.2f}x {:>16} {:>6}\n",
                 fmt::format("{} ({} repositories{})", n.value("name", ""), n.value("repositories", 0),
                             max_repos.is_number() ? fmt::format(" of {}", max_repos.get<std::uint64_t>()) : ""),
                 n.value("tags", 0), n.value("manifests", 0), n.value("logical_bytes", std::uint64_t{0}),
                 n.value("stored_bytes", std::uint64_t{0}), n.value("dedup_ratio", 1.0),
                 quota.is_number() ? fmt::format("{}", quota.get<std::uint64_t>()) : "-",
                 quota.is_number() ? fmt::format("{:.0f}%", n.value("quota_percent", 0.0)) : "-");
      for (const auto& repo : n.value("repository_usage", json::array())) {
        fmt::print("  {:<38} {:>6} {:>9} {:>16}\n", repo.value("name", ""), repo.value("tags", 0),
                   repo.value("manifests", 0), repo.value("logical_bytes", std::uint64_t{0}));
      }
    }
    if (r.contains("stored_bytes")) {
      fmt::print("{:<40} {:>6} {:>9} {:>16} {:>16} {:>5.2f}x\n", "registry", "", "",
                 r.value("logical_bytes", std::uint64_t{0}), r.value("stored_bytes", std::uint64_t{0}),
                 r.value("dedup_ratio", 1.0));
    }
  });
}

}  // namespace berth::cli
