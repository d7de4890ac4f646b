// Fuzzes http::parse_range and http::parse_content_range. Input: the resource size in decimal up to
// the first newline (absent: 1000), then the header value. Checks that an accepted range is inside
// the resource and never inverted, which the blob reader and upload offsets rely on.
#include <cstdint>
#include <string_view>

#include "fuzz_check.h"
#include "http/range.h"

namespace {

// Leading decimal digits; saturates rather than overflowing so huge sizes stay interesting.
std::uint64_t parse_size(std::string_view text) {
  std::uint64_t size = 0;
  for (char c : text) {
    if (c < '0' || c > '9') break;
    const std::uint64_t digit = static_cast<std::uint64_t>(c - '0');
    size = size > (UINT64_MAX - digit) / 10 ? UINT64_MAX : size * 10 + digit;
  }
  return size;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto newline = input.find('\n');
  const std::uint64_t resource = newline == std::string_view::npos ? 1000 : parse_size(input.substr(0, newline));
  const auto header = newline == std::string_view::npos ? input : input.substr(newline + 1);

  if (const auto asked = berth::http::parse_range(header, resource);
      asked.k == berth::http::range_request::kind::satisfiable) {
    const auto* r = &asked.range;
    FUZZ_CHECK(r->first <= r->last);
    FUZZ_CHECK(r->last < resource);
    FUZZ_CHECK(r->length() >= 1 && r->length() <= resource);
  }
  if (const auto r = berth::http::parse_content_range(header)) {
    FUZZ_CHECK(r->first <= r->last);
  }
  return 0;
}
