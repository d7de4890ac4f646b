// The retention rules managed through the admin API (PUT /api/v1/retention/rules), kept beside the
// metadata so that every instance runs the same set; the config's rules are not stored here.
// What a rule means, and which rules are valid: lifecycle/retention.h.
// Thread-safety: every method may be called concurrently, from any instance. Errors as in
// metadata_store.h.
#pragma once

#include <utility>  // before Asio: boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace berth::meta {

using boost::asio::awaitable;

struct retention_rule {
  std::vector<std::string> repositories;  // patterns, at least one
  std::optional<std::int64_t> keep_last;  // at least one of keep_last, keep_days, untagged_days is set
  std::optional<std::int64_t> keep_days;
  std::optional<std::int64_t> untagged_days;
  std::vector<std::string> protect;  // tag patterns
  std::string source;                // where it was declared, for messages ("retention[0]"); not stored

  // Two rules are the same when they keep the same tags, wherever they were declared.
  bool operator==(const retention_rule& o) const {
    return repositories == o.repositories && keep_last == o.keep_last && keep_days == o.keep_days &&
           untagged_days == o.untagged_days && protect == o.protect;
  }
};

// A rule as the admin API, the registry file's client and the stores write it: {"repositories":
// [...], "keep_last": N, "keep_days": N, "protect": [...], "untagged_days": N}, each number only when set.
nlohmann::json rule_json(const retention_rule& rule);
// The rule `doc` writes in rule_json's shape. INVALID_ARGUMENT naming `where` and the field when the
// document is not an object, has a key of another shape or a field of the wrong type ("`rules[0].keep_last`
// must be a whole number"). The values themselves are checked by lifecycle::check_rule.
result<retention_rule> rule_from_json(const nlohmann::json& doc, std::string_view where);

// For the stores: the rule that the stored document `text` (rule_json's, dumped) holds; `internal`,
// logged, when it does not parse.
result<retention_rule> stored_rule(std::string_view text);

class retention_rule_records {
 public:
  virtual ~retention_rule_records() = default;

  // The stored rules, in the order they were given to replace_rules(); `source` is empty.
  virtual awaitable<result<std::vector<retention_rule>>> rules() = 0;
  // Replaces the stored rules with `rules` (kept in their order) in one transaction. The caller has
  // validated them (lifecycle::check_rule).
  virtual awaitable<result<void>> replace_rules(std::span<const retention_rule> rules) = 0;
};

}  // namespace berth::meta
