// Fuzzes the grammar of what arrives in URLs: digest::parse, valid_name and valid_tag, on the same
// input. Checks that whatever is accepted has the properties storage paths and queries rely on.
#include <cstdint>
#include <string_view>

#include "core/digest.h"
#include "core/reference.h"
#include "fuzz_check.h"

namespace {

bool lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

void check_digest(std::string_view text) {
  const auto d = berth::digest::parse(text);
  if (!d) {
    FUZZ_CHECK(d.error().code == berth::errc::digest_invalid);
    return;
  }
  FUZZ_CHECK(d->str() == text);
  const auto hex_size = d->algorithm() == berth::digest_algorithm::sha256 ? 64u : 128u;
  FUZZ_CHECK(d->hex().size() == hex_size);
  for (char c : d->hex()) FUZZ_CHECK((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
  const auto again = berth::digest::parse(d->str());
  FUZZ_CHECK(again && *again == *d);
}

// An accepted name is safe to use as a relative path: no empty, "." or ".." segment, nothing but
// [a-z0-9._/-], and every segment starts and ends alphanumeric.
void check_name(std::string_view name) {
  if (!berth::valid_name(name)) return;
  FUZZ_CHECK(!name.empty() && name.size() <= berth::kMaxNameLength);
  for (std::size_t start = 0;;) {
    const auto slash = name.find('/', start);
    const auto segment = name.substr(start, slash == std::string_view::npos ? slash : slash - start);
    FUZZ_CHECK(!segment.empty() && lower_alnum(segment.front()) && lower_alnum(segment.back()));
    for (char c : segment) FUZZ_CHECK(lower_alnum(c) || c == '.' || c == '_' || c == '-');
    FUZZ_CHECK(segment.find("..") == std::string_view::npos && segment.find("___") == std::string_view::npos);
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
}

void check_tag(std::string_view tag) {
  if (!berth::valid_tag(tag)) return;
  FUZZ_CHECK(!tag.empty() && tag.size() <= 128);
  FUZZ_CHECK(tag.front() != '.' && tag.front() != '-');
  FUZZ_CHECK(tag.find('/') == std::string_view::npos && tag.find(':') == std::string_view::npos);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  check_digest(input);
  check_name(input);
  check_tag(input);
  return 0;
}
