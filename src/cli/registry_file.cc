#include "cli/registry_file.h"

#include <fmt/core.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <ctime>
#include <ranges>

#include "auth/identity_store.h"
#include "cli/common.h"
#include "cli/yaml_reader.h"
#include "core/byte_size.h"
#include "core/reference.h"
#include "lifecycle/retention.h"
#include "policy/policy.h"

namespace berth::cli {
namespace {

using json = nlohmann::json;

// "2027-11-30" or "2027-11-30T12:00:00Z": Unix seconds.
std::optional<std::int64_t> parse_time(const std::string& text) {
  std::tm tm{};
  int consumed = 0;
  if (text.size() == 10) {
    if (std::sscanf(text.c_str(), "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &consumed) != 3)
      return std::nullopt;
  } else if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                         &tm.tm_min, &tm.tm_sec, &consumed) != 6) {
    return std::nullopt;
  }
  if (static_cast<std::size_t>(consumed) != text.size() || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 ||
      tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
    return std::nullopt;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<std::int64_t>(::timegm(&tm));
}

// Reads the file, collecting every problem with its line.
class reader : public yaml_reader {
 public:
  using yaml_reader::yaml_reader;

  std::vector<std::string> patterns(const YAML::Node& n, const std::string& where) {
    auto out = strings(n, where);
    for (const auto& p : out) {
      if (!valid_name_pattern(p))
        error(n, fmt::format("`{}`: `{}` is not a repository pattern (a repository name, lower case, in which * "
                             "stands for any characters, e.g. production/*)",
                             where, p));
    }
    if (out.empty()) error(n, fmt::format("`{}` needs at least one repository pattern", where));
    return out;
  }

  void add_rows(registry_file& f, const std::string& subject, const std::string& actions,
                const std::vector<std::string>& patterns, const YAML::Node& at) {
    for (const auto& p : patterns) f.grants.emplace(grant_row{subject, actions, p}, line(at));
  }

  void namespaces(const YAML::Node& n, registry_file& f) {
    if (!is_map(n, "namespaces")) return;
    for (const auto& kv : n) {
      namespace_spec ns;
      ns.name = kv.first.Scalar();
      ns.line = line(kv.first);
      const std::string where = "namespaces." + ns.name;
      if (ns.name.find('/') != std::string::npos || !valid_name(ns.name))
        error(kv.first, fmt::format("`{}`: a namespace is one lower-case name component, e.g. production", where));
      const auto body = kv.second;
      if (body && !body.IsNull() && is_map(body, where)) {
        known_keys(body, {"visibility", "creation", "immutable_tags", "quota_bytes"}, where + ".");
        if (const auto v = body["visibility"]) {
          ns.visibility = scalar(v, where + ".visibility");
          if (ns.visibility && *ns.visibility != "private" && *ns.visibility != "public-pull")
            error(v, fmt::format("`{}.visibility` must be private or public-pull", where));
        }
        if (const auto c = body["creation"]) {
          ns.creation = scalar(c, where + ".creation");
          if (ns.creation && *ns.creation != "on-push" && *ns.creation != "explicit")
            error(c, fmt::format("`{}.creation` must be on-push or explicit", where));
        }
        if (const auto t = body["immutable_tags"]) {
          ns.immutable_tags = strings(t, where + ".immutable_tags");
          for (const auto& p : *ns.immutable_tags) {
            if (!valid_tag_pattern(p))
              error(t, fmt::format("`{}.immutable_tags`: `{}` is not a tag pattern (e.g. v*)", where, p));
          }
        }
        if (const auto q = body["quota_bytes"]) {
          const auto text = scalar(q, where + ".quota_bytes");
          if (text) {
            const auto bytes = parse_byte_size(*text);
            if (!bytes) error(q, fmt::format("`{}.quota_bytes` must be a size such as 200GiB, 500MB or 1048576", where));
            if (bytes) ns.quota_bytes = *bytes;
          }
        }
      }
      f.namespaces[ns.name] = std::move(ns);
    }
  }

  void repositories(const YAML::Node& n, registry_file& f) {
    if (!n.IsSequence()) {
      error(n, "`repositories` must be a list of repository names");
      return;
    }
    for (const auto& item : n) {
      const auto name = scalar(item, "repositories[]");
      if (!name) continue;
      if (!valid_name(*name)) {
        error(item, fmt::format("`{}` is not a repository name (lower case, components separated by /)", *name));
      } else if (const auto [it, added] = f.repositories.emplace(*name, line(item)); !added) {
        error(item, fmt::format("repository {} is listed twice (first on line {})", *name, it->second));
      }
    }
  }

  void robots(const YAML::Node& n, registry_file& f) {
    if (!n.IsSequence()) {
      error(n, "`robots` must be a list of robots (name, description, pull, push, delete, expires_in_days)");
      return;
    }
    for (const auto& r : n) {
      if (!is_map(r, "robots[]")) continue;
      known_keys(r, {"name", "description", "pull", "push", "delete", "expires_in_days", "expires_at"}, "robots[].");
      robot_spec robot;
      robot.line = line(r);
      const auto name = r["name"] ? scalar(r["name"], "robots[].name") : std::nullopt;
      if (!name) {
        if (!r["name"]) error(r, "a robot needs a `name`");
        continue;
      }
      robot.name = *name;
      const std::string where = "robot " + robot.name;
      if (!auth::valid_account_name(robot.name))
        error(r["name"], fmt::format("{}: robot names match [a-z0-9][a-z0-9._-]{{0,63}}", where));
      if (const auto d = r["description"]) {
        robot.description = scalar(d, where + ": description");
        if (robot.description && (robot.description->size() > 1024 ||
                                  std::any_of(robot.description->begin(), robot.description->end(),
                                              [](char c) { return c == '\x7f' || (c >= 0 && c < ' '); })))
          error(d, fmt::format("{}: a description is one line of at most 1024 bytes", where));
      }
      if (const auto e = r["expires_in_days"]) robot.expires_in_days = positive(e, "expires_in_days");
      if (const auto e = r["expires_at"]) {
        const auto text = scalar(e, "expires_at");
        if (text) robot.expires_at = parse_time(*text);
        if (text && !robot.expires_at)
          error(e, fmt::format("{}: `expires_at` must be a date (2027-11-30) or a UTC time (2027-11-30T12:00:00Z)",
                               where));
        if (r["expires_in_days"]) error(e, fmt::format("{}: give expires_in_days or expires_at, not both", where));
      }
      for (const char* action : {"pull", "push", "delete"}) {
        if (const auto p = r[action]) add_rows(f, "robot:" + robot.name, action, patterns(p, action), p);
      }
      if (const auto [it, added] = f.robots.emplace(robot.name, robot); !added)
        error(r, fmt::format("robot {} is listed twice (first on line {})", robot.name, it->second.line));
    }
  }

  void grants(const YAML::Node& n, registry_file& f) {
    if (!n.IsSequence()) {
      error(n, "`grants` must be a list of grants (subject, actions, repositories)");
      return;
    }
    for (const auto& g : n) {
      if (!is_map(g, "grants[]")) continue;
      known_keys(g, {"subject", "actions", "repositories"}, "grants[].");
      if (!g["subject"] || !g["actions"] || !g["repositories"]) {
        error(g, "a grant needs `subject`, `actions` and `repositories`");
        continue;
      }
      const auto subject = scalar(g["subject"], "subject");
      if (!subject) continue;
      const bool user = subject->starts_with("user:"), robot = subject->starts_with("robot:");
      if (!(*subject == "*" || ((user || robot) && auth::valid_account_name(subject->substr(user ? 5 : 6))))) {
        error(g["subject"], fmt::format("`{}` is not a subject: user:NAME, robot:NAME or * (every authenticated "
                                        "caller); anonymous access is the namespace's visibility",
                                        *subject));
        continue;
      }
      auto set = policy::action_set::parse(strings(g["actions"], "actions"));
      if (!set || set->empty()) {
        error(g["actions"], set ? "a grant needs at least one action" : set.error().detail);
        continue;
      }
      add_rows(f, *subject, set->str(), patterns(g["repositories"], "repositories"), g);
    }
  }

  // The rules, in the server's keys, each checked as the server checks its rules.
  void retention(const YAML::Node& n, registry_file& f) {
    if (!n.IsSequence()) {
      error(n, "`retention` must be a list of rules (repositories, keep_last, keep_days, protect, untagged_days)");
      return;
    }
    for (std::size_t i = 0; i < n.size(); ++i) {
      const auto r = n[i];
      const std::string where = fmt::format("retention[{}]", i);
      if (!is_map(r, where)) continue;
      known_keys(r, {"repositories", "keep_last", "keep_days", "protect", "untagged_days"}, where + ".");
      retention_spec spec{.line = line(r)};
      bool read = true;
      if (const auto p = r["repositories"]) spec.rule.repositories = strings(p, where + ".repositories");
      if (const auto p = r["protect"]) spec.rule.protect = strings(p, where + ".protect");
      for (auto [key, field] :
           {std::pair{"keep_last", &spec.rule.keep_last}, std::pair{"keep_days", &spec.rule.keep_days},
            std::pair{"untagged_days", &spec.rule.untagged_days}}) {
        if (const auto v = r[key]) {
          *field = whole_number(v, fmt::format("{}.{}", where, key));
          read = read && field->has_value();
        }
      }
      if (!read) continue;
      if (auto valid = lifecycle::check_rule(spec.rule, where); !valid) {
        error(r, valid.error().detail);
      } else if (const auto it = std::ranges::find(f.retention, spec.rule, &retention_spec::rule);
                 it != f.retention.end()) {
        error(r, fmt::format("`{}` is the rule of line {} again", where, it->line));
      } else {
        f.retention.push_back(std::move(spec));
      }
    }
  }
};

// The API's answers, read strictly: a shape we do not know is an error, not a guess.
const json& field(const json& doc, const char* key) {
  if (!doc.is_object() || !doc.contains(key))
    throw cli_error(fmt::format("unexpected answer from the registry: no `{}` in {}", key, doc.dump()));
  return doc.at(key);
}

}  // namespace

registry_file parse_registry_file(const std::string& text, const std::string& path) {
  const auto root = load_yaml(text, path);
  registry_file f;
  if (root.IsNull()) return f;
  reader r(path);
  if (r.is_map(root, "the top level")) {
    r.known_keys(root, {"namespaces", "repositories", "robots", "grants", "retention"}, "");
    if (const auto n = root["namespaces"]; n && !n.IsNull()) r.namespaces(n, f);
    if (const auto n = root["repositories"]; n && !n.IsNull()) r.repositories(n, f);
    if (const auto n = root["robots"]; n && !n.IsNull()) r.robots(n, f);
    if (const auto n = root["grants"]; n && !n.IsNull()) r.grants(n, f);
    if (const auto n = root["retention"]; n && !n.IsNull()) r.retention(n, f);
  }
  r.throw_errors();
  return f;
}

server_state server_state_from_api(const json& namespaces, const json& repositories, const json& robots,
                                   const json& grants, const json& users, const json& retention) {
  server_state s;
  try {
    for (const auto& n : field(namespaces, "namespaces")) {
      namespace_spec ns;
      ns.name = n.at("name").get<std::string>();
      ns.visibility = n.at("visibility").get<std::string>();
      ns.creation = n.at("creation").get<std::string>();
      if (n.contains("immutable_tags")) ns.immutable_tags = n.at("immutable_tags").get<std::vector<std::string>>();
      if (n.contains("quota_bytes") && !n.at("quota_bytes").is_null())
        ns.quota_bytes = n.at("quota_bytes").get<std::uint64_t>();
      ns.from_config = n.value("source", std::string("config")) == "config";
      s.namespaces[ns.name] = std::move(ns);
    }
    for (const auto& r : field(repositories, "repositories")) s.repositories.insert(r.at("name").get<std::string>());
    for (const auto& r : field(robots, "robots")) {
      robot_spec robot;
      robot.name = r.at("name").get<std::string>();
      robot.description = r.value("description", std::string());
      if (r.contains("expires_at") && !r.at("expires_at").is_null())
        robot.expires_at = r.at("expires_at").get<std::int64_t>();
      robot.revoked = r.contains("revoked_at") && !r.at("revoked_at").is_null();
      s.robots[robot.name] = std::move(robot);
    }
    for (const auto& g : field(grants, "grants")) {
      const auto subject = g.at("subject").get<std::string>();
      const auto actions = g.at("actions").get<std::string>();
      for (const auto& p : g.at("repositories")) {
        grant_row row{subject, actions, p.get<std::string>()};
        if (g.contains("id")) {
          s.grants[row].push_back(g.at("id").get<std::int64_t>());
        } else {
          s.config_grants.insert(std::move(row));
        }
      }
    }
    for (const auto& u : field(users, "users")) s.users.insert(u.at("name").get<std::string>());
    for (auto r : field(retention, "rules")) {
      const auto source = r.at("source").get<std::string>();
      r.erase("source");
      auto rule = meta::rule_from_json(r, "rules[]");
      if (!rule || (source != "config" && source != "api"))
        throw cli_error(fmt::format("unexpected answer from the registry: a retention rule {}", r.dump()));
      (source == "config" ? s.config_retention : s.api_retention).push_back(std::move(*rule));
    }
  } catch (const json::exception& e) {
    throw cli_error(fmt::format("unexpected answer from the registry: {}", e.what()));
  }
  return s;
}

std::string rfc3339(std::int64_t unix_seconds) {
  const std::time_t t = unix_seconds;
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string export_registry_file(const server_state& state) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  if (!state.namespaces.empty()) {
    out << YAML::Key << "namespaces" << YAML::Value << YAML::BeginMap;
    for (const auto& [name, ns] : state.namespaces) {
      out << YAML::Key << name << YAML::Value << YAML::BeginMap;
      if (ns.visibility) out << YAML::Key << "visibility" << YAML::Value << *ns.visibility;
      if (ns.creation) out << YAML::Key << "creation" << YAML::Value << *ns.creation;
      if (ns.immutable_tags) out << YAML::Key << "immutable_tags" << YAML::Value << YAML::Flow << *ns.immutable_tags;
      if (ns.quota_bytes) out << YAML::Key << "quota_bytes" << YAML::Value << *ns.quota_bytes;
      out << YAML::EndMap;
    }
    out << YAML::EndMap;
  }
  if (!state.repositories.empty()) {
    out << YAML::Key << "repositories" << YAML::Value << YAML::BeginSeq;
    for (const auto& r : state.repositories) out << r;
    out << YAML::EndSeq;
  }
  // A stored grant belongs in the file when its subject exists; a robot's single-action grants are
  // written under the robot, the rest under `grants:` grouped by subject and actions.
  const auto active_robot = [&](const std::string& subject) {
    if (!subject.starts_with("robot:")) return false;
    const auto it = state.robots.find(subject.substr(6));
    return it != state.robots.end() && !it->second.revoked;
  };
  std::map<std::pair<std::string, std::string>, std::vector<std::string>> robot_rows, other_rows;
  for (const auto& [row, ids] : state.grants) {
    const bool single = row.actions == "pull" || row.actions == "push" || row.actions == "delete";
    if (active_robot(row.subject) && single) {
      robot_rows[{row.subject, row.actions}].push_back(row.pattern);
    } else if (active_robot(row.subject) || row.subject == "*" ||
               (row.subject.starts_with("user:") && state.users.contains(row.subject.substr(5)))) {
      other_rows[{row.subject, row.actions}].push_back(row.pattern);
    }
  }
  bool any_robot = false;
  for (const auto& [name, robot] : state.robots) {
    if (robot.revoked) continue;
    if (!any_robot) out << YAML::Key << "robots" << YAML::Value << YAML::BeginSeq;
    any_robot = true;
    out << YAML::BeginMap << YAML::Key << "name" << YAML::Value << name;
    if (robot.description && !robot.description->empty())
      out << YAML::Key << "description" << YAML::Value << YAML::DoubleQuoted << *robot.description;
    if (robot.expires_at) out << YAML::Key << "expires_at" << YAML::Value << rfc3339(*robot.expires_at);
    for (const char* action : {"pull", "push", "delete"}) {
      const auto it = robot_rows.find({"robot:" + name, action});
      if (it != robot_rows.end()) out << YAML::Key << action << YAML::Value << YAML::Flow << it->second;
    }
    out << YAML::EndMap;
  }
  if (any_robot) out << YAML::EndSeq;
  if (!other_rows.empty()) {
    out << YAML::Key << "grants" << YAML::Value << YAML::BeginSeq;
    for (const auto& [key, patterns] : other_rows) {
      std::vector<std::string> actions;
      for (auto part : std::views::split(std::string_view(key.second), ','))
        actions.emplace_back(part.begin(), part.end());
      out << YAML::BeginMap << YAML::Key << "subject" << YAML::Value << YAML::DoubleQuoted << key.first << YAML::Key
          << "actions" << YAML::Value << YAML::Flow << actions << YAML::Key << "repositories" << YAML::Value
          << YAML::Flow << patterns << YAML::EndMap;
    }
    out << YAML::EndSeq;
  }
  if (!state.config_retention.empty() || !state.api_retention.empty()) {
    out << YAML::Key << "retention" << YAML::Value << YAML::BeginSeq;
    std::vector<meta::retention_rule> written;  // each rule once: the file may not list one twice
    for (const auto* rules : {&state.config_retention, &state.api_retention}) {
      for (const auto& r : *rules) {
        if (std::ranges::find(written, r) != written.end()) continue;
        written.push_back(r);
        out << YAML::BeginMap << YAML::Key << "repositories" << YAML::Value << YAML::Flow << r.repositories;
        if (r.keep_last) out << YAML::Key << "keep_last" << YAML::Value << *r.keep_last;
        if (r.keep_days) out << YAML::Key << "keep_days" << YAML::Value << *r.keep_days;
        if (!r.protect.empty()) out << YAML::Key << "protect" << YAML::Value << YAML::Flow << r.protect;
        if (r.untagged_days) out << YAML::Key << "untagged_days" << YAML::Value << *r.untagged_days;
        out << YAML::EndMap;
      }
    }
    out << YAML::EndSeq;
  }
  out << YAML::EndMap;
  if (state.namespaces.empty() && state.repositories.empty() && !any_robot && other_rows.empty() &&
      state.config_retention.empty() && state.api_retention.empty())
    return "{}\n";
  return std::string(out.c_str()) + "\n";
}

}  // namespace berth::cli
