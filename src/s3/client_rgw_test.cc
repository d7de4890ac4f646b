// The S3 client against a real Ceph RADOS Gateway, started by tests/servers/rgw.sh (a ctest fixture).
#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "core/digest.h"
#include "core/test_server_env.h"
#include "s3/client.h"

namespace berth::s3 {
namespace {

const std::string kBucket = "berth-s3-test";

std::string random_bytes(std::size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

class RgwTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    env_ = new test_util::server_env(test_util::read_server_env("BERTH_TEST_RGW_ENV", "rgw.sh"));
    if (!env_->skip.empty() || !env_->failure.empty()) return;
    auto created = client(make_config()).create_bucket();
    ASSERT_TRUE(created.has_value()) << created.error().message;
  }
  static void TearDownTestSuite() {
    delete env_;
    env_ = nullptr;
  }

  void SetUp() override {
    if (!env_->failure.empty()) FAIL() << env_->failure;
    if (!env_->skip.empty()) GTEST_SKIP() << env_->skip;
    c_.emplace(make_config());
    prefix_ = std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "/";
  }

  static config make_config() {
    config cfg;
    cfg.endpoint = (*env_)["S3_ENDPOINT"];
    cfg.region = (*env_)["S3_REGION"];
    cfg.bucket = kBucket;
    cfg.creds = {(*env_)["S3_ACCESS_KEY"], (*env_)["S3_SECRET_KEY"]};
    return cfg;
  }

  std::string read_all(std::string_view key, std::optional<byte_range> range = {}) {
    std::string out;
    const auto r = c_->get(key, [&](std::string_view piece) {
      out += piece;
      return true;
    }, range);
    EXPECT_TRUE(r.has_value()) << r.error().message;
    return out;
  }

  static test_util::server_env* env_;
  std::optional<client> c_;
  std::string prefix_;
};

test_util::server_env* RgwTest::env_ = nullptr;

TEST_F(RgwTest, PutHeadGetRangeDelete) {
  const std::string key = prefix_ + "blob with spaces+plus";
  const std::string data = random_bytes(1 << 20, 1);
  const auto etag = c_->put(key, data);
  ASSERT_TRUE(etag.has_value()) << etag.error().message;
  EXPECT_EQ(etag->size(), 34u);  // an MD5 in quotes

  const auto info = c_->head(key);
  ASSERT_TRUE(info.has_value()) << info.error().message;
  EXPECT_EQ(info->size, data.size());
  EXPECT_EQ(info->etag, *etag);

  EXPECT_EQ(read_all(key), data);
  EXPECT_EQ(read_all(key, byte_range{1000, 5000}), data.substr(1000, 5000));
  const auto ranged = c_->get(key, [](std::string_view) { return true; }, byte_range{data.size() - 1, 1});
  ASSERT_TRUE(ranged.has_value());
  EXPECT_EQ(ranged->size, data.size());  // of the whole object

  const auto past_end = c_->get(key, [](std::string_view) { return true; }, byte_range{data.size(), 10});
  ASSERT_FALSE(past_end.has_value());
  EXPECT_EQ(past_end.error().code, errc::range_invalid);

  ASSERT_TRUE(c_->remove(key).has_value());
  const auto gone = c_->head(key);
  ASSERT_FALSE(gone.has_value());
  EXPECT_EQ(gone.error().code, errc::not_found);
  EXPECT_TRUE(c_->remove(key).has_value());  // deleting nothing succeeds
  const auto missing = c_->get(key, [](std::string_view) { return true; });
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, errc::not_found);
  EXPECT_EQ(missing.error().s3_code, "NoSuchKey");
}

TEST_F(RgwTest, StreamedPutPulledPieceByPiece) {
  const std::string data = random_bytes(10 << 20, 2);
  std::mt19937 rng(3);
  std::size_t offset = 0;
  int pulls = 0;
  const body_source source = [&](std::span<char> buffer) -> std::optional<std::size_t> {
    const std::size_t n = std::min({buffer.size(), data.size() - offset, std::size_t(rng() % 70'000 + 1)});
    std::copy_n(data.data() + offset, n, buffer.data());
    offset += n;
    ++pulls;
    return n;
  };
  const auto etag = c_->put(prefix_ + "streamed", data.size(), source);
  ASSERT_TRUE(etag.has_value()) << etag.error().message;
  EXPECT_GT(pulls, 100);
  EXPECT_EQ(digest_of(read_all(prefix_ + "streamed")), digest_of(data));
}

TEST_F(RgwTest, MultipartUploadListCompleteAbort) {
  const std::string key = prefix_ + "multi";
  const std::string part1 = random_bytes(5 << 20, 4), part2 = random_bytes(1 << 20, 5);
  const auto id = c_->create_multipart(key);
  ASSERT_TRUE(id.has_value()) << id.error().message;
  const auto e1 = c_->upload_part(key, *id, 1, part1);
  const auto e2 = c_->upload_part(key, *id, 2, part2);
  ASSERT_TRUE(e1.has_value() && e2.has_value());

  const auto parts = c_->list_parts(key, *id);
  ASSERT_TRUE(parts.has_value()) << parts.error().message;
  ASSERT_EQ(parts->size(), 2u);
  EXPECT_EQ((*parts)[0].number, 1);
  EXPECT_EQ((*parts)[0].etag, *e1);
  EXPECT_EQ((*parts)[0].size, part1.size());
  EXPECT_EQ((*parts)[1].etag, *e2);

  const auto etag = c_->complete_multipart(key, *id, *parts);
  ASSERT_TRUE(etag.has_value()) << etag.error().message;
  EXPECT_TRUE(etag->ends_with("-2\"")) << *etag;
  EXPECT_EQ(read_all(key), part1 + part2);

  // Parts under 5 MiB (but the last) are refused when completing.
  const auto small = c_->create_multipart(key + "-small");
  ASSERT_TRUE(small.has_value());
  const auto s1 = c_->upload_part(key + "-small", *small, 1, part2);
  const auto s2 = c_->upload_part(key + "-small", *small, 2, part2);
  ASSERT_TRUE(s1.has_value() && s2.has_value());
  const auto refused = c_->complete_multipart(key + "-small", *small, {{1, *s1}, {2, *s2}});
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, errc::invalid);
  EXPECT_EQ(refused.error().s3_code, "EntityTooSmall");

  ASSERT_TRUE(c_->abort_multipart(key + "-small", *small).has_value());
  const auto aborted = c_->list_parts(key + "-small", *small);
  ASSERT_FALSE(aborted.has_value());
  EXPECT_EQ(aborted.error().code, errc::not_found);
}

// Incomplete multipart uploads are listed (under a prefix) until aborted or completed.
TEST_F(RgwTest, IncompleteMultipartUploadsAreListed) {
  const auto left = c_->list_multipart(prefix_).value();  // by an earlier run on the same RGW
  for (const auto& u : left) ASSERT_TRUE(c_->abort_multipart(u.key, u.upload_id));
  const auto before = std::chrono::system_clock::now() - std::chrono::seconds(2);
  const std::string key = prefix_ + "left/one";
  const auto id = c_->create_multipart(key);
  ASSERT_TRUE(id.has_value()) << id.error().message;
  const auto other = c_->create_multipart(prefix_ + "elsewhere");
  ASSERT_TRUE(other.has_value());

  const auto listed = c_->list_multipart(prefix_ + "left/");
  ASSERT_TRUE(listed.has_value()) << listed.error().message;
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].key, key);
  EXPECT_EQ((*listed)[0].upload_id, *id);
  EXPECT_GE((*listed)[0].initiated, before);
  EXPECT_LE((*listed)[0].initiated, std::chrono::system_clock::now() + std::chrono::seconds(2));

  ASSERT_TRUE(c_->abort_multipart(key, *id).has_value());
  ASSERT_TRUE(c_->abort_multipart(prefix_ + "elsewhere", *other).has_value());
  const auto after = c_->list_multipart(prefix_);
  ASSERT_TRUE(after.has_value());
  EXPECT_TRUE(after->empty());
}

// A multipart upload assembled server side from whole objects, as the S3 blob store commits.
TEST_F(RgwTest, UploadPartCopyAssemblesObjects) {
  const std::string first = random_bytes(5 << 20, 7), second = random_bytes(1000, 8);
  ASSERT_TRUE(c_->put(prefix_ + "chunk 0", first).has_value());
  ASSERT_TRUE(c_->put(prefix_ + "chunk 1", second).has_value());
  const auto id = c_->create_multipart(prefix_ + "whole");
  ASSERT_TRUE(id.has_value()) << id.error().message;
  const auto e1 = c_->upload_part_copy(prefix_ + "whole", *id, 1, prefix_ + "chunk 0");
  ASSERT_TRUE(e1.has_value()) << e1.error().message;
  const auto e2 = c_->upload_part_copy(prefix_ + "whole", *id, 2, prefix_ + "chunk 1");
  ASSERT_TRUE(e2.has_value()) << e2.error().message;
  const auto missing = c_->upload_part_copy(prefix_ + "whole", *id, 3, prefix_ + "nothing");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, errc::not_found);
  const auto done = c_->complete_multipart(prefix_ + "whole", *id, {{1, *e1}, {2, *e2}});
  ASSERT_TRUE(done.has_value()) << done.error().message;
  EXPECT_TRUE(read_all(prefix_ + "whole") == first + second);
}

TEST_F(RgwTest, CopyObject) {
  const std::string data = random_bytes(300'000, 6);
  ASSERT_TRUE(c_->put(prefix_ + "from", data).has_value());
  const auto etag = c_->copy(prefix_ + "from", prefix_ + "to dir/copy");
  ASSERT_TRUE(etag.has_value()) << etag.error().message;
  EXPECT_TRUE(etag->starts_with("\"") && etag->ends_with("\"")) << *etag;  // RGW sends it bare
  EXPECT_EQ(read_all(prefix_ + "to dir/copy"), data);
  const auto missing = c_->copy(prefix_ + "nothing", prefix_ + "x");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, errc::not_found);
}

TEST_F(RgwTest, ListObjectsV2FollowsContinuationTokens) {
  std::set<std::string> want;
  for (int i = 0; i < 7; ++i) {
    want.insert(prefix_ + "k" + std::to_string(i));
    ASSERT_TRUE(c_->put(prefix_ + "k" + std::to_string(i), "x").has_value());
  }
  ASSERT_TRUE(c_->put(prefix_ + "sub/a", "y").has_value());
  std::set<std::string> got;
  std::string token;
  int pages = 0;
  do {
    const auto page = c_->list(prefix_ + "k", token, {}, 3);
    ASSERT_TRUE(page.has_value()) << page.error().message;
    for (const auto& o : page->objects) {
      got.insert(o.key);
      EXPECT_EQ(o.size, 1u);
      EXPECT_LT(std::chrono::abs(o.last_modified - std::chrono::system_clock::now()), std::chrono::minutes(5));
    }
    token = page->next_token;
    ++pages;
  } while (!token.empty());
  EXPECT_EQ(got, want);
  EXPECT_EQ(pages, 3);

  const auto dirs = c_->list(prefix_, {}, "/");
  ASSERT_TRUE(dirs.has_value());
  EXPECT_EQ(dirs->prefixes, std::vector<std::string>{prefix_ + "sub/"});
  EXPECT_EQ(dirs->objects.size(), 7u);
}

TEST_F(RgwTest, PresignedGetWorksAndTamperingDoesNot) {
  ASSERT_TRUE(c_->put(prefix_ + "shared", "presigned body").has_value());
  const std::string url = c_->presign_get(prefix_ + "shared", std::chrono::seconds(300));
  transport plain({});
  const auto ok = plain.perform({.what = "GET presigned", .method = "GET", .url = url});
  ASSERT_TRUE(ok.has_value()) << ok.error().message;
  EXPECT_EQ(ok->body, "presigned body");

  std::string tampered = url;
  const auto sig = tampered.find("X-Amz-Signature=") + 16;
  tampered[sig] = tampered[sig] == '0' ? '1' : '0';
  const auto denied = plain.perform({.what = "GET tampered", .method = "GET", .url = tampered});
  ASSERT_FALSE(denied.has_value());
  EXPECT_EQ(denied.error().code, errc::denied);
}

TEST_F(RgwTest, WrongSecretIsDenied) {
  auto cfg = make_config();
  cfg.creds.secret_key = "not-the-secret";
  client wrong(cfg);
  const auto r = wrong.put(prefix_ + "x", "x");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::denied);
  EXPECT_EQ(r.error().s3_code, "SignatureDoesNotMatch");
  EXPECT_EQ(r.error().message.find("not-the-secret"), std::string::npos);
}

TEST_F(RgwTest, VirtualHostedAddressing) {
  auto cfg = make_config();
  const auto& endpoint = (*env_)["S3_ENDPOINT"];
  cfg.endpoint = "http://localhost" + endpoint.substr(endpoint.rfind(':'));
  cfg.virtual_hosted = true;
  client vhost(cfg);
  ASSERT_TRUE(vhost.put(prefix_ + "v", "virtual").has_value());
  EXPECT_EQ(read_all(prefix_ + "v"), "virtual");  // read back path-style
}

TEST_F(RgwTest, ReusesConnectionsAcrossRequestsAndThreads) {
  ASSERT_TRUE(c_->put(prefix_ + "r", "reuse").has_value());
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(c_->head(prefix_ + "r").has_value());
  EXPECT_EQ(c_->http().connections_opened(), 1u);

  std::vector<std::thread> threads;
  std::atomic<int> failures = 0;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        if (!c_->put(prefix_ + "t" + std::to_string(t) + "-" + std::to_string(i), "data")) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures, 0);
  EXPECT_LE(c_->http().connections_opened(), 4u);  // at most one per concurrent request
}

}  // namespace
}  // namespace berth::s3
