// Fuzzes parse_manifest. Input: the Content-Type up to the first newline, then the body. Checks what
// callers rely on when parsing succeeds, and that parsing is deterministic.
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/manifest.h"
#include "fuzz_check.h"

namespace {

void check_parsed(const berth::parsed_manifest& m) {
  using namespace berth;
  FUZZ_CHECK(is_manifest_media_type(m.media_type));
  const bool image = m.media_type == media_type::oci_manifest || m.media_type == media_type::docker_manifest;
  // Image manifests list blobs (config first), indexes list manifests, never both.
  FUZZ_CHECK(image ? !m.blobs.empty() && m.manifests.empty() : m.blobs.empty());
  for (const auto& list : {&m.blobs, &m.manifests}) {
    for (const auto& d : *list) {
      FUZZ_CHECK(!d.media_type.empty());
      FUZZ_CHECK(digest::parse(d.dgst.str()).has_value());
    }
  }
  if (!m.annotations_json.empty()) {
    const auto annotations = nlohmann::json::parse(m.annotations_json, nullptr, false);
    FUZZ_CHECK(annotations.is_object());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto newline = input.find('\n');
  const auto content_type = newline == std::string_view::npos ? std::string_view() : input.substr(0, newline);
  const auto body = newline == std::string_view::npos ? input : input.substr(newline + 1);

  const auto first = berth::parse_manifest(content_type, body);
  const auto second = berth::parse_manifest(content_type, body);
  FUZZ_CHECK(first.has_value() == second.has_value());
  if (!first) {
    FUZZ_CHECK(first.error().code == berth::errc::manifest_invalid);
    FUZZ_CHECK(first.error().detail == second.error().detail);
    return 0;
  }
  check_parsed(*first);
  FUZZ_CHECK(first->media_type == second->media_type && first->annotations_json == second->annotations_json);
  return 0;
}
