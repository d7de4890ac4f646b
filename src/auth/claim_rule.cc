// claim_rule: a recursive-descent parser for the grammar in jwt.h and an evaluator over its tree.
#include <algorithm>

#include <fmt/format.h>

#include "auth/jwt.h"

namespace berth::auth {

struct claim_rule::node {
  enum class kind { any_of, all_of, negation, equals, not_equals, starts_with, ends_with, glob };
  kind op;
  std::vector<node> operands;      // any_of, all_of: two or more; negation: one (moved in, never copied)
  std::vector<std::string> claim;  // comparisons: the path into the claims, one object key a step
  std::string value;               // comparisons: the quoted string
};

namespace {

using node = claim_rule::node;

// '!' and '(' each add a level; the evaluator recurses as deep as the parser did.
constexpr int kMaxDepth = 32;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool starts_claim(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool continues_claim(char c) { return starts_claim(c) || (c >= '0' && c <= '9') || c == '.'; }

class parser {
 public:
  explicit parser(std::string_view text) : text_(text) {}

  result<node> parse_rule() {
    auto root = parse_or(0);
    if (!root) return root;
    skip_space();
    if (pos_ < text_.size()) return error_at(pos_, "expected '&&', '||' or the end of the rule");
    return root;
  }

 private:
  // or := and ('||' and)*   and := unary ('&&' unary)*
  result<node> parse_or(int depth) { return parse_chain(depth, "||", node::kind::any_of); }
  result<node> parse_and(int depth) { return parse_chain(depth, "&&", node::kind::all_of); }

  result<node> parse_chain(int depth, std::string_view separator, node::kind op) {
    const bool is_or = op == node::kind::any_of;
    auto first = is_or ? parse_and(depth) : parse_unary(depth);
    if (!first) return first;
    node chain{op, {}, {}, {}};
    chain.operands.push_back(std::move(*first));
    while (consume(separator)) {
      auto next = is_or ? parse_and(depth) : parse_unary(depth);
      if (!next) return next;
      chain.operands.push_back(std::move(*next));
    }
    if (chain.operands.size() == 1) return std::move(chain.operands.front());
    return chain;
  }

  // unary := '!' unary | '(' or ')' | cmp
  result<node> parse_unary(int depth) {
    skip_space();
    const std::size_t start = pos_;
    const bool negation = consume("!");
    if (negation || consume("(")) {
      if (depth + 1 > kMaxDepth) return error_at(start, fmt::format("rule nested deeper than {} levels", kMaxDepth));
      if (negation) {
        auto operand = parse_unary(depth + 1);
        if (!operand) return operand;
        node negated{node::kind::negation, {}, {}, {}};
        negated.operands.push_back(std::move(*operand));
        return negated;
      }
      auto inner = parse_or(depth + 1);
      if (!inner) return inner;
      if (!consume(")")) return error_at(pos_, fmt::format("expected ')' to close the '(' at {}", start + 1));
      return inner;
    }
    return parse_comparison();
  }

  // cmp := claim ('==' | '!=' | 'starts with' | 'ends with' | 'matches') string
  result<node> parse_comparison() {
    auto claim = parse_claim();
    if (!claim) return std::unexpected(std::move(claim.error()));
    skip_space();
    node comparison{node::kind::equals, {}, std::move(*claim), {}};
    std::string_view op_name;
    if (consume("==")) {
      op_name = "==";
    } else if (consume("!=")) {
      comparison.op = node::kind::not_equals;
      op_name = "!=";
    } else if (consume_words("starts", "with")) {
      comparison.op = node::kind::starts_with;
      op_name = "starts with";
    } else if (consume_words("ends", "with")) {
      comparison.op = node::kind::ends_with;
      op_name = "ends with";
    } else if (consume_words("matches", {})) {
      comparison.op = node::kind::glob;
      op_name = "matches";
    } else {
      return error_at(pos_, "expected '==', '!=', 'starts with', 'ends with' or 'matches' after a claim name");
    }
    skip_space();
    auto value = parse_string(op_name);
    if (!value) return std::unexpected(std::move(value.error()));
    comparison.value = std::move(*value);
    return comparison;
  }

  // claim := [A-Za-z_][A-Za-z0-9_.]*, split at the dots; no step may be empty.
  result<std::vector<std::string>> parse_claim() {
    if (pos_ >= text_.size() || !starts_claim(text_[pos_]))
      return error_at(pos_, "expected a claim name, '!' or '('");
    std::vector<std::string> path(1);
    for (; pos_ < text_.size() && continues_claim(text_[pos_]); ++pos_) {
      if (text_[pos_] != '.') {
        path.back().push_back(text_[pos_]);
      } else if (path.back().empty()) {
        return error_at(pos_, "empty step in a dotted claim name");
      } else {
        path.emplace_back();
      }
    }
    if (path.back().empty()) return error_at(pos_ - 1, "a claim name cannot end with '.'");
    return path;
  }

  // string := '"' ([^"\\] | '\"' | '\\')* '"'
  result<std::string> parse_string(std::string_view after) {
    if (pos_ >= text_.size() || text_[pos_] != '"')
      return error_at(pos_, fmt::format("expected a string after '{}'", after));
    const std::size_t open = pos_++;
    std::string value;
    while (pos_ < text_.size()) {
      const char c = text_[pos_++];
      if (c == '"') return value;
      if (c != '\\') {
        value.push_back(c);
        continue;
      }
      if (pos_ < text_.size() && (text_[pos_] == '"' || text_[pos_] == '\\')) {
        value.push_back(text_[pos_++]);
        continue;
      }
      return error_at(pos_ - 1, R"(only \" and \\ may follow '\' in a string)");
    }
    return error_at(open, "unterminated string");
  }

  void skip_space() {
    while (pos_ < text_.size() && is_space(text_[pos_])) ++pos_;
  }

  // Consumes `token` after optional space.
  bool consume(std::string_view token) {
    skip_space();
    if (text_.substr(pos_, token.size()) != token) return false;
    pos_ += token.size();
    return true;
  }

  // Consumes the keyword `first`, then (unless empty) space and the keyword `second`. A keyword
  // must end at a word boundary: "startswith" and "matchesx" are not operators.
  bool consume_words(std::string_view first, std::string_view second) {
    const std::size_t saved = pos_;
    const auto word = [&](std::string_view w) {
      if (text_.substr(pos_, w.size()) != w) return false;
      pos_ += w.size();
      return pos_ >= text_.size() || !continues_claim(text_[pos_]);
    };
    bool ok = word(first);
    if (ok && !second.empty()) {
      ok = pos_ < text_.size() && is_space(text_[pos_]);
      skip_space();
      ok = ok && word(second);
    }
    if (!ok) pos_ = saved;
    return ok;
  }

  std::unexpected<error> error_at(std::size_t pos, std::string_view what) const {
    return fail(errc::unsupported, fmt::format("at {}: {}", pos + 1, what));
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

// The index of the character after the one (UTF-8) starting at `i`.
std::size_t next_char(std::string_view s, std::size_t i) {
  ++i;
  while (i < s.size() && (static_cast<unsigned char>(s[i]) & 0xc0) == 0x80) ++i;
  return i;
}

// Glob match: '*' any run of characters (including '/'), '?' one character. Iterative, with one
// backtracking point (the last '*'), so the cost is at most |pattern| * |text|.
bool glob_matches(std::string_view pattern, std::string_view text) {
  std::size_t p = 0;
  std::size_t t = 0;
  std::size_t star = std::string_view::npos;  // the pattern index after the last '*'
  std::size_t star_text = 0;                  // where the text resumes when that '*' takes one more character
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = ++p;
      star_text = t;
    } else if (p < pattern.size() && pattern[p] == '?') {
      ++p;
      t = next_char(text, t);
    } else if (p < pattern.size() && pattern[p] == text[t]) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star;
      t = star_text = next_char(text, star_text);
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

// The string at `path` in `claims`, or null when a step is missing or the value is not a string.
const std::string* lookup(const nlohmann::json& claims, const std::vector<std::string>& path) {
  const nlohmann::json* value = &claims;
  for (const auto& step : path) {
    if (!value->is_object()) return nullptr;
    const auto it = value->find(step);
    if (it == value->end()) return nullptr;
    value = &*it;
  }
  return value->is_string() ? &value->get_ref<const std::string&>() : nullptr;
}

bool evaluate(const node& n, const nlohmann::json& claims) {
  switch (n.op) {
    case node::kind::any_of:
      return std::any_of(n.operands.begin(), n.operands.end(), [&](const node& o) { return evaluate(o, claims); });
    case node::kind::all_of:
      return std::all_of(n.operands.begin(), n.operands.end(), [&](const node& o) { return evaluate(o, claims); });
    case node::kind::negation:
      return !evaluate(n.operands.front(), claims);
    default:
      break;
  }
  const std::string* actual = lookup(claims, n.claim);
  if (actual == nullptr) return false;
  switch (n.op) {
    case node::kind::equals:
      return *actual == n.value;
    case node::kind::not_equals:
      return *actual != n.value;
    case node::kind::starts_with:
      return actual->starts_with(n.value);
    case node::kind::ends_with:
      return actual->ends_with(n.value);
    case node::kind::glob:
      return glob_matches(n.value, *actual);
    default:
      return false;  // the combinators, handled above
  }
}

}  // namespace

result<claim_rule> claim_rule::parse(std::string_view text) {
  auto root = parser(text).parse_rule();
  if (!root) return std::unexpected(std::move(root.error()));
  claim_rule rule;
  rule.root_ = std::make_shared<const node>(std::move(*root));
  rule.text_ = std::string(text);
  return rule;
}

bool claim_rule::matches(const nlohmann::json& claims) const { return root_ && evaluate(*root_, claims); }

}  // namespace berth::auth
