// The collector over the filesystem blob store and the SQLite metadata store, blobs pushed through
// the upload service as the API does: what it frees, what it keeps, dry runs, and the run a killed
// collector left half done.
#include "gc/collector.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "core/sync_wait.h"
#include "uploads/upload_service.h"

namespace berth::gc {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class CollectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "berth-gc-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
    blobs_ = storage::make_fs_blob_store((root_ / "blobs").string(), pool_);
    meta_ = meta::make_sqlite_metadata_store((root_ / "berth.db").string());
    uploads_ = std::make_unique<uploads::upload_service>(*blobs_, meta_->uploads(), pool_);
  }
  void TearDown() override {
    pool_.join();
    uploads_.reset();
    meta_.reset();
    blobs_.reset();
    fs::remove_all(root_);
  }

  digest push(std::string_view repo, std::string_view bytes) {
    auto id = sync_wait(uploads_->create(repo));
    EXPECT_TRUE(id.has_value());
    auto s = sync_wait(uploads_->open(repo, *id));
    EXPECT_TRUE(s.has_value());
    EXPECT_TRUE(sync_wait(s->write(bytes)).has_value());
    const digest d = digest_of(bytes);
    EXPECT_TRUE(sync_wait(s->commit(d)).has_value());
    return d;
  }
  // Bytes written into the blob store with no record in the metadata store, as a registry from
  // before garbage collection (or an older version's crash) left them.
  digest plant(std::string_view bytes) {
    const std::string id = fmt::format("00000000-0000-4000-8000-{:012}", ++planted_);
    EXPECT_TRUE(sync_wait(blobs_->create_upload(id)).has_value());
    auto data = sync_wait(blobs_->open_upload(id));
    EXPECT_TRUE(data.has_value());
    EXPECT_TRUE(sync_wait((*data)->write(bytes)).has_value());
    const digest d = digest_of(bytes);
    EXPECT_TRUE(sync_wait((*data)->commit(d)).has_value());
    return d;
  }
  bool stored(const digest& d) { return sync_wait(blobs_->stat(d)).has_value(); }

  fs::path root_;
  blocking_pool pool_{2};
  std::unique_ptr<storage::blob_store> blobs_;
  std::unique_ptr<meta::metadata_store> meta_;
  std::unique_ptr<uploads::upload_service> uploads_;
  int planted_ = 0;
};

const meta::push_stamp kStamp{"user:test", 1'000, ""};

TEST_F(CollectorTest, frees_exactly_what_nothing_references) {
  const digest layer = push("app", "layer-bytes");
  const digest shared = push("app", "shared");
  ASSERT_EQ(push("other", "shared"), shared);
  const digest garbage = push("app", "garbage!");
  ASSERT_TRUE(sync_wait(meta_->put_manifest("app", meta::manifest_record{digest_of("m"), "t", "m", {}, "", "", {layer, shared}}, "v1", kStamp)).has_value());
  ASSERT_TRUE(sync_wait(meta_->delete_manifest("app", digest_of("m"), kStamp)).value());
  ASSERT_TRUE(sync_wait(meta_->put_manifest("app", meta::manifest_record{digest_of("n"), "t", "n", {}, "", "", {layer}}, "v1", kStamp)).has_value());
  collector c(*meta_, *blobs_);

  // Within the grace window, nothing.
  const auto young = sync_wait(c.run(1h, false)).value();
  EXPECT_EQ(young.counts.links, 0u);
  EXPECT_EQ(young.counts.blobs, 0u);

  // A dry run says what would go, and changes nothing: app's links to shared and garbage, the
  // garbage blob; shared is still linked by other.
  const auto preview = sync_wait(c.run(0ms, true)).value();
  EXPECT_TRUE(preview.dry_run);
  EXPECT_EQ(preview.counts.links, 3u);  // app: shared, garbage; other: shared (no manifest)
  EXPECT_EQ(preview.counts.blobs, 2u);
  EXPECT_EQ(preview.counts.bytes, 6u + 8u);
  EXPECT_TRUE(stored(garbage));

  const auto run = sync_wait(c.run(0ms, false)).value();
  EXPECT_EQ(run.counts.links, preview.counts.links);
  EXPECT_EQ(run.counts.blobs, preview.counts.blobs);
  EXPECT_EQ(run.counts.bytes, preview.counts.bytes);
  EXPECT_TRUE(stored(layer));
  EXPECT_FALSE(stored(shared));
  EXPECT_FALSE(stored(garbage));
  EXPECT_EQ(sync_wait(meta_->linked_blob_size("app", layer)).value(), 11u);

  const auto runs = sync_wait(meta_->blobs().runs(10)).value();
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_FALSE(runs[0].dry_run);
  EXPECT_EQ(runs[0].counts.bytes, 14u);

  // Pushed again after the collection: stored afresh.
  EXPECT_EQ(push("app", "garbage!"), garbage);
  EXPECT_TRUE(stored(garbage));
  EXPECT_EQ(sync_wait(c.run(1h, false)).value().counts.blobs, 0u);
  EXPECT_TRUE(stored(garbage));
}

// Bytes without a record: a run records them as used now, so the grace window protects them; once
// it has passed they go, unless a push linked them meanwhile (and a manifest references them).
TEST_F(CollectorTest, blobs_stored_without_a_record_go_after_the_grace_window) {
  const digest orphan = plant("orphan bytes");
  const digest relinked = plant("pushed again");
  collector c(*meta_, *blobs_);

  const auto young = sync_wait(c.run(1h, false)).value();
  EXPECT_EQ(young.counts.blobs, 0u);
  EXPECT_TRUE(stored(orphan));
  EXPECT_EQ(sync_wait(c.run(0ms, true)).value().counts.blobs, 2u);  // recorded now

  ASSERT_EQ(push("app", "pushed again"), relinked);
  ASSERT_TRUE(sync_wait(meta_->put_manifest("app", meta::manifest_record{digest_of("m"), "t", "m", {}, "", "", {relinked}}, "v1", kStamp)).has_value());
  const auto run = sync_wait(c.run(0ms, false)).value();
  EXPECT_EQ(run.counts.blobs, 1u);
  EXPECT_EQ(run.counts.bytes, 12u);
  EXPECT_FALSE(stored(orphan));
  EXPECT_TRUE(stored(relinked));
  EXPECT_EQ(sync_wait(meta_->linked_blob_size("app", relinked)).value(), 12u);
}

// With an instance's orphan_search, each run looks at one page (1,000 blobs) after the last run's,
// then starts over: a loop of collections does not list the whole store each time.
TEST_F(CollectorTest, an_instance_searches_one_page_of_the_store_per_run) {
  std::vector<digest> orphans;
  for (int i = 0; i < 1500; ++i) orphans.push_back(plant(fmt::format("orphan {}", i)));
  orphan_search search;
  collector c(*meta_, *blobs_, nullptr, &search);
  const auto recorded = [&] { return sync_wait(c.run(0ms, true)).value().counts.blobs; };  // what a run would free
  sync_wait(c.run(1h, false)).value();
  EXPECT_EQ(recorded(), 1000u);  // the first page, and the dry run lists none
  EXPECT_FALSE(search.position().empty());
  sync_wait(c.run(1h, false)).value();
  EXPECT_EQ(recorded(), 1500u);  // the rest
  EXPECT_TRUE(search.position().empty());  // the next run starts over
  EXPECT_EQ(sync_wait(c.run(0ms, false)).value().counts.blobs, 1500u);
}

// A collector killed after marking (and maybe after deleting some bytes): the next run finishes.
TEST_F(CollectorTest, the_next_run_finishes_an_interrupted_one) {
  const digest a = push("app", "aaa");
  const digest b = push("app", "bbbb");
  ASSERT_TRUE(sync_wait(meta_->delete_repository("app")).value());
  const digest both[] = {a, b};
  ASSERT_EQ(sync_wait(meta_->blobs().mark_for_deletion(both, 0)).value().size(), 2u);
  ASSERT_TRUE(sync_wait(blobs_->remove(a)).has_value());  // killed here
  const auto run = sync_wait(collector(*meta_, *blobs_).run(1h, false)).value();
  EXPECT_EQ(run.counts.blobs, 2u);
  EXPECT_EQ(run.counts.bytes, 7u);
  EXPECT_FALSE(stored(a));
  EXPECT_FALSE(stored(b));
  EXPECT_TRUE(sync_wait(meta_->blobs().marked(10)).value().empty());
}

// A blob store that, as the collector deletes each blob, looks at what the progress board shows.
class watched_blobs final : public storage::blob_store {
 public:
  watched_blobs(storage::blob_store& inner, const progress_board& board) : inner_(inner), board_(board) {}
  std::vector<std::vector<progress_view>> seen;

  awaitable<result<void>> remove(const digest& d) override {
    seen.push_back(board_.running());
    co_return co_await inner_.remove(d);
  }
  awaitable<result<std::uint64_t>> stat(const digest& d) override { co_return co_await inner_.stat(d); }
  awaitable<result<std::unique_ptr<storage::blob_reader>>> open(const digest& d) override {
    co_return co_await inner_.open(d);
  }
  awaitable<result<storage::blob_page>> list_blobs(std::string_view cursor, std::size_t n) override {
    co_return co_await inner_.list_blobs(cursor, n);
  }
  awaitable<result<void>> create_upload(std::string_view id) override { co_return co_await inner_.create_upload(id); }
  awaitable<result<std::unique_ptr<storage::upload_data>>> open_upload(std::string_view id) override {
    co_return co_await inner_.open_upload(id);
  }
  awaitable<result<void>> delete_upload(std::string_view id) override { co_return co_await inner_.delete_upload(id); }
  awaitable<result<std::vector<storage::upload_entry>>> list_uploads() override {
    co_return co_await inner_.list_uploads();
  }
  awaitable<result<void>> probe() override { co_return co_await inner_.probe(); }

 private:
  storage::blob_store& inner_;
  const progress_board& board_;
};

// A run shows itself on the board while it goes, in its phase, with what it has freed so far (the
// batch being deleted not yet counted), and leaves the board when it ends.
TEST_F(CollectorTest, a_run_shows_its_progress_on_the_board) {
  push("app", "aaa");
  push("app", "bbbb");
  ASSERT_TRUE(sync_wait(meta_->delete_repository("app")).value());
  progress_board board;
  watched_blobs watched(*blobs_, board);
  const auto run = sync_wait(collector(*meta_, watched, &board).run(0ms, false)).value();
  EXPECT_EQ(run.counts.blobs, 2u);
  ASSERT_EQ(watched.seen.size(), 2u);
  for (const auto& view : watched.seen) {
    ASSERT_EQ(view.size(), 1u);
    EXPECT_EQ(view[0].at, phase::blobs);
    EXPECT_EQ(view[0].started_ms, run.started_ms);
    EXPECT_EQ(view[0].counts.blobs, 0u);
  }
  EXPECT_TRUE(board.running().empty());
}

}  // namespace
}  // namespace berth::gc
