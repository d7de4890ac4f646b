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

// What a GET answers to a Range header (RFC 9110 14.2).
struct range_request {
  enum class kind {
    ignored,        // 200 with the whole body: an unknown unit, several ranges, a malformed range
    satisfiable,    // 206 with `range`
    unsatisfiable,  // 416: one well-formed byte range that starts past the end
  };
  kind k = kind::ignored;
  byte_range range;  // when satisfiable
};

// Reads a Range header for a resource of `size` bytes: "bytes=a-b", "bytes=a-", "bytes=-n". A `last`
// past the end is clamped to size-1. A server may ignore Range, and must ignore a unit it does not
// know: anything but one well-formed byte range is `ignored` (Berth sends no multipart/byteranges).
range_request parse_range(std::string_view header, std::uint64_t size);

// Parses an upload's Content-Range, "a-b" or "bytes a-b/*" style ("bytes=a-b" accepted too).
// Returns nullopt when malformed or b < a.
std::optional<byte_range> parse_content_range(std::string_view header);

}  // namespace berth::http
