// Range and Content-Range parsing (RFC 9110), as registries use them.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace berth::http {

struct byte_range {
  std::uint64_t first = 0;
  std::uint64_t last = 0;  // inclusive
  std::uint64_t length() const { return last - first + 1; }
};

// Parses a Range header for a resource of `size` bytes: "bytes=a-b", "bytes=a-", "bytes=-n".
// Returns nullopt when the header is malformed, has several ranges, or is unsatisfiable.
// A `last` past the end is clamped to size-1.
std::optional<byte_range> parse_range(std::string_view header, std::uint64_t size);

// Parses an upload's Content-Range, "a-b" or "bytes a-b/*" style ("bytes=a-b" accepted too).
// Returns nullopt when malformed or b < a.
std::optional<byte_range> parse_content_range(std::string_view header);

}  // namespace berth::http
