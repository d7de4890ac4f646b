#include "meta/retention_rules.h"

#include <fmt/core.h>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace berth::meta {

using json = nlohmann::json;

json rule_json(const retention_rule& rule) {
  json out{{"repositories", rule.repositories}, {"protect", rule.protect}};
  if (rule.keep_last) out["keep_last"] = *rule.keep_last;
  if (rule.keep_days) out["keep_days"] = *rule.keep_days;
  if (rule.untagged_days) out["untagged_days"] = *rule.untagged_days;
  return out;
}

result<retention_rule> rule_from_json(const json& doc, std::string_view where) {
  if (!doc.is_object())
    return fail(errc::invalid_argument, fmt::format("`{}` must be an object (repositories, keep_last, keep_days, "
                                                    "protect, untagged_days)",
                                                    where));
  retention_rule rule;
  for (const auto& item : doc.items()) {
    const std::string& key = item.key();
    const json& value = item.value();
    const auto bad = [&](std::string_view why) {
      return fail(errc::invalid_argument, fmt::format("`{}.{}` {}", where, key, why));
    };
    if (key == "repositories" || key == "protect") {
      if (!value.is_array() || !std::ranges::all_of(value, [](const json& p) { return p.is_string(); }))
        return bad("must be a list of patterns");
      (key == "protect" ? rule.protect : rule.repositories) = value.get<std::vector<std::string>>();
    } else if (key == "keep_last" || key == "keep_days" || key == "untagged_days") {
      if (value.is_null()) continue;
      if (!value.is_number_integer()) return bad("must be a whole number");
      auto& field = key == "keep_last" ? rule.keep_last : key == "keep_days" ? rule.keep_days : rule.untagged_days;
      field = value.get<std::int64_t>();
    } else {
      return fail(errc::invalid_argument,
                  fmt::format("`{}` has the unknown key `{}` (known: repositories, keep_last, keep_days, protect, "
                              "untagged_days)",
                              where, key));
    }
  }
  return rule;
}

result<retention_rule> stored_rule(std::string_view text) {
  const auto doc = json::parse(text, nullptr, false);
  auto rule = doc.is_discarded() ? fail(errc::invalid_argument, "not JSON") : rule_from_json(doc, "rule");
  if (rule) return rule;
  spdlog::error("metadata store: a stored retention rule does not read back ({}): {}", rule.error().detail, text);
  return fail(errc::internal);
}

}  // namespace berth::meta
