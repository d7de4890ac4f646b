// berth: the registry server and its command line.
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <exception>

#include "app/config.h"
#include "app/serve.h"

int main(int argc, char** argv) {
  CLI::App cli{"Berth: an OCI container registry"};
  cli.require_subcommand(1);
  cli.set_version_flag("--version", "berth 0.1.0");

  auto* serve = cli.add_subcommand("serve", "Run the registry (filesystem + SQLite under --data)");
  std::string config_path, listen, data, log_level;
  serve->add_option("--config", config_path, "YAML configuration file")->check(CLI::ExistingFile);
  serve->add_option("--listen", listen, "Address to listen on, host:port (default 127.0.0.1:5000; port 0 picks one)");
  serve->add_option("--data", data, "Data directory (default ./berth-data)");
  serve->add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));

  CLI11_PARSE(cli, argc, argv);

  try {
    if (serve->parsed()) {
      berth::app::config c = config_path.empty() ? berth::app::config{} : berth::app::load_config(config_path);
      if (!listen.empty()) c.listen = listen;
      if (!data.empty()) c.data = data;
      if (!log_level.empty()) c.log_level = log_level;
      return berth::app::serve(c);
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "berth: {}\n", e.what());
    return 1;
  }
  return 0;
}
