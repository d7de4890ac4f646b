#include <gtest/gtest.h>
#include <unistd.h>

#include <barrier>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>
#include <vector>

#include "storage/blob_store.h"

namespace berth::storage {
namespace {

namespace fs = std::filesystem;

// Each test gets a fresh data directory, removed afterwards.
class FsBlobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "berth-storage-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
    store_ = make_fs_blob_store(root_.string());
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(root_);
  }

  // Simulates a process restart: the in-memory upload state is lost, the files stay.
  void restart() {
    store_.reset();
    store_ = make_fs_blob_store(root_.string());
  }

  std::string create(std::string_view repo = "library/alpine") {
    auto id = store_->create_upload(repo);
    EXPECT_TRUE(id.has_value());
    return id.value_or("");
  }

  std::shared_ptr<upload> open(const std::string& id, std::string_view repo = "library/alpine") {
    auto handle = store_->open_upload(repo, id);
    EXPECT_TRUE(handle.has_value()) << (handle ? "" : handle.error().detail);
    return handle.value_or(nullptr);
  }

  // Every regular file under blobs/.
  std::vector<fs::path> blob_files() const {
    std::vector<fs::path> files;
    for (const auto& e : fs::recursive_directory_iterator(root_ / "blobs"))
      if (e.is_regular_file()) files.push_back(e.path());
    return files;
  }

  fs::path root_;
  std::unique_ptr<blob_store> store_;
};

std::string read_all(blob_reader& reader) {
  std::string out(reader.size(), '\0');
  std::size_t got = 0;
  while (got < out.size()) {
    const ssize_t n = ::pread(reader.fd(), out.data() + got, out.size() - got, static_cast<off_t>(got));
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  out.resize(got);
  return out;
}

std::string blob_contents(blob_store& store, const digest& d) {
  auto reader = store.open(d);
  EXPECT_TRUE(reader.has_value());
  return reader ? read_all(*reader) : "";
}

TEST_F(FsBlobStoreTest, PutStatOpenRemove) {
  const auto d = digest_of("hello");
  ASSERT_TRUE(store_->put(d, "hello"));
  EXPECT_EQ(store_->stat(d).value(), 5u);
  EXPECT_EQ(blob_contents(*store_, d), "hello");
  // The documented layout: blobs/<algorithm>/<first two hex>/<hex>.
  const std::string hex(d.hex());
  EXPECT_TRUE(fs::is_regular_file(root_ / "blobs" / "sha256" / hex.substr(0, 2) / hex));
  EXPECT_TRUE(fs::is_empty(root_ / "tmp"));

  ASSERT_TRUE(store_->remove(d));
  EXPECT_EQ(store_->stat(d).error().code, errc::blob_unknown);
  EXPECT_EQ(store_->open(d).error().code, errc::blob_unknown);
  EXPECT_EQ(store_->remove(d).error().code, errc::blob_unknown);
}

TEST_F(FsBlobStoreTest, PutOfAStoredBlobKeepsOneFile) {
  const auto d = digest_of("same");
  ASSERT_TRUE(store_->put(d, "same"));
  ASSERT_TRUE(store_->put(d, "same"));
  EXPECT_EQ(blob_files().size(), 1u);
  EXPECT_TRUE(fs::is_empty(root_ / "tmp"));
}

TEST_F(FsBlobStoreTest, UploadIdsAreDistinctUuids) {
  const auto a = create();
  const auto b = create();
  EXPECT_NE(a, b);
  for (const auto& id : {a, b}) {
    ASSERT_EQ(id.size(), 36u);
    EXPECT_EQ(id[14], '4') << id;  // version 4
    EXPECT_TRUE(fs::is_regular_file(root_ / "uploads" / id / "data"));
  }
}

TEST_F(FsBlobStoreTest, UploadWriteAndCommit) {
  const auto id = create();
  auto up = open(id);
  ASSERT_TRUE(up);
  EXPECT_EQ(up->id(), id);
  ASSERT_TRUE(up->write("abc"));
  ASSERT_TRUE(up->write("def"));
  EXPECT_EQ(up->size(), 6u);
  EXPECT_EQ(store_->upload_size("library/alpine", id).value(), 6u);

  const auto d = digest_of("abcdef");
  EXPECT_EQ(up->commit(d).value(), 6u);
  EXPECT_EQ(blob_contents(*store_, d), "abcdef");
  EXPECT_FALSE(fs::exists(root_ / "uploads" / id));
  EXPECT_EQ(store_->upload_size("library/alpine", id).error().code, errc::blob_upload_unknown);
  // The handle is spent.
  EXPECT_EQ(up->write("x").error().code, errc::blob_upload_unknown);
  EXPECT_EQ(up->commit(d).error().code, errc::blob_upload_unknown);
  up.reset();
  EXPECT_EQ(store_->open_upload("library/alpine", id).error().code, errc::blob_upload_unknown);
}

TEST_F(FsBlobStoreTest, EmptyUploadCommits) {
  auto up = open(create());
  ASSERT_TRUE(up);
  const auto d = digest_of("");
  EXPECT_EQ(up->commit(d).value(), 0u);
  EXPECT_EQ(store_->stat(d).value(), 0u);
}

TEST_F(FsBlobStoreTest, WrongDigestDiscardsTheUpload) {
  const auto id = create();
  auto up = open(id);
  ASSERT_TRUE(up);
  ASSERT_TRUE(up->write("abc"));
  const auto wrong = digest_of("abd");
  EXPECT_EQ(up->commit(wrong).error().code, errc::digest_invalid);
  EXPECT_EQ(store_->stat(wrong).error().code, errc::blob_unknown);
  EXPECT_EQ(store_->stat(digest_of("abc")).error().code, errc::blob_unknown);
  EXPECT_TRUE(blob_files().empty());
  EXPECT_FALSE(fs::exists(root_ / "uploads" / id));
}

TEST_F(FsBlobStoreTest, TwoUploadsOfTheSameBytesStoreOneFile) {
  const auto d = digest_of("layer");
  for (int i = 0; i < 2; ++i) {
    const auto id = create();
    auto up = open(id);
    ASSERT_TRUE(up);
    ASSERT_TRUE(up->write("layer"));
    EXPECT_EQ(up->commit(d).value(), 5u);
    EXPECT_FALSE(fs::exists(root_ / "uploads" / id));
  }
  EXPECT_EQ(blob_files().size(), 1u);
  EXPECT_EQ(blob_contents(*store_, d), "layer");
}

TEST_F(FsBlobStoreTest, BusyUploadIsRefusedUntilTheHandleIsGone) {
  const auto id = create();
  auto first = open(id);
  ASSERT_TRUE(first);
  auto second = store_->open_upload("library/alpine", id);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, errc::upload_busy);
  EXPECT_EQ(second.error().http_status(), 409);
  EXPECT_EQ(store_->cancel_upload("library/alpine", id).error().http_status(), 409);
  // Reading the size does not need the upload.
  EXPECT_TRUE(store_->upload_size("library/alpine", id));

  ASSERT_TRUE(first->write("abc"));
  first.reset();
  auto again = open(id);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->size(), 3u);
}

TEST_F(FsBlobStoreTest, ConcurrentOpensAdmitExactlyOneWriter) {
  const auto id = create();
  constexpr int kThreads = 8;
  std::barrier all_tried(kThreads);
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      auto handle = store_->open_upload("library/alpine", id);
      if (handle) ++admitted;
      all_tried.arrive_and_wait();  // hold the handle until every thread has tried
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(admitted.load(), 1);
  EXPECT_TRUE(open(id));
}

TEST_F(FsBlobStoreTest, UploadsOfAnotherRepositoryAreUnknown) {
  const auto id = create("team/app");
  EXPECT_EQ(store_->open_upload("team/other", id).error().code, errc::blob_upload_unknown);
  EXPECT_EQ(store_->upload_size("team/other", id).error().code, errc::blob_upload_unknown);
  EXPECT_EQ(store_->cancel_upload("team/other", id).error().code, errc::blob_upload_unknown);
  EXPECT_EQ(store_->open_upload("team/ap", id).error().code, errc::blob_upload_unknown);
  EXPECT_TRUE(open(id, "team/app"));
}

TEST_F(FsBlobStoreTest, MalformedIdsAreUnknown) {
  const auto id = create();
  // A decoy a traversing id would reach: uploads/../decoy looks like an upload of the repository.
  fs::create_directory(root_ / "decoy");
  std::ofstream(root_ / "decoy" / "owner") << "library/alpine";
  std::ofstream(root_ / "decoy" / "data") << "x";
  EXPECT_EQ(store_->open_upload("library/alpine", "../decoy").error().code, errc::blob_upload_unknown);
  EXPECT_EQ(store_->cancel_upload("library/alpine", "../decoy").error().code, errc::blob_upload_unknown);
  EXPECT_TRUE(fs::exists(root_ / "decoy" / "data"));
  std::string upper = id;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (const std::string& bad : {std::string("../x"), std::string(), std::string("../../tmp"), upper,
                                id + "/", id.substr(1), "../" + id.substr(3),
                                std::string("00000000-0000-4000-8000-00000000000/")}) {
    EXPECT_EQ(store_->open_upload("library/alpine", bad).error().code, errc::blob_upload_unknown) << bad;
    EXPECT_EQ(store_->upload_size("library/alpine", bad).error().code, errc::blob_upload_unknown) << bad;
    EXPECT_EQ(store_->cancel_upload("library/alpine", bad).error().code, errc::blob_upload_unknown) << bad;
  }
  // Well-formed, but never created.
  EXPECT_EQ(store_->open_upload("library/alpine", "0b1e7a3c-2f4d-4e5a-9b6c-7d8e9f0a1b2c").error().code,
            errc::blob_upload_unknown);
  EXPECT_TRUE(open(id));
}

TEST_F(FsBlobStoreTest, UploadResumesAfterRestart) {
  const auto id = create();
  {
    auto up = open(id);
    ASSERT_TRUE(up);
    ASSERT_TRUE(up->write("hello "));
  }
  restart();
  EXPECT_EQ(store_->upload_size("library/alpine", id).value(), 6u);
  auto up = open(id);
  ASSERT_TRUE(up);
  EXPECT_EQ(up->size(), 6u);
  ASSERT_TRUE(up->write("world"));
  const auto d = digest_of("hello world");
  EXPECT_EQ(up->commit(d).value(), 11u);
  EXPECT_EQ(blob_contents(*store_, d), "hello world");
}

// A cached hash that no longer covers the whole data file (e.g. after a write whose bytes reached
// the file but whose request failed) must be recomputed, not trusted.
TEST_F(FsBlobStoreTest, StaleCachedHashIsRecomputed) {
  const auto id = create();
  {
    auto up = open(id);
    ASSERT_TRUE(up);
    ASSERT_TRUE(up->write("abc"));
  }
  std::ofstream(root_ / "uploads" / id / "data", std::ios::app) << "def";
  auto up = open(id);
  ASSERT_TRUE(up);
  EXPECT_EQ(up->size(), 6u);
  EXPECT_EQ(up->commit(digest_of("abcdef")).value(), 6u);
}

TEST_F(FsBlobStoreTest, Sha512Commit) {
  auto up = open(create());
  ASSERT_TRUE(up);
  ASSERT_TRUE(up->write("sha"));
  ASSERT_TRUE(up->write("512"));
  const auto d = digest_of("sha512", digest_algorithm::sha512);
  EXPECT_EQ(up->commit(d).value(), 6u);
  EXPECT_EQ(store_->stat(d).value(), 6u);
  const std::string hex(d.hex());
  EXPECT_TRUE(fs::is_regular_file(root_ / "blobs" / "sha512" / hex.substr(0, 2) / hex));

  auto wrong = open(create());
  ASSERT_TRUE(wrong);
  ASSERT_TRUE(wrong->write("sha513"));
  EXPECT_EQ(wrong->commit(d).error().code, errc::digest_invalid);
}

TEST_F(FsBlobStoreTest, FailedCommitKeepsTheUploadUsable) {
  // A sha256 commit spends the running hash; a failing install must not leave the handle with none.
  const auto id = create();
  auto up = open(id);
  ASSERT_TRUE(up);
  ASSERT_TRUE(up->write("abc"));
  const auto d = digest_of("abc");
  const std::string hex(d.hex());
  const auto fanout = root_ / "blobs" / "sha256" / hex.substr(0, 2);
  std::ofstream(fanout) << "in the way";  // the rename into place now fails
  EXPECT_EQ(up->commit(d).error().code, errc::internal);
  EXPECT_EQ(up->size(), 3u);
  fs::remove(fanout);
  ASSERT_TRUE(up->write("def"));
  EXPECT_EQ(up->commit(digest_of("abcdef")).value(), 6u);
}

TEST_F(FsBlobStoreTest, UploadHandleMayOutliveTheStore) {
  auto up = open(create());
  ASSERT_TRUE(up);
  store_.reset();
  ASSERT_TRUE(up->write("late"));
  const auto d = digest_of("late");
  EXPECT_EQ(up->commit(d).value(), 4u);
  up.reset();
  restart();
  EXPECT_EQ(store_->stat(d).value(), 4u);
}

TEST_F(FsBlobStoreTest, CancelRemovesTheData) {
  const auto id = create();
  {
    auto up = open(id);
    ASSERT_TRUE(up);
    ASSERT_TRUE(up->write("abc"));
  }
  ASSERT_TRUE(store_->cancel_upload("library/alpine", id));
  EXPECT_FALSE(fs::exists(root_ / "uploads" / id));
  EXPECT_EQ(store_->open_upload("library/alpine", id).error().code, errc::blob_upload_unknown);
  EXPECT_EQ(store_->upload_size("library/alpine", id).error().code, errc::blob_upload_unknown);
  EXPECT_EQ(store_->cancel_upload("library/alpine", id).error().code, errc::blob_upload_unknown);
}

TEST_F(FsBlobStoreTest, PurgeRemovesOnlyIdleUploadsNobodyWrites) {
  const auto old_idle = create();
  const auto old_busy = create();
  const auto fresh = create();
  const auto an_hour_ago = fs::file_time_type::clock::now() - std::chrono::hours(1);
  for (const auto& id : {old_idle, old_busy}) fs::last_write_time(root_ / "uploads" / id / "data", an_hour_ago);

  auto writer = open(old_busy);
  ASSERT_TRUE(writer);
  EXPECT_EQ(store_->purge_uploads(std::chrono::minutes(30)), 1u);
  EXPECT_FALSE(fs::exists(root_ / "uploads" / old_idle));
  EXPECT_EQ(store_->upload_size("library/alpine", old_idle).error().code, errc::blob_upload_unknown);
  EXPECT_TRUE(writer->write("still here"));
  EXPECT_TRUE(store_->upload_size("library/alpine", fresh).has_value());
  writer.reset();
  EXPECT_EQ(*store_->upload_size("library/alpine", old_busy), 10u);  // its write made it recent
  EXPECT_EQ(store_->purge_uploads(std::chrono::minutes(30)), 0u);
}

TEST_F(FsBlobStoreTest, LargeUploadInPieces) {
  constexpr std::size_t kPiece = 1 << 20;
  constexpr int kPieces = 64;
  hasher expected_hash;
  auto up = open(create());
  ASSERT_TRUE(up);
  std::string piece(kPiece, '\0');
  for (int i = 0; i < kPieces; ++i) {
    for (std::size_t j = 0; j < piece.size(); ++j) piece[j] = static_cast<char>((i * 131 + j * 7) & 0xff);
    expected_hash.update(piece);
    ASSERT_TRUE(up->write(piece));
  }
  const auto d = expected_hash.finish();
  EXPECT_EQ(up->commit(d).value(), kPiece * kPieces);
  EXPECT_EQ(store_->stat(d).value(), kPiece * kPieces);
  EXPECT_EQ(digest_of(blob_contents(*store_, d)), d);
}

TEST_F(FsBlobStoreTest, StartUpClearsTmp) {
  std::ofstream(root_ / "tmp" / "left-over") << "partial";
  fs::create_directory(root_ / "tmp" / "half-made-upload");
  restart();
  EXPECT_TRUE(fs::is_empty(root_ / "tmp"));
}

TEST_F(FsBlobStoreTest, StartUpFailsWhenRootCannotBeCreated) {
  std::ofstream(root_ / "file") << "x";
  EXPECT_THROW(make_fs_blob_store((root_ / "file" / "data").string()), std::runtime_error);
}

// Aligned runs go to the disk through O_DIRECT in the background, unaligned tails through the page
// cache: whatever the mix of piece sizes, the file holds the bytes in order, and a handle that ends
// with a write in flight leaves a file the next handle resumes from.
TEST_F(FsBlobStoreTest, MixedAlignedAndUnalignedPiecesKeepTheirOrder) {
  std::string all;
  for (std::size_t i = 0; i < (5u << 20) + 12345; ++i) all.push_back(static_cast<char>((i * 2654435761u) >> 13));
  const std::size_t cuts[] = {1u << 20, (1u << 20) + 5, 4096, 100, (1u << 20) - 100 - 4096 - 5 + 8192, 77};
  const auto id = create();
  std::size_t at = 0;
  {
    auto up = open(id);
    ASSERT_TRUE(up);
    for (std::size_t cut : cuts) {
      ASSERT_TRUE(up->write(std::string_view(all).substr(at, cut)));
      at += cut;
      EXPECT_EQ(up->size(), at);
    }
    ASSERT_TRUE(up->flush());
    ASSERT_TRUE(up->write(std::string_view(all).substr(at, 1u << 20)));  // in flight as the handle ends
    at += 1u << 20;
  }
  EXPECT_EQ(store_->upload_size("library/alpine", id).value(), at);
  auto up = open(id);
  ASSERT_TRUE(up);
  EXPECT_EQ(up->size(), at);
  ASSERT_TRUE(up->write(std::string_view(all).substr(at)));
  const auto d = digest_of(all);
  EXPECT_EQ(up->commit(d).value(), all.size());
  EXPECT_EQ(blob_contents(*store_, d), all);
}

}  // namespace
}  // namespace berth::storage
