// Command groups that live in their own files. Each adds its subcommands to `cli` with callbacks
// (CLI11), throws cli_error on failure and calls exit_with() for a non-zero exit code (common.h).
#pragma once

#include <CLI/CLI.hpp>

namespace berth::cli {

void add_gc_commands(CLI::App& cli);     // gc.cc: berth gc
void add_usage_commands(CLI::App& cli);  // usage.cc: berth usage

}  // namespace berth::cli
