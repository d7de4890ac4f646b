#include "api/access.h"

#include <gtest/gtest.h>

#include <deque>

#include "auth/secret.h"

namespace berth::api {
namespace {

using scheme = credentials::scheme;

http::request with_authorization(std::optional<std::string> header) {
  http::beast::http::fields fields;
  if (header) fields.set(http::beast::http::field::authorization, *header);
  return http::request(http::beast::http::verb::get, "/v2/", std::move(fields), std::nullopt, false, "127.0.0.1",
                       nullptr);
}

// The credentials are read from a request that lives as long as the test: a bearer token is a view
// into its header.
result<credentials> parse(std::optional<std::string> header) {
  static std::deque<http::request> requests;
  return parse_authorization(requests.emplace_back(with_authorization(std::move(header))));
}

TEST(ParseAuthorization, NoHeaderIsAnonymous) {
  auto c = parse(std::nullopt);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->kind, scheme::none);
}

TEST(ParseAuthorization, BasicInAnyCase) {
  const std::string encoded = auth::base64_encode("alice:pa:ss");
  for (const char* name : {"Basic ", "basic ", "BASIC "}) {
    auto c = parse(name + encoded);
    ASSERT_TRUE(c) << name;
    EXPECT_EQ(c->kind, scheme::basic);
    EXPECT_EQ(c->username, "alice");
    EXPECT_EQ(c->password, "pa:ss");  // only the first colon separates
  }
}

TEST(ParseAuthorization, Bearer) {
  auto c = parse("Bearer abc.def.ghi");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->kind, scheme::bearer);
  EXPECT_EQ(c->token, "abc.def.ghi");
  EXPECT_EQ(parse("bearer  x ")->token, "x");
}

TEST(ParseAuthorization, MalformedIsUnauthorized) {
  for (const char* bad :
       {"Basic", "Basic !!!", "Basic " /* empty */, "Bearer", "Bearer ", "Digest x=1", "Basicabc", "Token abc"}) {
    auto c = parse(std::string(bad));
    ASSERT_FALSE(c) << bad;
    EXPECT_EQ(c.error().code, errc::unauthorized) << bad;
  }
  EXPECT_FALSE(parse("Basic " + auth::base64_encode("no-colon")));
}

}  // namespace
}  // namespace berth::api
