#include "auth/scope.h"

namespace berth::auth {

std::string scope::str() const {
  std::string out = type + ":" + name + ":";
  for (std::size_t i = 0; i < actions.size(); ++i) {
    if (i > 0) out += ',';
    out += actions[i];
  }
  return out;
}

std::optional<scope> parse_scope(std::string_view text) {
  const auto first = text.find(':');
  const auto last = text.rfind(':');
  if (first == std::string_view::npos || first == last) return std::nullopt;
  scope s;
  std::string_view type = text.substr(0, first);
  if (const auto paren = type.find('('); paren != std::string_view::npos) type = type.substr(0, paren);
  s.type = type;
  s.name = text.substr(first + 1, last - first - 1);
  if (s.type.empty() || s.name.empty()) return std::nullopt;
  std::string_view actions = text.substr(last + 1);
  while (!actions.empty()) {
    const auto comma = std::min(actions.find(','), actions.size());
    if (comma > 0) s.actions.emplace_back(actions.substr(0, comma));
    actions.remove_prefix(std::min(comma + 1, actions.size()));
  }
  return s;
}

std::vector<scope> parse_scopes(std::string_view text) {
  std::vector<scope> out;
  while (!text.empty()) {
    const auto space = std::min(text.find(' '), text.size());
    if (auto s = parse_scope(text.substr(0, space))) out.push_back(std::move(*s));
    text.remove_prefix(std::min(space + 1, text.size()));
  }
  return out;
}

nlohmann::json to_json(const std::vector<scope>& scopes) {
  auto out = nlohmann::json::array();
  for (const auto& s : scopes) out.push_back({{"type", s.type}, {"name", s.name}, {"actions", s.actions}});
  return out;
}

std::vector<scope> scopes_from_json(const nlohmann::json& access) {
  std::vector<scope> out;
  if (!access.is_array()) return out;
  for (const auto& item : access) {
    if (!item.is_object()) continue;
    const auto type = item.find("type");
    const auto name = item.find("name");
    const auto actions = item.find("actions");
    if (type == item.end() || name == item.end() || !type->is_string() || !name->is_string()) continue;
    scope s{type->get<std::string>(), name->get<std::string>(), {}};
    if (actions != item.end() && actions->is_array()) {
      for (const auto& a : *actions) {
        if (a.is_string()) s.actions.push_back(a.get<std::string>());
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace berth::auth
