// The S3 blob store. Key layout, uploads as chunk objects, commit: s3_blob_store.h and
// docs/storage-layout.md.
#include "storage/s3_blob_store.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <stdexcept>

#include "core/background.h"

namespace berth::storage {

namespace {

// S3's smallest part but the last: every chunk but an upload's last holds at least this much.
constexpr std::uint64_t kMinChunk = 5u << 20;
// A handle PUTs a chunk once it holds this much.
constexpr std::uint64_t kMaxChunk = 8u << 20;
constexpr std::size_t kMaxParts = 10'000;
constexpr std::size_t kOffsetDigits = 20;
// UploadPartCopy requests of one commit in flight at once.
constexpr std::size_t kParallelCopies = 4;

// Backend messages go to the log only, never to clients.
std::unexpected<error> backend_failure(std::string_view op, const s3::error& e) {
  spdlog::error("storage: s3 {}: {}", op, e.message);
  if (e.code == s3::errc::unavailable)
    return fail(errc::unavailable, "storage unavailable: the object store cannot be reached; retry");
  return fail(errc::internal, "storage backend error");
}

// Upload ids come from the upload service, which hands out UUIDs only; a key is built from one only
// when it is a plain key segment all the same.
bool is_segment(std::string_view id) {
  return !id.empty() && id != "." && id != ".." && id.find('/') == std::string_view::npos &&
         id.find('\0') == std::string_view::npos;
}

// Where everything lives in the bucket; see docs/storage-layout.md.
struct keys {
  std::string prefix;

  std::string blobs() const { return prefix + "blobs/"; }
  std::string blob(const digest& d) const {
    const std::string_view algorithm = d.algorithm() == digest_algorithm::sha256 ? "sha256" : "sha512";
    return fmt::format("{}{}/{}/{}", blobs(), algorithm, d.hex().substr(0, 2), d.hex());
  }
  // The digest whose blob() is `key`, if any.
  std::optional<digest> blob_digest(std::string_view key) const {
    const std::string_view rest = key.substr(std::min(key.size(), blobs().size()));
    const auto slash = rest.find('/');
    const auto last = rest.rfind('/');
    if (slash == std::string_view::npos) return std::nullopt;
    auto d = digest::parse(fmt::format("{}:{}", rest.substr(0, slash), rest.substr(last + 1)));
    if (!d || blob(*d) != key) return std::nullopt;
    return std::move(*d);
  }
  std::string uploads() const { return prefix + "uploads/"; }
  std::string upload(std::string_view id) const { return fmt::format("{}{}/", uploads(), id); }
  std::string chunk(std::string_view id, std::uint64_t offset) const {
    return fmt::format("{}{:0{}}", upload(id), offset, kOffsetDigits);
  }
};

// Every object under `prefix`, following the pages.
s3::result<std::vector<s3::listing::entry>> list_all(s3::client& client, const std::string& prefix) {
  std::vector<s3::listing::entry> out;
  std::string token;
  do {
    auto page = client.list(prefix, token);
    if (!page) return std::unexpected(page.error());
    std::move(page->objects.begin(), page->objects.end(), std::back_inserter(out));
    token = std::move(page->next_token);
  } while (!token.empty());
  return out;
}

// Deletes every object under `prefix`; returns how many there were.
s3::result<std::size_t> remove_all(s3::client& client, const std::string& prefix) {
  auto objects = list_all(client, prefix);
  if (!objects) return std::unexpected(objects.error());
  for (const auto& o : *objects) {
    if (auto r = client.remove(o.key); !r) return std::unexpected(r.error());
  }
  return objects->size();
}

// Bytes [offset, offset + size) of an upload, held by the object named after `offset`.
struct chunk {
  std::uint64_t offset = 0;
  std::uint64_t size = 0;
  std::uint64_t end() const { return offset + size; }
};

// The upload's chunks from a listing of its prefix `dir`: the contiguous run from offset 0. Anything
// else (a name that is no offset, a chunk past a gap) is not the upload's and is only logged; it
// goes with the upload.
std::vector<chunk> contiguous_chunks(const std::vector<s3::listing::entry>& objects, std::string_view dir) {
  std::vector<chunk> found;
  for (const auto& o : objects) {
    const std::string_view name = std::string_view(o.key).substr(dir.size());
    std::uint64_t offset = 0;
    const auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), offset);
    if (name.size() != kOffsetDigits || ec != std::errc() || end != name.data() + name.size()) {
      spdlog::warn("storage: s3 object {} is no upload chunk", o.key);
      continue;
    }
    found.push_back(chunk{offset, o.size});
  }
  std::sort(found.begin(), found.end(), [](const chunk& a, const chunk& b) { return a.offset < b.offset; });
  std::vector<chunk> run;
  for (const chunk& c : found) {
    if (c.offset != (run.empty() ? 0 : run.back().end())) {
      spdlog::warn("storage: s3 upload {} has a chunk at {} after {} bytes: ignored", dir, c.offset,
                   run.empty() ? 0 : run.back().end());
      break;
    }
    run.push_back(c);
  }
  return run;
}

// What a ranged GET copied: `length` bytes, of an object of `object_size` bytes in all.
struct fetched {
  std::size_t length = 0;
  std::uint64_t object_size = 0;
};

// Copies bytes [range) of `key` into `buf`, which holds range.length bytes.
s3::result<fetched> get_into(s3::client& client, const std::string& key, s3::byte_range range,
                             std::span<char> buf) {
  std::size_t got = 0;
  auto r = client.get(
      key,
      [&](std::string_view piece) {
        if (piece.size() > buf.size() - got) return false;  // more than asked: stop
        std::memcpy(buf.data() + got, piece.data(), piece.size());
        got += piece.size();
        return true;
      },
      range);
  if (!r) return std::unexpected(r.error());
  return fetched{got, r->size};
}

using background_job = background<s3::result<void>>;

// The bytes of a blob that open() fetches with the GET that tells it the size, and the reader
// keeps: all of a config or a signature (a few KiB, seldom more than 30), so that such a blob
// costs one request. Every open reader holds up to this much; past it the GET would only save
// the request of the first read for blobs of up to its size, while a large blob's download holds
// 8 MiB of read buffers anyway (docs/storage-layout.md, Reading).
constexpr std::size_t kPrefixSize = 64 * 1024;

class s3_reader final : public blob_reader {
 public:
  // `prefix`: the blob's first bytes as open() fetched them (none with a redirect).
  s3_reader(std::shared_ptr<s3::client> client, std::string key, std::uint64_t size, std::string prefix,
            blocking_pool& pool, std::optional<std::string> redirect)
      : client_(std::move(client)),
        key_(std::move(key)),
        size_(size),
        prefix_(std::move(prefix)),
        pool_(pool),
        redirect_(std::move(redirect)) {}

  std::uint64_t size() const override { return size_; }
  std::optional<std::string> redirect_url() const override { return redirect_; }

  // What the prefix holds of the range is copied from it; ranged GETs fetch the rest.
  awaitable<result<std::size_t>> read(std::uint64_t offset, std::span<char> buf) override {
    if (offset >= size_ || buf.empty()) co_return 0;
    const auto length = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), size_ - offset));
    std::size_t kept = 0;
    if (offset < prefix_.size()) {
      kept = std::min(length, static_cast<std::size_t>(prefix_.size() - offset));
      std::memcpy(buf.data(), prefix_.data() + offset, kept);
    }
    auto got = co_await fetch(offset + kept, buf.subspan(kept, length - kept));
    if (!got) co_return got;
    co_return kept + *got;
  }

  std::size_t read_size() const override { return kReadSize; }

 private:
  // Ranged GETs of kGetSize straight into `buf` (the only copy of the bytes in Berth: the server
  // sends from that buffer), all at once: one GET stream from the test RGW ran at ~230 MB/s, so
  // the server's 4 MiB read is two GETs on two pool threads. A part that comes back short ends
  // the read there, so the bytes counted are contiguous. REQUIRES: `buf` ends within the blob.
  awaitable<result<std::size_t>> fetch(std::uint64_t offset, std::span<char> buf) {
    const std::size_t length = buf.size();
    std::vector<background<result<std::size_t>>> gets((length + kGetSize - 1) / kGetSize);
    for (std::size_t i = 0; i < gets.size(); ++i) {
      const std::span<char> part = buf.subspan(i * kGetSize, std::min(kGetSize, length - i * kGetSize));
      gets[i].start_call(pool_.executor(),
                         [client = client_, key = key_, at = offset + i * kGetSize, part]() -> result<std::size_t> {
                           auto got = get_into(*client, key, {at, part.size()}, part);
                           if (!got) return backend_failure("read blob", got.error());
                           return got->length;
                         });
    }
    result<std::size_t> total = 0;
    bool whole = true;  // every part so far came back in full
    for (std::size_t i = 0; i < gets.size(); ++i) {
      auto got = co_await gets[i].wait();  // every GET is awaited: they fill `buf`
      if (!got && total) total = std::unexpected(got.error());
      if (!got || !total || !whole) continue;
      *total += *got;
      whole = *got == std::min(kGetSize, length - i * kGetSize);
    }
    co_return total;
  }

  // A GET per 256 KiB piece read at a quarter of the speed of 2 MiB: each GET costs RGW a
  // request's set-up (docs/storage-layout.md). Memory: the server holds two reads, 8 MiB.
  static constexpr std::size_t kGetSize = 2u << 20;
  static constexpr std::size_t kReadSize = 2 * kGetSize;

  std::shared_ptr<s3::client> client_;
  std::string key_;
  std::uint64_t size_;
  std::string prefix_;  // bytes [0, prefix_.size()) of the blob
  blocking_pool& pool_;
  std::optional<std::string> redirect_;
};

// An upload's chunks, and the open one: bytes [base_, size_) are in buf_ (once the tail is loaded),
// the first durable_ of them also in S3 as the chunk at base_. A full chunk goes to S3 in the
// background (pending_) while buf_ fills again.
class s3_upload final : public upload_data {
 public:
  s3_upload(std::shared_ptr<s3::client> client, keys where, std::string id, std::vector<chunk> chunks,
            blocking_pool& pool)
      : client_(std::move(client)),
        keys_(std::move(where)),
        id_(std::move(id)),
        chunks_(std::move(chunks)),
        pool_(pool) {
    const chunk& last = chunks_.back();
    size_ = last.end();
    if (last.size >= kMinChunk) {
      base_ = last.end();  // complete: the next chunk starts after it
    } else {
      base_ = last.offset;  // the tail: continued in place, read back by the first write
      durable_ = last.size;
      tail_loaded_ = last.size == 0;
    }
  }

  std::uint64_t size() const override { return size_; }

  awaitable<result<void>> write(std::string_view bytes) override {
    if (job_.started() && job_.finished()) {
      auto settled = co_await settle();  // report a background failure now rather than a chunk later
      if (!settled) co_return settled;
    }
    auto loaded = co_await load_tail();
    if (!loaded) co_return loaded;
    while (!bytes.empty()) {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(bytes.size(), kMaxChunk - buf_.size()));
      // One allocation for a chunk that will fill; small uploads stay small.
      if (buf_.capacity() < kMaxChunk && buf_.size() + n > kSmallBuffer) buf_.reserve(kMaxChunk);
      buf_.append(bytes.substr(0, n));
      size_ += n;
      bytes.remove_prefix(n);
      if (buf_.size() == kMaxChunk) {
        auto settled = co_await settle();
        if (!settled) co_return settled;
        start_chunk();
      }
    }
    co_return result<void>{};
  }

  awaitable<result<void>> flush() override {
    auto settled = co_await settle();
    if (!settled) co_return settled;
    if (!tail_loaded_ || buf_.size() == durable_) co_return result<void>{};
    auto put = co_await pool_.run([&] { return client_->put(keys_.chunk(id_, base_), buf_); });
    if (!put) {
      buf_.resize(durable_);
      size_ = base_ + durable_;
      co_return backend_failure("put chunk", put.error());
    }
    durable_ = buf_.size();
    record_chunk(chunk{base_, durable_});
    if (durable_ >= kMinChunk) {  // large enough to be a part: the next bytes start a new chunk
      base_ += durable_;
      durable_ = 0;
      buf_.clear();
    }
    co_return result<void>{};
  }

  awaitable<result<std::size_t>> read(std::uint64_t offset, std::span<char> buf) override {
    const auto it = std::upper_bound(chunks_.begin(), chunks_.end(), offset,
                                     [](std::uint64_t at, const chunk& c) { return at < c.end(); });
    if (it == chunks_.end() || buf.empty()) co_return 0;
    const chunk c = *it;
    const auto length = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), c.end() - offset));
    co_return co_await pool_.run([&]() -> result<std::size_t> {
      auto got = get_into(*client_, keys_.chunk(id_, c.offset), {offset - c.offset, length}, buf.first(length));
      if (!got) return backend_failure("read chunk", got.error());
      return got->length;
    });
  }

  awaitable<result<void>> commit(const digest& d) override {
    auto flushed = co_await flush();
    if (!flushed) co_return flushed;
    const std::string key = keys_.blob(d);
    auto existing = co_await pool_.run([&] { return client_->head(key); });
    if (!existing && existing.error().code != s3::errc::not_found) co_return backend_failure("head", existing.error());
    if (!existing) {
      auto assembled = co_await assemble(key);
      if (!assembled) co_return assembled;
    }
    // The blob is in place; chunks left behind by a failure here are only garbage, which the purge
    // removes.
    auto removed = co_await pool_.run([&] { return remove_all(*client_, keys_.upload(id_)); });
    if (!removed) (void)backend_failure("delete upload", removed.error());
    co_return result<void>{};
  }

 private:
  struct pending {
    std::uint64_t offset;   // the chunk's
    std::uint64_t durable;  // what S3 held at that key before
    std::shared_ptr<const std::string> bytes;
  };

  void record_chunk(chunk c) {
    if (chunks_.back().offset == c.offset) {
      chunks_.back() = c;
    } else {
      chunks_.push_back(c);
    }
  }

  // Puts the full buffer as the chunk at base_, in the background. REQUIRES: no chunk in flight.
  void start_chunk() {
    auto bytes = std::make_shared<const std::string>(std::move(buf_));
    pending_ = pending{base_, durable_, bytes};
    job_.start_call(pool_.executor(), [client = client_, key = keys_.chunk(id_, base_), bytes]() -> s3::result<void> {
      auto put = client->put(key, *bytes);
      if (!put) return std::unexpected(put.error());
      return {};
    });
    base_ += bytes->size();
    durable_ = 0;
    buf_ = std::string();
  }

  // Waits for the chunk in flight, if any. On failure S3 holds what it held before that chunk's PUT:
  // the upload goes back to that.
  awaitable<result<void>> settle() {
    if (!pending_) co_return result<void>{};
    auto put = co_await job_.wait();
    const pending p = std::move(*pending_);
    pending_.reset();
    if (put) {
      record_chunk(chunk{p.offset, p.bytes->size()});
      co_return result<void>{};
    }
    base_ = p.offset;
    durable_ = p.durable;
    buf_.assign(*p.bytes, 0, p.durable);
    size_ = base_ + durable_;
    co_return backend_failure("put chunk", put.error());
  }

  // Reads the tail chunk back into buf_, to continue it.
  awaitable<result<void>> load_tail() {
    if (tail_loaded_) co_return result<void>{};
    co_return co_await pool_.run([&]() -> result<void> {
      buf_.resize(durable_);
      auto got = get_into(*client_, keys_.chunk(id_, base_), {0, durable_}, buf_);
      if (!got) return backend_failure("read chunk", got.error());
      if (got->length != durable_) {
        spdlog::error("storage: s3 chunk {} holds {} bytes, {} listed", keys_.chunk(id_, base_), got->length,
                      durable_);
        return fail(errc::internal, "storage backend error");
      }
      tail_loaded_ = true;
      return {};
    });
  }

  // Stores the chunks as `key`, atomically: a copy of the only chunk, or a multipart upload of one
  // part per chunk, copied server side.
  awaitable<result<void>> assemble(const std::string& key) {
    if (chunks_.size() == 1) {
      auto copied = co_await pool_.run([&] { return client_->copy(keys_.chunk(id_, 0), key); });
      if (!copied) co_return backend_failure("copy", copied.error());
      co_return result<void>{};
    }
    if (chunks_.size() > kMaxParts) {
      spdlog::error("storage: s3 upload {} has {} chunks, more than {} parts", id_, chunks_.size(), kMaxParts);
      co_return fail(errc::internal, "storage backend error");
    }
    auto upload = co_await pool_.run([&] { return client_->create_multipart(key); });
    if (!upload) co_return backend_failure("create multipart", upload.error());
    auto parts = co_await copy_parts(key, *upload);
    std::optional<s3::error> failure;
    if (parts) {
      auto done = co_await pool_.run([&] { return client_->complete_multipart(key, *upload, *parts); });
      if (done) co_return result<void>{};
      failure = done.error();
    } else {
      failure = parts.error();
    }
    auto aborted = co_await pool_.run([&] { return client_->abort_multipart(key, *upload); });
    if (!aborted) spdlog::warn("storage: s3 abort multipart {}: {}", key, aborted.error().message);
    co_return backend_failure("assemble", *failure);
  }

  // Copies chunk i into part i + 1 of multipart upload `upload`, kParallelCopies at a time (on
  // RGW, four at once took half the time of one by one).
  awaitable<s3::result<std::vector<s3::part>>> copy_parts(const std::string& key, const std::string& upload) {
    auto parts = std::make_shared<std::vector<s3::part>>(chunks_.size());
    std::array<background_job, kParallelCopies> jobs;
    std::optional<s3::error> failure;
    for (std::size_t i = 0; i < chunks_.size() + kParallelCopies; ++i) {
      background_job& job = jobs[i % kParallelCopies];
      if (job.started()) {  // the copy of part i - kParallelCopies
        auto copied = co_await job.wait();
        if (!copied && !failure) failure = copied.error();
      }
      if (i >= chunks_.size() || failure) continue;
      job.start_call(pool_.executor(),
                [client = client_, key, upload, source = keys_.chunk(id_, chunks_[i].offset), size = chunks_[i].size,
                 parts, i]() -> s3::result<void> {
                  const int number = static_cast<int>(i) + 1;
                  auto etag = client->upload_part_copy(key, upload, number, source);
                  if (!etag) return std::unexpected(etag.error());
                  (*parts)[i] = s3::part{number, std::move(*etag), size};
                  return {};
                });
    }
    if (failure) co_return std::unexpected(*failure);
    co_return std::move(*parts);
  }

  // Below this a buffer grows as needed; past it, it takes a whole chunk at once.
  static constexpr std::size_t kSmallBuffer = 64 * 1024;

  std::shared_ptr<s3::client> client_;
  keys keys_;
  std::string id_;
  std::vector<chunk> chunks_;  // durable, contiguous from 0, never empty
  blocking_pool& pool_;
  std::uint64_t size_ = 0;     // bytes accepted
  std::uint64_t base_ = 0;     // where the open chunk starts
  std::string buf_;            // the open chunk's bytes, from base_
  std::uint64_t durable_ = 0;  // how many of them S3 holds at base_
  bool tail_loaded_ = true;    // whether buf_ holds the first durable_ bytes
  std::optional<pending> pending_;
  background_job job_;
};

// PUTs and deletes an object under probe/ (a random name: instances probe the bucket at once).
s3::result<void> write_probe(s3::client& client, std::string_view prefix) {
  std::random_device random;
  const std::string probe = fmt::format("{}probe/{:08x}{:08x}", prefix, random(), random());
  auto put = client.put(probe, "probe");
  if (!put) return std::unexpected(put.error());
  return client.remove(probe);
}

class s3_blob_store final : public blob_store {
 public:
  s3_blob_store(std::shared_ptr<s3::client> client, s3_blob_options options, blocking_pool& pool)
      : client_(std::move(client)), options_(std::move(options)), keys_{options_.prefix}, pool_(pool) {}

  awaitable<result<std::uint64_t>> stat(const digest& d) override {
    co_return co_await pool_.run([&]() -> result<std::uint64_t> {
      auto info = client_->head(keys_.blob(d));
      if (!info && info.error().code == s3::errc::not_found) return fail(errc::blob_unknown);
      if (!info) return backend_failure("head", info.error());
      return info->size;
    });
  }

  awaitable<result<void>> remove(const digest& d) override {
    co_return co_await pool_.run([&]() -> result<void> {
      auto removed = client_->remove(keys_.blob(d));
      if (!removed) return backend_failure("delete blob", removed.error());
      return {};
    });
  }

  awaitable<result<std::unique_ptr<blob_reader>>> open(const digest& d) override {
    auto start = co_await first_bytes(d);
    if (!start) co_return std::unexpected(start.error());
    std::string key = keys_.blob(d);
    std::optional<std::string> redirect;
    if (options_.redirect_downloads) redirect = client_->presign_get(key, options_.redirect_expiry);
    co_return std::make_unique<s3_reader>(client_, std::move(key), start->size, std::move(start->prefix), pool_,
                                          std::move(redirect));
  }

  // One ListObjectsV2 page under blobs/ (at most 1,000 keys): keys list in byte order, which is
  // digest order. The cursor is S3's continuation token.
  awaitable<result<blob_page>> list_blobs(std::string_view cursor, std::size_t n) override {
    co_return co_await pool_.run([&]() -> result<blob_page> {
      auto listed = client_->list(keys_.blobs(), cursor, {}, static_cast<int>(std::min<std::size_t>(n, 1000)));
      if (!listed) return backend_failure("list blobs", listed.error());
      blob_page page{{}, std::move(listed->next_token)};
      for (const auto& o : listed->objects) {
        if (auto d = keys_.blob_digest(o.key)) page.blobs.push_back(stored_blob{std::move(*d), o.size});
      }
      return page;
    });
  }

  // The empty chunk 0: the upload exists from now on, for open_upload and list_uploads.
  awaitable<result<void>> create_upload(std::string_view id) override {
    if (!is_segment(id)) co_return fail(errc::blob_upload_unknown);
    co_return co_await pool_.run([&]() -> result<void> {
      auto put = client_->put(keys_.chunk(id, 0), "");
      if (!put) return backend_failure("create upload", put.error());
      return {};
    });
  }

  awaitable<result<std::unique_ptr<upload_data>>> open_upload(std::string_view id) override {
    if (!is_segment(id)) co_return fail(errc::blob_upload_unknown);
    co_return co_await pool_.run([&]() -> result<std::unique_ptr<upload_data>> {
      const std::string dir = keys_.upload(id);
      auto objects = list_all(*client_, dir);
      if (!objects) return backend_failure("list upload", objects.error());
      auto chunks = contiguous_chunks(*objects, dir);
      if (chunks.empty()) return fail(errc::blob_upload_unknown);
      return std::make_unique<s3_upload>(client_, keys_, std::string(id), std::move(chunks), pool_);
    });
  }

  awaitable<result<void>> delete_upload(std::string_view id) override {
    if (!is_segment(id)) co_return fail(errc::blob_upload_unknown);
    co_return co_await pool_.run([&]() -> result<void> {
      auto removed = remove_all(*client_, keys_.upload(id));
      if (!removed) return backend_failure("delete upload", removed.error());
      if (*removed == 0) return fail(errc::blob_upload_unknown);
      return {};
    });
  }

  // Dated by the newest chunk: the last flush.
  awaitable<result<std::vector<upload_entry>>> list_uploads() override {
    co_return co_await pool_.run([&]() -> result<std::vector<upload_entry>> {
      const std::string dir = keys_.uploads();
      auto objects = list_all(*client_, dir);
      if (!objects) return backend_failure("list uploads", objects.error());
      std::map<std::string, std::chrono::system_clock::time_point, std::less<>> newest;
      for (const auto& o : *objects) {
        const std::string_view rest = std::string_view(o.key).substr(dir.size());
        const auto slash = rest.find('/');
        if (slash == std::string_view::npos) continue;  // not an upload's: not ours
        auto [it, added] = newest.try_emplace(std::string(rest.substr(0, slash)), o.last_modified);
        if (!added) it->second = std::max(it->second, o.last_modified);
      }
      std::vector<upload_entry> out;
      for (auto& [id, when] : newest) out.push_back(upload_entry{id, when});
      return out;
    });
  }

  // Multipart uploads exist only while a commit assembles a blob (s3_upload::assemble), which
  // completes or aborts them; one begun before `before` was cut off.
  awaitable<result<std::size_t>> purge_leftovers(std::chrono::system_clock::time_point before) override {
    co_return co_await pool_.run([&]() -> result<std::size_t> {
      auto listed = client_->list_multipart(options_.prefix);
      if (!listed) return backend_failure("list multipart uploads", listed.error());
      std::size_t aborted = 0;
      for (const auto& u : *listed) {
        if (u.initiated >= before) continue;
        auto gone = client_->abort_multipart(u.key, u.upload_id);
        if (!gone && gone.error().code != s3::errc::not_found) {
          spdlog::warn("storage: s3 abort multipart {}: {}", u.key, gone.error().message);
          continue;
        }
        ++aborted;
      }
      return aborted;
    });
  }

  awaitable<result<void>> probe() override {
    co_return co_await pool_.run([&]() -> result<void> {
      auto written = write_probe(*client_, options_.prefix);
      if (!written) return backend_failure("probe", written.error());
      return {};
    });
  }

 private:
  struct blob_start {
    std::uint64_t size = 0;
    std::string prefix;  // the blob's first bytes, up to kPrefixSize
  };

  // What open() needs before the API answers: whether the blob exists and its size, both from one
  // ranged GET of its first kPrefixSize bytes (Content-Range names the whole object's size), whose
  // bytes the reader keeps. No HEAD first: a small blob is one GET in all, a large one costs no
  // request more than its reads. A backend failure fails open(), before the API has sent anything,
  // so the client gets the error (503 when S3 cannot be reached) and never a cut 200. An empty
  // object answers the range 416 (a range from byte 0 is unsatisfiable only when there is no
  // byte): size 0. With redirect_downloads the client fetches the bytes itself: a HEAD, no GET.
  awaitable<result<blob_start>> first_bytes(const digest& d) {
    if (options_.redirect_downloads) {
      auto size = co_await stat(d);
      if (!size) co_return std::unexpected(size.error());
      co_return blob_start{*size, {}};
    }
    co_return co_await pool_.run([&]() -> result<blob_start> {
      std::string prefix(kPrefixSize, '\0');
      auto got = get_into(*client_, keys_.blob(d), {0, kPrefixSize}, prefix);
      if (!got && got.error().code == s3::errc::not_found) return fail(errc::blob_unknown);
      if (!got && got.error().code == s3::errc::range_invalid) return blob_start{};
      if (!got) return backend_failure("get blob", got.error());
      prefix.resize(got->length);
      prefix.shrink_to_fit();
      return blob_start{got->object_size, std::move(prefix)};
    });
  }

  std::shared_ptr<s3::client> client_;
  s3_blob_options options_;
  keys keys_;
  blocking_pool& pool_;
};

// What a failed start-up check means, for the operator: never a credential (s3::error's messages
// carry none; the access key id is no secret and says which key was refused).
std::string describe_start_up_failure(const s3::config& cfg, const s3::error& e) {
  switch (e.code) {
    case s3::errc::unavailable:
      return fmt::format("S3 endpoint {} is unreachable or failing: {}", cfg.endpoint, e.message);
    case s3::errc::denied:
      return fmt::format(
          "S3 access denied to bucket {} at {} for access key {} ({}): check the keys, the "
          "region ({}) and the bucket's policy",
          cfg.bucket, cfg.endpoint, cfg.creds.access_key, e.s3_code.empty() ? "no code" : e.s3_code, cfg.region);
    case s3::errc::not_found:
      if (e.s3_code == "NoSuchBucket")
        return fmt::format("S3 bucket {} does not exist at {}", cfg.bucket, cfg.endpoint);
      break;
    default:
      break;
  }
  return fmt::format("S3 bucket {} at {} cannot be written: {}", cfg.bucket, cfg.endpoint, e.message);
}

// Proves the bucket reachable and writable at start-up (write_probe).
void check_bucket(s3::client& client, const s3_blob_options& options) {
  auto written = write_probe(client, options.prefix);
  if (!written) throw std::runtime_error(describe_start_up_failure(options.client, written.error()));
}

}  // namespace

std::unique_ptr<blob_store> make_s3_blob_store(s3_blob_options options, blocking_pool& pool) {
  if (!options.prefix.empty() && !options.prefix.ends_with('/')) options.prefix += '/';
  auto client = std::make_shared<s3::client>(options.client);
  check_bucket(*client, options);
  return std::make_unique<s3_blob_store>(std::move(client), std::move(options), pool);
}

}  // namespace berth::storage
