#include "core/byte_size.h"

#include <fmt/core.h>

#include <array>
#include <cctype>
#include <cmath>
#include <utility>

namespace berth {
namespace {

std::unexpected<error> not_a_size(std::string_view text) {
  return fail(errc::invalid_argument,
              fmt::format("`{}` is not a size: write bytes (1048576) or a number with a unit (500MB, 200GiB, 1.5TiB)",
                          text));
}

// The multiplier of `unit` ("" or "B": 1), or 0 when it is not one.
unsigned __int128 unit_factor(std::string_view unit) {
  if (unit.empty() || unit == "B") return 1;
  constexpr std::string_view prefixes = "kmgtp";
  const auto prefix = prefixes.find(static_cast<char>(std::tolower(static_cast<unsigned char>(unit.front()))));
  if (prefix == std::string_view::npos) return 0;
  unit.remove_prefix(1);
  unsigned base = 1000;
  if (unit == "iB") {
    base = 1024;
  } else if (unit != "B") {
    return 0;
  }
  unsigned __int128 factor = 1;
  for (std::size_t i = 0; i <= prefix; ++i) factor *= base;
  return factor;
}

}  // namespace

result<std::uint64_t> parse_byte_size(std::string_view text) {
  std::string_view rest = text;
  unsigned __int128 whole = 0, fraction = 0, scale = 1;
  std::size_t digits = 0;
  for (; !rest.empty() && std::isdigit(static_cast<unsigned char>(rest.front())); rest.remove_prefix(1), ++digits) {
    whole = whole * 10 + static_cast<unsigned>(rest.front() - '0');
    if (whole > UINT64_MAX) return not_a_size(text);
  }
  if (digits == 0) return not_a_size(text);
  if (!rest.empty() && rest.front() == '.') {
    rest.remove_prefix(1);
    std::size_t fraction_digits = 0;
    for (; !rest.empty() && std::isdigit(static_cast<unsigned char>(rest.front())); rest.remove_prefix(1)) {
      if (++fraction_digits > 18) continue;  // beyond any unit's precision
      fraction = fraction * 10 + static_cast<unsigned>(rest.front() - '0');
      scale *= 10;
    }
    if (fraction_digits == 0) return not_a_size(text);
  }
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  const unsigned __int128 factor = unit_factor(rest);
  if (factor == 0) return not_a_size(text);
  if (scale > 1 && factor == 1) return not_a_size(text);  // a fraction of a byte
  const unsigned __int128 bytes = whole * factor + fraction * factor / scale;
  if (bytes > UINT64_MAX) return not_a_size(text);
  return static_cast<std::uint64_t>(bytes);
}

std::string binary_size(std::uint64_t bytes) {
  constexpr std::array units{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double value = static_cast<double>(bytes);
  std::size_t unit = 0;
  while (value >= 1024 && unit + 1 < units.size()) {
    value /= 1024;
    ++unit;
  }
  const double tenths = std::round(value * 10) / 10;
  if (unit == 0 || tenths == std::floor(tenths)) return fmt::format("{:.0f} {}", tenths, units[unit]);
  return fmt::format("{:.1f} {}", tenths, units[unit]);
}

}  // namespace berth
