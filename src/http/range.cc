#include "http/range.h"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace berth::http {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Digits only: no sign, no spaces (from_chars alone would accept a partial parse).
std::optional<std::uint64_t> parse_number(std::string_view s) {
  std::uint64_t v = 0;
  if (s.empty()) return std::nullopt;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// Removes a case-insensitive "bytes" unit followed by `separator`; false when it is not there.
bool consume_unit(std::string_view& s, char separator) {
  constexpr std::string_view unit = "bytes";
  if (s.size() <= unit.size() || s[unit.size()] != separator) return false;
  for (std::size_t i = 0; i < unit.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != unit[i]) return false;
  }
  s.remove_prefix(unit.size() + 1);
  return true;
}

struct split_spec {
  std::string_view first;
  std::string_view last;
};

std::optional<split_spec> split_dash(std::string_view spec) {
  auto dash = spec.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  return split_spec{spec.substr(0, dash), spec.substr(dash + 1)};
}

}  // namespace

range_request parse_range(std::string_view header, std::uint64_t size) {
  using kind = range_request::kind;
  const range_request ignored{};
  const range_request unsatisfiable{kind::unsatisfiable, {}};
  std::string_view s = trim(header);
  if (!consume_unit(s, '=')) return ignored;
  s = trim(s);
  if (s.find(',') != std::string_view::npos) return ignored;
  auto parts = split_dash(s);
  if (!parts) return ignored;

  if (parts->first.empty()) {  // suffix form "-n": the last n bytes
    auto n = parse_number(parts->last);
    if (!n) return ignored;
    if (*n == 0 || size == 0) return unsatisfiable;
    return {kind::satisfiable, {size - std::min(*n, size), size - 1}};
  }
  auto first = parse_number(parts->first);
  std::optional<std::uint64_t> last;
  if (!parts->last.empty()) last = parse_number(parts->last);
  if (!first || (!parts->last.empty() && (!last || *last < *first))) return ignored;
  if (*first >= size) return unsatisfiable;
  return {kind::satisfiable, {*first, std::min(last.value_or(size - 1), size - 1)}};
}

std::optional<byte_range> parse_content_range(std::string_view header) {
  std::string_view s = trim(header);
  // The unit is optional: Docker and the OCI spec send the bare "a-b" form.
  if (!consume_unit(s, ' ')) consume_unit(s, '=');
  s = trim(s);
  std::optional<std::uint64_t> complete;
  if (auto slash = s.find('/'); slash != std::string_view::npos) {
    std::string_view total = s.substr(slash + 1);
    s = s.substr(0, slash);
    if (total != "*") {
      complete = parse_number(total);
      if (!complete) return std::nullopt;
    }
  }
  auto parts = split_dash(s);
  if (!parts) return std::nullopt;
  auto first = parse_number(parts->first);
  auto last = parse_number(parts->last);
  if (!first || !last || *last < *first) return std::nullopt;
  if (complete && *last >= *complete) return std::nullopt;
  return byte_range{*first, *last};
}

}  // namespace berth::http
