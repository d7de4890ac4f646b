// Decimal numbers as HTTP and Berth's paths and queries write them: ASCII digits only, the whole
// string (no sign, no spaces, no base prefix, nothing after). std::from_chars alone accepts a prefix
// ("12abc" reads as 12), which is how `DELETE /api/v1/grants/12abc` once deleted grant 12.
#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string_view>

namespace berth {

// The value of `text`, or nullopt when it is empty, holds anything but digits, or overflows 64 bits.
inline std::optional<std::uint64_t> parse_decimal(std::string_view text) {
  std::uint64_t value = 0;
  if (text.empty()) return std::nullopt;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace berth
