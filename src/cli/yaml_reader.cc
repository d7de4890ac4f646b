#include "cli/yaml_reader.h"

#include <fmt/core.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>

#include "cli/common.h"

namespace berth::cli {

YAML::Node load_yaml(const std::string& text, const std::string& path) {
  try {
    return YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    throw cli_error(fmt::format("{}:{}: {}", path, e.mark.line + 1, e.msg));
  }
}

void yaml_reader::error(const YAML::Node& at, const std::string& message) {
  errors_.push_back(fmt::format("{}:{}: {}", path_, line(at), message));
}

void yaml_reader::throw_errors() const {
  if (!errors_.empty()) throw cli_error(fmt::format("{}", fmt::join(errors_, "\n")));
}

void yaml_reader::known_keys(const YAML::Node& map, const std::vector<std::string>& known, const std::string& where) {
  for (const auto& kv : map) {
    const auto key = kv.first.Scalar();
    if (std::find(known.begin(), known.end(), key) == known.end())
      error(kv.first, fmt::format("unknown key `{}{}` (known: {})", where, key, fmt::join(known, ", ")));
  }
}

bool yaml_reader::is_map(const YAML::Node& n, const std::string& where) {
  if (n.IsMap()) return true;
  error(n, fmt::format("`{}` must be a mapping", where));
  return false;
}

std::optional<std::string> yaml_reader::scalar(const YAML::Node& n, const std::string& where) {
  if (n.IsScalar()) return n.Scalar();
  error(n, fmt::format("`{}` must be a string", where));
  return std::nullopt;
}

namespace {

// The node's whole number (any sign); nullopt when it is not one.
std::optional<std::int64_t> integer(const YAML::Node& n) {
  std::int64_t v = 0;
  const auto text = n.IsScalar() ? n.Scalar() : std::string();
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return v;
}

}  // namespace

std::optional<std::int64_t> yaml_reader::positive(const YAML::Node& n, const std::string& where) {
  const auto v = integer(n);
  if (v && *v > 0) return v;
  error(n, fmt::format("`{}` must be a positive whole number", where));
  return std::nullopt;
}

std::optional<std::int64_t> yaml_reader::whole_number(const YAML::Node& n, const std::string& where) {
  const auto v = integer(n);
  if (!v) error(n, fmt::format("`{}` must be a whole number", where));
  return v;
}

std::optional<bool> yaml_reader::boolean(const YAML::Node& n, const std::string& where) {
  const auto text = n.IsScalar() ? n.Scalar() : std::string();
  if (text == "true") return true;
  if (text == "false") return false;
  error(n, fmt::format("`{}` must be true or false", where));
  return std::nullopt;
}

std::vector<std::string> yaml_reader::strings(const YAML::Node& n, const std::string& where) {
  if (n.IsScalar()) return {n.Scalar()};
  std::vector<std::string> out;
  if (!n.IsSequence()) {
    error(n, fmt::format("`{}` must be a list of strings", where));
    return out;
  }
  for (const auto& item : n) {
    if (auto s = scalar(item, where + "[]")) out.push_back(*s);
  }
  return out;
}

}  // namespace berth::cli
