// berth: the registry server and its command line.
//   berth serve ...                      run the registry
//   berth login URL [-u USER]            check credentials and keep them (0600) for the commands below
//   berth whoami | repo create|list|delete | robot create|list|revoke   (the admin API)
//   berth check --as WHO --action A --repo R | --repo R --exists | -f checks.yaml   (check.cc)
//   berth migrate | import-distribution  copy a registry into the configured stores (cli/migrate.cc)
//   berth retention preview|run [--repo PATTERN]   what the retention rules delete (retention.cc)
//   berth gc [--dry-run] [--json]        garbage collection (cli/gc.cc)
//   berth usage [--namespace NS] [--json]   storage use and dedup (cli/usage.cc)
//   berth hash-password                  an argon2id hash for the config's users:
//   berth plan|apply -f registry.yaml | export   the registry as code (plan.cc)
//   berth tags | promote                 image lifecycle (lifecycle.cc)
#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <fmt/ranges.h>

#include <exception>

#include "app/config.h"
#include "app/serve.h"
#include "auth/password.h"
#include "cli/commands.h"
#include "cli/common.h"

using namespace berth::cli;

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

  std::string registry;
  auto* login = cli.add_subcommand("login", "Check credentials against a registry and keep them for later commands");
  std::string login_url, username, password_arg;
  bool password_stdin = false;
  login->add_option("url", login_url, "Registry URL, e.g. https://registry.example.com or http://127.0.0.1:5000")
      ->required();
  login->add_option("-u,--username", username, "User name, or a robot's name (default: admin)");
  login->add_flag("--password-stdin", password_stdin, "Read the password (or robot token) from stdin");

  auto* whoami = cli.add_subcommand("whoami", "Show who the stored credentials are and what they may do");
  whoami->add_option("--registry", registry, "Registry URL (default: the last `berth login`)");

  auto* repo = cli.add_subcommand("repo", "Create, list and delete repositories");
  repo->require_subcommand(1);
  std::string repo_name;
  auto* repo_create = repo->add_subcommand("create", "Create a repository (needed in `creation: explicit` namespaces)");
  repo_create->add_option("name", repo_name, "Repository, e.g. production/app")->required();
  auto* repo_list = repo->add_subcommand("list", "List the repositories you may see, with tags, size, last push");
  std::string repo_namespace;
  repo_list->add_option("--namespace", repo_namespace, "Only this namespace's repositories, e.g. production");
  auto* repo_delete = repo->add_subcommand("delete", "Delete a repository with its manifests and tags");
  repo_delete->add_option("name", repo_name, "Repository")->required();
  for (auto* c : {repo_create, repo_list, repo_delete}) c->add_option("--registry", registry, "Registry URL");

  auto* robot = cli.add_subcommand("robot", "Robot accounts: long random tokens for CI and deployments");
  robot->require_subcommand(1);
  std::string robot_name, robot_description;
  int robot_days = 0;
  std::vector<std::string> robot_pull, robot_push, robot_delete;
  auto* robot_create = robot->add_subcommand("create", "Create a robot; its token is printed once");
  robot_create->add_option("name", robot_name, "Robot name, e.g. ci")->required();
  robot_create->add_option("--description", robot_description, "What it is for");
  robot_create->add_option("--expires-in-days", robot_days, "Expire after this many days (default: never)");
  robot_create->add_option("--pull", robot_pull, "Repository patterns it may pull, e.g. production/*");
  robot_create->add_option("--push", robot_push, "Repository patterns it may push (and pull)");
  robot_create->add_option("--delete", robot_delete, "Repository patterns it may delete in");
  auto* robot_list = robot->add_subcommand("list", "List robots");
  auto* robot_revoke = robot->add_subcommand("revoke", "Revoke a robot's token for good");
  robot_revoke->add_option("name", robot_name, "Robot name")->required();
  for (auto* c : {robot_create, robot_list, robot_revoke}) c->add_option("--registry", registry, "Registry URL");

  auto* hash = cli.add_subcommand("hash-password", "Print the argon2id hash of a password read from stdin");
  add_check_commands(cli);
  add_plan_commands(cli);
  add_migrate_commands(cli);
  add_lifecycle_commands(cli);
  add_retention_commands(cli);
  add_gc_commands(cli);
  add_usage_commands(cli);
  add_webhook_commands(cli);
  add_audit_commands(cli);

  try {
    cli.parse(argc, argv);
    if (serve->parsed()) {
      berth::app::config c = config_path.empty() ? berth::app::config{} : berth::app::load_config(config_path);
      if (!listen.empty()) c.listen = listen;
      if (!data.empty()) c.data = data;
      if (!log_level.empty()) c.log_level = log_level;
      return berth::app::serve(c);
    }
    if (login->parsed()) {
      const std::string url = normalize_url(login_url);
      if (username.empty()) username = "admin";
      const std::string password =
          password_stdin ? read_secret("") : read_secret(fmt::format("Password for {} at {}: ", username, url));
      if (password.empty()) throw cli_error("empty password");
      session s{url, username, password};
      const auto who = call(s, "GET", "/api/v1/whoami");
      auto doc = load_credentials();
      doc["registries"][url] = {{"username", username}, {"password", password}};
      doc["default"] = url;
      save_credentials(doc);
      fmt::print("Logged in to {} as {} (credentials in {})\n", url, who.value("subject", username),
                 credentials_path());
      return 0;
    }
    if (whoami->parsed()) {
      const auto s = open_session(registry);
      const auto who = call(s, "GET", "/api/v1/whoami");
      fmt::print("{}{} at {}\n", who.value("subject", "?"), who.value("admin", false) ? " (administrator)" : "", s.url);
      for (const auto& g : who["grants"]) {
        std::vector<std::string> repos = g["repositories"].get<std::vector<std::string>>();
        fmt::print("  {} on {}  ({})\n", g.value("actions", ""), fmt::join(repos, ", "), g.value("source", ""));
      }
      return 0;
    }
    if (repo_create->parsed()) {
      const auto r = call(open_session(registry), "POST", "/api/v1/repositories", json{{"name", repo_name}});
      fmt::print("{} {}\n", repo_name, r.value("created", false) ? "created" : "already exists");
      return 0;
    }
    if (repo_list->parsed()) {
      std::string target = "/api/v1/repositories";
      if (!repo_namespace.empty()) target += "?namespace=" + percent_encode(repo_namespace);
      const auto r = call(open_session(registry), "GET", target);
      fmt::print("{:<40} {:>6} {:>9}  {}\n", "REPOSITORY", "TAGS", "SIZE", "LAST PUSH");
      for (const auto& x : r["repositories"]) {
        const auto& last = x["last_push_ms"];
        fmt::print("{:<40} {:>6} {:>9}  {}\n", x.value("name", ""), x.value("tags", 0), human_size(x.value("size", std::uint64_t{0})),
                   last.is_number_integer() ? time_text(json(last.get<std::int64_t>() / 1000)) + " UTC" : "-");
      }
      return 0;
    }
    if (repo_delete->parsed()) {
      call(open_session(registry), "DELETE", "/api/v1/repositories/" + percent_encode(repo_name, slashes::encoded));
      fmt::print("{} deleted\n", repo_name);
      return 0;
    }
    if (robot_create->parsed()) {
      const auto s = open_session(registry);
      json body{{"name", robot_name}, {"description", robot_description}};
      if (robot_days > 0) body["expires_in_days"] = robot_days;
      auto r = call(s, "POST", "/api/v1/robots", body);
      auto add = [&](const std::vector<std::string>& patterns, const char* action) {
        if (patterns.empty()) return;
        call(s, "POST", "/api/v1/grants",
             json{{"subject", "robot:" + robot_name}, {"actions", {action}}, {"repositories", patterns}});
      };
      add(robot_pull, "pull");
      add(robot_push, "push");
      add(robot_delete, "delete");
      fmt::print("Robot {} created. Log in with username {} and this token (shown once):\n{}\n",
                 r.value("subject", ""), robot_name, r.value("token", ""));
      return 0;
    }
    if (robot_list->parsed()) {
      const auto r = call(open_session(registry), "GET", "/api/v1/robots");
      for (const auto& x : r["robots"]) {
        fmt::print("{:<24} {:<8} expires {:<16} {}\n", x.value("name", ""),
                   x["revoked_at"].is_null() ? (x.value("active", false) ? "active" : "expired") : "revoked",
                   time_text(x["expires_at"]), x.value("description", ""));
      }
      return 0;
    }
    if (robot_revoke->parsed()) {
      call(open_session(registry), "DELETE", "/api/v1/robots/" + percent_encode(robot_name));
      fmt::print("robot:{} revoked\n", robot_name);
      return 0;
    }
    if (hash->parsed()) {
      const std::string password = read_secret("Password: ");
      if (password.empty()) throw cli_error("empty password");
      fmt::print("{}\n", berth::auth::hash_password(password));
      return 0;
    }
  } catch (const CLI::ParseError& e) {
    return cli.exit(e);
  } catch (const std::exception& e) {
    fmt::print(stderr, "berth: {}\n", e.what());
    return exit_error;
  }
  return 0;
}
