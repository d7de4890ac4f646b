// The filesystem blob store: the contract suite, plus what only a filesystem does (its layout,
// start-up clean-up, background runs and write-back, what a crash can leave).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

#include "core/sync_wait.h"
#include "core/test_await.h"
#include "storage/blob_store.h"
#include "storage/blob_store_contract.h"

namespace berth::storage {
namespace {

namespace fs = std::filesystem;

INSTANTIATE_TEST_SUITE_P(fs, blob_store_contract,
                         ::testing::Values(blob_backend{"fs",
                                                        [](const std::string& location, blocking_pool& pool) {
                                                          return make_fs_blob_store(location, pool);
                                                        }}),
                         blob_backend_name);

const std::string kId = "0b1e7a3c-2f4d-4e5a-9b6c-7d8e9f0a1b2c";

// Each test gets a fresh data directory, removed afterwards.
class FsBlobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "berth-storage-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
    store_ = make_fs_blob_store(root_.string(), pool_);
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(root_);
  }

  void restart() {
    store_.reset();
    store_ = make_fs_blob_store(root_.string(), pool_);
  }

  std::unique_ptr<upload_data> open_new(const std::string& id = kId) {
    EXPECT_TRUE(sync_wait(store_->create_upload(id)).has_value());
    auto data = sync_wait(store_->open_upload(id));
    EXPECT_TRUE(data.has_value());
    return data ? std::move(*data) : nullptr;
  }

  std::string read_blob(const digest& d) {
    auto reader = sync_wait(store_->open(d)).value();
    std::string out(reader->size(), '\0');
    EXPECT_EQ(sync_wait(reader->read(0, std::span<char>(out.data(), out.size()))).value(), out.size());
    return out;
  }

  fs::path root_;
  blocking_pool pool_{2};
  std::unique_ptr<blob_store> store_;
};

TEST_F(FsBlobStoreTest, LayoutOnDisk) {
  auto data = open_new();
  EXPECT_TRUE(fs::is_regular_file(root_ / "uploads" / kId / "data"));
  ASSERT_TRUE(sync_wait(data->write("hello")).has_value());
  const auto d = digest_of("hello");
  ASSERT_TRUE(sync_wait(data->commit(d)).has_value());
  // The documented layout: blobs/<algorithm>/<first two hex>/<hex>.
  const std::string hex(d.hex());
  EXPECT_TRUE(fs::is_regular_file(root_ / "blobs" / "sha256" / hex.substr(0, 2) / hex));
  EXPECT_FALSE(fs::exists(root_ / "uploads" / kId));
  EXPECT_TRUE(fs::is_empty(root_ / "tmp"));
}

TEST_F(FsBlobStoreTest, IdsThatAreNotFileNamesReachNoPath) {
  fs::create_directory(root_ / "decoy");
  std::ofstream(root_ / "decoy" / "data") << "x";
  for (const std::string bad : {"", ".", "..", "../decoy", "a/b", "../../tmp"}) {
    EXPECT_EQ(sync_wait(store_->open_upload(bad)).error().code, errc::blob_upload_unknown) << bad;
    EXPECT_EQ(sync_wait(store_->delete_upload(bad)).error().code, errc::blob_upload_unknown) << bad;
    EXPECT_FALSE(sync_wait(store_->create_upload(bad)).has_value()) << bad;
  }
  EXPECT_TRUE(fs::exists(root_ / "decoy" / "data"));
}

TEST_F(FsBlobStoreTest, FailedCommitKeepsTheUploadUsable) {
  auto data = open_new();
  ASSERT_TRUE(sync_wait(data->write("abc")).has_value());
  const auto d = digest_of("abc");
  const std::string hex(d.hex());
  const auto fanout = root_ / "blobs" / "sha256" / hex.substr(0, 2);
  std::ofstream(fanout) << "in the way";  // the rename into place now fails
  EXPECT_EQ(sync_wait(data->commit(d)).error().code, errc::internal);
  EXPECT_EQ(data->size(), 3u);
  fs::remove(fanout);
  ASSERT_TRUE(sync_wait(data->write("def")).has_value());
  const auto whole = digest_of("abcdef");
  ASSERT_TRUE(sync_wait(data->commit(whole)).has_value());
  EXPECT_EQ(read_blob(whole), "abcdef");
}

// The listing leaves out what is no blob: a name that is no digest, a digest in another digest's
// fan-out directory, a file where a fan-out directory belongs.
TEST_F(FsBlobStoreTest, ListingLeavesOutStrayFiles) {
  auto data = open_new();
  ASSERT_TRUE(sync_wait(data->write("abc")).has_value());
  const auto d = digest_of("abc");
  ASSERT_TRUE(sync_wait(data->commit(d)).has_value());
  const auto sha256 = root_ / "blobs" / "sha256";
  std::ofstream(sha256 / std::string(d.hex().substr(0, 2)) / "notes.txt") << "x";
  fs::create_directory(sha256 / "zz");
  std::ofstream(sha256 / "zz" / std::string(digest_of("other").hex())) << "other";
  std::ofstream(sha256 / "stray") << "x";
  const auto page = sync_wait(store_->list_blobs("", 10)).value();
  ASSERT_EQ(page.blobs.size(), 1u);
  EXPECT_EQ(page.blobs[0].dgst, d);
  EXPECT_EQ(page.blobs[0].size, 3u);
  EXPECT_EQ(page.next, "");
}

// Large pieces are written on a background thread: a handle that ends with such a write in flight
// waits for it, so the next handle finds every byte.
TEST_F(FsBlobStoreTest, HandleEndingWithAWriteInFlightLeavesEveryByte) {
  std::string all((3u << 20) + 100, '\0');
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<char>((i * 2654435761u) >> 13);
  {
    auto data = open_new();
    ASSERT_TRUE(sync_wait(data->write(std::string_view(all).substr(0, 1u << 20))).has_value());
    ASSERT_TRUE(sync_wait(data->write(std::string_view(all).substr(1u << 20, 1u << 20))).has_value());  // in flight
  }
  restart();
  auto data = sync_wait(store_->open_upload(kId)).value();
  EXPECT_EQ(data->size(), 2u << 20);
  ASSERT_TRUE(sync_wait(data->write(std::string_view(all).substr(2u << 20))).has_value());
  const auto d = digest_of(all);
  ASSERT_TRUE(sync_wait(data->commit(d)).has_value());
  EXPECT_TRUE(read_blob(d) == all);
}

// Pieces of any size, aligned or not, in any order: large ones on the background thread, small ones
// at once, and every byte ends where it belongs.
TEST_F(FsBlobStoreTest, PiecesOfOddSizesKeepEveryByte) {
  std::string all((20u << 20) + 12345, '\0');
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<char>((i * 2654435761u) >> 11);
  auto data = open_new();
  std::size_t at = 0;
  for (std::size_t piece : {1u << 20, 3u << 20, 100u, (7u << 20) + 1, 5u << 20}) {
    ASSERT_TRUE(sync_wait(data->write(std::string_view(all).substr(at, piece))).has_value());
    at += piece;
  }
  ASSERT_TRUE(sync_wait(data->write(std::string_view(all).substr(at))).has_value());
  ASSERT_TRUE(sync_wait(data->flush()).has_value());
  EXPECT_EQ(data->size(), all.size());
  const auto d = digest_of(all);
  ASSERT_TRUE(sync_wait(data->commit(d)).has_value());
  EXPECT_TRUE(read_blob(d) == all);
}

// How many of the file's pages are in the page cache.
std::size_t cached_pages(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  const auto size = static_cast<std::size_t>(fs::file_size(path));
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> resident((size + page - 1) / page);
  ::mincore(map, size, resident.data());
  ::munmap(map, size);
  return static_cast<std::size_t>(std::count_if(resident.begin(), resident.end(), [](unsigned char r) { return r & 1; }));
}

// The first pull right after a push is served from memory: a blob written in request-sized pieces,
// past several write-back windows, is still in the page cache when committed (with O_DIRECT writes
// none of it was).
TEST_F(FsBlobStoreTest, ACommittedBlobStaysInThePageCache) {
  std::string all(40u << 20, '\0');
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<char>((i * 2654435761u) >> 9);
  auto data = open_new();
  for (std::size_t at = 0; at < all.size(); at += 1u << 20) {
    ASSERT_TRUE(sync_wait(data->write(std::string_view(all).substr(at, 1u << 20))).has_value());
  }
  const auto d = digest_of(all);
  ASSERT_TRUE(sync_wait(data->commit(d)).has_value());
  const std::string hex(d.hex());
  const fs::path blob = root_ / "blobs" / "sha256" / hex.substr(0, 2) / hex;
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  EXPECT_EQ(cached_pages(blob), all.size() / page);
  EXPECT_TRUE(read_blob(d) == all);
}

// A crash between a commit's rename and the clean-up leaves an upload directory without data:
// listed (dated by the directory), so that the purge can remove it; unknown to open.
TEST_F(FsBlobStoreTest, UploadDirectoryWithoutDataIsListedButUnknown) {
  fs::create_directories(root_ / "uploads" / kId);
  std::ofstream(root_ / "uploads" / kId / "owner") << "library/alpine";  // as older versions left them
  auto listed = sync_wait(store_->list_uploads()).value();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].id, kId);
  EXPECT_EQ(sync_wait(store_->open_upload(kId)).error().code, errc::blob_upload_unknown);
  ASSERT_TRUE(sync_wait(store_->delete_upload(kId)).has_value());
  EXPECT_FALSE(fs::exists(root_ / "uploads" / kId));
}

TEST_F(FsBlobStoreTest, StartUpClearsTmp) {
  std::ofstream(root_ / "tmp" / "left-over") << "partial";
  fs::create_directory(root_ / "tmp" / "half-made-upload");
  restart();
  EXPECT_TRUE(fs::is_empty(root_ / "tmp"));
}

TEST_F(FsBlobStoreTest, StartUpFailsWhenRootCannotBeCreated) {
  std::ofstream(root_ / "file") << "x";
  EXPECT_THROW(make_fs_blob_store((root_ / "file" / "data").string(), pool_), std::runtime_error);
}

}  // namespace
}  // namespace berth::storage
