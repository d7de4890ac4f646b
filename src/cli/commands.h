// Command groups that live in their own files. Each adds its subcommands to `cli` with callbacks
// (CLI11), throws cli_error on failure and calls exit_with() for a non-zero exit code (common.h).
#pragma once

#include <CLI/CLI.hpp>

namespace berth::cli {

// berth check: the policy's answer for one identity, action and repository (offline or via the API),
// whether a repository exists, and a CI preflight file of such questions (check.cc).
void add_check_commands(CLI::App& cli);

// berth plan | apply | export: the registry as code (plan.cc).
void add_plan_commands(CLI::App& cli);
// berth migrate, berth import-distribution (migrate.cc).
void add_migrate_commands(CLI::App& cli);
// lifecycle.cc: `berth tags`, `berth promote`.
void add_lifecycle_commands(CLI::App& cli);
// retention.cc: berth retention preview|run.
void add_retention_commands(CLI::App& cli);
void add_gc_commands(CLI::App& cli);     // gc.cc: berth gc
void add_usage_commands(CLI::App& cli);  // usage.cc: berth usage
void add_webhook_commands(CLI::App& cli);  // webhook.cc: berth webhook list|deliveries|redeliver|test
void add_audit_commands(CLI::App& cli);  // audit.cc: berth audit

}  // namespace berth::cli
