// SigV4 against the AWS Signature Version 4 test suite (aws-sig-v4-test-suite, as kept in
// awslabs/aws-c-auth's tests/aws-signing-test-suite/v4): access key AKIDEXAMPLE, region us-east-1,
// service "service", 2015-08-30T12:36:00Z. Each case's request, canonical request, string to sign
// and signature are the suite's files.
#include "s3/sigv4.h"

#include <gtest/gtest.h>

#include <chrono>

namespace berth::s3 {
namespace {

const credentials kCreds{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"};
const scope kScope{"us-east-1", "service"};
constexpr std::string_view kDate = "20150830T123600Z";
const std::string kHost = "example.amazonaws.com";

struct vector_case {
  std::string name;
  request_to_sign request;
  std::string signed_headers;
  std::string signature;
};

request_to_sign get(std::string path, params query = {}, params headers = {}) {
  headers.insert(headers.begin(), {"Host", kHost});
  headers.emplace_back("X-Amz-Date", std::string(kDate));
  return {"GET", std::move(path), std::move(query), std::move(headers), std::string(kEmptyPayloadHash)};
}

request_to_sign post(params headers = {}, std::string payload_hash = std::string(kEmptyPayloadHash)) {
  auto r = get("/", {}, std::move(headers));
  r.method = "POST";
  r.payload_hash = std::move(payload_hash);
  return r;
}

const std::string kFormHash = "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e";  // "Param1=value1"

std::vector<vector_case> header_cases() {
  const std::string unreserved = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  return {
      {"get-vanilla", get("/"), "host;x-amz-date", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
      {"get-vanilla-query-order-key-case", get("/", {{"Param2", "value2"}, {"Param1", "value1"}}), "host;x-amz-date",
       "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
      {"get-vanilla-query-unreserved", get("/", {{unreserved, unreserved}}), "host;x-amz-date",
       "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"},
      {"get-vanilla-utf8-query", get("/", {{"\xe1\x88\xb4", "bar"}}), "host;x-amz-date",
       "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"},
      {"get-unreserved", get("/" + unreserved), "host;x-amz-date",
       "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"},
      {"get-utf8", get("/\xe1\x88\xb4"), "host;x-amz-date",
       "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"},
      {"get-space-unnormalized", get("/example space/"), "host;x-amz-date",
       "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"},
      {"get-slashes-unnormalized", get("//example//"), "host;x-amz-date",
       "87cca117541a147f6df867677d98a7d80dff226d2bfca9e4ffa899665623c7e5"},
      {"get-header-key-duplicate",
       get("/", {}, {{"My-Header1", "value2"}, {"My-Header1", "value2"}, {"My-Header1", "value1"}}),
       "host;my-header1;x-amz-date", "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"},
      {"get-header-value-order",
       get("/", {}, {{"My-Header1", "value4"}, {"My-Header1", "value1"}, {"My-Header1", "value3"},
                     {"My-Header1", "value2"}}),
       "host;my-header1;x-amz-date", "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01"},
      {"get-header-value-trim", get("/", {}, {{"My-Header1", " value1"}, {"My-Header2", " \"a   b   c\""}}),
       "host;my-header1;my-header2;x-amz-date", "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"},
      {"post-vanilla", post(), "host;x-amz-date", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
      {"post-header-key-sort", post({{"My-Header1", "value1"}}), "host;my-header1;x-amz-date",
       "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"},
      {"post-x-www-form-urlencoded",
       post({{"Content-Type", "application/x-www-form-urlencoded"},
             {"Content-Length", "13"},
             {"X-Amz-Content-Sha256", kFormHash}},
            kFormHash),
       "content-length;content-type;host;x-amz-content-sha256;x-amz-date",
       "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b"},
      {"post-x-www-form-urlencoded-parameters",
       post({{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
             {"Content-Length", "13"},
             {"X-Amz-Content-Sha256", kFormHash}},
            kFormHash),
       "content-length;content-type;host;x-amz-content-sha256;x-amz-date",
       "328d1b9eaadca9f5818ef05e8392801e091653bafec24fcab71e7344e7f51422"},
  };
}

TEST(SigV4, HeaderFormMatchesTheTestSuite) {
  for (const auto& c : header_cases()) {
    EXPECT_EQ(authorization(kCreds, kScope, kDate, c.request),
              "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=" +
                  c.signed_headers + ", Signature=" + c.signature)
        << c.name;
  }
}

// The intermediate steps of two cases, so a mismatch shows where it starts.
TEST(SigV4, CanonicalRequestAndStringToSign) {
  const auto query_case = get("/", {{"Param2", "value2"}, {"Param1", "value1"}});
  const std::string creq = canonical_request(query_case);
  EXPECT_EQ(creq,
            "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
            "host;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(string_to_sign(kDate, kScope, creq),
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
            "816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0");

  const auto trim_case = get("/", {}, {{"My-Header1", " value1"}, {"My-Header2", " \"a   b   c\""}});
  EXPECT_EQ(canonical_request(trim_case),
            "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:\"a b c\"\n"
            "x-amz-date:20150830T123600Z\n\nhost;my-header1;my-header2;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

std::string signature_param(const std::string& query) {
  const auto at = query.find("X-Amz-Signature=");
  return at == std::string::npos ? "" : query.substr(at + 16, 64);
}

TEST(SigV4, PresignedQueryMatchesTheTestSuite) {
  const request_to_sign vanilla{"GET", "/", {}, {{"Host", kHost}}, std::string(kEmptyPayloadHash)};
  const auto query = presigned_query(kCreds, kScope, kDate, std::chrono::seconds(3600), vanilla);
  EXPECT_EQ(query,
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fservice%2F"
            "aws4_request&X-Amz-Date=20150830T123600Z&X-Amz-Expires=3600&X-Amz-Signature="
            "e93c787ed7f371d5c6b165c1b38ede9550f4dce4144713e844b25b7192d3865d&X-Amz-SignedHeaders=host");

  auto ordered = vanilla;
  ordered.query = {{"Param2", "value2"}, {"Param1", "value1"}};
  EXPECT_EQ(signature_param(presigned_query(kCreds, kScope, kDate, std::chrono::seconds(3600), ordered)),
            "86012e2c9ad4d77369f5d81c11f75158aae4f895a085212cc6d3f923d300bed5");
}

TEST(SigV4, S3EncodingRules) {
  EXPECT_EQ(uri_encode("/a b/c+d=e", true), "/a%20b/c%2Bd%3De");
  EXPECT_EQ(uri_encode("a/b"), "a%2Fb");
  EXPECT_EQ(uri_encode("-_.~"), "-_.~");
  // A bare `?uploads` is signed as "uploads=" (libcurl's own SigV4 gets this wrong).
  EXPECT_EQ(canonical_query({{"uploads", ""}}), "uploads=");
  EXPECT_EQ(canonical_query({{"prefix", "b/"}, {"list-type", "2"}, {"prefix", "a/"}}),
            "list-type=2&prefix=a%2F&prefix=b%2F");
  EXPECT_EQ(canonical_query({}), "");
}

TEST(SigV4, AmzDateAndPayloadHash) {
  using namespace std::chrono;
  EXPECT_EQ(amz_date(sys_days{2015y / 8 / 30} + 12h + 36min + 0s + 250ms), "20150830T123600Z");
  EXPECT_EQ(sha256_hex(""), kEmptyPayloadHash);
  EXPECT_EQ(sha256_hex("Param1=value1"), kFormHash);
}

}  // namespace
}  // namespace berth::s3
