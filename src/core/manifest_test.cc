#include "core/manifest.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <string>

namespace berth {
namespace {

using json = nlohmann::json;

const std::string kConfigDigest = digest_of("config").str();
const std::string kLayer0 = digest_of("layer0").str();
const std::string kLayer1 = digest_of("layer1").str();
const std::string kSubject = digest_of("subject").str();
// The OCI empty descriptor's blob is "{}".
const std::string kEmptyDigest = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

json desc(std::string_view type, const std::string& dgst, std::int64_t size) {
  return {{"mediaType", type}, {"digest", dgst}, {"size", size}};
}

json oci_image() {
  return {{"schemaVersion", 2},
          {"mediaType", media_type::oci_manifest},
          {"config", desc("application/vnd.oci.image.config.v1+json", kConfigDigest, 6)},
          {"layers",
           {desc("application/vnd.oci.image.layer.v1.tar+gzip", kLayer0, 100),
            desc("application/vnd.oci.image.layer.v1.tar+gzip", kLayer1, 200)}}};
}

json oci_index() {
  return {{"schemaVersion", 2},
          {"mediaType", media_type::oci_index},
          {"manifests",
           {desc(media_type::oci_manifest, kLayer0, 500),
            desc(media_type::oci_manifest, kLayer1, 600)}}};
}

result<parsed_manifest> parse(const json& body, std::string_view content_type = "") {
  return parse_manifest(content_type, body.dump());
}

// Asserts that `body` is rejected with MANIFEST_INVALID and a detail mentioning `field`.
void expect_invalid(const json& body, std::string_view field, std::string_view content_type = "") {
  auto m = parse(body, content_type);
  ASSERT_FALSE(m.has_value()) << body.dump();
  EXPECT_EQ(m.error().code, errc::manifest_invalid);
  EXPECT_NE(m.error().detail.find(field), std::string::npos) << "detail: " << m.error().detail;
}

TEST(ParseManifest, OciImageManifest) {
  auto m = parse(oci_image(), media_type::oci_manifest);
  ASSERT_TRUE(m.has_value()) << m.error().detail;
  EXPECT_EQ(m->media_type, media_type::oci_manifest);
  ASSERT_EQ(m->blobs.size(), 3u);
  EXPECT_EQ(m->blobs[0].dgst.str(), kConfigDigest);
  EXPECT_EQ(m->blobs[0].media_type, "application/vnd.oci.image.config.v1+json");
  EXPECT_EQ(m->blobs[0].size, 6u);
  EXPECT_EQ(m->blobs[1].dgst.str(), kLayer0);
  EXPECT_EQ(m->blobs[1].size, 100u);
  EXPECT_EQ(m->blobs[2].dgst.str(), kLayer1);
  EXPECT_TRUE(m->manifests.empty());
  EXPECT_FALSE(m->subject.has_value());
  EXPECT_EQ(m->annotations_json, "");
  // No artifactType: the config's media type is what the referrers API reports.
  EXPECT_EQ(m->artifact_type, "application/vnd.oci.image.config.v1+json");
}

TEST(ParseManifest, DockerSchema2Manifest) {
  json body = oci_image();
  body["mediaType"] = media_type::docker_manifest;
  body["config"]["mediaType"] = "application/vnd.docker.container.image.v1+json";
  auto m = parse(body, media_type::docker_manifest);
  ASSERT_TRUE(m.has_value()) << m.error().detail;
  EXPECT_EQ(m->media_type, media_type::docker_manifest);
  EXPECT_EQ(m->blobs.size(), 3u);
}

TEST(ParseManifest, OciIndex) {
  auto m = parse(oci_index(), media_type::oci_index);
  ASSERT_TRUE(m.has_value()) << m.error().detail;
  EXPECT_EQ(m->media_type, media_type::oci_index);
  EXPECT_TRUE(m->blobs.empty());
  ASSERT_EQ(m->manifests.size(), 2u);
  EXPECT_EQ(m->manifests[0].dgst.str(), kLayer0);
  EXPECT_EQ(m->manifests[1].size, 600u);
  EXPECT_EQ(m->artifact_type, "");
}

TEST(ParseManifest, DockerManifestList) {
  json body = oci_index();
  body["mediaType"] = media_type::docker_list;
  body["manifests"][0]["platform"] = {{"architecture", "amd64"}, {"os", "linux"}};
  auto m = parse(body, media_type::docker_list);
  ASSERT_TRUE(m.has_value()) << m.error().detail;
  EXPECT_EQ(m->media_type, media_type::docker_list);
  EXPECT_EQ(m->manifests.size(), 2u);
}

TEST(ParseManifest, EmptyIndexIsValid) {
  json body = oci_index();
  body["manifests"] = json::array();
  auto m = parse(body);
  ASSERT_TRUE(m.has_value()) << m.error().detail;
  EXPECT_TRUE(m->manifests.empty());
}

TEST(ParseManifest, ArtifactWithEmptyConfigAndNoLayers) {
  json body = {{"schemaVersion", 2},
               {"mediaType", media_type::oci_manifest},
               {"artifactType", "application/vnd.example.sbom"},
               {"config", desc(media_type::oci_empty, kEmptyDigest, 2)},
               {"layers", json::array()}};
  auto m = parse(body, media_type::oci_manifest);
  ASSERT_TRUE(m.has_value()) << m.error().detail;
  EXPECT_EQ(m->artifact_type, "application/vnd.example.sbom");
  ASSERT_EQ(m->blobs.size(), 1u);
  EXPECT_EQ(m->blobs[0].media_type, media_type::oci_empty);
  EXPECT_EQ(m->blobs[0].dgst.str(), kEmptyDigest);
}

TEST(ParseManifest, ArtifactTypeOnIndex) {
  json body = oci_index();
  body["artifactType"] = "application/vnd.example.bundle";
  auto m = parse(body);
  ASSERT_TRUE(m.has_value()) << m.error().detail;
  EXPECT_EQ(m->artifact_type, "application/vnd.example.bundle");
}

TEST(ParseManifest, SubjectOnManifestAndIndex) {
  for (json body : {oci_image(), oci_index()}) {
    body["subject"] = desc(media_type::oci_manifest, kSubject, 1234);
    auto m = parse(body);
    ASSERT_TRUE(m.has_value()) << m.error().detail;
    ASSERT_TRUE(m->subject.has_value());
    EXPECT_EQ(m->subject->str(), kSubject);
  }
}

TEST(ParseManifest, Annotations) {
  json body = oci_image();
  body["annotations"] = {{"org.opencontainers.image.created", "2024-01-01T00:00:00Z"}, {"a", "b \"q\""}};
  auto m = parse(body);
  ASSERT_TRUE(m.has_value()) << m.error().detail;
  // Compact, keys in order: byte-for-byte what the referrers API will embed.
  EXPECT_EQ(m->annotations_json,
            R"({"a":"b \"q\"","org.opencontainers.image.created":"2024-01-01T00:00:00Z"})");
  body["annotations"] = json::object();
  m = parse(body);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->annotations_json, "{}");
}

TEST(ParseManifest, UnknownFieldsAreIgnored) {
  json body = oci_image();
  body["x-vendor"] = {{"nested", {1, 2, 3}}};
  body["layers"][0]["urls"] = {"https://example.com/layer"};
  body["layers"][0]["annotations"] = {{"k", "v"}};
  EXPECT_TRUE(parse(body).has_value());
}

// --- Media type resolution ---

TEST(MediaType, ContentTypeParametersAndWhitespaceAreIgnored) {
  json body = oci_image();
  body.erase("mediaType");
  auto m = parse(body, " application/vnd.oci.image.manifest.v1+json ; charset=utf-8");
  ASSERT_TRUE(m.has_value()) << m.error().detail;
  EXPECT_EQ(m->media_type, media_type::oci_manifest);
  // And with a body mediaType, a matching Content-Type with parameters is no conflict.
  EXPECT_TRUE(parse(oci_image(), "application/vnd.oci.image.manifest.v1+json;charset=utf-8").has_value());
}

TEST(MediaType, ContentTypeUsedWhenBodyHasNone) {
  json body = oci_image();
  body.erase("mediaType");
  auto m = parse(body, media_type::docker_manifest);
  ASSERT_TRUE(m.has_value()) << m.error().detail;
  EXPECT_EQ(m->media_type, media_type::docker_manifest);

  json list = oci_index();
  list.erase("mediaType");
  m = parse(list, media_type::docker_list);
  ASSERT_TRUE(m.has_value()) << m.error().detail;
  EXPECT_EQ(m->media_type, media_type::docker_list);
}

TEST(MediaType, InferredFromShapeWhenNothingDeclares) {
  json image = oci_image();
  image.erase("mediaType");
  auto m = parse(image);
  ASSERT_TRUE(m.has_value()) << m.error().detail;
  EXPECT_EQ(m->media_type, media_type::oci_manifest);

  json index = oci_index();
  index.erase("mediaType");
  m = parse(index);
  ASSERT_TRUE(m.has_value()) << m.error().detail;
  EXPECT_EQ(m->media_type, media_type::oci_index);
}

TEST(MediaType, BodyWinsOverNonManifestContentType) {
  auto m = parse(oci_image(), "application/json");
  ASSERT_TRUE(m.has_value()) << m.error().detail;
  EXPECT_EQ(m->media_type, media_type::oci_manifest);
}

TEST(MediaType, BodyAndContentTypeDisagree) {
  expect_invalid(oci_image(), "mediaType", media_type::docker_manifest);
  expect_invalid(oci_index(), "mediaType", media_type::oci_manifest);
}

TEST(MediaType, NotAManifestType) {
  json body = oci_image();
  body["mediaType"] = "application/vnd.oci.image.config.v1+json";
  expect_invalid(body, "media type");
  body.erase("mediaType");
  expect_invalid(body, "media type", "application/octet-stream");
  body["mediaType"] = 42;
  expect_invalid(body, "mediaType");
}

TEST(MediaType, CannotBeDetermined) {
  expect_invalid(json{{"schemaVersion", 2}}, "media type");
}

TEST(MediaType, IsManifestMediaType) {
  EXPECT_TRUE(is_manifest_media_type(media_type::oci_manifest));
  EXPECT_TRUE(is_manifest_media_type(media_type::oci_index));
  EXPECT_TRUE(is_manifest_media_type(media_type::docker_manifest));
  EXPECT_TRUE(is_manifest_media_type(media_type::docker_list));
  EXPECT_FALSE(is_manifest_media_type(media_type::oci_empty));
  EXPECT_FALSE(is_manifest_media_type("application/vnd.docker.distribution.manifest.v1+json"));
  EXPECT_FALSE(is_manifest_media_type(""));
}

// --- Invalid documents ---

TEST(ParseManifestInvalid, NotAJsonObject) {
  for (const char* text : {"", "not json", "[]", "2", "\"str\"", "null", "{\"schemaVersion\": 2", "{} {}"}) {
    auto m = parse_manifest(media_type::oci_manifest, text);
    ASSERT_FALSE(m.has_value()) << text;
    EXPECT_EQ(m.error().code, errc::manifest_invalid);
  }
}

TEST(ParseManifestInvalid, SchemaVersion) {
  json body = oci_image();
  for (json version : {json(1), json(3), json("2"), json(2.5), json(nullptr)}) {
    body["schemaVersion"] = version;
    expect_invalid(body, "schemaVersion");
  }
  body.erase("schemaVersion");
  expect_invalid(body, "schemaVersion");
}

TEST(ParseManifestInvalid, ConfigMissingOrNotADescriptor) {
  for (std::string_view type : {media_type::oci_manifest, media_type::docker_manifest}) {
    json body = oci_image();
    body["mediaType"] = type;
    body.erase("config");
    expect_invalid(body, "config");
    body["config"] = "sha256:abc";
    expect_invalid(body, "config");
  }
}

TEST(ParseManifestInvalid, LayersMissingOrNotAnArray) {
  for (std::string_view type : {media_type::oci_manifest, media_type::docker_manifest}) {
    json body = oci_image();
    body["mediaType"] = type;
    body.erase("layers");
    expect_invalid(body, "layers");
    body["layers"] = desc("application/octet-stream", kLayer0, 1);
    expect_invalid(body, "layers");
  }
}

TEST(ParseManifestInvalid, ManifestsMissingOrNotAnArray) {
  for (std::string_view type : {media_type::oci_index, media_type::docker_list}) {
    json body = oci_index();
    body["mediaType"] = type;
    body.erase("manifests");
    expect_invalid(body, "manifests");
    body["manifests"] = json::object();
    expect_invalid(body, "manifests");
  }
}

// Every broken descriptor field is reported by its path in the document.
TEST(ParseManifestInvalid, DescriptorFieldsNamedInDetail) {
  const std::string upper = "sha256:" + std::string(64, 'A');
  const json bad_values[][2] = {
      {"mediaType", nullptr}, {"mediaType", ""},     {"mediaType", 7},    {"digest", nullptr},
      {"digest", 12},         {"digest", "sha256:"}, {"digest", upper},   {"digest", "md5:d41d8cd98f00b204e9800998ecf8427e"},
      {"size", nullptr},      {"size", -1},          {"size", 1.5},       {"size", "10"},
  };
  for (const auto& bad : bad_values) {
    const std::string field = bad[0].get<std::string>();
    const auto apply = [&](json& d) {
      if (bad[1].is_null()) d.erase(field);
      else d[field] = bad[1];
    };
    json image = oci_image();
    image["layers"].push_back(desc("application/octet-stream", kLayer0, 3));
    apply(image["layers"][2]);
    expect_invalid(image, "layers[2]." + field);

    image = oci_image();
    apply(image["config"]);
    expect_invalid(image, "config." + field);

    json index = oci_index();
    apply(index["manifests"][1]);
    expect_invalid(index, "manifests[1]." + field);

    index = oci_index();
    index["subject"] = desc(media_type::oci_manifest, kSubject, 10);
    apply(index["subject"]);
    expect_invalid(index, "subject." + field);
  }
}

TEST(ParseManifestInvalid, DescriptorNotAnObject) {
  json body = oci_image();
  body["layers"][1] = kLayer1;
  expect_invalid(body, "layers[1]");
  body = oci_index();
  body["subject"] = kSubject;
  expect_invalid(body, "subject");
}

TEST(ParseManifestInvalid, Annotations) {
  json body = oci_image();
  body["annotations"] = {{"ok", "v"}, {"count", 3}};
  expect_invalid(body, "annotations.count");
  body["annotations"] = json::array({"a"});
  expect_invalid(body, "annotations");
  body["annotations"] = "k=v";
  expect_invalid(body, "annotations");
  body["annotations"] = {{"nested", {{"k", "v"}}}};
  expect_invalid(body, "annotations.nested");
}

TEST(ParseManifestInvalid, DeepNestingIsRejectedWithoutCrashing) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  auto m = parse_manifest("", deep);
  ASSERT_FALSE(m.has_value());
  EXPECT_EQ(m.error().code, errc::manifest_invalid);
}

// ---- size and platforms (the lifecycle API's tag records) ----

TEST(ImageFacts, OciImageSizeIsManifestConfigAndLayers) {
  const std::string body = oci_image().dump();
  auto m = parse_manifest(media_type::oci_manifest, body);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(total_size(*m, body.size(), {}), body.size() + 6 + 100 + 200);
  EXPECT_TRUE(index_platforms(*m).empty());
}

TEST(ImageFacts, DockerSchema2SizeAndConfigPlatform) {
  json body = oci_image();
  body["mediaType"] = media_type::docker_manifest;
  body["config"]["mediaType"] = "application/vnd.docker.container.image.v1+json";
  const std::string text = body.dump();
  auto m = parse_manifest(media_type::docker_manifest, text);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(total_size(*m, text.size(), {}), text.size() + 306);
  EXPECT_TRUE(is_image_config_media_type(m->blobs[0].media_type));
  EXPECT_EQ(config_platform(R"({"architecture":"amd64","os":"linux","rootfs":{}})"), "linux/amd64");
}

TEST(ImageFacts, ConfigPlatformWithVariantAndWithout) {
  EXPECT_EQ(config_platform(R"({"architecture":"arm64","variant":"v8","os":"linux"})"), "linux/arm64/v8");
  EXPECT_EQ(config_platform(R"({"architecture":"arm64"})"), "");  // no os
  EXPECT_EQ(config_platform("{}"), "");                           // an artifact's empty config
  EXPECT_EQ(config_platform("not json"), "");
  EXPECT_EQ(config_platform(R"({"architecture":7,"os":"linux"})"), "");
  EXPECT_EQ(config_platform(R"({"architecture":"a,b","os":"linux"})"), "");  // never a separator
  EXPECT_EQ(config_platform(R"({"architecture":"amd64","os":"lin\u0000ux"})"), "");
  EXPECT_TRUE(is_image_config_media_type("application/vnd.oci.image.config.v1+json"));
  EXPECT_FALSE(is_image_config_media_type(media_type::oci_empty));
}

TEST(ImageFacts, OciIndexSumsChildrenAsRecordedAndListsPlatforms) {
  json body = oci_index();
  body["manifests"][0]["platform"] = {{"architecture", "amd64"}, {"os", "linux"}};
  body["manifests"][1]["platform"] = {{"architecture", "arm64"}, {"os", "linux"}, {"variant", "v8"}};
  const std::string text = body.dump();
  auto m = parse_manifest(media_type::oci_index, text);
  ASSERT_TRUE(m.has_value());
  const std::uint64_t children[] = {5000, 7000};  // each child's own total, not its descriptor size
  EXPECT_EQ(total_size(*m, text.size(), children), text.size() + 12000);
  EXPECT_EQ(index_platforms(*m), (std::vector<std::string>{"linux/amd64", "linux/arm64/v8"}));
}

TEST(ImageFacts, DockerManifestListSkipsUnknownAndDuplicatePlatforms) {
  json body = oci_index();
  body["mediaType"] = media_type::docker_list;
  body["manifests"].push_back(desc(media_type::docker_manifest, kConfigDigest, 10));
  body["manifests"][0]["platform"] = {{"architecture", "amd64"}, {"os", "linux"}};
  body["manifests"][1]["platform"] = {{"architecture", "unknown"}, {"os", "unknown"}};  // an attestation
  body["manifests"][2]["platform"] = {{"architecture", "amd64"}, {"os", "linux"}};
  auto m = parse_manifest(media_type::docker_list, body.dump());
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->manifests[1].platform, "");
  EXPECT_EQ(index_platforms(*m), (std::vector<std::string>{"linux/amd64"}));
}

TEST(ImageFacts, ArtifactHasSizeAndNoPlatform) {
  json body = {{"schemaVersion", 2},
               {"mediaType", media_type::oci_manifest},
               {"artifactType", "application/vnd.example.signature"},
               {"config", desc(media_type::oci_empty, kEmptyDigest, 2)},
               {"layers", {desc("application/vnd.example.sig", kLayer0, 90)}}};
  const std::string text = body.dump();
  auto m = parse_manifest(media_type::oci_manifest, text);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(total_size(*m, text.size(), {}), text.size() + 92);
  EXPECT_FALSE(is_image_config_media_type(m->blobs[0].media_type));  // its config is not read
  EXPECT_TRUE(index_platforms(*m).empty());
}

}  // namespace
}  // namespace berth
