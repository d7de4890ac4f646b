// berth plan | apply | export: the registry as code (registry_file.h, registry_diff.h) over the admin
// API. plan changes nothing and exits 0 (no changes), 2 (changes) or 1 (an error, a conflict with the
// server's config); apply makes the changes one API call at a time and, when a call fails, stops and
// says what was applied and what was not (a rerun starts from what the registry then holds).
#include <fcntl.h>
#include <fmt/core.h>
#include <fmt/ranges.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/registry_diff.h"
#include "cli/registry_file.h"

namespace berth::cli {
namespace {

namespace fs = std::filesystem;

struct plan_options {
  std::string registry;
  std::string file;
  std::string token_dir;
  bool prune = false;
  bool yes = false;
};

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw cli_error(fmt::format("cannot read {}", path));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

server_state fetch_state(const session& s) {
  return server_state_from_api(call(s, "GET", "/api/v1/namespaces"), call(s, "GET", "/api/v1/repositories"),
                               call(s, "GET", "/api/v1/robots"), call(s, "GET", "/api/v1/grants"),
                               call(s, "GET", "/api/v1/users"), call(s, "GET", "/api/v1/retention/rules"));
}

// Adds to state.users those of `subjects` that exist: the users the config declares are not listed by
// the API, so each user:NAME not in the list is looked up by `check`.
void resolve_users(const session& s, const std::set<std::string>& subjects, server_state& state) {
  for (const auto& subject : subjects) {
    if (!subject.starts_with("user:") || state.users.contains(subject.substr(5))) continue;
    try {
      call(s, "GET", "/api/v1/check?action=pull&repository=library/probe&subject=" + percent_encode(subject));
      state.users.insert(subject.substr(5));
    } catch (const api_error& e) {
      if (e.status != 404) throw;
    }
  }
}

template <class Rows>
std::set<std::string> subjects_of(const Rows& rows) {
  std::set<std::string> out;
  for (const auto& [row, _] : rows) out.insert(row.subject);
  return out;
}

// Reads the file, fetches the registry's state, validates and plans; prints the notes and conflicts.
// Throws cli_error on a conflict.
registry_plan prepare(const session& s, const plan_options& o) {
  const auto want = parse_registry_file(read_text(o.file), o.file);
  auto have = fetch_state(s);
  resolve_users(s, subjects_of(want.grants), have);
  if (const auto errors = validate_against(want, have, o.file); !errors.empty())
    throw cli_error(fmt::format("{}", fmt::join(errors, "\n")));
  const auto caller = call(s, "GET", "/api/v1/whoami").value("subject", "");
  auto plan = make_plan(want, have, o.prune, caller, o.file);
  for (const auto& n : plan.notes) fmt::print(stderr, "note: {}\n", n);
  if (!plan.conflicts.empty()) {
    for (const auto& c : plan.conflicts) fmt::print(stderr, "conflict: {}\n", c);
    throw cli_error(fmt::format("{} conflicts with the registry's config: nothing was changed", o.file));
  }
  return plan;
}

void print_changes(const registry_plan& plan) {
  int add = 0, change = 0, remove = 0;
  for (const auto& c : plan.changes) {
    fmt::print("{} {}\n", c.sign, c.text);
    (c.sign == '+' ? add : c.sign == '~' ? change : remove) += 1;
  }
  if (std::ranges::any_of(plan.changes, [](const auto& c) { return c.text.starts_with("namespace "); }))
    fmt::print(
        "\nNamespaces: the server's config is authoritative for those it declares (a difference is a "
        "conflict); the others are made, changed and pruned through the admin API.\n");
  if (std::ranges::any_of(plan.changes, [](const auto& c) { return c.text.starts_with("retention rule "); }))
    fmt::print(
        "\nRetention: the server's config's rules always apply; the file's other rules are those the admin API "
        "holds, set in one call.\n");
  fmt::print("\nPlan: {} to add, {} to change, {} to remove.\n", add, change, remove);
}

// A new robot's token: into DIR/NAME (0600), or printed once.
void keep_token(const plan_options& o, const std::string& robot, const std::string& token) {
  if (o.token_dir.empty()) {
    fmt::print("  token of robot {} (shown once; log in with username {}): {}\n", robot, robot, token);
    return;
  }
  fs::create_directories(o.token_dir);
  const auto path = (fs::path(o.token_dir) / robot).string();
  fmt::print("  robot {} created; its token goes to {}\n", robot, path);
  std::fflush(stdout);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) throw cli_error(fmt::format("cannot write {}: the token of robot {} is lost; revoke it", path, robot));
  const std::string text = token + "\n";
  const bool ok = ::fchmod(fd, 0600) == 0 && ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (!ok) throw cli_error(fmt::format("cannot write {}: the token of robot {} is lost; revoke it", path, robot));
}

void confirm(const plan_options& o, std::size_t count) {
  if (o.yes) return;
  if (!::isatty(STDIN_FILENO))
    throw cli_error("apply asks before changing anything: pass --yes when not at a terminal");
  fmt::print("Apply these {} changes? Only `yes` goes ahead: ", count);
  std::fflush(stdout);
  std::string answer;
  std::getline(std::cin, answer);
  if (answer != "yes") throw cli_error("not applied");
}

void apply(const plan_options& o) {
  const auto s = open_session(o.registry);
  const auto plan = prepare(s, o);
  if (plan.changes.empty()) {
    fmt::print("no changes\n");
    return;
  }
  print_changes(plan);
  confirm(o, plan.changes.size());
  fmt::print("\n");
  for (std::size_t i = 0; i < plan.changes.size(); ++i) {
    const auto& c = plan.changes[i];
    std::size_t made = 0;
    try {
      for (const auto& op : c.operations) {
        const auto answer = call(s, op.method, op.target, op.body);
        ++made;
        if (!op.robot.empty()) keep_token(o, op.robot, answer.value("token", ""));
      }
    } catch (const cli_error& e) {
      fmt::print(stderr, "berth: apply stopped at `{} {}`: {}\n", c.sign, c.text, e.what());
      if (made > 0) fmt::print(stderr, "  (partly made: {} of its {} API calls)\n", made, c.operations.size());
      fmt::print(stderr, "applied ({}):\n", i);
      for (std::size_t j = 0; j < i; ++j) fmt::print(stderr, "  {} {}\n", plan.changes[j].sign, plan.changes[j].text);
      fmt::print(stderr, "not applied ({}):\n", plan.changes.size() - i);
      for (std::size_t j = i; j < plan.changes.size(); ++j)
        fmt::print(stderr, "  {} {}\n", plan.changes[j].sign, plan.changes[j].text);
      fmt::print(stderr, "Fix the cause and run the same apply again: it starts from what the registry holds now.\n");
      exit_with(exit_error);
    }
    fmt::print("{} {}: done\n", c.sign, c.text);
    std::fflush(stdout);  // progress, as it happens, in a CI log
  }
  fmt::print("Applied {} changes.\n", plan.changes.size());
}

void plan_only(const plan_options& o) {
  const auto plan = prepare(open_session(o.registry), o);
  if (plan.changes.empty()) {
    fmt::print("No changes: the registry matches {}.\n", o.file);
    return;
  }
  print_changes(plan);
  exit_with(exit_changes);
}

void export_file(const std::string& registry) {
  const auto s = open_session(registry);
  auto state = fetch_state(s);
  resolve_users(s, subjects_of(state.grants), state);
  fmt::print(
      "# The state of {}, written by `berth export`: apply it with `berth plan -f FILE` and `berth apply -f FILE`.\n",
      s.url);
  fmt::print("{}", export_registry_file(state));
}

}  // namespace

void add_plan_commands(CLI::App& cli) {
  auto o = std::make_shared<plan_options>();
  auto* plan = cli.add_subcommand("plan", "Show what `berth apply -f FILE` would change (exit 0: nothing, 2: changes)");
  auto* apply_cmd = cli.add_subcommand(
      "apply",
      "Make the registry match a registry file (namespaces not in the server's config, robots, grants, "
      "repositories, retention rules; the config's namespaces are authoritative: a difference is a conflict; the "
      "config's retention rules always apply)");
  for (auto* c : {plan, apply_cmd}) {
    c->add_option("-f,--file", o->file, "The registry file (registry.yaml)")->required()->check(CLI::ExistingFile);
    c->add_flag("--prune", o->prune, "Also remove what the registry holds and the file does not name");
    c->add_option("--registry", o->registry, "Registry URL (default: the last `berth login`)");
  }
  apply_cmd->add_flag("-y,--yes", o->yes, "Apply without asking");
  apply_cmd->add_option("--token-dir", o->token_dir,
                        "Write new robots' tokens to DIR/NAME (0600) instead of printing them");
  plan->callback([o] { plan_only(*o); });
  apply_cmd->callback([o] { apply(*o); });

  auto* exp = cli.add_subcommand("export", "Print the registry's state as a registry file (for plan and apply)");
  exp->add_option("--registry", o->registry, "Registry URL (default: the last `berth login`)");
  exp->callback([o] { export_file(o->registry); });
}

}  // namespace berth::cli
