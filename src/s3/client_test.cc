// The S3 client's HTTP behaviour against a scripted server: retries and backoff, deadlines, what is
// and is not retried when a body streams, error mapping, addressing, connection reuse. The same
// client against a real Ceph RGW is in client_rgw_test.cc.
#include "s3/client.h"

#include <gtest/gtest.h>

#include <chrono>

#include "s3/fake_s3_server.h"

namespace berth::s3 {
namespace {

using testing::fake_s3_server;
using namespace std::chrono_literals;

const std::string kSecret = "do-not-print-this-secret";

config config_for(const fake_s3_server& server) {
  config cfg;
  cfg.endpoint = server.endpoint();
  cfg.bucket = "bkt";
  cfg.creds = {"AKID", kSecret};
  cfg.transport.backoff = 1ms;
  cfg.transport.max_attempts = 3;
  cfg.transport.timeout = 10s;
  return cfg;
}

fake_s3_server::reply slow_down() { return {503, "", "<Error><Code>SlowDown</Code><Message>slow</Message></Error>"}; }

TEST(S3Client, RetriesThrottlingThenSucceedsOnOneConnection) {
  fake_s3_server server({slow_down(), slow_down(), {200, "ETag: bare-etag\r\n", ""}});
  client c(config_for(server));
  const auto etag = c.put("dir/a key", "hello");
  ASSERT_TRUE(etag.has_value()) << etag.error().message;
  EXPECT_EQ(*etag, "\"bare-etag\"");
  EXPECT_EQ(c.http().retries(), 2u);
  EXPECT_EQ(server.connections(), 1);
  EXPECT_EQ(c.http().connections_opened(), 1u);
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_TRUE(requests[0].starts_with("PUT /bkt/dir/a%20key HTTP/1.1\r\n")) << requests[0];
  EXPECT_NE(requests[0].find("Authorization: AWS4-HMAC-SHA256 Credential=AKID/"), std::string::npos);
  EXPECT_NE(requests[0].find("X-Amz-Content-Sha256: " + sha256_hex("hello")), std::string::npos);
  for (const auto& r : requests) EXPECT_EQ(r.find(kSecret), std::string::npos);
}

TEST(S3Client, GivesUpAfterMaxAttemptsWithoutLeakingTheSecret) {
  fake_s3_server server({slow_down(), slow_down(), slow_down(), {200, "", ""}});
  client c(config_for(server));
  const auto r = c.put("k", "body");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::throttled);
  EXPECT_EQ(r.error().status, 503);
  EXPECT_EQ(server.requests().size(), 3u);
  EXPECT_EQ(r.error().message.find(kSecret), std::string::npos);
}

TEST(S3Client, DoesNotRetryClientErrors) {
  fake_s3_server server({{404, "", ""}, {200, "Content-Length: 0\r\n", ""}});
  client c(config_for(server));
  const auto r = c.head("missing");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::not_found);
  EXPECT_EQ(r.error().message, "HEAD bkt/missing: 404");
  EXPECT_EQ(server.requests().size(), 1u);
}

TEST(S3Client, DeadlineCoversEveryAttempt) {
  fake_s3_server server({{.silent = true}, {.silent = true}, {.silent = true}});
  auto cfg = config_for(server);
  cfg.transport.timeout = 300ms;
  client c(cfg);
  const auto start = std::chrono::steady_clock::now();
  const auto r = c.head("k");
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::unavailable);
  EXPECT_NE(r.error().message.find("deadline exceeded"), std::string::npos) << r.error().message;
  EXPECT_GE(took, 250ms);  // libcurl's timer is not exact to the millisecond
  EXPECT_LT(took, 3s);
}

TEST(S3Client, UnreachableEndpointIsUnavailable) {
  auto cfg = config_for(fake_s3_server({}));  // the server is gone once this line ends
  client c(cfg);
  const auto r = c.head("k");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::unavailable);
  EXPECT_EQ(r.error().status, 0);
  EXPECT_EQ(c.http().retries(), 2u);
}

TEST(S3Client, StreamedBodyIsNotRetriedOnceRead) {
  fake_s3_server server({slow_down(), {200, "ETag: \"e\"\r\n", ""}});
  client c(config_for(server));
  const std::string data(100'000, 'x');
  std::size_t offset = 0;
  const body_source source = [&](std::span<char> buffer) -> std::optional<std::size_t> {
    const std::size_t n = std::min(buffer.size(), data.size() - offset);
    std::copy_n(data.data() + offset, n, buffer.data());
    offset += n;
    return n;
  };
  const auto r = c.put("k", data.size(), source);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::throttled);
  EXPECT_EQ(server.requests().size(), 1u);
  EXPECT_NE(server.requests()[0].find("X-Amz-Content-Sha256: UNSIGNED-PAYLOAD"), std::string::npos);
}

TEST(S3Client, SourceAndSinkCanStopATransfer) {
  // The aborted upload never completes a request, so the one reply is the download's.
  fake_s3_server server({{200, "ETag: \"e\"\r\n", std::string(50'000, 'y')}});
  client c(config_for(server));
  const body_source stop_source = [](std::span<char>) -> std::optional<std::size_t> { return std::nullopt; };
  const auto put = c.put("k", 10, stop_source);
  ASSERT_FALSE(put.has_value());
  EXPECT_EQ(put.error().code, errc::aborted);

  client fresh(config_for(server));
  const body_sink stop_sink = [](std::string_view) { return false; };
  const auto get = fresh.get("k", stop_sink);
  ASSERT_FALSE(get.has_value());
  EXPECT_EQ(get.error().code, errc::aborted);
}

TEST(S3Client, AnErrorInsideA200IsAnErrorAndRetried) {
  const std::string done = "<CompleteMultipartUploadResult><ETag>\"abc-2\"</ETag></CompleteMultipartUploadResult>";
  const std::string failed = "<?xml version=\"1.0\"?>\n<Error><Code>InternalError</Code></Error>";
  fake_s3_server server({{200, "", failed}, {200, "", done}});
  client c(config_for(server));
  const auto r = c.complete_multipart("k", "up1", {{1, "e1"}, {2, "\"e2\""}});
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(*r, "\"abc-2\"");
  EXPECT_EQ(c.http().retries(), 1u);
  EXPECT_TRUE(server.requests()[1].starts_with("POST /bkt/k?uploadId=up1 HTTP/1.1")) << server.requests()[1];
}

TEST(S3Client, UploadPartCopyNamesItsSourceAndReadsTheEtagFromTheBody) {
  const std::string failed = "<Error><Code>InternalError</Code></Error>";
  const std::string done = "<CopyPartResult><LastModified>x</LastModified><ETag>\"p1\"</ETag></CopyPartResult>";
  fake_s3_server server({{200, "", failed}, {200, "", done}});
  client c(config_for(server));
  const auto r = c.upload_part_copy("blobs/b", "up1", 3, "uploads/u/0 1");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(*r, "\"p1\"");
  EXPECT_EQ(c.http().retries(), 1u);  // the <Error> in a 200 was one
  const auto request = server.requests().at(1);
  EXPECT_TRUE(request.starts_with("PUT /bkt/blobs/b?partNumber=3&uploadId=up1 HTTP/1.1")) << request;
  EXPECT_NE(request.find("X-Amz-Copy-Source: /bkt/uploads/u/0%201\r\n"), std::string::npos) << request;
}

TEST(S3Client, ListingCarriesLastModified) {
  const std::string page =
      "<ListBucketResult><IsTruncated>false</IsTruncated>"
      "<Contents><Key>a</Key><LastModified>2026-11-30T13:03:49.123Z</LastModified><ETag>\"e\"</ETag>"
      "<Size>5</Size></Contents></ListBucketResult>";
  fake_s3_server server({{200, "", page}, {200, "", "<ListBucketResult><Contents><Key>a</Key><Size>1</Size>"
                                                    "</Contents></ListBucketResult>"}});
  client c(config_for(server));
  const auto r = c.list("");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  ASSERT_EQ(r->objects.size(), 1u);
  using namespace std::chrono;
  EXPECT_EQ(r->objects[0].last_modified, sys_days{2026y / 11 / 30} + 13h + 3min + 49s);
  EXPECT_EQ(c.list("").error().code, errc::unavailable);  // an entry without a date: a broken server
}

TEST(S3Client, ParsesIso8601Timestamps) {
  using namespace std::chrono;
  EXPECT_EQ(parse_iso8601("2024-02-29T23:59:59Z"), sys_days{2024y / 2 / 29} + 23h + 59min + 59s);
  EXPECT_EQ(parse_iso8601("1970-01-01T00:00:00.5Z"), sys_days{1970y / 1 / 1});
  for (const char* bad : {"", "2023-02-29T00:00:00Z", "2024-01-01 00:00:00Z", "2024-01-01T24:00:00Z",
                          "2024-01-01T00:00:00", "2024-01-01T00:00:00.Z", "2024-1-01T00:00:00.0Z"})
    EXPECT_FALSE(parse_iso8601(bad).has_value()) << bad;
}

TEST(S3Client, VirtualHostedAddressing) {
  fake_s3_server server({{200, "Content-Length: 7\r\nETag: \"e\"\r\n", ""}});
  auto cfg = config_for(server);
  cfg.endpoint = "http://localhost:" + server.endpoint().substr(server.endpoint().rfind(':') + 1);
  cfg.virtual_hosted = true;
  client c(cfg);
  const auto r = c.head("a/b");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->size, 7u);
  const auto request = server.requests().at(0);
  EXPECT_TRUE(request.starts_with("HEAD /a/b HTTP/1.1\r\n")) << request;
  EXPECT_NE(request.find("\r\nHost: bkt.localhost:"), std::string::npos) << request;
}

TEST(S3Client, PresignedUrlCarriesTheSignatureNotTheSecret) {
  config cfg;
  cfg.endpoint = "https://s3.example.com";
  cfg.bucket = "bkt";
  cfg.creds = {"AKID", kSecret};
  client c(cfg);
  using namespace std::chrono;
  const auto url = c.presign_get("dir/my blob", 600s, sys_days{2026y / 1 / 2} + 3h);
  EXPECT_TRUE(url.starts_with("https://s3.example.com/bkt/dir/my%20blob?X-Amz-Algorithm=AWS4-HMAC-SHA256&"
                              "X-Amz-Credential=AKID%2F20260102%2Fus-east-1%2Fs3%2Faws4_request&"
                              "X-Amz-Date=20260102T030000Z&X-Amz-Expires=600&X-Amz-Signature="))
      << url;
  EXPECT_TRUE(url.ends_with("&X-Amz-SignedHeaders=host")) << url;
  EXPECT_EQ(url.find(kSecret), std::string::npos);
}

TEST(S3Client, RejectsABadEndpoint) {
  config cfg;
  cfg.bucket = "bkt";
  for (const char* endpoint : {"", "s3.example.com", "ftp://x", "http://", "http://host/path"}) {
    cfg.endpoint = endpoint;
    EXPECT_THROW(client{cfg}, std::invalid_argument) << endpoint;
  }
}

}  // namespace
}  // namespace berth::s3
