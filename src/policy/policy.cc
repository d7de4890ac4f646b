#include "policy/policy.h"

#include <fmt/core.h>

#include <array>

namespace berth::policy {
namespace {

constexpr std::array<std::string_view, 5> action_names = {"pull", "push", "delete", "list", "admin"};
constexpr std::array<action, 5> all_actions = {action::pull, action::push, action::delete_, action::list,
                                               action::admin};

bool subject_matches(std::string_view grant_subject, const principal& who) {
  if (grant_subject == "*") return !who.anonymous();
  return grant_subject == who.subject;
}

// The first pattern of `g` that covers `repository` ("*" only matches "*" for global checks).
const std::string* covering_pattern(const grant& g, std::string_view repository) {
  for (const auto& p : g.repositories) {
    if (repository == "*" ? p == "*" : pattern_matches(p, repository)) return &p;
  }
  return nullptr;
}

}  // namespace

std::string_view to_string(action a) { return action_names[static_cast<std::size_t>(a)]; }

std::optional<action> parse_action(std::string_view text) {
  for (std::size_t i = 0; i < action_names.size(); ++i) {
    if (action_names[i] == text) return all_actions[i];
  }
  return std::nullopt;
}

bool action_set::allows(action a) const {
  if (has(action::admin) || has(a)) return true;
  switch (a) {
    case action::pull:
      return has(action::push);
    case action::list:
      return has(action::pull) || has(action::push);
    default:
      return false;
  }
}

std::string action_set::str() const {
  std::string out;
  for (action a : all_actions) {
    if (!has(a)) continue;
    if (!out.empty()) out += ',';
    out += to_string(a);
  }
  return out;
}

result<action_set> action_set::parse(const std::vector<std::string>& names) {
  action_set set;
  for (const auto& item : names) {
    std::string_view rest = item;
    while (!rest.empty()) {
      const auto comma = std::min(rest.find(','), rest.size());
      std::string_view name = rest.substr(0, comma);
      while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
      while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
      if (!name.empty()) {
        if (name == "*") {
          set.add(action::admin);
        } else {
          auto a = parse_action(name);
          if (!a) return fail(errc::unsupported, fmt::format("unknown action `{}` (pull, push, delete, list, admin)", name));
          set.add(*a);
        }
      }
      rest.remove_prefix(std::min(comma + 1, rest.size()));
    }
  }
  return set;
}

bool pattern_matches(std::string_view pattern, std::string_view name) {
  // Iterative glob with backtracking to the last '*': linear in practice, no recursion.
  std::size_t p = 0, n = 0, star = std::string_view::npos, resume = 0;
  while (n < name.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = n;
    } else if (p < pattern.size() && pattern[p] == name[n]) {
      ++p;
      ++n;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      n = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

policy::policy(policy_config config) : config_(std::move(config)) {}

const namespace_rule& policy::namespace_of(std::string_view repository) const {
  const auto first = repository.substr(0, repository.find('/'));
  for (const auto& ns : config_.namespaces) {
    if (ns.name == first) return ns;
  }
  return config_.default_namespace;
}

decision policy::decide(const principal& who, action a, std::string_view repository) const {
  auto check = [&](const grant& g) -> std::optional<decision> {
    if (!g.actions.allows(a)) return std::nullopt;
    const std::string* pattern = covering_pattern(g, repository);
    if (pattern == nullptr) return std::nullopt;
    return decision{true, fmt::format("{}: {} may {} on {}", g.source, who.subject, g.actions.str(), *pattern)};
  };
  for (const grant& g : who.grants) {
    if (auto d = check(g)) return *d;
  }
  for (const grant& g : config_.grants) {
    if (!subject_matches(g.subject, who)) continue;
    if (auto d = check(g)) return *d;
  }
  if (repository != "*" && (a == action::pull || a == action::list)) {
    const auto& ns = namespace_of(repository);
    if (ns.vis == visibility::public_pull) {
      return decision{true, ns.name.empty() ? std::string("the default namespace is public-pull")
                                            : fmt::format("namespace {} is public-pull", ns.name)};
    }
  }
  std::string reason = repository == "*"
                           ? fmt::format("{} is not an administrator", who.subject)
                           : fmt::format("{} may not {} {}: no grant allows it", who.subject, to_string(a), repository);
  if (!who.denial_hint.empty()) reason += fmt::format(" ({})", who.denial_hint);
  return decision{false, std::move(reason)};
}

decision policy::may_create(std::string_view repository) const {
  const auto& ns = namespace_of(repository);
  if (ns.create != creation::explicit_) {
    return decision{true, ns.name.empty() ? std::string("the default namespace creates repositories on push")
                                          : fmt::format("namespace {} creates repositories on push", ns.name)};
  }
  return decision{false, fmt::format("repository {} does not exist and namespace {} creates repositories "
                                     "explicitly; create it with: berth repo create {}",
                                     repository, ns.name.empty() ? std::string("(default)") : ns.name, repository)};
}

std::optional<std::string> policy::immutable(std::string_view repository, std::string_view tag) const {
  const auto& ns = namespace_of(repository);
  for (const auto& pattern : ns.immutable_tags) {
    if (!pattern_matches(pattern, tag)) continue;
    const std::string rule = ns.name.empty() ? std::string("default_namespace") : "namespaces." + ns.name;
    return fmt::format("tag {}:{} is immutable ({}.immutable_tags: {})", repository, tag, rule, pattern);
  }
  return std::nullopt;
}

decision policy::preflight(const principal& who, action a, std::string_view repository, bool exists) const {
  auto d = decide(who, a, repository);
  if (!d.allowed || a != action::push || exists) return d;
  auto created = may_create(repository);
  if (!created.allowed) return created;
  return d;
}

action_set policy::allowed_actions(const principal& who, const action_set& wanted, std::string_view repository) const {
  action_set out;
  for (action a : all_actions) {
    if (wanted.has(a) && decide(who, a, repository).allowed) out.add(a);
  }
  return out;
}

}  // namespace berth::policy
