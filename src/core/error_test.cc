#include "core/error.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <type_traits>

namespace berth {
namespace {

constexpr int kCodeCount = static_cast<int>(errc::unavailable) + 1;

TEST(ErrorTable, EveryCodeHasARow) {
  for (int i = 0; i < kCodeCount; ++i) {
    const auto& row = info(static_cast<errc>(i));
    EXPECT_FALSE(row.wire.empty()) << i;
    EXPECT_FALSE(row.message.empty()) << i;
    EXPECT_GE(row.status, 400) << i;
    EXPECT_LT(row.status, 600) << i;
    // Wire codes are the spec's upper-case identifiers.
    for (char c : row.wire) EXPECT_TRUE((c >= 'A' && c <= 'Z') || c == '_') << row.wire;
  }
}

struct oci_row {
  errc code;
  const char* wire;
  const char* message;
  int status;
};

// distribution-spec v1.1, "Error Codes" (code-1 .. code-14) with the messages verbatim; statuses are
// the ones the spec's endpoint table and the reference registry (distribution) use.
constexpr oci_row kOciCodes[] = {
    {errc::blob_unknown, "BLOB_UNKNOWN", "blob unknown to registry", 404},
    {errc::blob_upload_invalid, "BLOB_UPLOAD_INVALID", "blob upload invalid", 400},
    {errc::blob_upload_unknown, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", 404},
    {errc::digest_invalid, "DIGEST_INVALID", "provided digest did not match uploaded content", 400},
    {errc::manifest_blob_unknown, "MANIFEST_BLOB_UNKNOWN",
     "manifest references a manifest or blob unknown to registry", 400},
    {errc::manifest_invalid, "MANIFEST_INVALID", "manifest invalid", 400},
    {errc::manifest_unknown, "MANIFEST_UNKNOWN", "manifest unknown to registry", 404},
    {errc::name_invalid, "NAME_INVALID", "invalid repository name", 400},
    {errc::name_unknown, "NAME_UNKNOWN", "repository name not known to registry", 404},
    {errc::size_invalid, "SIZE_INVALID", "provided length did not match content length", 400},
    {errc::unauthorized, "UNAUTHORIZED", "authentication required", 401},
    {errc::denied, "DENIED", "requested access to the resource is denied", 403},
    {errc::unsupported, "UNSUPPORTED", "the operation is unsupported", 415},
    {errc::too_many_requests, "TOOMANYREQUESTS", "too many requests", 429},
};

TEST(ErrorTable, OciCodesMatchTheSpec) {
  for (const auto& want : kOciCodes) {
    const auto& row = info(want.code);
    EXPECT_EQ(row.wire, want.wire);
    EXPECT_EQ(row.message, want.message) << want.wire;
    EXPECT_EQ(row.status, want.status) << want.wire;
  }
}

TEST(ErrorTable, OciCodesHaveDistinctWireStrings) {
  std::set<std::string_view> seen;
  for (const auto& want : kOciCodes) EXPECT_TRUE(seen.insert(info(want.code).wire).second) << want.wire;
}

TEST(ErrorTable, ExtraCodesKeepTheirStatus) {
  EXPECT_EQ(info(errc::tag_invalid).wire, "TAG_INVALID");
  EXPECT_EQ(info(errc::tag_invalid).status, 400);
  EXPECT_EQ(info(errc::range_invalid).status, 416);
  EXPECT_EQ(info(errc::manifest_too_large).wire, "MANIFEST_INVALID");
  EXPECT_EQ(info(errc::manifest_too_large).status, 413);
  EXPECT_EQ(info(errc::pagination_invalid).wire, "PAGINATION_NUMBER_INVALID");
  EXPECT_EQ(info(errc::pagination_invalid).status, 400);
  EXPECT_EQ(info(errc::method_not_allowed).wire, "UNSUPPORTED");
  EXPECT_EQ(info(errc::method_not_allowed).status, 405);
  EXPECT_EQ(info(errc::upload_busy).wire, "BLOB_UPLOAD_INVALID");
  EXPECT_EQ(info(errc::upload_busy).status, 409);
  EXPECT_EQ(info(errc::request_timeout).status, 408);
  EXPECT_EQ(info(errc::not_found).wire, "NOT_FOUND");
  EXPECT_EQ(info(errc::not_found).status, 404);
  EXPECT_EQ(info(errc::already_exists).wire, "ALREADY_EXISTS");
  EXPECT_EQ(info(errc::already_exists).status, 409);
  EXPECT_EQ(info(errc::invalid_argument).wire, "INVALID_ARGUMENT");
  EXPECT_EQ(info(errc::invalid_argument).status, 400);
  EXPECT_EQ(info(errc::payload_too_large).wire, "PAYLOAD_TOO_LARGE");
  EXPECT_EQ(info(errc::payload_too_large).status, 413);
  EXPECT_EQ(info(errc::upload_busy).wire, "BLOB_UPLOAD_INVALID");
  EXPECT_EQ(info(errc::upload_busy).status, 409);
  EXPECT_EQ(info(errc::conflict).wire, "CONFLICT");
  EXPECT_EQ(info(errc::conflict).status, 409);
  EXPECT_EQ(info(errc::internal).wire, "UNKNOWN");
  EXPECT_EQ(info(errc::internal).status, 500);
  EXPECT_EQ(info(errc::unavailable).wire, "UNAVAILABLE");
  EXPECT_EQ(info(errc::unavailable).status, 503);
}

TEST(Error, StatusDefaultsToTheTable) {
  const error e{errc::name_unknown, "repository x"};
  EXPECT_EQ(e.http_status(), 404);
}

// Sealed: an error has no status of its own, so no call site can answer another status than its
// code's (the admin API once sent 404 and 400 under UNSUPPORTED, and 409 under DENIED).
TEST(Error, TheStatusIsAlwaysTheTables) {
  static_assert(!std::is_constructible_v<error, errc, std::string, int>, "an error takes no status");
  static_assert(!std::is_invocable_v<decltype(&fail), errc, std::string, int>, "fail() takes no status");
  for (int c = 0; c < kCodeCount; ++c) {
    const error e{static_cast<errc>(c), "detail"};
    EXPECT_EQ(e.http_status(), info(e.code).status) << info(e.code).wire;
  }
}

TEST(Error, DefaultIsInternal) {
  const error e;
  EXPECT_EQ(e.code, errc::internal);
  EXPECT_EQ(e.http_status(), 500);
}

TEST(Fail, BuildsAnUnexpectedResult) {
  result<int> r = fail(errc::blob_unknown, "sha256:abc");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::blob_unknown);
  EXPECT_EQ(r.error().detail, "sha256:abc");
  EXPECT_EQ(r.error().http_status(), 404);
}

}  // namespace
}  // namespace berth
