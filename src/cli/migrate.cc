// berth migrate and berth import-distribution: moving an existing registry into the stores a
// configuration names (app/migrate.h; docs/scale-out.md "Moving an existing registry").
#include <fmt/core.h>

#include <cstdio>

#include "app/migrate.h"
#include "cli/commands.h"
#include "cli/common.h"

namespace berth::cli {
namespace {

struct migrate_args {
  std::string from_data, to_config, to_data, root, config, data;
};

void print_summary(const app::copy_summary& s) {
  fmt::print("{}", app::describe(s));
  std::fflush(stdout);
}

}  // namespace

void add_migrate_commands(CLI::App& cli) {
  auto args = std::make_shared<migrate_args>();

  auto* migrate = cli.add_subcommand(
      "migrate", "Copy an embedded registry (--data of filesystem + SQLite) into the stores a config names (S3 + PostgreSQL)");
  migrate->add_option("--from-data", args->from_data, "The embedded registry's data directory (no server running on it)")
      ->required()
      ->check(CLI::ExistingDirectory);
  migrate->add_option("--to-config", args->to_config, "The target's configuration file")
      ->required()
      ->check(CLI::ExistingFile);
  migrate->add_option("--to-data", args->to_data,
                      "The target's data directory, as its `berth serve --data` (default: the config's, else ./berth-data)");
  migrate->callback([args] {
    auto to = app::load_config(args->to_config);
    if (!args->to_data.empty()) to.data = args->to_data;
    print_summary(app::migrate(args->from_data, to, stderr));
  });

  auto* import = cli.add_subcommand(
      "import-distribution", "Import a Distribution (registry:2) filesystem store into the stores a config names");
  import->add_option("--root", args->root, "The directory holding docker/registry/v2 (Distribution stopped)")
      ->required()
      ->check(CLI::ExistingDirectory);
  import->add_option("--config", args->config, "The target's configuration file")->check(CLI::ExistingFile);
  import->add_option("--data", args->data, "The target's data directory (default: the config's, else ./berth-data)");
  import->callback([args] {
    auto to = args->config.empty() ? app::config{} : app::load_config(args->config);
    if (!args->data.empty()) to.data = args->data;
    print_summary(app::import_distribution(args->root, to, stderr));
  });
}

}  // namespace berth::cli
