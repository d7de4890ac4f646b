// The upload service over the filesystem backend and the SQLite records: ids, owners, leases, the
// running hash and its resumption, commit, cancel, purge. What it asks of the backend is counted
// by a wrapper, so the tests can tell when it read bytes back, and on which thread.
#include "uploads/upload_service.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "core/sync_wait.h"
#include "core/test_await.h"
#include "meta/metadata_store.h"

namespace berth::uploads {
namespace {

namespace fs = std::filesystem;
using test_util::await_all;

constexpr std::string_view kRepo = "library/alpine";

// Forwards to a backend and records every read of unfinished upload bytes.
class counting_store final : public storage::blob_store {
 public:
  explicit counting_store(std::unique_ptr<storage::blob_store> inner) : inner_(std::move(inner)) {}

  awaitable<result<std::uint64_t>> stat(const digest& d) override { return inner_->stat(d); }
  awaitable<result<std::unique_ptr<storage::blob_reader>>> open(const digest& d) override { return inner_->open(d); }
  awaitable<result<void>> remove(const digest& d) override { return inner_->remove(d); }
  awaitable<result<storage::blob_page>> list_blobs(std::string_view cursor, std::size_t n) override {
    return inner_->list_blobs(cursor, n);
  }
  awaitable<result<void>> create_upload(std::string_view id) override { return inner_->create_upload(id); }
  awaitable<result<void>> delete_upload(std::string_view id) override { return inner_->delete_upload(id); }
  awaitable<result<std::vector<storage::upload_entry>>> list_uploads() override { return inner_->list_uploads(); }
  // Answers `leftovers` and keeps what it was asked.
  awaitable<result<std::size_t>> purge_leftovers(std::chrono::system_clock::time_point before) override {
    leftovers_before = before;
    co_return leftovers;
  }
  awaitable<result<void>> probe() override { return inner_->probe(); }
  awaitable<result<std::unique_ptr<storage::upload_data>>> open_upload(std::string_view id) override {
    auto data = co_await inner_->open_upload(id);
    if (!data) co_return std::unexpected(data.error());
    co_return std::make_unique<counting_data>(*this, std::move(*data));
  }

  std::size_t reads() const { return reads_; }
  std::size_t leftovers = 0;
  std::optional<std::chrono::system_clock::time_point> leftovers_before;
  std::set<std::thread::id> read_threads() {
    std::lock_guard lock(mutex_);
    return threads_;
  }

 private:
  class counting_data final : public storage::upload_data {
   public:
    counting_data(counting_store& owner, std::unique_ptr<storage::upload_data> inner)
        : owner_(owner), inner_(std::move(inner)) {}
    std::uint64_t size() const override { return inner_->size(); }
    awaitable<result<void>> write(std::string_view bytes) override { return inner_->write(bytes); }
    awaitable<result<void>> flush() override { return inner_->flush(); }
    awaitable<result<void>> commit(const digest& d) override { return inner_->commit(d); }
    awaitable<result<std::size_t>> read(std::uint64_t offset, std::span<char> buf) override {
      ++owner_.reads_;
      {
        std::lock_guard lock(owner_.mutex_);
        owner_.threads_.insert(std::this_thread::get_id());
      }
      return inner_->read(offset, buf);
    }

   private:
    counting_store& owner_;
    std::unique_ptr<storage::upload_data> inner_;
  };

  std::unique_ptr<storage::blob_store> inner_;
  std::atomic<std::size_t> reads_{0};
  std::mutex mutex_;
  std::set<std::thread::id> threads_;  // guarded by mutex_
};

class UploadServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "berth-uploads-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
    open_stores();
  }
  void TearDown() override {
    pool_.join();  // sessions a test dropped are released on the pool: the service must outlive that
    service_.reset();
    meta_.reset();
    blobs_.reset();
    fs::remove_all(root_);
  }

  void open_stores() {
    blobs_ = std::make_unique<counting_store>(storage::make_fs_blob_store((root_ / "blobs").string(), pool_));
    meta_ = meta::make_sqlite_metadata_store((root_ / "berth.db").string());
    service_options options;
    options.now_ms = [this] { return now_.load(); };
    service_ = std::make_unique<upload_service>(*blobs_, meta_->uploads(), pool_, options);
  }

  // A process restart: nothing in memory survives, the data directory does.
  void restart() {
    service_.reset();
    meta_.reset();
    blobs_.reset();
    open_stores();
  }

  std::string create(std::string_view repo = kRepo) {
    auto id = sync_wait(service_->create(repo));
    EXPECT_TRUE(id.has_value());
    return id.value_or("");
  }

  std::optional<upload_session> open(const std::string& id, std::string_view repo = kRepo) {
    auto s = sync_wait(service_->open(repo, id));
    EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().detail);
    if (!s) return std::nullopt;
    return std::move(*s);
  }

  void write(upload_session& s, std::string_view bytes) { ASSERT_TRUE(sync_wait(s.write(bytes)).has_value()); }

  std::optional<std::uint64_t> linked(const digest& d, std::string_view repo = kRepo) {
    return sync_wait(meta_->linked_blob_size(repo, d)).value();
  }

  std::string stored(const digest& d) {
    auto reader = sync_wait(blobs_->open(d)).value();
    std::string out(reader->size(), '\0');
    EXPECT_EQ(sync_wait(reader->read(0, std::span<char>(out.data(), out.size()))).value(), out.size());
    return out;
  }

  std::size_t upload_dirs() const {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(root_ / "blobs" / "uploads")) ++n;
    return n;
  }

  fs::path root_;
  blocking_pool pool_{2};
  // The service's clock, which tests move; it starts at the real time, as the files' times do.
  std::atomic<std::int64_t> now_{std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count()};
  std::unique_ptr<counting_store> blobs_;
  std::unique_ptr<meta::metadata_store> meta_;
  std::unique_ptr<upload_service> service_;
};

TEST_F(UploadServiceTest, IdsAreDistinctUuidsWithBytesAndARecord) {
  const auto a = create();
  const auto b = create();
  EXPECT_NE(a, b);
  for (const auto& id : {a, b}) {
    EXPECT_TRUE(is_upload_id(id)) << id;
    EXPECT_EQ(id[14], '4') << id;  // version 4
    EXPECT_EQ(sync_wait(service_->size(kRepo, id)).value(), 0u);
    EXPECT_EQ(sync_wait(meta_->uploads().find(id)).value()->repo, kRepo);
  }
  EXPECT_EQ(upload_dirs(), 2u);
}

TEST_F(UploadServiceTest, WriteAndCommitStoresAndLinksTheBlob) {
  const auto id = create();
  auto up = open(id);
  ASSERT_TRUE(up);
  EXPECT_EQ(up->id(), id);
  write(*up, "abc");
  write(*up, "def");
  EXPECT_EQ(up->size(), 6u);

  const auto d = digest_of("abcdef");
  EXPECT_EQ(sync_wait(up->commit(d)).value(), 6u);
  EXPECT_EQ(stored(d), "abcdef");
  EXPECT_EQ(linked(d), 6u);
  EXPECT_EQ(upload_dirs(), 0u);
  EXPECT_EQ(sync_wait(meta_->uploads().find(id)).value(), std::nullopt);
  EXPECT_EQ(sync_wait(service_->size(kRepo, id)).error().code, errc::blob_upload_unknown);
  // The session is spent.
  EXPECT_EQ(sync_wait(up->write("x")).error().code, errc::blob_upload_unknown);
  EXPECT_EQ(sync_wait(up->commit(d)).error().code, errc::blob_upload_unknown);
  EXPECT_EQ(sync_wait(service_->open(kRepo, id)).error().code, errc::blob_upload_unknown);
}

TEST_F(UploadServiceTest, EmptyUploadCommits) {
  auto up = open(create());
  ASSERT_TRUE(up);
  EXPECT_EQ(sync_wait(up->commit(digest_of(""))).value(), 0u);
  EXPECT_EQ(linked(digest_of("")), 0u);
}

TEST_F(UploadServiceTest, WrongDigestDiscardsTheUpload) {
  const auto id = create();
  auto up = open(id);
  ASSERT_TRUE(up);
  write(*up, "abc");
  const auto wrong = digest_of("abd");
  EXPECT_EQ(sync_wait(up->commit(wrong)).error().code, errc::digest_invalid);
  EXPECT_EQ(sync_wait(blobs_->stat(wrong)).error().code, errc::blob_unknown);
  EXPECT_EQ(sync_wait(blobs_->stat(digest_of("abc"))).error().code, errc::blob_unknown);
  EXPECT_EQ(linked(wrong), std::nullopt);
  EXPECT_EQ(upload_dirs(), 0u);
  EXPECT_EQ(sync_wait(service_->open(kRepo, id)).error().code, errc::blob_upload_unknown);
}

TEST_F(UploadServiceTest, BusyUploadIsRefusedUntilReleased) {
  const auto id = create();
  auto first = open(id);
  ASSERT_TRUE(first);
  auto second = sync_wait(service_->open(kRepo, id));
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, errc::upload_busy);
  EXPECT_EQ(second.error().http_status(), 409);
  EXPECT_EQ(sync_wait(service_->cancel(kRepo, id)).error().code, errc::upload_busy);
  EXPECT_EQ(sync_wait(service_->size(kRepo, id)).value(), 0u);  // reading the size takes no hold

  write(*first, "abc");
  ASSERT_TRUE(sync_wait(first->release()).has_value());
  auto again = open(id);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->size(), 3u);
}

TEST_F(UploadServiceTest, ConcurrentOpensAdmitExactlyOneWriter) {
  const auto id = create();
  std::atomic<int> admitted{0};
  std::atomic<int> busy{0};
  std::vector<upload_session> held;
  std::mutex mutex;
  await_all(8, 4, [&](int) -> awaitable<void> {
    auto s = co_await service_->open(kRepo, id);
    if (s) {
      ++admitted;
      std::lock_guard lock(mutex);
      held.push_back(std::move(*s));  // kept until every open has been tried
    } else if (s.error().code == errc::upload_busy) {
      ++busy;
    }
  });
  EXPECT_EQ(admitted.load(), 1);
  EXPECT_EQ(busy.load(), 7);
  ASSERT_TRUE(sync_wait(held.front().release()).has_value());
}

TEST_F(UploadServiceTest, UploadsOfAnotherRepositoryAreUnknown) {
  const auto id = create("team/app");
  EXPECT_EQ(sync_wait(service_->open("team/other", id)).error().code, errc::blob_upload_unknown);
  EXPECT_EQ(sync_wait(service_->size("team/other", id)).error().code, errc::blob_upload_unknown);
  EXPECT_EQ(sync_wait(service_->cancel("team/other", id)).error().code, errc::blob_upload_unknown);
  EXPECT_EQ(sync_wait(service_->open("team/ap", id)).error().code, errc::blob_upload_unknown);
  EXPECT_TRUE(open(id, "team/app"));
}

TEST_F(UploadServiceTest, MalformedIdsAreUnknown) {
  const auto id = create();
  std::string upper = id;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (const std::string& bad : {std::string("../x"), std::string(), std::string("../../tmp"), upper, id + "/",
                                id.substr(1), "../" + id.substr(3), std::string("00000000-0000-4000-8000-00000000000/")}) {
    EXPECT_FALSE(is_upload_id(bad)) << bad;
    EXPECT_EQ(sync_wait(service_->open(kRepo, bad)).error().code, errc::blob_upload_unknown) << bad;
    EXPECT_EQ(sync_wait(service_->size(kRepo, bad)).error().code, errc::blob_upload_unknown) << bad;
    EXPECT_EQ(sync_wait(service_->cancel(kRepo, bad)).error().code, errc::blob_upload_unknown) << bad;
  }
  // Well-formed, but never created.
  EXPECT_EQ(sync_wait(service_->open(kRepo, "0b1e7a3c-2f4d-4e5a-9b6c-7d8e9f0a1b2c")).error().code,
            errc::blob_upload_unknown);
  EXPECT_TRUE(open(id));
}

// The hash state is saved with the record when a request ends: the next request, even in another
// process, goes on hashing without reading a byte back.
TEST_F(UploadServiceTest, ResumesAfterRestartWithoutRehashing) {
  const std::string first(3u << 20, 'a');  // background runs and a tail
  const auto id = create();
  {
    auto up = open(id);
    ASSERT_TRUE(up);
    write(*up, first);
    write(*up, "tail");
    ASSERT_TRUE(sync_wait(up->release()).has_value());
  }
  restart();
  EXPECT_EQ(sync_wait(service_->size(kRepo, id)).value(), first.size() + 4);
  auto up = open(id);
  ASSERT_TRUE(up);
  EXPECT_EQ(up->size(), first.size() + 4);
  write(*up, "world");
  const auto d = digest_of(first + "tail" + "world");
  EXPECT_EQ(sync_wait(up->commit(d)).value(), first.size() + 9);
  EXPECT_EQ(blobs_->reads(), 0u);
  EXPECT_EQ(linked(d), first.size() + 9);
}

// Bytes beyond the saved state (a request that died mid-body, a crash) are hashed when the upload
// is next opened, on the blocking pool: never on the thread serving the request.
TEST_F(UploadServiceTest, BytesPastTheSavedStateAreHashedOnThePool) {
  const auto id = create();
  {
    auto up = open(id);
    ASSERT_TRUE(up);
    write(*up, "abc");
    ASSERT_TRUE(sync_wait(up->release()).has_value());
  }
  std::ofstream(root_ / "blobs" / "uploads" / id / "data", std::ios::app) << "def";
  auto up = open(id);
  ASSERT_TRUE(up);
  EXPECT_EQ(up->size(), 6u);
  EXPECT_GT(blobs_->reads(), 0u);
  EXPECT_FALSE(blobs_->read_threads().contains(std::this_thread::get_id()));
  EXPECT_EQ(sync_wait(up->commit(digest_of("abcdef"))).value(), 6u);
}

// A saved state that covers more than the bytes (lost in a power failure) or does not parse is
// not trusted: the bytes are hashed from the start.
TEST_F(UploadServiceTest, UnusableSavedStateIsRecomputed) {
  const auto id = create();
  {
    auto up = open(id);
    ASSERT_TRUE(up);
    write(*up, "abcdef");
    ASSERT_TRUE(sync_wait(up->release()).has_value());
  }
  fs::resize_file(root_ / "blobs" / "uploads" / id / "data", 4);
  auto up = open(id);
  ASSERT_TRUE(up);
  EXPECT_EQ(up->size(), 4u);
  EXPECT_EQ(sync_wait(up->commit(digest_of("abcd"))).value(), 4u);
}

TEST_F(UploadServiceTest, Sha512Commit) {
  auto up = open(create());
  ASSERT_TRUE(up);
  write(*up, "sha");
  write(*up, "512");
  const auto d = digest_of("sha512", digest_algorithm::sha512);
  EXPECT_EQ(sync_wait(up->commit(d)).value(), 6u);
  EXPECT_EQ(sync_wait(blobs_->stat(d)).value(), 6u);
  EXPECT_EQ(linked(d), 6u);

  auto wrong = open(create());
  ASSERT_TRUE(wrong);
  write(*wrong, "sha513");
  EXPECT_EQ(sync_wait(wrong->commit(d)).error().code, errc::digest_invalid);
}

TEST_F(UploadServiceTest, FailedCommitKeepsTheSessionUsable) {
  auto up = open(create());
  ASSERT_TRUE(up);
  write(*up, "abc");
  const auto d = digest_of("abc");
  const std::string hex(d.hex());
  const auto fanout = root_ / "blobs" / "blobs" / "sha256" / hex.substr(0, 2);
  std::ofstream(fanout) << "in the way";  // the rename into place now fails
  EXPECT_EQ(sync_wait(up->commit(d)).error().code, errc::internal);
  EXPECT_EQ(up->size(), 3u);
  fs::remove(fanout);
  write(*up, "def");
  EXPECT_EQ(sync_wait(up->commit(digest_of("abcdef"))).value(), 6u);
}

// A lease that runs out lets another request take the upload; the first one can then change
// nothing. A writing request renews its lease, so a long request keeps its upload.
TEST_F(UploadServiceTest, ExpiredLeaseIsTakenOverAndTheOldHolderStops) {
  const auto id = create();
  auto first = open(id);
  ASSERT_TRUE(first);
  write(*first, "abc");
  now_ += 40'000;  // past half the lease: the next write renews it
  write(*first, "def");
  now_ += 40'000;  // 80 s after the open, 40 s after the renewal
  EXPECT_EQ(sync_wait(service_->open(kRepo, id)).error().code, errc::upload_busy);
  now_ += 30'000;  // the renewed lease has run out
  auto second = open(id);
  ASSERT_TRUE(second);
  EXPECT_EQ(sync_wait(first->write("ghi")).error().code, errc::upload_busy);
  EXPECT_EQ(second->size(), 6u);
  write(*second, "ghi");
  EXPECT_EQ(sync_wait(second->commit(digest_of("abcdefghi"))).value(), 9u);
}

TEST_F(UploadServiceTest, CancelRemovesBytesAndRecord) {
  const auto id = create();
  {
    auto up = open(id);
    ASSERT_TRUE(up);
    write(*up, "abc");
    ASSERT_TRUE(sync_wait(up->release()).has_value());
  }
  ASSERT_TRUE(sync_wait(service_->cancel(kRepo, id)).has_value());
  EXPECT_EQ(upload_dirs(), 0u);
  EXPECT_EQ(sync_wait(meta_->uploads().find(id)).value(), std::nullopt);
  EXPECT_EQ(sync_wait(service_->open(kRepo, id)).error().code, errc::blob_upload_unknown);
  EXPECT_EQ(sync_wait(service_->cancel(kRepo, id)).error().code, errc::blob_upload_unknown);
}

// What a failed single-request upload does: nothing of it may stay behind.
TEST_F(UploadServiceTest, DiscardOfAStartedUploadLeavesNothing) {
  auto up = sync_wait(service_->start(kRepo));
  ASSERT_TRUE(up.has_value());
  const std::string id = up->id();
  write(*up, std::string(2u << 20, 'x'));
  ASSERT_TRUE(sync_wait(up->discard()).has_value());
  EXPECT_EQ(upload_dirs(), 0u);
  EXPECT_EQ(sync_wait(meta_->uploads().find(id)).value(), std::nullopt);
}

// A session dropped without release (a request that failed half-way) is released in the
// background, its progress saved.
TEST_F(UploadServiceTest, DroppedSessionIsReleasedInTheBackground) {
  const auto id = create();
  {
    blocking_pool own(1);
    upload_service service(*blobs_, meta_->uploads(), own);
    auto up = sync_wait(service.open(kRepo, id));
    ASSERT_TRUE(up.has_value());
    write(*up, "abc");
  }  // the session goes, then the pool drains: the release has run
  auto up = open(id);
  ASSERT_TRUE(up);
  EXPECT_EQ(up->size(), 3u);
  EXPECT_EQ(sync_wait(up->commit(digest_of("abc"))).value(), 3u);
  EXPECT_EQ(blobs_->reads(), 0u);  // the progress was saved with its hash
}

TEST_F(UploadServiceTest, PurgeRemovesIdleUploadsNobodyHolds) {
  const auto old_idle = create();
  const auto old_held = create();
  auto holder = open(old_held);
  ASSERT_TRUE(holder);
  now_ += 2 * 3'600'000;  // two hours on
  const auto fresh = create();
  // The holder's lease has run out, but it renews as soon as it writes: then it is not idle.
  write(*holder, "still here");
  EXPECT_EQ(sync_wait(service_->purge(std::chrono::hours(1))), 1u);
  EXPECT_EQ(sync_wait(service_->size(kRepo, old_idle)).error().code, errc::blob_upload_unknown);
  EXPECT_EQ(sync_wait(meta_->uploads().find(old_idle)).value(), std::nullopt);
  EXPECT_EQ(sync_wait(service_->size(kRepo, fresh)).value(), 0u);
  ASSERT_TRUE(sync_wait(holder->release()).has_value());
  EXPECT_EQ(sync_wait(service_->size(kRepo, old_held)).value(), 10u);
  EXPECT_EQ(sync_wait(service_->purge(std::chrono::hours(1))), 0u);
  EXPECT_EQ(upload_dirs(), 2u);
}

// Bytes no record names (a crash between creating them and recording the upload, or an older
// version's uploads) go once they are as old as an idle upload.
TEST_F(UploadServiceTest, PurgeRemovesOrphanedBytes) {
  const auto kept = create();
  const auto old_orphan = root_ / "blobs" / "uploads" / "0b1e7a3c-2f4d-4e5a-9b6c-7d8e9f0a1b2c";
  fs::create_directories(old_orphan);
  std::ofstream(old_orphan / "data") << "left";
  std::ofstream(old_orphan / "owner") << kRepo;
  fs::last_write_time(old_orphan / "data", fs::file_time_type::clock::now() - std::chrono::hours(3));
  const auto new_orphan = root_ / "blobs" / "uploads" / "1b1e7a3c-2f4d-4e5a-9b6c-7d8e9f0a1b2c";
  fs::create_directories(new_orphan);
  EXPECT_EQ(sync_wait(service_->purge(std::chrono::hours(1))), 1u);
  EXPECT_FALSE(fs::exists(old_orphan));
  EXPECT_TRUE(fs::exists(new_orphan));
  EXPECT_EQ(sync_wait(service_->size(kRepo, kept)).value(), 0u);
}

// What a commit cut off by a crash left in the backend (S3 multipart uploads) goes with the same age
// limit.
TEST_F(UploadServiceTest, PurgeRemovesTheBackendsLeftovers) {
  blobs_->leftovers = 2;
  EXPECT_EQ(sync_wait(service_->purge(std::chrono::hours(1))), 2u);
  ASSERT_TRUE(blobs_->leftovers_before);
  EXPECT_EQ(*blobs_->leftovers_before, std::chrono::system_clock::time_point(std::chrono::milliseconds(now_ - 3'600'000)));
}

}  // namespace
}  // namespace berth::uploads
