#include "uploads/upload_service.h"

#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <vector>

#include "core/sha256_state.h"

namespace berth::uploads {
namespace {

using meta::upload_lease;
using meta::upload_record;

constexpr std::string_view kRandomFailed = "upload service failure";

// Random bytes from OpenSSL; false (logged) when it has none to give.
bool random_bytes(unsigned char* out, std::size_t n) {
  if (RAND_bytes(out, static_cast<int>(n)) == 1) return true;
  spdlog::error("uploads: RAND_bytes failed");
  return false;
}

// A random (version 4) UUID, lowercase: the only shape accepted as an upload id.
result<std::string> new_upload_id() {
  std::array<unsigned char, 16> raw{};
  if (!random_bytes(raw.data(), raw.size())) return fail(errc::internal, std::string(kRandomFailed));
  raw[6] = static_cast<unsigned char>((raw[6] & 0x0f) | 0x40);  // version 4
  raw[8] = static_cast<unsigned char>((raw[8] & 0x3f) | 0x80);  // RFC 4122 variant
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) id.push_back('-');
    id.push_back(kHex[raw[i] >> 4]);
    id.push_back(kHex[raw[i] & 0xf]);
  }
  return id;
}

std::int64_t system_now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// Hashes what `data` holds from `from` to its end onto `h` (a sha256_state or a hasher), which the
// caller keeps alive until this completes. Runs on the blocking pool.
template <class Hash>
awaitable<result<void>> hash_from(storage::upload_data& data, Hash& h, std::uint64_t from) {
  constexpr std::size_t kPiece = 1 << 20;
  std::vector<char> buffer(kPiece);
  for (std::uint64_t at = from;;) {
    auto n = co_await data.read(at, buffer);
    if (!n) co_return std::unexpected(n.error());
    if (*n == 0) co_return result<void>{};
    h.update(buffer.data(), *n);
    at += *n;
  }
}

}  // namespace

bool is_upload_id(std::string_view id) {
  if (id.size() != 36) return false;
  for (std::size_t i = 0; i < id.size(); ++i) {
    const char c = id[i];
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// ---- upload_session ----

struct upload_session::state {
  upload_service& service;
  upload_record saved;  // as last stored: what a renewal stores again
  upload_lease lease;
  std::unique_ptr<storage::upload_data> data;
  sha256_state hash;  // over every byte written, while hash_valid
  bool hash_valid = true;
  bool held = true;

  // Renews the lease once half of it has passed. UPLOAD_BUSY (and nothing held any more) when
  // another request took the upload meanwhile.
  awaitable<result<void>> keep_lease() {
    const std::int64_t now = service.now();
    const std::int64_t length = service.options_.lease.count();
    if (now < lease.until_ms - length / 2) co_return result<void>{};
    const std::int64_t until = now + length;
    auto renewed = co_await service.records_.update(saved, lease.token, until, now);
    if (!renewed) co_return std::unexpected(renewed.error());
    if (!*renewed) {
      held = false;
      co_return fail(errc::upload_busy, "the upload was taken over by another request");
    }
    lease.until_ms = until;
    co_return result<void>{};
  }

  // The digest of every byte the backend holds, in `algorithm`. The running hash answers sha256;
  // anything else (or a hash a failed write invalidated) is computed from the bytes on the pool.
  awaitable<result<digest>> digest_of_bytes(digest_algorithm algorithm) {
    if (algorithm == digest_algorithm::sha256) {
      if (!hash_valid) {
        sha256_state fresh;
        auto rehashed = co_await service.pool_.run(hash_from(*data, fresh, 0));
        if (!rehashed) co_return std::unexpected(rehashed.error());
        hash = fresh;
        hash_valid = true;
      }
      co_return hash.finish();
    }
    hasher other(algorithm);
    auto rehashed = co_await service.pool_.run(hash_from(*data, other, 0));
    if (!rehashed) co_return std::unexpected(rehashed.error());
    co_return other.finish();
  }
};

upload_session::upload_session(std::unique_ptr<state> s) : s_(std::move(s)) {}
upload_session::upload_session(upload_session&&) noexcept = default;

upload_session::~upload_session() {
  if (!s_ || !s_->held) return;
  // Abandoned mid-request (the request failed before releasing): release in the background.
  auto& pool = s_->service.pool_;
  boost::asio::co_spawn(
      pool.executor(),
      [s = std::move(s_)]() mutable -> awaitable<void> {
        upload_session orphan(std::move(s));
        auto released = co_await orphan.release();
        if (!released) spdlog::warn("uploads: releasing an abandoned upload failed");
      },
      boost::asio::detached);
}

const std::string& upload_session::id() const { return s_->saved.id; }

std::uint64_t upload_session::size() const { return s_->data ? s_->data->size() : s_->saved.size; }

awaitable<result<void>> upload_session::write(std::string_view bytes) {
  if (!s_->held) co_return fail(errc::blob_upload_unknown);
  auto kept = co_await s_->keep_lease();
  if (!kept) co_return kept;
  auto written = co_await s_->data->write(bytes);
  if (!written) {
    s_->hash_valid = false;  // it may cover bytes the backend lacks: recomputed when needed
    co_return written;
  }
  s_->hash.update(bytes);  // while the backend writes, when it writes in the background
  co_return result<void>{};
}

awaitable<result<void>> upload_session::flush() {
  if (!s_->held) co_return fail(errc::blob_upload_unknown);
  auto flushed = co_await s_->data->flush();
  if (!flushed) s_->hash_valid = false;
  co_return flushed;
}

awaitable<result<std::uint64_t>> upload_session::commit(const digest& expected) {
  auto flushed = co_await flush();
  if (!flushed) co_return std::unexpected(flushed.error());
  auto kept = co_await s_->keep_lease();
  if (!kept) co_return std::unexpected(kept.error());
  auto actual = co_await s_->digest_of_bytes(expected.algorithm());
  if (!actual) co_return std::unexpected(actual.error());
  if (*actual != expected) {
    auto discarded = co_await discard();
    if (!discarded) spdlog::warn("uploads: discarding upload {} after a digest mismatch failed", id());
    co_return fail(errc::digest_invalid, "digest does not match the uploaded content");
  }
  const std::uint64_t size = s_->data->size();
  // Claimed before the commit: bytes a deduplicating commit finds stored are not deleted under it
  // (meta/blob_records.h).
  auto generation = co_await s_->service.records_.claim(expected, size);
  if (!generation) co_return std::unexpected(generation.error());
  auto stored = co_await s_->data->commit(expected);
  if (!stored) co_return std::unexpected(stored.error());
  s_->data.reset();
  s_->held = false;
  // The blob is durable; a crash before this commit leaves a record whose bytes are gone, which
  // the next open() or the purge removes.
  auto linked = co_await s_->service.records_.complete(s_->saved.id, s_->lease.token, expected, size,
                                                                *generation);
  if (!linked) co_return std::unexpected(linked.error());
  if (!*linked) co_return fail(errc::upload_busy, "the upload was taken over by another request");
  co_return size;
}

awaitable<result<void>> upload_session::release() {
  if (!s_->held) co_return result<void>{};
  auto flushed = co_await s_->data->flush();
  if (!flushed) s_->hash_valid = false;
  upload_record progress = s_->saved;
  progress.size = s_->data->size();
  progress.hash_state = s_->hash_valid ? s_->hash.save() : std::string();
  s_->data.reset();
  s_->held = false;
  auto saved = co_await s_->service.records_.update(progress, s_->lease.token, 0, s_->service.now());
  if (!flushed) co_return flushed;
  if (!saved) co_return std::unexpected(saved.error());
  if (!*saved) co_return fail(errc::upload_busy, "the upload was taken over by another request");
  co_return result<void>{};
}

awaitable<result<void>> upload_session::discard() {
  if (!s_->held) co_return result<void>{};
  (void)co_await s_->data->flush();  // nothing may be writing once the bytes are deleted
  s_->data.reset();
  s_->held = false;
  // Bytes first: a crash in between leaves a record without bytes, which open() and the purge
  // remove; the other order would leave bytes no record names until the purge.
  auto deleted = co_await s_->service.blobs_.delete_upload(s_->saved.id);
  auto removed = co_await s_->service.records_.remove(s_->saved.id, s_->lease.token);
  if (!deleted && deleted.error().code != errc::blob_upload_unknown) co_return deleted;
  if (!removed) co_return std::unexpected(removed.error());
  co_return result<void>{};
}

// ---- upload_service ----

upload_service::upload_service(storage::blob_store& blobs, meta::upload_records& records, blocking_pool& pool,
                               service_options options)
    : blobs_(blobs), records_(records), pool_(pool), options_(std::move(options)) {
  if (!options_.now_ms) options_.now_ms = system_now_ms;
}

std::int64_t upload_service::now() const { return options_.now_ms(); }

upload_lease upload_service::new_lease() const {
  std::uint64_t raw = 0;
  if (!random_bytes(reinterpret_cast<unsigned char*>(&raw), sizeof raw)) raw = static_cast<std::uint64_t>(now());
  // Positive and never 0 (which the records read as "nobody").
  const auto token = static_cast<std::int64_t>(raw >> 1) | 1;
  return upload_lease{token, now() + options_.lease.count()};
}

awaitable<result<std::string>> upload_service::create(std::string_view repo) {
  auto id = new_upload_id();
  if (!id) co_return std::unexpected(id.error());
  auto made = co_await blobs_.create_upload(*id);
  if (!made) co_return std::unexpected(made.error());
  const upload_record rec{*id, std::string(repo), 0, sha256_state().save()};
  auto recorded = co_await records_.create(rec, upload_lease{}, now());
  if (!recorded) {
    (void)co_await blobs_.delete_upload(*id);
    co_return std::unexpected(recorded.error());
  }
  co_return std::move(*id);
}

awaitable<result<upload_session>> upload_service::start(std::string_view repo) {
  auto id = new_upload_id();
  if (!id) co_return std::unexpected(id.error());
  auto made = co_await blobs_.create_upload(*id);
  if (!made) co_return std::unexpected(made.error());
  const upload_record rec{*id, std::string(repo), 0, sha256_state().save()};
  const upload_lease lease = new_lease();
  auto recorded = co_await records_.create(rec, lease, now());
  if (!recorded) {
    (void)co_await blobs_.delete_upload(*id);
    co_return std::unexpected(recorded.error());
  }
  auto session = co_await resume(rec, lease);
  if (!session) {
    (void)co_await blobs_.delete_upload(*id);
    (void)co_await records_.remove(*id, lease.token);
  }
  co_return session;
}

awaitable<result<upload_session>> upload_service::open(std::string_view repo, std::string_view id) {
  if (!is_upload_id(id)) co_return fail(errc::blob_upload_unknown);
  const upload_lease lease = new_lease();
  auto rec = co_await records_.acquire(repo, id, lease, now());
  if (!rec) co_return std::unexpected(rec.error());
  if (!*rec) co_return fail(errc::blob_upload_unknown);
  co_return co_await resume(std::move(**rec), lease);
}

awaitable<result<upload_session>> upload_service::resume(upload_record rec, upload_lease lease) {
  auto data = co_await blobs_.open_upload(rec.id);
  if (!data) {
    if (data.error().code == errc::blob_upload_unknown) {
      // The bytes are gone (a crash after the commit's rename, or a purge): so is the upload.
      (void)co_await records_.remove(rec.id, lease.token);
    } else {
      (void)co_await records_.update(rec, lease.token, 0, now());
    }
    co_return std::unexpected(data.error());
  }
  const std::uint64_t held = (*data)->size();
  auto saved = sha256_state::load(rec.hash_state);
  if (!saved || saved->size() != rec.size || rec.size > held) {
    // Unknown (another architecture's state), or ahead of the bytes (lost in a power failure):
    // start again from the first byte.
    saved.emplace();
    rec.size = 0;
    rec.hash_state = saved->save();
  }
  auto s = std::make_unique<upload_session::state>(upload_session::state{*this, rec, lease, std::move(*data), *saved});
  if (rec.size < held) {
    // Bytes past the saved state: a request that died mid-body, or a failed write. Hash them
    // where blocking is allowed.
    auto caught_up = co_await pool_.run(hash_from(*s->data, s->hash, rec.size));
    if (!caught_up) {
      s->hash_valid = false;
      upload_session failed(std::move(s));
      (void)co_await failed.release();
      co_return std::unexpected(caught_up.error());
    }
  }
  co_return upload_session(std::move(s));
}

awaitable<result<std::uint64_t>> upload_service::size(std::string_view repo, std::string_view id) {
  if (!is_upload_id(id)) co_return fail(errc::blob_upload_unknown);
  auto rec = co_await records_.find(id);
  if (!rec) co_return std::unexpected(rec.error());
  if (!*rec || (*rec)->repo != repo) co_return fail(errc::blob_upload_unknown);
  auto data = co_await blobs_.open_upload(id);
  if (!data) co_return std::unexpected(data.error());
  co_return (*data)->size();
}

awaitable<result<void>> upload_service::cancel(std::string_view repo, std::string_view id) {
  if (!is_upload_id(id)) co_return fail(errc::blob_upload_unknown);
  const upload_lease lease = new_lease();
  auto rec = co_await records_.acquire(repo, id, lease, now());
  if (!rec) co_return std::unexpected(rec.error());
  if (!*rec) co_return fail(errc::blob_upload_unknown);
  auto deleted = co_await blobs_.delete_upload(id);
  if (!deleted && deleted.error().code != errc::blob_upload_unknown) {
    (void)co_await records_.update(**rec, lease.token, 0, now());
    co_return deleted;
  }
  auto removed = co_await records_.remove(id, lease.token);
  if (!removed) co_return std::unexpected(removed.error());
  co_return result<void>{};
}

awaitable<std::size_t> upload_service::purge(std::chrono::seconds idle) {
  const std::int64_t now_ms = now();
  const std::int64_t before = now_ms - std::chrono::duration_cast<std::chrono::milliseconds>(idle).count();
  std::size_t purged = 0;
  // Abandoned uploads, a batch at a time while batches come full and something goes.
  constexpr std::size_t kBatch = 100;
  for (;;) {
    auto stale = co_await records_.idle(before, now_ms, kBatch);
    if (!stale) break;  // logged by the store
    std::size_t gone = 0;
    for (const auto& rec : *stale) {
      const upload_lease lease = new_lease();
      auto taken = co_await records_.acquire(rec.repo, rec.id, lease, now());
      if (!taken || !*taken) continue;  // taken by a request meanwhile, or gone
      auto deleted = co_await blobs_.delete_upload(rec.id);
      if (!deleted && deleted.error().code != errc::blob_upload_unknown) {
        (void)co_await records_.update(**taken, lease.token, 0, now());
        continue;
      }
      auto removed = co_await records_.remove(rec.id, lease.token);
      if (removed && *removed) ++gone;
    }
    purged += gone;
    if (stale->size() < kBatch || gone == 0) break;
  }
  // Bytes no record names: a crash between creating them and recording the upload, or uploads
  // from before upload records existed.
  const auto cutoff = std::chrono::system_clock::time_point(std::chrono::milliseconds(before));
  auto listed = co_await blobs_.list_uploads();
  if (listed) {
    for (const auto& entry : *listed) {
      if (entry.last_write >= cutoff || !is_upload_id(entry.id)) continue;
      auto rec = co_await records_.find(entry.id);
      if (!rec || *rec) continue;
      auto deleted = co_await blobs_.delete_upload(entry.id);
      if (deleted) ++purged;
    }
  }
  auto leftovers = co_await blobs_.purge_leftovers(cutoff);
  if (leftovers) purged += *leftovers;
  co_return purged;
}

}  // namespace berth::uploads
