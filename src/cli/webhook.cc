// berth webhook list | deliveries NAME [--failed] | redeliver ID | test NAME: the configured
// webhooks, their deliveries (time, event, status code, attempts, last error), a redelivery and a
// test ping (admin; /api/v1/webhooks..., README "Webhooks").
#include <fmt/core.h>

#include "cli/commands.h"
#include "cli/common.h"

namespace berth::cli {
namespace {

std::string list_text(const json& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ",") + i.get<std::string>();
  return out;
}

}  // namespace

void add_webhook_commands(CLI::App& cli) {
  struct options {
    std::string registry;
    std::string name;
    std::string id;
    bool failed = false;
    bool as_json = false;
  };
  auto o = std::make_shared<options>();
  auto* webhook = cli.add_subcommand("webhook", "Webhooks: list them, their deliveries, redeliver, test (admin)");
  webhook->require_subcommand(1);
  webhook->add_option("--registry", o->registry, "Registry URL (default: the last `berth login`)");
  webhook->add_flag("--json", o->as_json, "Print the answer as JSON");

  webhook->add_subcommand("list", "The configured webhooks")->callback([o] {
    const auto r = call(open_session(o->registry), "GET", "/api/v1/webhooks");
    if (o->as_json) return fmt::print("{}\n", r.dump(2));
    fmt::print("{:<20} {:<28} {:<30} {}\n", "NAME", "EVENTS", "REPOSITORIES", "URL");
    for (const auto& h : r.value("webhooks", json::array())) {
      fmt::print("{:<20} {:<28} {:<30} {}\n", h.value("name", ""), list_text(h.value("events", json::array())),
                 list_text(h.value("repositories", json::array())), h.value("url", ""));
    }
  });

  auto* deliveries = webhook->add_subcommand("deliveries", "A webhook's deliveries, newest first");
  deliveries->add_option("name", o->name, "The webhook")->required();
  deliveries->add_flag("--failed", o->failed, "Only those not delivered that failed at least once");
  deliveries->callback([o] {
    const auto r = call(open_session(o->registry), "GET",
                        fmt::format("/api/v1/webhooks/{}/deliveries{}", percent_encode(o->name),
                                    o->failed ? "?failed=true" : ""));
    if (o->as_json) return fmt::print("{}\n", r.dump(2));
    fmt::print("{:<8} {:<17} {:<10} {:<40} {:<10} {:>6} {:>8}  {}\n", "ID", "TIME", "EVENT", "TARGET", "STATE",
               "STATUS", "ATTEMPTS", "LAST ERROR");
    for (const auto& d : r.value("deliveries", json::array())) {
      std::string target = d.value("repository", "");
      if (const auto tag = d.value("tag", ""); !tag.empty()) target += ":" + tag;
      const auto status = d.value("status", 0);
      fmt::print("{:<8} {:<17} {:<10} {:<40} {:<10} {:>6} {:>8}  {}\n", d.value("id", 0),
                 time_text(d.value("time_ms", std::int64_t{0}) / 1000), d.value("event", ""), target,
                 d.value("state", ""), status == 0 ? std::string("-") : std::to_string(status), d.value("attempts", 0),
                 d.value("last_error", ""));
    }
  });

  auto* redeliver = webhook->add_subcommand("redeliver", "Send a delivery again (same id and body)");
  redeliver->add_option("id", o->id, "The delivery's id (berth webhook deliveries)")->required();
  redeliver->callback([o] {
    call(open_session(o->registry), "POST", fmt::format("/api/v1/webhook-deliveries/{}", percent_encode(o->id)));
    fmt::print("delivery {} queued\n", o->id);
  });

  auto* test = webhook->add_subcommand("test", "Send a ping event to a webhook now and print its answer");
  test->add_option("name", o->name, "The webhook")->required();
  test->callback([o] {
    const auto r =
        call(open_session(o->registry), "POST", fmt::format("/api/v1/webhooks/{}/ping", percent_encode(o->name)));
    if (o->as_json) return fmt::print("{}\n", r.dump(2));
    const int status = r.value("status", 0);
    fmt::print("webhook {} answered HTTP {}\n", o->name, status);
    if (status < 200 || status > 299) exit_with(exit_error);
  });
}

}  // namespace berth::cli
