// Parsing and validation of pushed manifests: OCI image manifest and index, Docker schema 2 manifest
// and manifest list, and artifacts (artifactType, empty config). The parser never changes the bytes:
// the registry stores and serves exactly what was pushed; this only extracts what the registry must
// know (references to check, subject, artifact type, annotations).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/digest.h"
#include "core/error.h"

namespace berth {

namespace media_type {
inline constexpr std::string_view oci_manifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view oci_index = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view docker_manifest = "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view docker_list = "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view oci_empty = "application/vnd.oci.empty.v1+json";
}  // namespace media_type

struct descriptor {
  std::string media_type;
  digest dgst;
  std::uint64_t size = 0;
  // An index entry's platform, "os/architecture[/variant]" ("" when it has none, or unknown/unknown
  // as BuildKit gives its attestation manifests).
  std::string platform;
};

struct parsed_manifest {
  // One of the four media types above: the body's mediaType, else the Content-Type.
  std::string media_type;
  // What the referrers API reports: artifactType, else config.mediaType (image manifests), else "".
  std::string artifact_type;
  // Blobs the manifest needs in the same repository: config and layers (image manifests).
  std::vector<descriptor> blobs;
  // Manifests the index or manifest list needs in the same repository.
  std::vector<descriptor> manifests;
  std::optional<digest> subject;
  // The "annotations" object as compact JSON, or "" when absent.
  std::string annotations_json;
};

// True for the four manifest media types Berth stores.
bool is_manifest_media_type(std::string_view type);

// Parses `body`, pushed with the Content-Type `content_type` (parameters after ';' ignored).
// Fails with MANIFEST_INVALID when the body is not a JSON object, a descriptor is malformed (bad
// digest, negative or missing size, missing mediaType), required fields are missing, the body's
// mediaType disagrees with Content-Type, or the media type is not a manifest media type.
result<parsed_manifest> parse_manifest(std::string_view content_type, std::string_view body);

// What an image costs and runs on, as the tag listings show it (the lifecycle API).
// The total size: the manifest's own bytes, plus for an image manifest its config and layers, plus
// for an index the total size of each child as given in `child_sizes` (parallel to m.manifests: the
// child's own recorded total, which the descriptor's size, the child manifest's bytes, is not).
std::uint64_t total_size(const parsed_manifest& m, std::size_t manifest_bytes, std::span<const std::uint64_t> child_sizes);
// The platforms of an index: its entries' platforms, in order, without duplicates or empties.
std::vector<std::string> index_platforms(const parsed_manifest& m);
// The platform an image config blob names ("linux/arm64/v8"), or "" when `config` is not an image
// config (an artifact's config, "{}") or names no os and architecture.
std::string config_platform(std::string_view config);
// Whether a config blob of media type `type` can name a platform (OCI image config, Docker
// container config): the only configs worth reading at push time.
bool is_image_config_media_type(std::string_view type);

}  // namespace berth
