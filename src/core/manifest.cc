#include "core/manifest.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>

namespace berth {
namespace {

using json = nlohmann::json;

// Where a field sits in the manifest ("layers", index 2 -> "layers[2]"). Built into a string only
// when an error is reported, so the success path allocates nothing for it.
struct field_path {
  std::string_view name;
  std::ptrdiff_t index = -1;

  std::string member(std::string_view key) const {
    return index < 0 ? fmt::format("{}.{}", name, key) : fmt::format("{}[{}].{}", name, index, key);
  }
  std::string self() const { return index < 0 ? std::string(name) : fmt::format("{}[{}]", name, index); }
};

std::unexpected<error> invalid(std::string detail) { return fail(errc::manifest_invalid, std::move(detail)); }

// The member `key` of object `obj`, or nullptr when absent.
const json* member(const json& obj, const char* key) {
  const auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

// "type/subtype; charset=x" -> "type/subtype": parameters never change which manifest it is.
std::string_view strip_parameters(std::string_view content_type) {
  content_type = content_type.substr(0, content_type.find(';'));
  const auto first = content_type.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  const auto last = content_type.find_last_not_of(" \t");
  return content_type.substr(first, last - first + 1);
}

result<descriptor> parse_descriptor(const json& value, field_path at) {
  if (!value.is_object()) return invalid(fmt::format("{} must be an object", at.self()));

  const json* type = member(value, "mediaType");
  if (type == nullptr || !type->is_string() || type->get_ref<const std::string&>().empty())
    return invalid(fmt::format("{} must be a non-empty string", at.member("mediaType")));

  const json* text = member(value, "digest");
  if (text == nullptr || !text->is_string())
    return invalid(fmt::format("{} must be a digest string", at.member("digest")));
  auto dgst = digest::parse(text->get_ref<const std::string&>());
  if (!dgst) return invalid(fmt::format("{}: {}", at.member("digest"), dgst.error().detail));

  // nlohmann stores every non-negative integer literal as unsigned; negatives and fractions are not.
  const json* size = member(value, "size");
  if (size == nullptr || !size->is_number_unsigned())
    return invalid(fmt::format("{} must be a non-negative integer", at.member("size")));

  return descriptor{type->get<std::string>(), std::move(*dgst), size->get<std::uint64_t>(), {}};
}

// "os/architecture[/variant]" from an object holding those members (an index entry's platform, an
// image config); "" when os or architecture is missing, not a string, or "unknown".
std::string platform_string(const json& obj) {
  if (!obj.is_object()) return {};
  const auto text = [&](const char* key) -> std::string {
    const json* v = member(obj, key);
    return v != nullptr && v->is_string() ? v->get<std::string>() : std::string();
  };
  // A platform is shown and stored as one "a/b/c" string: parts are short words, never separators.
  const auto word = [](const std::string& part) {
    return part.size() <= 64 && std::all_of(part.begin(), part.end(), [](char c) {
             return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' || c == '+';
           });
  };
  const std::string os = text("os");
  const std::string arch = text("architecture");
  const std::string variant = text("variant");
  if (os.empty() || arch.empty() || os == "unknown" || arch == "unknown") return {};
  if (!word(os) || !word(arch) || !word(variant)) return {};
  return variant.empty() ? fmt::format("{}/{}", os, arch) : fmt::format("{}/{}/{}", os, arch, variant);
}

// Appends every descriptor of the array `body[key]` to `out`. A missing or non-array field fails.
result<void> parse_descriptor_array(const json& body, const char* key, std::vector<descriptor>& out) {
  const json* array = member(body, key);
  if (array == nullptr || !array->is_array()) return invalid(fmt::format("{} must be an array", key));
  out.reserve(out.size() + array->size());
  for (std::size_t i = 0; i < array->size(); ++i) {
    auto d = parse_descriptor((*array)[i], field_path{key, static_cast<std::ptrdiff_t>(i)});
    if (!d) return std::unexpected(std::move(d.error()));
    if (const json* platform = member((*array)[i], "platform")) d->platform = platform_string(*platform);
    out.push_back(std::move(*d));
  }
  return {};
}

// The body's mediaType, else the Content-Type, else what the shape says. The body wins because it
// is what the digest covers; a manifest Content-Type that contradicts it is a client bug.
result<std::string> effective_media_type(std::string_view content_type, const json& body) {
  const auto header = strip_parameters(content_type);
  if (const json* declared = member(body, "mediaType")) {
    if (!declared->is_string()) return invalid("mediaType must be a string");
    const auto& type = declared->get_ref<const std::string&>();
    if (is_manifest_media_type(header) && header != type)
      return invalid(fmt::format("mediaType {} does not match Content-Type {}", type, header));
    return type;
  }
  if (!header.empty()) return std::string(header);
  if (body.contains("manifests")) return std::string(media_type::oci_index);
  if (body.contains("config")) return std::string(media_type::oci_manifest);
  return invalid("cannot tell the manifest media type: no mediaType, Content-Type, config or manifests");
}

// Image manifests (OCI and Docker schema 2): the config and every layer are blobs of the repository.
// OCI 1.1 allows an empty layers array (artifacts), so only its presence is required.
result<void> parse_image(const json& body, parsed_manifest& out) {
  const json* config = member(body, "config");
  if (config == nullptr) return invalid("config is required");
  auto cfg = parse_descriptor(*config, field_path{"config"});
  if (!cfg) return std::unexpected(std::move(cfg.error()));
  out.blobs.push_back(std::move(*cfg));
  return parse_descriptor_array(body, "layers", out.blobs);
}

result<void> parse_annotations(const json& body, parsed_manifest& out) {
  const json* annotations = member(body, "annotations");
  if (annotations == nullptr) return {};
  if (!annotations->is_object()) return invalid("annotations must be an object");
  for (const auto& [key, value] : annotations->items()) {
    if (!value.is_string()) return invalid(fmt::format("annotations.{} must be a string", key));
  }
  out.annotations_json = annotations->dump();
  return {};
}

result<void> parse_subject(const json& body, parsed_manifest& out) {
  const json* subject = member(body, "subject");
  if (subject == nullptr) return {};
  auto d = parse_descriptor(*subject, field_path{"subject"});
  if (!d) return std::unexpected(std::move(d.error()));
  out.subject = std::move(d->dgst);
  return {};
}

bool is_image_manifest(std::string_view type) {
  return type == media_type::oci_manifest || type == media_type::docker_manifest;
}

}  // namespace

bool is_manifest_media_type(std::string_view type) {
  return is_image_manifest(type) || type == media_type::oci_index || type == media_type::docker_list;
}

result<parsed_manifest> parse_manifest(std::string_view content_type, std::string_view body_text) {
  // No exceptions: a parse error yields a "discarded" value. The parser is iterative, so deeply
  // nested input cannot exhaust the stack.
  const json body = json::parse(body_text.begin(), body_text.end(), nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) return invalid("manifest must be a JSON object");

  const json* version = member(body, "schemaVersion");
  if (version == nullptr || !version->is_number_integer() || version->get<std::int64_t>() != 2)
    return invalid("schemaVersion must be 2");

  parsed_manifest out;
  auto type = effective_media_type(content_type, body);
  if (!type) return std::unexpected(std::move(type.error()));
  if (!is_manifest_media_type(*type)) return invalid(fmt::format("unsupported manifest media type {}", *type));
  out.media_type = std::move(*type);

  auto shape = is_image_manifest(out.media_type) ? parse_image(body, out)
                                                 : parse_descriptor_array(body, "manifests", out.manifests);
  if (!shape) return std::unexpected(std::move(shape.error()));
  if (auto s = parse_subject(body, out); !s) return std::unexpected(std::move(s.error()));
  if (auto a = parse_annotations(body, out); !a) return std::unexpected(std::move(a.error()));

  if (const json* artifact = member(body, "artifactType"); artifact != nullptr && artifact->is_string())
    out.artifact_type = artifact->get<std::string>();
  else if (is_image_manifest(out.media_type))
    out.artifact_type = out.blobs.front().media_type;  // the config: parse_image put it first
  return out;
}

std::uint64_t total_size(const parsed_manifest& m, std::size_t manifest_bytes,
                         std::span<const std::uint64_t> child_sizes) {
  std::uint64_t total = manifest_bytes;
  for (const auto& b : m.blobs) total += b.size;
  for (std::uint64_t s : child_sizes) total += s;
  return total;
}

std::vector<std::string> index_platforms(const parsed_manifest& m) {
  std::vector<std::string> out;
  for (const auto& child : m.manifests) {
    if (!child.platform.empty() && std::find(out.begin(), out.end(), child.platform) == out.end())
      out.push_back(child.platform);
  }
  return out;
}

std::string config_platform(std::string_view config) {
  const json body = json::parse(config.begin(), config.end(), nullptr, /*allow_exceptions=*/false);
  return platform_string(body);
}

bool is_image_config_media_type(std::string_view type) {
  return type == "application/vnd.oci.image.config.v1+json" ||
         type == "application/vnd.docker.container.image.v1+json";
}

}  // namespace berth
