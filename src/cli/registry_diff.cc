#include "cli/registry_diff.h"

#include <fmt/core.h>
#include <fmt/ranges.h>

#include <ranges>
#include <set>
#include <tuple>

#include "cli/common.h"

namespace berth::cli {
namespace {

using json = nlohmann::json;
// A subject's patterns by actions ("pull" -> {production/*}).
using patterns_by_actions = std::map<std::string, std::set<std::string>>;

template <class Map>
patterns_by_actions rows_of(const Map& rows, const std::string& subject) {
  patterns_by_actions out;
  for (const auto& [row, _] : rows) {
    if (row.subject == subject) out[row.actions].insert(row.pattern);
  }
  return out;
}

std::string list_text(const std::set<std::string>& patterns) {
  return patterns.empty() ? "(none)" : fmt::format("{}", fmt::join(patterns, ", "));
}

json actions_json(const std::string& actions) {
  json out = json::array();
  for (auto part : std::views::split(std::string_view(actions), ','))
    out.push_back(std::string(part.begin(), part.end()));
  return out;
}

// POST calls storing `subject`'s `actions` on `patterns`, at most 200 patterns a call (a body stays
// well under the admin API's 64 KiB limit: a pattern is at most 255 bytes).
void add_grants(const std::string& subject, const std::string& actions, const std::set<std::string>& patterns,
                std::vector<operation>& ops) {
  constexpr std::size_t per_call = 200;
  std::vector<std::string> all(patterns.begin(), patterns.end());
  for (std::size_t i = 0; i < all.size(); i += per_call) {
    const std::vector<std::string> part(all.begin() + static_cast<std::ptrdiff_t>(i),
                                        all.begin() + static_cast<std::ptrdiff_t>(std::min(all.size(), i + per_call)));
    ops.push_back({"POST", "/api/v1/grants",
                   json{{"subject", subject}, {"actions", actions_json(actions)}, {"repositories", part}}, ""});
  }
}

// DELETE calls for every stored grant of `subject` with `actions` on `patterns`.
void delete_grants(const server_state& have, const std::string& subject, const std::string& actions,
                   const std::set<std::string>& patterns, std::vector<operation>& ops) {
  for (const auto& p : patterns) {
    for (const auto id : have.grants.at(grant_row{subject, actions, p}))
      ops.push_back({"DELETE", fmt::format("/api/v1/grants/{}", id), nullptr, ""});
  }
}

const std::string& subject_of(const grant_row& r) { return r.subject; }
template <class T>
const std::string& subject_of(const std::pair<const grant_row, T>& r) {
  return r.first.subject;
}

std::set<std::string> minus(const std::set<std::string>& a, const std::set<std::string>& b) {
  std::set<std::string> out;
  std::ranges::set_difference(a, b, std::inserter(out, out.end()));
  return out;
}

// The grant changes of one subject: additions, and with `prune` removals, per set of actions.
struct subject_diff {
  std::string text;                          // "pull a → a, b; push (none) → c"
  std::vector<std::vector<operation>> adds;  // per actions
  std::vector<operation> removes;
  std::vector<std::string> added, removed;  // per actions, for grant lines: "pull,push on a, b"
};

subject_diff diff_subject(const registry_file& want, const server_state& have, const std::string& subject, bool prune) {
  const auto wanted = rows_of(want.grants, subject);
  const auto held = rows_of(have.grants, subject);
  std::set<std::string> actions;
  for (const auto& [a, _] : wanted) actions.insert(a);
  for (const auto& [a, _] : held) actions.insert(a);
  subject_diff d;
  std::vector<std::string> parts;
  for (const auto& a : actions) {
    const auto w = wanted.contains(a) ? wanted.at(a) : std::set<std::string>{};
    const auto h = held.contains(a) ? held.at(a) : std::set<std::string>{};
    const auto add = minus(w, h);
    const auto remove = prune ? minus(h, w) : std::set<std::string>{};
    if (add.empty() && remove.empty()) continue;
    auto after = minus(h, remove);
    after.insert(add.begin(), add.end());
    parts.push_back(fmt::format("{} {} → {}", a, list_text(h), list_text(after)));
    if (!add.empty()) {
      add_grants(subject, a, add, d.adds.emplace_back());
      d.added.push_back(fmt::format("{} on {}", a, list_text(add)));
    }
    if (!remove.empty()) {
      delete_grants(have, subject, a, remove, d.removes);
      d.removed.push_back(fmt::format("{} on {}", a, list_text(remove)));
    }
  }
  d.text = fmt::format("{}", fmt::join(parts, "; "));
  return d;
}

// The settings the admin API takes for `ns` (those the file gives).
json namespace_body(const namespace_spec& ns) {
  json body = json::object();
  if (ns.visibility) body["visibility"] = *ns.visibility;
  if (ns.creation) body["creation"] = *ns.creation;
  if (ns.immutable_tags) body["immutable_tags"] = *ns.immutable_tags;
  if (ns.quota_bytes) body["quota_bytes"] = *ns.quota_bytes;
  return body;
}

std::optional<std::string> quota_text(const std::optional<std::uint64_t>& bytes) {
  return bytes ? std::optional<std::string>(std::to_string(*bytes)) : std::nullopt;
}

// "visibility private → public-pull; creation on-push → explicit": what the file changes in `held`.
std::string namespace_edit(const namespace_spec& want, const namespace_spec& held) {
  std::vector<std::string> parts;
  const auto compare = [&](const char* key, const std::optional<std::string>& file,
                           const std::optional<std::string>& server) {
    if (file && *file != server.value_or(""))
      parts.push_back(fmt::format("{} {} → {}", key, server.value_or("(none)"), *file));
  };
  const auto tags = [](const std::optional<std::vector<std::string>>& t) {
    return t ? std::optional<std::string>(fmt::format("[{}]", fmt::join(*t, ", "))) : std::nullopt;
  };
  compare("visibility", want.visibility, held.visibility);
  compare("creation", want.creation, held.creation);
  compare("immutable_tags", tags(want.immutable_tags), tags(held.immutable_tags).value_or("[]"));
  compare("quota_bytes", quota_text(want.quota_bytes), quota_text(held.quota_bytes));
  return fmt::format("{}", fmt::join(parts, "; "));
}

void diff_namespaces(const registry_file& want, const server_state& have, bool prune, const std::string& path,
                     registry_plan& plan, std::vector<change>& removals) {
  const std::string authority =
      "the server's config is authoritative for the namespaces it declares: change the file or the config";
  for (const auto& [name, ns] : want.namespaces) {
    const auto target = "/api/v1/namespaces/" + percent_encode(name);
    const auto it = have.namespaces.find(name);
    if (it == have.namespaces.end()) {
      const auto body = namespace_body(ns);
      plan.changes.push_back({'+', fmt::format("namespace {} {}", name, body.dump()), {{"PUT", target, body, ""}}});
    } else if (!it->second.from_config) {
      const auto edit = namespace_edit(ns, it->second);
      if (!edit.empty()) {
        auto body = namespace_body(it->second);
        body.update(namespace_body(ns));
        plan.changes.push_back({'~', fmt::format("namespace {}: {}", name, edit), {{"PUT", target, body, ""}}});
      }
    }
    if (it == have.namespaces.end() || !it->second.from_config) continue;
    const auto& server = it->second;
    const auto compare = [&](const char* key, const std::optional<std::string>& file,
                             const std::optional<std::string>& held) {
      if (file && held && *file != *held)
        plan.conflicts.push_back(fmt::format("{}:{}: namespace {}: {} is {} in the file but {} on the server ({})",
                                             path, ns.line, name, key, *file, *held, authority));
    };
    compare("visibility", ns.visibility, server.visibility);
    compare("creation", ns.creation, server.creation);
    const auto not_managed = [&](const char* key) {
      plan.notes.push_back(fmt::format("{}:{}: namespaces.{}.{} is not managed by this registry version (ignored)",
                                       path, ns.line, name, key));
    };
    if (ns.immutable_tags && !server.immutable_tags) not_managed("immutable_tags");
    if (ns.immutable_tags && server.immutable_tags && *ns.immutable_tags != *server.immutable_tags)
      compare("immutable_tags", fmt::format("[{}]", fmt::join(*ns.immutable_tags, ", ")),
              fmt::format("[{}]", fmt::join(*server.immutable_tags, ", ")));
    if (ns.quota_bytes)
      compare("quota_bytes", quota_text(ns.quota_bytes), quota_text(server.quota_bytes).value_or("(none)"));
  }
  if (prune) {
    for (const auto& [name, ns] : have.namespaces) {
      if (ns.from_config || want.namespaces.contains(name)) continue;
      removals.push_back(
          {'-', "namespace " + name, {{"DELETE", "/api/v1/namespaces/" + percent_encode(name), nullptr, ""}}});
    }
  }
}

// "dev/*, staging/*: keep_last 5, keep_days 30, protect [latest, v*], untagged_days 7".
std::string rule_text(const meta::retention_rule& r) {
  std::vector<std::string> parts;
  if (r.keep_last) parts.push_back(fmt::format("keep_last {}", *r.keep_last));
  if (r.keep_days) parts.push_back(fmt::format("keep_days {}", *r.keep_days));
  if (!r.protect.empty()) parts.push_back(fmt::format("protect [{}]", fmt::join(r.protect, ", ")));
  if (r.untagged_days) parts.push_back(fmt::format("untagged_days {}", *r.untagged_days));
  return fmt::format("{}: {}", fmt::join(r.repositories, ", "), fmt::join(parts, ", "));
}

// "keep_last 3 → 5; protect [] → [v*]": what `want` changes in `held` (same repositories).
std::string rule_edit(const meta::retention_rule& want, const meta::retention_rule& held) {
  std::vector<std::string> parts;
  const auto number = [](const std::optional<std::int64_t>& n) { return n ? std::to_string(*n) : "(none)"; };
  for (auto [key, w, h] : {std::tuple{"keep_last", want.keep_last, held.keep_last},
                           std::tuple{"keep_days", want.keep_days, held.keep_days},
                           std::tuple{"untagged_days", want.untagged_days, held.untagged_days}}) {
    if (w != h) parts.push_back(fmt::format("{} {} → {}", key, number(h), number(w)));
  }
  if (want.protect != held.protect)
    parts.push_back(fmt::format("protect [{}] → [{}]", fmt::join(held.protect, ", "), fmt::join(want.protect, ", ")));
  return fmt::format("{}: {}", fmt::join(want.repositories, ", "), fmt::join(parts, "; "));
}

// Retention rules: the file's rules that the server's config does not declare are the set the API
// should hold. A held rule is kept when the file has it, changed in place when the file has a rule of
// the same repositories instead, and removed (with `prune`) otherwise; the file's other rules are
// added. One PUT of the resulting set makes every change: it is the call of the first change made.
void diff_retention(const registry_file& want, const server_state& have, bool prune, const std::string& path,
                    registry_plan& plan, std::vector<change>& removals) {
  std::vector<const retention_spec*> desired;
  std::vector<bool> in_file(have.config_retention.size(), false);
  for (const auto& spec : want.retention) {
    std::size_t j = 0;
    while (j < in_file.size() && (in_file[j] || !(have.config_retention[j] == spec.rule))) ++j;
    if (j < in_file.size()) {
      in_file[j] = true;
    } else {
      desired.push_back(&spec);
    }
  }
  for (std::size_t j = 0; j < in_file.size(); ++j) {
    if (!in_file[j])
      plan.notes.push_back(fmt::format("{}: retention rule {} is declared in the server's config, which is "
                                       "authoritative: it applies though the file does not list it",
                                       path, rule_text(have.config_retention[j])));
  }
  // Which desired rule each held one becomes: the same rule first, else one of the same repositories.
  const auto& held = have.api_retention;
  std::vector<std::optional<std::size_t>> becomes(held.size());
  std::vector<bool> placed(desired.size(), false);
  for (const bool exact : {true, false}) {
    for (std::size_t k = 0; k < held.size(); ++k) {
      for (std::size_t d = 0; d < desired.size() && !becomes[k]; ++d) {
        const auto& rule = desired[d]->rule;
        if (placed[d] || !(exact ? rule == held[k] : rule.repositories == held[k].repositories)) continue;
        becomes[k] = d;
        placed[d] = true;
      }
    }
  }
  std::vector<change> made;
  json after = json::array();
  for (std::size_t k = 0; k < held.size(); ++k) {
    if (becomes[k]) {
      const auto& rule = desired[*becomes[k]]->rule;
      if (!(rule == held[k])) made.push_back({'~', "retention rule " + rule_edit(rule, held[k]), {}});
      after.push_back(meta::rule_json(rule));
    } else if (prune) {
      removals.push_back({'-', "retention rule " + rule_text(held[k]), {}});
    } else {
      after.push_back(meta::rule_json(held[k]));
    }
  }
  for (std::size_t d = 0; d < desired.size(); ++d) {
    if (placed[d]) continue;
    made.push_back({'+', "retention rule " + rule_text(desired[d]->rule), {}});
    after.push_back(meta::rule_json(desired[d]->rule));
  }
  const operation put{"PUT", "/api/v1/retention/rules", json{{"rules", std::move(after)}}, ""};
  if (!made.empty()) {
    made.front().operations.push_back(put);
  } else if (!removals.empty()) {
    removals.front().operations.push_back(put);
  }
  plan.changes.insert(plan.changes.end(), std::make_move_iterator(made.begin()), std::make_move_iterator(made.end()));
}

}  // namespace

std::vector<std::string> validate_against(const registry_file& want, const server_state& have,
                                          const std::string& path) {
  std::set<std::pair<int, std::string>> errors;  // by line, each once (a grant of several patterns is several rows)
  for (const auto& [row, line] : want.grants) {
    if (row.subject.starts_with("user:") && !have.users.contains(row.subject.substr(5))) {
      errors.emplace(line, fmt::format("{}:{}: grant to {}: no such user on the registry (users are declared in the "
                                       "server's config or created with the admin API)",
                                       path, line, row.subject));
    } else if (row.subject.starts_with("robot:") && !want.robots.contains(row.subject.substr(6))) {
      errors.emplace(line, fmt::format("{}:{}: grant to {}: the file does not list robot {} under `robots:`", path,
                                       line, row.subject, row.subject.substr(6)));
    }
  }
  for (const auto& [name, robot] : want.robots) {
    const std::string subject = "robot:" + name;
    const auto has = [&](const auto& rows) {
      return std::ranges::any_of(rows, [&](const auto& r) { return subject_of(r) == subject; });
    };
    if (!has(want.grants) && !has(have.config_grants))
      errors.emplace(robot.line, fmt::format("{}:{}: robot {} has no grants: give it pull:, push: or delete: patterns",
                                             path, robot.line, name));
  }
  std::vector<std::string> out;
  for (auto& [line, message] : errors) out.push_back(message);
  return out;
}

registry_plan make_plan(const registry_file& want, const server_state& have, bool prune, const std::string& caller,
                        const std::string& path) {
  registry_plan plan;
  // A subject's grant changes; the caller's own grants are never pruned (it would lock itself out).
  const auto diff = [&](const std::string& subject) {
    auto d = diff_subject(want, have, subject, prune && subject != caller);
    if (prune && subject == caller) {
      if (const auto pruned = diff_subject(want, have, subject, true); !pruned.removed.empty())
        plan.notes.push_back(
            fmt::format("kept {}'s grants {}: it is the identity running this plan (remove them as "
                        "another administrator)",
                        subject, fmt::join(pruned.removed, "; ")));
    }
    return d;
  };
  // Removals run last, grants before robots before repositories before namespaces (which must be empty).
  std::vector<change> grant_removals, robot_removals, repository_removals, namespace_removals, retention_removals;
  diff_namespaces(want, have, prune, path, plan, namespace_removals);

  for (const auto& [name, line] : want.repositories) {
    if (!have.repositories.contains(name))
      plan.changes.push_back({'+', "repository " + name, {{"POST", "/api/v1/repositories", json{{"name", name}}, ""}}});
  }
  if (prune) {
    for (const auto& name : have.repositories) {
      if (!want.repositories.contains(name))
        repository_removals.push_back({'-',
                                       fmt::format("repository {} (with its manifests and tags)", name),
                                       {{"DELETE", "/api/v1/repositories/" + percent_encode(name, slashes::encoded), nullptr, ""}}});
    }
  }

  // Robots: subjects robot:NAME of the file's robots and of the registry's active ones.
  std::set<std::string> robot_subjects;
  for (const auto& [name, robot] : want.robots) {
    const std::string subject = "robot:" + name;
    robot_subjects.insert(subject);
    const auto it = have.robots.find(name);
    if (it != have.robots.end() && it->second.revoked) {
      plan.conflicts.push_back(fmt::format(
          "{}:{}: robot {} was revoked on the registry and its name cannot be used again: rename it in the file", path,
          robot.line, name));
      continue;
    }
    if (it == have.robots.end()) {
      json body{{"name", name}, {"description", robot.description.value_or("")}};
      if (robot.expires_in_days) body["expires_in_days"] = *robot.expires_in_days;
      if (robot.expires_at) body["expires_at"] = *robot.expires_at;
      change c{'+', "", {{"POST", "/api/v1/robots", body, name}}};
      std::vector<std::string> parts;
      for (const auto& [actions, patterns] : rows_of(want.grants, subject)) {
        add_grants(subject, actions, patterns, c.operations);
        parts.push_back(fmt::format("{} {}", actions, list_text(patterns)));
      }
      c.text = fmt::format("robot {}: {}", name, fmt::join(parts, "; "));
      plan.changes.push_back(std::move(c));
      continue;
    }
    const auto& held = it->second;
    // Description and expiry change in place (PATCH), the token stays; grants through the grant calls.
    json patch = json::object();
    std::vector<std::string> parts;
    if (robot.description && *robot.description != held.description.value_or("")) {
      patch["description"] = *robot.description;
      parts.push_back(fmt::format("description \"{}\" → \"{}\"", held.description.value_or(""), *robot.description));
    }
    if (robot.expires_at && robot.expires_at != held.expires_at) {
      patch["expires_at"] = *robot.expires_at;
      parts.push_back(fmt::format("expires_at {} → {}", held.expires_at ? rfc3339(*held.expires_at) : "never",
                                  rfc3339(*robot.expires_at)));
    }
    auto d = diff(subject);
    if (!d.text.empty()) parts.push_back(d.text);
    if (parts.empty()) continue;
    change c{'~', fmt::format("robot {}: {}", name, fmt::join(parts, "; ")), {}};
    if (!patch.empty()) c.operations.push_back({"PATCH", "/api/v1/robots/" + percent_encode(name), patch, ""});
    for (auto& calls : d.adds) c.operations.insert(c.operations.end(), calls.begin(), calls.end());
    c.operations.insert(c.operations.end(), d.removes.begin(), d.removes.end());
    plan.changes.push_back(std::move(c));
  }
  if (prune) {
    for (const auto& [name, robot] : have.robots) {
      if (robot.revoked || want.robots.contains(name)) continue;
      const std::string subject = "robot:" + name;
      robot_subjects.insert(subject);
      if (subject == caller) {
        plan.notes.push_back(fmt::format("kept robot {}: it is the identity running this plan", name));
        continue;
      }
      auto d = diff_subject(want, have, subject, true);
      change c{'-',
               d.removed.empty()
                   ? fmt::format("robot {} (revoke)", name)
                   : fmt::format("robot {} (revoke; drop its grants {})", name, fmt::join(d.removed, "; ")),
               std::move(d.removes)};
      c.operations.push_back({"DELETE", "/api/v1/robots/" + percent_encode(name), nullptr, ""});
      robot_removals.push_back(std::move(c));
    }
  }

  // The other subjects' grants: users, everyone (*), robots that are revoked or unknown.
  std::set<std::string> subjects;
  for (const auto& [row, _] : want.grants) subjects.insert(row.subject);
  for (const auto& [row, _] : have.grants) subjects.insert(row.subject);
  for (const auto& subject : subjects) {
    if (robot_subjects.contains(subject)) continue;
    auto d = diff(subject);
    for (std::size_t i = 0; i < d.adds.size(); ++i)
      plan.changes.push_back({'+', fmt::format("grant {} {}", subject, d.added[i]), std::move(d.adds[i])});
    if (!d.removes.empty())
      grant_removals.push_back(
          {'-', fmt::format("grant {} {}", subject, fmt::join(d.removed, "; ")), std::move(d.removes)});
  }
  diff_retention(want, have, prune, path, plan, retention_removals);
  for (auto* removals :
       {&grant_removals, &robot_removals, &repository_removals, &namespace_removals, &retention_removals})
    plan.changes.insert(plan.changes.end(), std::make_move_iterator(removals->begin()),
                        std::make_move_iterator(removals->end()));
  return plan;
}

}  // namespace berth::cli
