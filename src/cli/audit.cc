// berth audit [--repo R] [--subject S] [--action A] [--since 24h] [--until T] [--limit N] [--json]:
// the audit log, newest first (GET /api/v1/audit, admin).
#include <fmt/core.h>

#include "cli/commands.h"
#include "cli/common.h"

namespace berth::cli {

void add_audit_commands(CLI::App& cli) {
  struct options {
    std::string registry;
    std::string repository;
    std::string subject;
    std::string action;
    std::string since;
    std::string until;
    std::size_t limit = 100;
    bool as_json = false;
  };
  auto o = std::make_shared<options>();
  auto* audit = cli.add_subcommand("audit", "Who changed what, and who was refused: the audit log, newest first (admin)");
  audit->add_option("--repo", o->repository, "Only entries about this repository");
  audit->add_option("--subject", o->subject, "Only entries of this identity (user:alice, robot:ci, system)");
  audit->add_option("--action", o->action, "Only this action (manifest_push, tag_delete, login, ...)");
  audit->add_option("--since", o->since, "Only entries at or after: an age (90s, 30m, 24h, 7d) or unix milliseconds");
  audit->add_option("--until", o->until, "Only entries at or before: an age or unix milliseconds");
  audit->add_option("--limit", o->limit, "At most this many entries (default 100)");
  audit->add_flag("--json", o->as_json, "Print the answer as JSON");
  audit->add_option("--registry", o->registry, "Registry URL (default: the last `berth login`)");
  audit->callback([o] {
    std::string target = fmt::format("/api/v1/audit?n={}", o->limit);
    for (const auto& [key, value] : {std::pair{"repository", &o->repository}, std::pair{"subject", &o->subject},
                                     std::pair{"action", &o->action}, std::pair{"since", &o->since},
                                     std::pair{"until", &o->until}}) {
      if (!value->empty()) target += fmt::format("&{}={}", key, percent_encode(*value));
    }
    const auto s = open_session(o->registry);
    const auto r = call(s, "GET", target);
    if (o->as_json) {
      fmt::print("{}\n", r.dump(2));
      return;
    }
    fmt::print("{:<16} {:<20} {:<16} {:<17} {:<40} {:<11} {}\n", "TIME (UTC)", "SUBJECT", "ADDRESS", "ACTION", "TARGET",
               "OUTCOME", "DETAIL");
    for (const auto& e : r.value("entries", json::array())) {
      fmt::print("{:<16} {:<20} {:<16} {:<17} {:<40} {:<11} {}\n",
                 time_text(json(e.value("time_ms", std::int64_t{0}) / 1000)), e.value("subject", ""),
                 e.value("address", ""), e.value("action", ""), e.value("target", ""),
                 fmt::format("{} {}", e.value("outcome", ""), e.value("status", 0)), e.value("detail", ""));
    }
  });
}

}  // namespace berth::cli
