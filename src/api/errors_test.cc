#include "api/errors.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace berth::api {
namespace {

TEST(ErrorResponse, IsTheOciEnvelopeWithTheTablesStatus) {
  auto res = error_response(error{errc::manifest_unknown, "v1"});
  EXPECT_EQ(res.status, 404u);
  EXPECT_EQ(res.headers[http::beast::http::field::content_type], "application/json");
  auto doc = nlohmann::json::parse(res.body);
  EXPECT_EQ(doc["errors"][0]["code"], "MANIFEST_UNKNOWN");
  EXPECT_EQ(doc["errors"][0]["detail"], "v1");
}

TEST(ErrorResponse, ADetailThatIsNotUtf8IsRenderedNotThrown) {
  auto res = error_response(error{errc::manifest_unknown, "\xff\xfe tag"});
  EXPECT_EQ(res.status, 404u);
  auto doc = nlohmann::json::parse(res.body);  // valid JSON, hence valid UTF-8
  EXPECT_EQ(doc["errors"][0]["code"], "MANIFEST_UNKNOWN");
  EXPECT_EQ(doc["errors"][0]["detail"], "\xef\xbf\xbd\xef\xbf\xbd tag");
}

}  // namespace
}  // namespace berth::api
