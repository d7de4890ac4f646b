#include "cli/preflight.h"

#include <fmt/core.h>

#include "cli/yaml_reader.h"
#include "core/reference.h"
#include "policy/policy.h"

namespace berth::cli {

std::string preflight_check::question() const {
  switch (what) {
    case kind::access: {
      std::string who = subject;
      if (!token_env.empty()) who = "$" + token_env;
      if (!issuer.empty()) {
        who = fmt::format("oidc of {} with", issuer);
        for (const auto& [key, value] : claims.items()) who += fmt::format(" {}={}", key, value.get<std::string>());
      }
      return fmt::format("{} may {} {}", who, action, repository);
    }
    case kind::exists:
      return fmt::format("repository {} {}", repository, exists ? "exists" : "does not exist");
    case kind::tag_free:
      return fmt::format("tag {} is free in {}", tag, repository);
  }
  return "";
}

std::vector<preflight_check> parse_preflight_file(const std::string& text, const std::string& path) {
  const auto root = load_yaml(text, path);
  yaml_reader r(path);
  std::vector<preflight_check> out;
  if (!r.is_map(root, "the top level")) r.throw_errors();
  r.known_keys(root, {"checks"}, "");
  const auto checks = root["checks"];
  if (!checks || !checks.IsSequence() || checks.size() == 0) {
    r.error(root, "`checks` must be a list of checks");
    r.throw_errors();
  }
  for (const auto& c : checks) {
    if (!r.is_map(c, "checks[]")) continue;
    r.known_keys(c, {"name", "subject", "token_env", "issuer", "claims", "action", "repository", "exists", "tag_free"},
                 "checks[].");
    preflight_check check;
    check.line = yaml_reader::line(c);
    const auto text_of = [&](const char* key) {
      const auto n = c[key];
      return n ? r.scalar(n, key).value_or("") : std::string();
    };
    check.name = text_of("name");
    check.repository = text_of("repository");
    if (!valid_name(check.repository)) {
      r.error(c, check.repository.empty() ? "a check needs a `repository`"
                                          : fmt::format("`{}` is not a repository name", check.repository));
    }
    const bool access = c["action"] || c["subject"] || c["token_env"] || c["issuer"] || c["claims"];
    const int kinds = int(access) + int(bool(c["exists"])) + int(bool(c["tag_free"]));
    if (kinds != 1) {
      r.error(c,
              "a check asks one question: `action` (with `subject`, `token_env` or `issuer` and `claims`), "
              "`exists` or `tag_free`");
      continue;
    }
    if (access) {
      check.what = preflight_check::kind::access;
      check.subject = text_of("subject");
      check.token_env = text_of("token_env");
      check.issuer = text_of("issuer");
      check.action = text_of("action");
      check.claims = nlohmann::json::object();
      if (const auto claims = c["claims"]; claims && r.is_map(claims, "claims")) {
        for (const auto& kv : claims) {
          if (auto value = r.scalar(kv.second, "claims." + kv.first.Scalar())) check.claims[kv.first.Scalar()] = *value;
        }
      }
      if (int(!check.subject.empty()) + int(!check.token_env.empty()) + int(!check.issuer.empty()) != 1 ||
          check.issuer.empty() != check.claims.empty())
        r.error(c,
                "an access check takes one of `subject` (user:NAME, robot:NAME, anonymous), `token_env` (a "
                "variable holding an OIDC token) or `issuer` with `claims` (an OIDC identity by its claims)");
      if (!check.subject.empty() && check.subject != "anonymous" && !check.subject.starts_with("user:") &&
          !check.subject.starts_with("robot:"))
        r.error(c["subject"], fmt::format("`{}` is not a subject: user:NAME, robot:NAME or anonymous", check.subject));
      if (!policy::parse_action(check.action))
        r.error(c, "an access check needs `action`: pull, push, delete, list or admin");
    } else if (c["exists"]) {
      check.what = preflight_check::kind::exists;
      check.exists = r.boolean(c["exists"], "exists").value_or(true);
    } else {
      check.what = preflight_check::kind::tag_free;
      check.tag = text_of("tag_free");
      if (!valid_tag(check.tag)) r.error(c["tag_free"], fmt::format("`{}` is not a tag", check.tag));
    }
    out.push_back(std::move(check));
  }
  r.throw_errors();
  return out;
}

}  // namespace berth::cli
