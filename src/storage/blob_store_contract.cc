#include "storage/blob_store_contract.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "core/sync_wait.h"
#include "core/test_await.h"

namespace berth::storage {

void blob_store_contract::SetUp() {
  std::string pattern = (std::filesystem::temp_directory_path() / "berth-blob-contract-XXXXXX").string();
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  location_ = pattern;
  pool_.emplace(4);
  store_ = GetParam().open(location_, *pool_);
}

void blob_store_contract::TearDown() {
  store_.reset();
  pool_.reset();
  std::filesystem::remove_all(location_);
}

void blob_store_contract::reopen() {
  store_.reset();
  store_ = GetParam().open(location_, *pool_);
}

namespace {

using test_util::await_all;

// Upload ids as the upload service makes them.
std::string upload_id(int n) { return fmt::format("00000000-0000-4000-8000-{:012}", n); }

// Bytes that differ at every offset, so a misplaced piece shows.
std::string pattern(std::size_t size, unsigned seed = 1) {
  std::string out(size, '\0');
  for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<char>(((i + seed) * 2654435761u) >> 13);
  return out;
}

// Writes `bytes` into the new upload `id` in pieces of `piece` bytes and commits them as their digest.
awaitable<digest> upload(blob_store& store, const std::string& id, std::string_view bytes,
                         std::size_t piece = 1 << 20) {
  const digest d = digest_of(bytes);
  auto made = co_await store.create_upload(id);
  EXPECT_TRUE(made.has_value());
  auto data = co_await store.open_upload(id);
  EXPECT_TRUE(data.has_value());
  if (!data) co_return d;
  for (std::size_t at = 0; at < bytes.size(); at += piece) {
    auto w = co_await (*data)->write(bytes.substr(at, piece));
    EXPECT_TRUE(w.has_value());
  }
  auto f = co_await (*data)->flush();
  EXPECT_TRUE(f.has_value());
  EXPECT_EQ((*data)->size(), bytes.size());
  auto c = co_await (*data)->commit(d);
  EXPECT_TRUE(c.has_value());
  co_return d;
}

// Everything the reader holds, read through read() in pieces of `piece` bytes.
std::string read_all(blob_reader& reader, std::size_t piece = 64 * 1024) {
  std::string out;
  std::vector<char> buf(piece);
  for (;;) {
    auto n = sync_wait(reader.read(out.size(), buf));
    EXPECT_TRUE(n.has_value());
    if (!n || *n == 0) return out;
    out.append(buf.data(), *n);
  }
}

std::string contents(blob_store& store, const digest& d) {
  auto reader = sync_wait(store.open(d));
  EXPECT_TRUE(reader.has_value());
  return reader ? read_all(**reader) : "";
}

// Up to `length` bytes at `offset`, read through read() until they are all there or the blob ends.
std::string read_at(blob_reader& reader, std::uint64_t offset, std::size_t length) {
  std::string out(length, '\0');
  std::size_t done = 0;
  while (done < length) {
    auto n = sync_wait(reader.read(offset + done, std::span<char>(out.data() + done, length - done)));
    EXPECT_TRUE(n.has_value());
    if (!n || *n == 0) break;
    done += *n;
  }
  out.resize(done);
  return out;
}

TEST_P(blob_store_contract, unknown_blobs_and_uploads) {
  const digest d = digest_of("absent");
  EXPECT_EQ(sync_wait(store_->stat(d)).error().code, errc::blob_unknown);
  EXPECT_EQ(sync_wait(store_->open(d)).error().code, errc::blob_unknown);
  EXPECT_EQ(sync_wait(store_->open_upload(upload_id(1))).error().code, errc::blob_upload_unknown);
  EXPECT_EQ(sync_wait(store_->delete_upload(upload_id(1))).error().code, errc::blob_upload_unknown);
  EXPECT_TRUE(sync_wait(store_->list_uploads()).value().empty());
}

TEST_P(blob_store_contract, probe_writes_and_leaves_nothing) {
  EXPECT_TRUE(sync_wait(store_->probe()).has_value());
  EXPECT_TRUE(sync_wait(store_->probe()).has_value());
  EXPECT_TRUE(sync_wait(store_->list_uploads()).value().empty());
}

TEST_P(blob_store_contract, committed_blob_reads_back_at_any_offset) {
  const std::string bytes = pattern(300 * 1000 + 7);
  const digest d = sync_wait(upload(*store_, upload_id(1), bytes, 100 * 1000));
  EXPECT_EQ(sync_wait(store_->stat(d)).value(), bytes.size());
  auto reader = sync_wait(store_->open(d)).value();
  EXPECT_EQ(reader->size(), bytes.size());
  EXPECT_TRUE(read_all(*reader) == bytes);
  EXPECT_TRUE(read_all(*reader, 4096) == bytes);  // the reader may be read again, in other pieces
  std::vector<char> buf(1000);
  EXPECT_EQ(std::string(buf.data(), sync_wait(reader->read(12345, buf)).value()), bytes.substr(12345, 1000));
  // Near and past the end: what is left, then nothing.
  const auto tail = sync_wait(reader->read(bytes.size() - 10, buf)).value();
  EXPECT_EQ(std::string(buf.data(), tail), bytes.substr(bytes.size() - 10));
  EXPECT_EQ(sync_wait(reader->read(bytes.size(), buf)).value(), 0u);
  EXPECT_EQ(sync_wait(reader->read(bytes.size() + 100, buf)).value(), 0u);
  // The fast path, when offered, holds the same bytes at the same offsets.
  if (reader->native_handle() >= 0) {
    ASSERT_EQ(::pread(reader->native_handle(), buf.data(), buf.size(), 777), static_cast<ssize_t>(buf.size()));
    EXPECT_EQ(std::string(buf.data(), buf.size()), bytes.substr(777, buf.size()));
  }
}

TEST_P(blob_store_contract, empty_blob) {
  const digest d = sync_wait(upload(*store_, upload_id(1), ""));
  EXPECT_EQ(sync_wait(store_->stat(d)).value(), 0u);
  auto reader = sync_wait(store_->open(d)).value();
  EXPECT_EQ(reader->size(), 0u);
  std::vector<char> buf(100);
  EXPECT_EQ(sync_wait(reader->read(0, buf)).value(), 0u);
  EXPECT_EQ(sync_wait(reader->read(1, buf)).value(), 0u);
  EXPECT_EQ(contents(*store_, d), "");
}

// Reads that start just before, at and just after each power of two (where a backend's pages,
// buffers or the first bytes it fetched when it opened the blob may end), short ones and ones
// that run far past the boundary: as the first read of a fresh reader, and one after the other
// on one reader.
TEST_P(blob_store_contract, reads_across_powers_of_two) {
  const std::string bytes = pattern(600 * 1000 + 3, 9);
  const digest d = sync_wait(upload(*store_, upload_id(1), bytes));
  auto shared = sync_wait(store_->open(d)).value();
  for (std::size_t boundary = 1024; boundary < bytes.size(); boundary *= 2) {
    for (const std::size_t offset : {boundary - 1, boundary, boundary + 1}) {
      for (const std::size_t length : {std::size_t{2}, std::size_t{300 * 1000}}) {
        const std::string expected = bytes.substr(offset, length);
        auto fresh = sync_wait(store_->open(d)).value();
        EXPECT_TRUE(read_at(*fresh, offset, length) == expected) << offset << "+" << length;
        EXPECT_TRUE(read_at(*shared, offset, length) == expected) << offset << "+" << length;
      }
    }
  }
}

// Blobs of sizes around powers of two read back whole, in one read as in pieces, and their last
// byte alone as the first read of a reader.
TEST_P(blob_store_contract, blobs_of_sizes_around_powers_of_two) {
  int id = 0;
  for (const std::size_t size : {1u, 4095u, 4096u, 4097u, 65535u, 65536u, 65537u, 262143u, 262144u, 262145u}) {
    const std::string bytes = pattern(size, static_cast<unsigned>(size));
    const digest d = sync_wait(upload(*store_, upload_id(++id), bytes));
    auto reader = sync_wait(store_->open(d)).value();
    EXPECT_EQ(reader->size(), size);
    EXPECT_TRUE(read_at(*reader, 0, size + 1) == bytes) << size;
    EXPECT_TRUE(read_all(*reader, 1000) == bytes) << size;
    auto last = sync_wait(store_->open(d)).value();
    EXPECT_EQ(read_at(*last, size - 1, 10), bytes.substr(size - 1)) << size;
  }
}

// Pieces of every size (unaligned tails, block-sized runs, a piece larger than the backend's
// buffer) end up in order.
TEST_P(blob_store_contract, pieces_of_any_size_keep_their_order) {
  const std::string bytes = pattern((3u << 20) + 12345, 3);
  const std::size_t cuts[] = {1u << 20, (1u << 20) + 5, 4096, 100, 1, (2u << 20)};
  ASSERT_TRUE(sync_wait(store_->create_upload(upload_id(1))).has_value());
  auto data = sync_wait(store_->open_upload(upload_id(1))).value();
  std::size_t at = 0;
  for (std::size_t i = 0; at < bytes.size(); ++i) {
    const std::size_t n = std::min(cuts[i % std::size(cuts)], bytes.size() - at);
    ASSERT_TRUE(sync_wait(data->write(std::string_view(bytes).substr(at, n))).has_value());
    at += n;
    EXPECT_EQ(data->size(), at);
  }
  ASSERT_TRUE(sync_wait(data->flush()).has_value());
  // What was written reads back before the commit (for re-hashing).
  std::vector<char> buf(5000);
  EXPECT_EQ(std::string(buf.data(), sync_wait(data->read(4000, buf)).value()), bytes.substr(4000, 5000));
  const digest d = digest_of(bytes);
  ASSERT_TRUE(sync_wait(data->commit(d)).has_value());
  EXPECT_TRUE(contents(*store_, d) == bytes);
}

TEST_P(blob_store_contract, commit_removes_the_upload) {
  const digest d = sync_wait(upload(*store_, upload_id(1), "abc"));
  EXPECT_EQ(contents(*store_, d), "abc");
  EXPECT_EQ(sync_wait(store_->open_upload(upload_id(1))).error().code, errc::blob_upload_unknown);
  EXPECT_TRUE(sync_wait(store_->list_uploads()).value().empty());
}

TEST_P(blob_store_contract, committing_a_stored_digest_keeps_one_copy) {
  const digest first = sync_wait(upload(*store_, upload_id(1), "layer"));
  const digest second = sync_wait(upload(*store_, upload_id(2), "layer"));
  EXPECT_EQ(first, second);
  EXPECT_EQ(contents(*store_, first), "layer");
  EXPECT_TRUE(sync_wait(store_->list_uploads()).value().empty());
}

TEST_P(blob_store_contract, remove_deletes_the_bytes_and_is_idempotent) {
  const digest gone = sync_wait(upload(*store_, upload_id(1), "garbage"));
  const digest kept = sync_wait(upload(*store_, upload_id(2), "kept"));
  ASSERT_TRUE(sync_wait(store_->remove(gone)).has_value());
  EXPECT_EQ(sync_wait(store_->stat(gone)).error().code, errc::blob_unknown);
  EXPECT_EQ(sync_wait(store_->open(gone)).error().code, errc::blob_unknown);
  EXPECT_TRUE(sync_wait(store_->remove(gone)).has_value());  // an interrupted sweep runs it again
  EXPECT_EQ(contents(*store_, kept), "kept");
  // The same bytes uploaded again are stored afresh.
  EXPECT_EQ(sync_wait(upload(*store_, upload_id(3), "garbage")), gone);
  EXPECT_EQ(contents(*store_, gone), "garbage");
}

TEST_P(blob_store_contract, uploads_are_listed_until_deleted) {
  ASSERT_TRUE(sync_wait(store_->create_upload(upload_id(1))).has_value());
  ASSERT_TRUE(sync_wait(store_->create_upload(upload_id(2))).has_value());
  auto data = sync_wait(store_->open_upload(upload_id(2))).value();
  ASSERT_TRUE(sync_wait(data->write("partial")).has_value());
  ASSERT_TRUE(sync_wait(data->flush()).has_value());
  data.reset();
  auto listed = sync_wait(store_->list_uploads()).value();
  std::vector<std::string> ids;
  for (const auto& e : listed) {
    ids.push_back(e.id);
    EXPECT_GT(e.last_write, std::chrono::system_clock::now() - std::chrono::hours(1));
  }
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<std::string>{upload_id(1), upload_id(2)}));

  ASSERT_TRUE(sync_wait(store_->delete_upload(upload_id(2))).has_value());
  EXPECT_EQ(sync_wait(store_->open_upload(upload_id(2))).error().code, errc::blob_upload_unknown);
  EXPECT_EQ(sync_wait(store_->delete_upload(upload_id(2))).error().code, errc::blob_upload_unknown);
  EXPECT_EQ(sync_wait(store_->list_uploads()).value().size(), 1u);
}

TEST_P(blob_store_contract, concurrent_commits_of_the_same_blob_all_succeed) {
  const std::string bytes = pattern(200 * 1000, 5);
  await_all(8, 4, [&](int i) -> awaitable<void> { co_await upload(*store_, upload_id(i), bytes, 64 * 1024); });
  EXPECT_TRUE(contents(*store_, digest_of(bytes)) == bytes);
  EXPECT_TRUE(sync_wait(store_->list_uploads()).value().empty());
}

// Different blobs committed, and other uploads deleted, all at once.
TEST_P(blob_store_contract, parallel_commits_and_deletes) {
  constexpr int n = 16;
  await_all(2 * n, 4, [&](int i) -> awaitable<void> {
    if (i % 2 == 0) {
      co_await upload(*store_, upload_id(i), pattern(50 * 1000 + static_cast<std::size_t>(i), static_cast<unsigned>(i)));
    } else {
      auto made = co_await store_->create_upload(upload_id(i));
      EXPECT_TRUE(made.has_value());
      auto deleted = co_await store_->delete_upload(upload_id(i));
      EXPECT_TRUE(deleted.has_value());
    }
  });
  for (int i = 0; i < 2 * n; i += 2) {
    const std::string bytes = pattern(50 * 1000 + static_cast<std::size_t>(i), static_cast<unsigned>(i));
    EXPECT_TRUE(contents(*store_, digest_of(bytes)) == bytes) << i;
  }
  EXPECT_TRUE(sync_wait(store_->list_uploads()).value().empty());
}

TEST_P(blob_store_contract, blobs_and_unfinished_uploads_survive_reopen) {
  const digest d = sync_wait(upload(*store_, upload_id(1), "kept"));
  ASSERT_TRUE(sync_wait(store_->create_upload(upload_id(2))).has_value());
  {
    auto data = sync_wait(store_->open_upload(upload_id(2))).value();
    ASSERT_TRUE(sync_wait(data->write("hello ")).has_value());
    ASSERT_TRUE(sync_wait(data->flush()).has_value());
  }
  reopen();
  EXPECT_EQ(contents(*store_, d), "kept");
  auto data = sync_wait(store_->open_upload(upload_id(2))).value();
  EXPECT_EQ(data->size(), 6u);
  ASSERT_TRUE(sync_wait(data->write("world")).has_value());
  ASSERT_TRUE(sync_wait(data->flush()).has_value());
  const digest whole = digest_of("hello world");
  ASSERT_TRUE(sync_wait(data->commit(whole)).has_value());
  reopen();
  EXPECT_EQ(contents(*store_, whole), "hello world");
}

TEST_P(blob_store_contract, sha512_blobs) {
  ASSERT_TRUE(sync_wait(store_->create_upload(upload_id(1))).has_value());
  auto data = sync_wait(store_->open_upload(upload_id(1))).value();
  ASSERT_TRUE(sync_wait(data->write("sha512")).has_value());
  const digest d = digest_of("sha512", digest_algorithm::sha512);
  ASSERT_TRUE(sync_wait(data->commit(d)).has_value());
  EXPECT_EQ(sync_wait(store_->stat(d)).value(), 6u);
  EXPECT_EQ(contents(*store_, d), "sha512");
  EXPECT_EQ(sync_wait(store_->stat(digest_of("sha512"))).error().code, errc::blob_unknown);
}

// Every blob, in digest order (sha512 after sha256), a page of at most `n` at a time; neither an
// unfinished upload nor a removed blob.
TEST_P(blob_store_contract, blobs_list_in_digest_order_a_page_at_a_time) {
  const auto empty = sync_wait(store_->list_blobs("", 3)).value();
  EXPECT_TRUE(empty.blobs.empty());
  EXPECT_EQ(empty.next, "");
  std::vector<std::pair<std::string, std::uint64_t>> expected;
  for (int i = 0; i < 7; ++i) {
    const std::string bytes = pattern(static_cast<std::size_t>(10 + i), static_cast<unsigned>(i));
    expected.emplace_back(sync_wait(upload(*store_, upload_id(i), bytes)).str(), bytes.size());
  }
  std::sort(expected.begin(), expected.end());
  ASSERT_TRUE(sync_wait(store_->create_upload(upload_id(7))).has_value());
  auto data = sync_wait(store_->open_upload(upload_id(7))).value();
  ASSERT_TRUE(sync_wait(data->write("sha512")).has_value());
  const digest long_one = digest_of("sha512", digest_algorithm::sha512);
  ASSERT_TRUE(sync_wait(data->commit(long_one)).has_value());
  expected.emplace_back(long_one.str(), 6);
  ASSERT_TRUE(sync_wait(store_->remove(sync_wait(upload(*store_, upload_id(8), "removed")))).has_value());
  ASSERT_TRUE(sync_wait(store_->create_upload(upload_id(9))).has_value());

  std::vector<std::pair<std::string, std::uint64_t>> listed;
  std::string cursor;
  for (int pages = 0;; ++pages) {
    ASSERT_LT(pages, 10);
    auto page = sync_wait(store_->list_blobs(cursor, 3)).value();
    EXPECT_LE(page.blobs.size(), 3u);
    for (const auto& b : page.blobs) listed.emplace_back(b.dgst.str(), b.size);
    if (page.next.empty()) break;
    cursor = std::move(page.next);
  }
  EXPECT_EQ(listed, expected);
}

}  // namespace
}  // namespace berth::storage
