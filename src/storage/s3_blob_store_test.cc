// The S3 blob store against a real Ceph RGW (tests/servers/rgw.sh, a ctest fixture): the contract
// suite, plus what only S3 does (uploads as chunk objects continued by another instance, the key
// layout, dedup without rewriting, presigned redirects, the start-up check), and against a scripted
// server what RGW does not show: the failures it does not make on demand, and the requests a call
// makes (open() is one GET, no HEAD).
#include "storage/s3_blob_store.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>

#include "core/sync_wait.h"
#include "core/test_server_env.h"
#include "s3/fake_s3_server.h"
#include "storage/blob_store_contract.h"

namespace berth::storage {
namespace {

const std::string kBucket = "berth-blob-test";

s3::config config_for(const test_util::server_env& env) {
  s3::config cfg;
  cfg.endpoint = env["S3_ENDPOINT"];
  cfg.region = env["S3_REGION"];
  cfg.bucket = kBucket;
  cfg.creds = {env["S3_ACCESS_KEY"], env["S3_SECRET_KEY"]};
  return cfg;
}

// The RGW the fixture started, with the test bucket created once.
const test_util::server_env& rgw() {
  static const test_util::server_env env = [] {
    auto e = test_util::read_server_env("BERTH_TEST_RGW_ENV", "rgw.sh");
    if (e.skip.empty() && e.failure.empty()) {
      auto created = s3::client(config_for(e)).create_bucket();
      if (!created) e.failure = "cannot create the test bucket: " + created.error().message;
    }
    return e;
  }();
  return env;
}

// Skips the running test when there is no RGW (run by hand), fails it when the fixture failed.
void require_rgw() {
  if (!rgw().failure.empty()) FAIL() << rgw().failure;
  if (!rgw().skip.empty()) GTEST_SKIP() << rgw().skip;
}

s3_blob_options options_for(const std::string& prefix) {
  s3_blob_options options;
  options.client = config_for(rgw());
  options.prefix = prefix;
  return options;
}

// Each contract test gets its own prefix in the bucket, named after its fresh directory.
INSTANTIATE_TEST_SUITE_P(s3, blob_store_contract,
                         ::testing::Values(blob_backend{
                             "s3",
                             [](const std::string& location, blocking_pool& pool) -> std::unique_ptr<blob_store> {
                               require_rgw();
                               if (::testing::Test::IsSkipped() || ::testing::Test::HasFatalFailure()) return nullptr;
                               return make_s3_blob_store(
                                   options_for(std::filesystem::path(location).filename().string() + "/"), pool);
                             }}),
                         blob_backend_name);

const std::string kId = "0b1e7a3c-2f4d-4e5a-9b6c-7d8e9f0a1b2c";

std::string pattern(std::size_t size, unsigned seed) {
  std::string out(size, '\0');
  for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<char>(((i + seed) * 2654435761u) >> 13);
  return out;
}

class S3BlobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    require_rgw();
    if (IsSkipped() || HasFatalFailure()) return;
    prefix_ = std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "/";
    client_.emplace(config_for(rgw()));
    const auto left = client_->list(prefix_).value();  // by an earlier run on the same RGW
    for (const auto& o : left.objects) ASSERT_TRUE(client_->remove(o.key));
    store_ = make_s3_blob_store(options_for(prefix_), pool_);
  }

  std::unique_ptr<upload_data> open_new(blob_store& store, const std::string& id = kId) {
    EXPECT_TRUE(sync_wait(store.create_upload(id)).has_value());
    auto data = sync_wait(store.open_upload(id));
    EXPECT_TRUE(data.has_value());
    return data ? std::move(*data) : nullptr;
  }

  // Every byte the upload has flushed, read back through upload_data::read (chunk by chunk).
  static std::string read_back(upload_data& data) {
    std::string out;
    std::vector<char> buf(3 << 20);
    for (;;) {
      auto n = sync_wait(data.read(out.size(), buf));
      EXPECT_TRUE(n.has_value());
      if (!n || *n == 0) return out;
      out.append(buf.data(), *n);
    }
  }

  std::string read_blob(blob_store& store, const digest& d) {
    auto reader = sync_wait(store.open(d)).value();
    std::string out(reader->size(), '\0');
    std::size_t at = 0;
    while (at < out.size()) {
      const auto n = sync_wait(reader->read(at, std::span<char>(out.data() + at, out.size() - at))).value();
      if (n == 0) break;
      at += n;
    }
    EXPECT_EQ(at, out.size());
    return out;
  }

  // The objects under the prefix + `dir`: key (without the prefix) -> size.
  std::map<std::string, std::uint64_t> objects(const std::string& dir) {
    std::map<std::string, std::uint64_t> out;
    const auto listed = client_->list(prefix_ + dir).value();
    for (const auto& o : listed.objects) out[o.key.substr(prefix_.size())] = o.size;
    return out;
  }

  static std::string chunk_key(std::uint64_t offset) { return fmt::format("uploads/{}/{:020}", kId, offset); }

  blocking_pool pool_{4};
  std::string prefix_;
  std::optional<s3::client> client_;
  std::unique_ptr<blob_store> store_;
};

constexpr std::size_t MiB = 1 << 20;

// Chunks of 5 to 8 MiB as they fill, a growing tail replaced in place by each flush, every flushed
// byte readable, and a second instance that finds the bytes from S3 alone, continues and commits.
TEST_F(S3BlobStoreTest, ChunkedUploadContinuedByAnotherInstance) {
  const std::string all = pattern(18 * MiB + 123, 7);
  auto data = open_new(*store_);
  EXPECT_EQ(objects("uploads/"), (std::map<std::string, std::uint64_t>{{chunk_key(0), 0}}));
  ASSERT_TRUE(sync_wait(data->write(std::string_view(all).substr(0, 3 * MiB))).has_value());
  ASSERT_TRUE(sync_wait(data->flush()).has_value());
  EXPECT_EQ(objects("uploads/"), (std::map<std::string, std::uint64_t>{{chunk_key(0), 3 * MiB}}));
  ASSERT_TRUE(sync_wait(data->write(std::string_view(all).substr(3 * MiB, 4 * MiB))).has_value());
  ASSERT_TRUE(sync_wait(data->flush()).has_value());        // 7 MiB: a part now, the next chunk begins
  for (std::size_t at = 7 * MiB; at < 16 * MiB; at += MiB)  // a full 8 MiB chunk goes in the background
    ASSERT_TRUE(sync_wait(data->write(std::string_view(all).substr(at, MiB))).has_value());
  ASSERT_TRUE(sync_wait(data->flush()).has_value());
  EXPECT_EQ(data->size(), 16 * MiB);
  EXPECT_EQ(objects("uploads/"),
            (std::map<std::string, std::uint64_t>{
                {chunk_key(0), 7 * MiB}, {chunk_key(7 * MiB), 8 * MiB}, {chunk_key(15 * MiB), MiB}}));
  EXPECT_TRUE(read_back(*data) == all.substr(0, 16 * MiB));
  data.reset();

  // Another instance: the size and the bytes from the chunks, the 1 MiB tail continued in place.
  blocking_pool other_pool(2);
  auto other = make_s3_blob_store(options_for(prefix_), other_pool);
  auto resumed = sync_wait(other->open_upload(kId)).value();
  EXPECT_EQ(resumed->size(), 16 * MiB);
  EXPECT_TRUE(read_back(*resumed) == all.substr(0, 16 * MiB));
  ASSERT_TRUE(sync_wait(resumed->write(std::string_view(all).substr(16 * MiB))).has_value());
  ASSERT_TRUE(sync_wait(resumed->flush()).has_value());
  EXPECT_EQ(objects("uploads/").at(chunk_key(15 * MiB)), all.size() - 15 * MiB);
  const digest d = digest_of(all);
  ASSERT_TRUE(sync_wait(resumed->commit(d)).has_value());

  // One object under the digest key, assembled from the three chunks; the chunks are gone.
  const std::string hex(d.hex());
  EXPECT_EQ(objects("blobs/"),
            (std::map<std::string, std::uint64_t>{{"blobs/sha256/" + hex.substr(0, 2) + "/" + hex, all.size()}}));
  EXPECT_TRUE(client_->head(prefix_ + "blobs/sha256/" + hex.substr(0, 2) + "/" + hex).value().etag.ends_with("-3\""));
  EXPECT_TRUE(objects("uploads/").empty());
  EXPECT_TRUE(read_blob(*store_, d) == all);
}

// Committing a digest that is stored already keeps the stored object untouched and drops the upload.
// The object under the key is a marker, not the digest's bytes (the store trusts its keys), so that a
// commit that rewrote it would show.
// A commit cut off by a crash leaves an incomplete multipart upload under the blob's key; the
// purge aborts the ones begun before its cutoff.
TEST_F(S3BlobStoreTest, PurgeLeftoversAbortsOldMultipartUploads) {
  const auto left = client_->list_multipart(prefix_).value();  // by an earlier run on the same RGW
  for (const auto& u : left) ASSERT_TRUE(client_->abort_multipart(u.key, u.upload_id));
  const std::string key = prefix_ + "blobs/sha256/ab/" + std::string(64, 'a');
  ASSERT_TRUE(client_->create_multipart(key).has_value());
  const auto now = std::chrono::system_clock::now();
  EXPECT_EQ(sync_wait(store_->purge_leftovers(now - std::chrono::hours(1))).value(), 0u);  // too young
  EXPECT_EQ(client_->list_multipart(prefix_).value().size(), 1u);
  EXPECT_EQ(sync_wait(store_->purge_leftovers(now + std::chrono::seconds(5))).value(), 1u);
  EXPECT_TRUE(client_->list_multipart(prefix_).value().empty());
}

TEST_F(S3BlobStoreTest, CommitOfAStoredDigestKeepsTheStoredObject) {
  const digest d = digest_of("layer");
  const std::string hex(d.hex());
  const std::string key = prefix_ + "blobs/sha256/" + hex.substr(0, 2) + "/" + hex;
  ASSERT_TRUE(client_->put(key, "stored before").has_value());
  auto data = open_new(*store_);
  ASSERT_TRUE(sync_wait(data->write("layer")).has_value());
  ASSERT_TRUE(sync_wait(data->commit(d)).has_value());
  EXPECT_EQ(read_blob(*store_, d), "stored before");
  EXPECT_EQ(objects("blobs/").size(), 1u);
  EXPECT_TRUE(objects("uploads/").empty());
}

// With redirects on, a reader offers a presigned URL that plain HTTP (libcurl, no signing) fetches.
TEST_F(S3BlobStoreTest, RedirectUrlServesTheBytes) {
  const std::string bytes = pattern(100'000, 3);
  const digest d = digest_of(bytes);
  auto data = open_new(*store_);
  ASSERT_TRUE(sync_wait(data->write(bytes)).has_value());
  ASSERT_TRUE(sync_wait(data->commit(d)).has_value());
  auto plain = sync_wait(store_->open(d)).value();
  EXPECT_EQ(plain->native_handle(), -1);
  EXPECT_FALSE(plain->redirect_url().has_value());

  auto options = options_for(prefix_);
  options.redirect_downloads = true;
  options.redirect_expiry = std::chrono::seconds(120);
  auto redirecting = make_s3_blob_store(options, pool_);
  auto reader = sync_wait(redirecting->open(d)).value();
  const auto url = reader->redirect_url();
  ASSERT_TRUE(url.has_value());
  EXPECT_NE(url->find("X-Amz-Expires=120"), std::string::npos) << *url;
  EXPECT_EQ(url->find(rgw()["S3_SECRET_KEY"]), std::string::npos);
  s3::transport http({});
  const auto got = http.perform({.what = "GET redirect", .method = "GET", .url = *url});
  ASSERT_TRUE(got.has_value()) << got.error().message;
  EXPECT_TRUE(got->body == bytes);
}

// The start-up check names what is wrong, and never the secret.
TEST_F(S3BlobStoreTest, StartUpCheckNamesTheProblem) {
  const auto failure = [&](const s3_blob_options& options) {
    try {
      make_s3_blob_store(options, pool_);
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string secret = rgw()["S3_SECRET_KEY"];

  auto missing = options_for(prefix_);
  missing.client.bucket = "no-such-bucket";
  const std::string no_bucket = failure(missing);
  EXPECT_NE(no_bucket.find("S3 bucket no-such-bucket does not exist"), std::string::npos) << no_bucket;

  auto wrong = options_for(prefix_);
  wrong.client.creds.secret_key = "not-the-secret";
  const std::string denied = failure(wrong);
  EXPECT_NE(denied.find("S3 access denied to bucket " + kBucket), std::string::npos) << denied;
  EXPECT_NE(denied.find("SignatureDoesNotMatch"), std::string::npos) << denied;
  EXPECT_EQ(denied.find("not-the-secret"), std::string::npos) << denied;

  auto unreachable = options_for(prefix_);
  unreachable.client.endpoint = "http://127.0.0.1:1";
  unreachable.client.transport.max_attempts = 1;
  const std::string down = failure(unreachable);
  EXPECT_NE(down.find("S3 endpoint http://127.0.0.1:1 is unreachable"), std::string::npos) << down;

  for (const auto& message : {no_bucket, denied, down}) EXPECT_EQ(message.find(secret), std::string::npos);
  EXPECT_TRUE(objects("probe/").empty());  // the successful check in SetUp left no probe behind
}

s3_blob_options fake_options(const s3::testing::fake_s3_server& server) {
  s3_blob_options options;
  options.client.endpoint = server.endpoint();
  options.client.bucket = "bkt";
  options.client.creds = {"AKID", "secret"};
  options.prefix = "p";
  return options;
}

// A listing of the upload's chunks, as (offset, size).
std::string chunk_listing(const std::vector<std::pair<std::uint64_t, std::uint64_t>>& chunks) {
  std::string out = "<ListBucketResult><IsTruncated>false</IsTruncated>";
  for (const auto& [offset, size] : chunks) {
    out += fmt::format(
        "<Contents><Key>p/uploads/{}/{:020}</Key><LastModified>2026-01-01T00:00:00.000Z"
        "</LastModified><Size>{}</Size></Contents>",
        kId, offset, size);
  }
  return out + "</ListBucketResult>";
}

// A multipart assembly that fails is aborted, and the upload's chunks stay for a retry.
TEST(S3BlobStoreFailures, FailedAssemblyIsAbortedAndKeepsTheChunks) {
  const std::string denied = "<Error><Code>AccessDenied</Code><Message>no</Message></Error>";
  s3::testing::fake_s3_server server({{200, "", ""},                                            // probe PUT
                                      {200, "", ""},                                            // probe DELETE
                                      {200, "", chunk_listing({{0, 5 * MiB}, {5 * MiB, 10}})},  // open_upload
                                      {404, "", ""},                                            // HEAD blob
                                      {200, "", "<Result><UploadId>up1</UploadId></Result>"},   // create
                                      {403, "", denied},                                        // part copy
                                      {403, "", denied},                                        // part copy
                                      {204, "", ""}});                                          // abort
  blocking_pool pool(2);
  auto store = make_s3_blob_store(fake_options(server), pool);
  auto data = sync_wait(store->open_upload(kId)).value();
  EXPECT_EQ(data->size(), 5 * MiB + 10);
  const digest d = digest_of("whatever");
  EXPECT_EQ(sync_wait(data->commit(d)).error().code, errc::internal);
  EXPECT_EQ(data->size(), 5 * MiB + 10);
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 8u);
  const std::string blob = fmt::format("/bkt/p/blobs/sha256/{}/{}", d.hex().substr(0, 2), d.hex());
  EXPECT_TRUE(requests[7].starts_with("DELETE " + blob + "?uploadId=up1 ")) << requests[7];
  for (const auto& r : requests) EXPECT_FALSE(r.starts_with("DELETE /bkt/p/uploads/")) << r;
}

// A chunk PUT in the background that fails: the next flush() reports it, size() falls back to what
// S3 holds (the tail flushed before), and the upload goes on from there.
TEST(S3BlobStoreFailures, FailedBackgroundChunkIsReportedAndRolledBack) {
  const std::string chunk0 = "p/uploads/" + kId + "/00000000000000000000";
  const std::string denied = "<Error><Code>AccessDenied</Code><Message>no</Message></Error>";
  s3::testing::fake_s3_server server({{200, "", ""},                       // start-up probe: PUT
                                      {200, "", ""},                       // and DELETE
                                      {200, "", chunk_listing({{0, 0}})},  // open_upload lists the chunks
                                      {200, "", ""},                       // flush: the 4-byte tail
                                      {403, "", denied},                   // the full chunk, in the background
                                      {200, "", ""}});                     // flush: the tail again, one byte longer
  blocking_pool pool(2);
  auto store = make_s3_blob_store(fake_options(server), pool);
  auto data = sync_wait(store->open_upload(kId)).value();
  ASSERT_TRUE(sync_wait(data->write("head")).has_value());
  ASSERT_TRUE(sync_wait(data->flush()).has_value());
  ASSERT_TRUE(sync_wait(data->write(pattern((8 << 20) - 4, 1))).has_value());  // accepted; PUT in the background
  EXPECT_EQ(data->size(), 8u << 20);
  EXPECT_EQ(sync_wait(data->flush()).error().code, errc::internal);
  EXPECT_EQ(data->size(), 4u);
  ASSERT_TRUE(sync_wait(data->write("x")).has_value());
  ASSERT_TRUE(sync_wait(data->flush()).has_value());
  EXPECT_EQ(data->size(), 5u);
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 6u);
  for (std::size_t i : {3u, 4u, 5u}) EXPECT_TRUE(requests[i].starts_with("PUT /bkt/" + chunk0 + " ")) << requests[i];
  EXPECT_NE(requests[4].find("Content-Length: 8388608\r\n"), std::string::npos) << requests[4];
  EXPECT_NE(requests[5].find("Content-Length: 5\r\n"), std::string::npos) << requests[5];
}

// An answer to a ranged GET of an object of `total` bytes.
s3::testing::fake_s3_server::reply ranged(std::string_view range, std::uint64_t total, std::string body,
                                          bool cut = false) {
  return {206, fmt::format("Content-Range: bytes {}/{}\r\n", range, total), std::move(body), false, cut};
}

// The request line and headers of request `i`, checked to be a GET of blob `d` with `range`.
void expect_ranged_get(const std::vector<std::string>& requests, std::size_t i, const digest& d,
                       std::string_view range) {
  ASSERT_LT(i, requests.size());
  const std::string blob = fmt::format("GET /bkt/p/blobs/sha256/{}/{} ", d.hex().substr(0, 2), d.hex());
  EXPECT_TRUE(requests[i].starts_with(blob)) << requests[i];
  EXPECT_NE(requests[i].find(fmt::format("Range: bytes={}\r\n", range)), std::string::npos) << requests[i];
}

// open() is one ranged GET of the first 64 KiB, no HEAD: it learns the size from Content-Range and
// keeps the bytes, so a blob that small needs no other request, whatever is read of it.
TEST(S3BlobStoreFailures, OpenIsOneRangedGetAndASmallBlobNeedsNoOther) {
  const digest d = digest_of("whatever");
  const std::string bytes = pattern(10'000, 4);
  s3::testing::fake_s3_server server({{200, "", ""},  // start-up probe: PUT
                                      {200, "", ""},  // and DELETE
                                      ranged("0-9999", 10'000, bytes)});
  blocking_pool pool(2);
  auto store = make_s3_blob_store(fake_options(server), pool);
  auto reader = sync_wait(store->open(d)).value();
  EXPECT_EQ(reader->size(), 10'000u);
  std::string buf(4 * MiB, '\0');
  EXPECT_EQ(sync_wait(reader->read(0, buf)).value(), 10'000u);
  EXPECT_TRUE(buf.substr(0, 10'000) == bytes);
  std::string small(100, '\0');
  EXPECT_EQ(sync_wait(reader->read(9'950, small)).value(), 50u);
  EXPECT_EQ(small.substr(0, 50), bytes.substr(9'950));
  EXPECT_EQ(sync_wait(reader->read(10'000, small)).value(), 0u);
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 3u);
  expect_ranged_get(requests, 2, d, "0-65535");
}

// What the GET of open() answers is what open() answers: 404 is BLOB_UNKNOWN, 416 (an empty object:
// no byte 0) a reader of 0 bytes, S3 out of reach UNAVAILABLE, a refusal an internal error. None
// is followed by a HEAD. With redirects on, open() reads no bytes: a HEAD for the size.
TEST(S3BlobStoreFailures, OpenAnswersWhatItsGetAnswers) {
  const digest d = digest_of("whatever");
  const std::string denied = "<Error><Code>AccessDenied</Code><Message>no</Message></Error>";
  s3::testing::fake_s3_server server({{200, "", ""},  // start-up probe: PUT
                                      {200, "", ""},  // and DELETE
                                      {404, "", "<Error><Code>NoSuchKey</Code></Error>"},
                                      {416, "", "<Error><Code>InvalidRange</Code></Error>"},
                                      {503, "", "<Error><Code>ServiceUnavailable</Code></Error>"},
                                      {403, "", denied},
                                      {200, "", ""},  // the redirecting store's probe: PUT
                                      {200, "", ""},  // and DELETE
                                      {200, "", std::string(123, 'x')}});  // its open: HEAD
  blocking_pool pool(2);
  auto options = fake_options(server);
  options.client.transport.max_attempts = 1;
  auto store = make_s3_blob_store(options, pool);
  EXPECT_EQ(sync_wait(store->open(d)).error().code, errc::blob_unknown);
  auto empty = sync_wait(store->open(d)).value();
  EXPECT_EQ(empty->size(), 0u);
  std::string buf(10, '\0');
  EXPECT_EQ(sync_wait(empty->read(0, buf)).value(), 0u);
  EXPECT_EQ(sync_wait(store->open(d)).error().code, errc::unavailable);
  EXPECT_EQ(sync_wait(store->open(d)).error().code, errc::internal);
  options.redirect_downloads = true;
  auto redirecting = make_s3_blob_store(options, pool);
  auto redirected = sync_wait(redirecting->open(d)).value();
  EXPECT_EQ(redirected->size(), 123u);
  EXPECT_TRUE(redirected->redirect_url().has_value());
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 9u);
  for (std::size_t i : {2u, 3u, 4u, 5u}) expect_ranged_get(requests, i, d, "0-65535");
  const std::string blob = fmt::format("/bkt/p/blobs/sha256/{}/{} ", d.hex().substr(0, 2), d.hex());
  EXPECT_TRUE(requests[8].starts_with("HEAD " + blob)) << requests[8];
}

// Past the 64 KiB open() kept, a read is one ranged GET of the bytes asked for, into the caller's
// buffer; a read across the boundary takes what it can from the kept bytes and GETs the rest. A
// GET whose body breaks off, or brings more than asked, fails the read: the server then ends the
// response rather than send what the buffer holds. The reader asks the server for reads of 4 MiB.
TEST(S3BlobStoreFailures, ReadPastTheKeptBytesIsOneRangedGetAndABrokenBodyFailsIt) {
  const digest d = digest_of("whatever");
  const std::string prefix(64 * 1024, 'p');
  s3::testing::fake_s3_server server({{200, "", ""},  // start-up probe: PUT
                                      {200, "", ""},  // and DELETE
                                      ranged("0-65535", 100'000, prefix),
                                      ranged("70000-70003", 100'000, "abcd"),
                                      ranged("65536-65537", 100'000, "ef"),
                                      ranged("80000-80999", 100'000, std::string(1000, 'y'), true),  // broken off
                                      ranged("99996-99999", 100'000, "abcdefgh")});  // more than asked
  blocking_pool pool(2);
  auto store = make_s3_blob_store(fake_options(server), pool);
  auto reader = sync_wait(store->open(d)).value();
  EXPECT_EQ(reader->size(), 100'000u);
  EXPECT_EQ(reader->read_size(), 4u << 20);
  std::string buf(4, '\0');
  EXPECT_EQ(sync_wait(reader->read(70'000, buf)).value(), 4u);
  EXPECT_EQ(buf, "abcd");
  EXPECT_EQ(sync_wait(reader->read(65'534, buf)).value(), 4u);
  EXPECT_EQ(buf, "ppef");
  EXPECT_EQ(sync_wait(reader->read(60'000, buf)).value(), 4u);  // kept: no request
  EXPECT_EQ(buf, "pppp");
  std::string big(1000, '\0');
  EXPECT_EQ(sync_wait(reader->read(80'000, big)).error().code, errc::unavailable);
  EXPECT_EQ(sync_wait(reader->read(99'996, buf)).error().code, errc::internal);
  EXPECT_EQ(sync_wait(reader->read(100'000, buf)).value(), 0u);  // at the end: no request
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 7u);
  expect_ranged_get(requests, 2, d, "0-65535");
  expect_ranged_get(requests, 3, d, "70000-70003");
  expect_ranged_get(requests, 4, d, "65536-65537");
  expect_ranged_get(requests, 5, d, "80000-80999");
  expect_ranged_get(requests, 6, d, "99996-99999");
}

// A read of 4 MiB past the kept bytes is two GETs of 2 MiB at once, each into its half of the
// caller's buffer; a read from 0 GETs only what follows the kept 64 KiB.
TEST(S3BlobStoreFailures, ReadOfTwoPartsIsTwoRangedGetsIntoTheirHalves) {
  const digest d = digest_of("whatever");
  const std::string prefix(64 * 1024, 'p');
  const std::string part(2 * MiB, 'z');  // the same for both: they may arrive in either order
  const std::string rest(MiB - 64 * 1024, 'r');
  s3::testing::fake_s3_server server({{200, "", ""},  // start-up probe: PUT
                                      {200, "", ""},  // and DELETE
                                      ranged("0-65535", 5 * MiB, prefix),
                                      ranged("0-1", 5 * MiB, part),
                                      ranged("0-1", 5 * MiB, part),
                                      ranged("65536-1048575", 5 * MiB, rest)});
  blocking_pool pool(2);
  auto store = make_s3_blob_store(fake_options(server), pool);
  auto reader = sync_wait(store->open(d)).value();
  EXPECT_EQ(reader->size(), 5 * MiB);
  std::string buf(4 * MiB, '\0');
  EXPECT_EQ(sync_wait(reader->read(MiB, buf)).value(), 4 * MiB);
  EXPECT_TRUE(buf == part + part);
  std::string first(MiB, '\0');
  EXPECT_EQ(sync_wait(reader->read(0, first)).value(), MiB);
  EXPECT_TRUE(first == prefix + rest);
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 6u);
  expect_ranged_get(requests, 5, d, "65536-1048575");
  std::set<std::string> ranges;
  for (std::size_t i : {3u, 4u}) {
    const auto at = requests[i].find("Range: bytes=");
    ASSERT_NE(at, std::string::npos) << requests[i];
    ranges.insert(requests[i].substr(at, requests[i].find("\r\n", at) - at));
  }
  EXPECT_EQ(ranges, (std::set<std::string>{"Range: bytes=1048576-3145727", "Range: bytes=3145728-5242879"}));
}

}  // namespace
}  // namespace berth::storage
