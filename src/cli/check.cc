// berth check: would SUBJECT be allowed ACTION on REPO (with the deciding grant or rule), offline from a
// config and data directory or through the registry's API; does a repository exist (--exists); and a
// CI preflight file of such questions (-f checks.yaml, preflight.h; an OIDC identity given by its claims
// is decided by the registry's federation rules and policy, or offline by a config's, --config). Exit 0 when every answer is yes,
// 3 (exit_denied) naming each one that is not, 1 on an error.
#include <fmt/core.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "app/offline_check.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/preflight.h"

namespace berth::cli {
namespace {

struct check_options {
  std::string as, action, repo, tag, config, data, registry, file;
  bool exists = false;
};

struct answer {
  bool yes = false;
  std::string subject;
  std::string reason;
  std::string immutability;  // with a tag: whether it is immutable, and what that means for a push
};

std::string check_target(const std::string& action, const std::string& repo) {
  return fmt::format("/api/v1/check?action={}&repository={}", percent_encode(action), percent_encode(repo));
}

// The registry's answer for `as` ("user:NAME", "robot:NAME", "anonymous", or an OIDC token), and
// with a `tag`, whether that tag is immutable.
answer ask_access(const session& s, const std::string& as, const std::string& action, const std::string& repo,
                  const std::string& tag = "") {
  std::string target = check_target(action, repo);
  if (!tag.empty()) target += "&tag=" + percent_encode(tag);
  session who = s;
  if (as.starts_with("user:") || as.starts_with("robot:") || as == "anonymous") {
    target += "&subject=" + percent_encode(as);
  } else if (std::count(as.begin(), as.end(), '.') == 2) {
    who = session{s.url, "oidc", as};  // an OIDC token: ask as that identity
  } else {
    throw cli_error("--as takes user:NAME, robot:NAME, anonymous or an OIDC token (robot tokens: use --data)");
  }
  const auto r = call(who, "GET", target);
  answer a{r.value("allowed", false), r.value("subject", as), r.value("reason", ""), ""};
  if (r.contains("immutable")) {
    const bool exists = r.value("tag_exists", false);
    a.immutability = r["immutable"].is_string()
                         ? fmt::format("{}{}", r["immutable"].get<std::string>(),
                                       exists ? ": a push of another digest, a delete or a promotion is refused"
                                              : ": it does not exist yet, so the first push sets it")
                         : fmt::format("tag {}:{} is mutable", repo, tag);
  }
  return a;
}

// The registry's answer for the OIDC identity its federation rules give `c.issuer`'s `c.claims`,
// decided by its policy as it stands (with the namespaces of the admin API).
answer ask_claims(const session& s, const preflight_check& c) {
  const auto r = call(s, "GET", check_target(c.action, c.repository) + "&issuer=" + percent_encode(c.issuer) +
                                    "&claims=" + percent_encode(c.claims.dump()));
  return {r.value("allowed", false), r.value("subject", ""), r.value("reason", ""), ""};
}

// Whether `repo` exists (its tag list answers) as the session sees it.
answer ask_exists(const session& s, const std::string& repo, bool expected) {
  bool exists = true;
  try {
    call(s, "GET", fmt::format("/v2/{}/tags/list?n=1", percent_encode(repo)));
  } catch (const api_error& e) {
    if (e.status != 404) throw;
    exists = false;
  }
  if (exists == expected) return {true, "", ""};
  return {false, "",
          exists ? fmt::format("repository {} exists", repo)
                 : fmt::format("repository {} does not exist (create it: `berth repo create {}`, or "
                               "add it to the registry file and `berth apply`)",
                               repo, repo)};
}

answer ask_tag_free(const session& s, const std::string& repo, const std::string& tag) {
  try {
    call(s, "GET", fmt::format("/v2/{}/manifests/{}", percent_encode(repo), percent_encode(tag)));
  } catch (const api_error& e) {
    if (e.status != 404) throw;
    return {true, "", ""};
  }
  // It exists: whether it may move is the registry's immutability rule (its check answers it).
  const auto r =
      call(s, "GET",
           fmt::format("/api/v1/check?action=push&repository={}&tag={}", percent_encode(repo), percent_encode(tag)));
  if (r.contains("immutable") && r["immutable"].is_string())
    return {false, "",
            fmt::format("tag {} already exists in {} and is immutable: {}; a push of another digest is refused, "
                        "release under a new tag",
                        tag, repo, r["immutable"].get<std::string>())};
  return {
      false, "",
      fmt::format("tag {} already exists in {}: a push of it would replace it; release under a new tag", tag, repo)};
}

void run_file(const check_options& o) {
  std::ifstream in(o.file);
  if (!in) throw cli_error(fmt::format("cannot read {}", o.file));
  std::stringstream text;
  text << in.rdbuf();
  const auto checks = parse_preflight_file(text.str(), o.file);
  const auto s = open_session(o.registry);
  std::vector<std::string> failed;
  for (const auto& c : checks) {
    answer a;
    try {
      switch (c.what) {
        case preflight_check::kind::access: {
          if (!c.issuer.empty() && o.config.empty()) {
            a = ask_claims(s, c);
            break;
          }
          if (!c.issuer.empty()) {  // offline, from the config alone: without the admin API's namespaces
            const auto exists = ask_exists(s, c.repository, true).yes;
            const auto d = app::claims_check(o.config, c.issuer, c.claims, c.action, c.repository, exists);
            a = {d.allowed, d.subject, d.reason};
            break;
          }
          std::string as = c.subject;
          if (as.empty()) {
            const char* token = std::getenv(c.token_env.c_str());
            if (token == nullptr || *token == '\0') throw cli_error(fmt::format("${} is not set", c.token_env));
            as = token;
          }
          a = ask_access(s, as, c.action, c.repository);
          break;
        }
        case preflight_check::kind::exists:
          a = ask_exists(s, c.repository, c.exists);
          break;
        case preflight_check::kind::tag_free:
          a = ask_tag_free(s, c.repository, c.tag);
          break;
      }
    } catch (const std::runtime_error& e) {  // cli_error, and the config's errors
      a = {false, "", e.what()};
    }
    const std::string title = c.name.empty() ? c.question() : fmt::format("{} ({})", c.name, c.question());
    if (a.yes) {
      fmt::print("ok    {}\n", title);
    } else {
      fmt::print("FAIL  {}: {} ({}:{})\n", title, a.reason, o.file, c.line);
      failed.push_back(fmt::format("{}:{}", o.file, c.line));
    }
  }
  if (failed.empty()) {
    fmt::print("{} checks passed\n", checks.size());
    return;
  }
  fmt::print("{} of {} checks failed\n", failed.size(), checks.size());
  exit_with(exit_denied);
}

void run(const check_options& o) {
  if (!o.file.empty()) {
    if (!o.as.empty() || !o.action.empty() || !o.repo.empty() || o.exists || !o.data.empty())
      throw cli_error("-f takes its questions from the file: no --as, --action, --repo, --exists or --data with it");
    run_file(o);
    return;
  }
  if (o.repo.empty()) throw cli_error("berth check needs --repo (with --as and --action, or --exists), or -f FILE");
  if (o.exists) {
    const auto a = ask_exists(open_session(o.registry), o.repo, true);
    fmt::print("{}\n", a.yes ? fmt::format("repository {} exists", o.repo) : a.reason);
    if (!a.yes) exit_with(exit_denied);
    return;
  }
  if (o.as.empty() || o.action.empty()) throw cli_error("berth check needs --as and --action (or --exists)");
  answer a;
  if (!o.config.empty() || !o.data.empty()) {
    if (!o.tag.empty()) throw cli_error("--tag asks the registry (whether the tag exists): drop --config/--data");
    const auto offline = app::offline_check(o.config, o.data, o.as, o.action, o.repo);
    a = {offline.allowed, offline.subject, offline.reason};
  } else {
    a = ask_access(open_session(o.registry), o.as, o.action, o.repo, o.tag);
  }
  fmt::print("{}: {} may {}{} {}\n  {}\n", a.yes ? "allowed" : "denied", a.subject, a.yes ? "" : "not ", o.action,
             o.repo, a.reason);
  if (!a.immutability.empty()) fmt::print("  {}\n", a.immutability);
  if (!a.yes) exit_with(exit_denied);
}

}  // namespace

void add_check_commands(CLI::App& cli) {
  auto o = std::make_shared<check_options>();
  auto* check = cli.add_subcommand(
      "check", "Would this identity be allowed? Does a repository exist? Or every question of a preflight file");
  check->add_option("--as", o->as,
                    "user:NAME, robot:NAME, anonymous, a robot token, or an OIDC token (offline, with --config)");
  check->add_option("--action", o->action, "pull, push, delete, list or admin")
      ->check(CLI::IsMember({"pull", "push", "delete", "list", "admin"}));
  check->add_option("--repo", o->repo, "Repository, e.g. production/app");
  check->add_option("--tag", o->tag, "Also report whether this tag is immutable (asks the registry's API)");
  check->add_flag("--exists", o->exists, "Whether --repo exists (exit 3 when it does not)");
  check->add_option("-f,--file", o->file, "A preflight file of checks (exit 3 naming each that fails)")
      ->check(CLI::ExistingFile);
  check->add_option("--config", o->config, "Decide offline from this config file (with -f: the checks by claims, which then do not see namespaces made through the admin API)")
      ->check(CLI::ExistingFile);
  check->add_option("--data", o->data, "Decide offline with this data directory's identities");
  check->add_option("--registry", o->registry, "Ask this registry's API (default: the last `berth login`)");
  check->callback([o] { run(*o); });
}

}  // namespace berth::cli
