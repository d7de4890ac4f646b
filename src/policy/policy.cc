#include "policy/policy.h"

#include <fmt/core.h>

#include <array>
#include <nlohmann/json.hpp>

#include "core/byte_size.h"
#include "core/decimal.h"
#include "core/reference.h"

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

template <class Enum, std::size_t N>
std::optional<Enum> parse_name(const std::array<std::string_view, N>& names, std::string_view text) {
  for (std::size_t i = 0; i < N; ++i) {
    if (names[i] == text) return static_cast<Enum>(i);
  }
  return std::nullopt;
}

constexpr std::array<std::string_view, 2> visibility_names = {"private", "public-pull"};
constexpr std::array<std::string_view, 2> creation_names = {"on-push", "explicit"};
constexpr std::array<std::string_view, 2> origin_names = {"config", "api"};

// Where setting `key` of a namespace is written, for messages: "namespaces.production.creation",
// "default_namespace.creation", "creation of namespace production (admin API)".
std::string rule_name(const namespace_rule& ns, std::string_view key) {
  if (ns.name.empty()) return fmt::format("default_namespace.{}", key);
  if (ns.source == origin::api) return fmt::format("{} of namespace {} (admin API)", key, ns.name);
  return fmt::format("namespaces.{}.{}", ns.name, key);
}

}  // namespace

std::string_view to_string(visibility v) { return visibility_names[static_cast<std::size_t>(v)]; }
std::string_view to_string(creation c) { return creation_names[static_cast<std::size_t>(c)]; }
std::string_view to_string(origin o) { return origin_names[static_cast<std::size_t>(o)]; }

bool scalar_setting(std::string_view key) { return key != "immutable_tags"; }

result<void> set_namespace_setting(namespace_rule& ns, std::string_view key, const std::vector<std::string>& values) {
  const auto one = [&](const auto& names) -> result<std::string_view> {
    if (values.size() != 1 || !parse_name<visibility>(names, values[0]))
      return fail(errc::invalid_argument, fmt::format("`{}` must be {} or {}", key, names[0], names[1]));
    return values[0];
  };
  if (key == "visibility") {
    auto v = one(visibility_names);
    if (!v) return std::unexpected(v.error());
    ns.vis = *parse_name<visibility>(visibility_names, *v);
  } else if (key == "creation") {
    auto v = one(creation_names);
    if (!v) return std::unexpected(v.error());
    ns.create = *parse_name<creation>(creation_names, *v);
  } else if (key == "immutable_tags") {
    for (const auto& pattern : values) {
      if (pattern.empty()) return fail(errc::invalid_argument, "`immutable_tags` holds an empty pattern");
    }
    ns.immutable_tags = values;
  } else if (key == "quota_bytes") {
    auto bytes = values.size() == 1 ? parse_byte_size(values[0])
                                    : fail(errc::invalid_argument, "`quota_bytes` must be a size such as 200GiB");
    if (!bytes) return std::unexpected(bytes.error());
    ns.quota_bytes = *bytes;
  } else if (key == "max_repositories") {
    const auto count = values.size() == 1 ? parse_decimal(values[0]) : std::nullopt;
    if (!count) return fail(errc::invalid_argument, "`max_repositories` must be a whole number");
    ns.max_repositories = *count;
  } else {
    return fail(errc::invalid_argument,
                fmt::format("unknown namespace setting `{}` (visibility, creation, immutable_tags, quota_bytes, "
                            "max_repositories)",
                            key));
  }
  return {};
}

bool valid_namespace_name(std::string_view name) {
  return !name.empty() && name.find('/') == std::string_view::npos && valid_name(name);
}

std::string namespace_settings_json(const namespace_rule& ns) {
  nlohmann::json settings{
      {"visibility", to_string(ns.vis)}, {"creation", to_string(ns.create)}, {"immutable_tags", ns.immutable_tags}};
  if (ns.quota_bytes) settings["quota_bytes"] = *ns.quota_bytes;
  if (ns.max_repositories) settings["max_repositories"] = *ns.max_repositories;
  return settings.dump();
}

result<namespace_rule> parse_namespace_settings(std::string_view name, std::string_view json_text, origin source) {
  const auto doc = nlohmann::json::parse(json_text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object())
    return fail(errc::invalid_argument, "a namespace's settings are a JSON object");
  namespace_rule ns{std::string(name)};
  ns.source = source;
  for (const auto& [key, value] : doc.items()) {
    std::vector<std::string> values;
    if (value.is_string()) {
      values.push_back(value.get<std::string>());
    } else if (value.is_number_unsigned()) {
      values.push_back(std::to_string(value.get<std::uint64_t>()));
    } else if (value.is_array() && !scalar_setting(key) &&
               std::ranges::all_of(value, [](const auto& v) { return v.is_string(); })) {
      values = value.get<std::vector<std::string>>();
    } else {
      return fail(errc::invalid_argument, fmt::format("`{}` must be a string, a number or a list of strings", key));
    }
    if (auto set = set_namespace_setting(ns, key, values); !set) return std::unexpected(set.error());
  }
  return ns;
}

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
    return fmt::format("tag {}:{} is immutable ({}: {})", repository, tag, rule_name(ns, "immutable_tags"), pattern);
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
