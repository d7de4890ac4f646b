// The filesystem blob store. Layout, crash behaviour and the reasons for both: docs/storage-layout.md.
#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <new>
#include <thread>
#include <optional>
#include <set>
#include <stdexcept>
#include <system_error>
#include <unordered_map>
#include <vector>

#include "storage/blob_store.h"

namespace berth::storage {

blob_reader::~blob_reader() {
  if (fd_ >= 0) ::close(fd_);
}

namespace {

namespace fs = std::filesystem;

constexpr std::string_view kBackendError = "storage backend error";

// Backend messages and paths go to the log only, never to clients.
void log_failure(std::string_view op, const fs::path& path, int err) {
  spdlog::error("storage: {} {}: {}", op, path.string(), std::generic_category().message(err));
}

// Logs a failed system call and returns the generic error the client may see.
std::unexpected<error> backend_failure(std::string_view op, const fs::path& path, int err) {
  log_failure(op, path, err);
  return fail(errc::internal, std::string(kBackendError));
}

bool is_absent(int err) { return err == ENOENT || err == ENOTDIR; }

class unique_fd {
 public:
  explicit unique_fd(int fd = -1) : fd_(fd) {}
  unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  ~unique_fd() {
    if (fd_ >= 0) ::close(fd_);
  }

  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_;
};

// Writes all of `bytes`, retrying on EINTR and short writes. Calls on_written(piece) once each piece
// is in the file, so a caller that hashes as it writes stays in step with the file even when a write
// fails half-way. Returns 0 or the errno.
template <class F>
int write_fully(int fd, std::string_view bytes, F&& on_written) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return EIO;  // a regular file that accepts nothing: do not spin
    on_written(bytes.substr(0, static_cast<std::size_t>(n)));
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return 0;
}

int write_fully(int fd, std::string_view bytes) {
  return write_fully(fd, bytes, [](std::string_view) {});
}

// A hash over the first `size` bytes of an upload's data.
struct running_hash {
  hasher h;
  std::uint64_t size = 0;
};

// Hashes the whole file behind `fd` from the start; streams, never holds it in memory.
result<running_hash> hash_file(int fd, const fs::path& path, digest_algorithm algorithm) {
  constexpr std::size_t kChunk = 1 << 20;
  std::vector<char> buffer(kChunk);
  running_hash out{hasher(algorithm)};
  for (;;) {
    const ssize_t n = ::pread(fd, buffer.data(), buffer.size(), static_cast<off_t>(out.size));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return backend_failure("read", path, errno);
    if (n == 0) return out;
    out.h.update(buffer.data(), static_cast<std::size_t>(n));
    out.size += static_cast<std::uint64_t>(n);
  }
}

// Makes a directory's entries (a rename, a new file or subdirectory) durable. Returns 0 or the errno.
int fsync_dir(const fs::path& dir) {
  unique_fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return errno;
  return ::fsync(fd.get()) == 0 ? 0 : errno;
}

// Reads a file of at most `limit` bytes (larger ones are cut). Returns 0 or the errno.
int read_small_file(const fs::path& path, std::size_t limit, std::string& out) {
  unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno;
  out.resize(limit);
  std::size_t got = 0;
  while (got < limit) {
    const ssize_t n = ::read(fd.get(), out.data() + got, limit - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  out.resize(got);
  return 0;
}

// A random (version 4) UUID, lowercase: the only shape accepted as an upload id.
result<std::string> new_uuid() {
  std::array<unsigned char, 16> raw{};
  if (RAND_bytes(raw.data(), static_cast<int>(raw.size())) != 1) {
    spdlog::error("storage: RAND_bytes failed");
    return fail(errc::internal, std::string(kBackendError));
  }
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

// Ids come from URLs: only the shape new_uuid() produces may reach a path, so no id can traverse.
bool is_upload_id(std::string_view id) {
  if (id.size() != 36) return false;
  for (std::size_t i = 0; i < id.size(); ++i) {
    const char c = id[i];
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// Where everything lives under the root; see docs/storage-layout.md.
struct layout {
  fs::path root;

  static std::string_view algorithm_dir(digest_algorithm a) {
    return a == digest_algorithm::sha256 ? "sha256" : "sha512";
  }
  fs::path blobs(digest_algorithm a) const { return root / "blobs" / algorithm_dir(a); }
  fs::path blob(const digest& d) const {
    return blobs(d.algorithm()) / d.hex().substr(0, 2) / d.hex();
  }
  fs::path uploads() const { return root / "uploads"; }
  fs::path upload_dir(std::string_view id) const { return uploads() / id; }
  fs::path upload_data(std::string_view id) const { return upload_dir(id) / "data"; }
  fs::path upload_owner(std::string_view id) const { return upload_dir(id) / "owner"; }
  fs::path tmp() const { return root / "tmp"; }
};

// Renames `src` to `dst`, creating dst's fan-out directory on first use. Trying the rename first
// keeps mkdir off the hot path: once a prefix has a blob, its directory exists.
result<void> rename_into_fanout(const fs::path& src, const fs::path& dst) {
  if (::rename(src.c_str(), dst.c_str()) == 0) return {};
  if (errno != ENOENT) return backend_failure("rename", dst, errno);
  const fs::path fanout = dst.parent_path();
  if (::mkdir(fanout.c_str(), 0777) != 0 && errno != EEXIST) return backend_failure("mkdir", fanout, errno);
  // Also on EEXIST: a concurrent creator may not have synced the parent yet.
  if (const int err = fsync_dir(fanout.parent_path()))
    return backend_failure("fsync", fanout.parent_path(), err);
  if (::rename(src.c_str(), dst.c_str()) != 0) return backend_failure("rename", dst, errno);
  return {};
}

// Moves the fully written file `src` (open as `fd`) into place as blob `d`, or discards it when `d`
// is stored already (dedup). Durable on success: the rename is the commit point, so a crash leaves
// either no blob or a complete one.
result<void> install_blob(const layout& where, const digest& d, const fs::path& src, int fd) {
  const fs::path dst = where.blob(d);
  struct stat st {};
  if (::stat(dst.c_str(), &st) == 0) {
    if (::unlink(src.c_str()) != 0) log_failure("unlink", src, errno);  // garbage only: go on
  } else {
    if (::fsync(fd) != 0) return backend_failure("fsync", src, errno);
    if (auto r = rename_into_fanout(src, dst); !r) return r;
  }
  // Also on dedup: the existing entry may come from a concurrent commit that has not synced the
  // directory yet, and we must not acknowledge a blob a power loss could take away.
  if (const int err = fsync_dir(dst.parent_path())) return backend_failure("fsync", dst.parent_path(), err);
  return {};
}

class upload_registry;

// The exclusive right to write to one upload, from upload_registry::try_claim() to destruction.
// Carries the upload's cached running hash and gives it back to the registry at the end; an empty
// hash() at the end makes the registry forget the upload (it is gone, or must be re-hashed).
class upload_claim {
 public:
  upload_claim(std::shared_ptr<upload_registry> registry, std::string id, std::optional<running_hash> hash)
      : registry_(std::move(registry)), id_(std::move(id)), hash_(std::move(hash)) {}
  upload_claim(upload_claim&&) noexcept = default;
  upload_claim& operator=(upload_claim&&) = delete;
  ~upload_claim();

  const std::string& id() const { return id_; }
  std::optional<running_hash>& hash() { return hash_; }

 private:
  std::shared_ptr<upload_registry> registry_;  // null once moved from
  std::string id_;
  std::optional<running_hash> hash_;
};

// Which uploads a request is writing to, and the running hash of each idle upload, so the next
// request goes on hashing where the last one stopped. Shared by the store and its upload handles,
// so a handle may outlive the store. Thread-safe.
class upload_registry : public std::enable_shared_from_this<upload_registry> {
 public:
  // The claim on `id`; nullopt while another claim on it is alive.
  std::optional<upload_claim> try_claim(const std::string& id) {
    std::lock_guard lock(mutex_);
    entry& e = entries_[id];
    if (e.busy) return std::nullopt;
    e.busy = true;
    return upload_claim(shared_from_this(), id, std::exchange(e.hash, std::nullopt));
  }

  void release(const std::string& id, std::optional<running_hash> hash) {
    std::lock_guard lock(mutex_);
    if (hash) {
      entries_[id] = entry{false, std::move(hash)};
    } else {
      entries_.erase(id);
    }
  }

 private:
  struct entry {
    bool busy = false;
    std::optional<running_hash> hash;
  };
  std::mutex mutex_;
  std::unordered_map<std::string, entry> entries_;
};

upload_claim::~upload_claim() {
  if (registry_) registry_->release(id_, std::move(hash_));
}

// Writes one buffer at a time on its own thread, so that an upload's disk write overlaps the
// receiving and hashing of the next piece. Thread-safety: start() and wait() are called by one
// thread at a time (the upload's owner); the destructor waits for the write in flight.
class background_writer {
 public:
  background_writer() = default;
  background_writer(const background_writer&) = delete;
  background_writer& operator=(const background_writer&) = delete;
  ~background_writer() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  // Starts writing `bytes` at `offset` of `fd`. REQUIRES: wait() has returned since the last start();
  // `bytes` stays valid until it does.
  void start(int fd, std::string_view bytes, off_t offset) {
    if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
    {
      std::lock_guard lock(mutex_);
      job_ = job{fd, bytes, offset, 0, 0, true};
    }
    wake_.notify_all();
  }

  // Waits for the write started last. Returns the bytes written and 0, or the errno that stopped it.
  std::pair<std::size_t, int> wait() {
    std::unique_lock lock(mutex_);
    done_.wait(lock, [this] { return !job_.running; });
    return {job_.written, job_.err};
  }

 private:
  struct job {
    int fd = -1;
    std::string_view bytes;
    off_t offset = 0;
    std::size_t written = 0;
    int err = 0;
    bool running = false;
  };

  void loop() {
    std::unique_lock lock(mutex_);
    for (;;) {
      wake_.wait(lock, [this] { return stopping_ || job_.running; });
      if (!job_.running) return;  // stopping, nothing in flight
      job j = job_;
      lock.unlock();
      while (j.written < j.bytes.size()) {
        const ssize_t n = ::pwrite(j.fd, j.bytes.data() + j.written, j.bytes.size() - j.written,
                                   j.offset + static_cast<off_t>(j.written));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          j.err = n < 0 ? errno : EIO;
          break;
        }
        j.written += static_cast<std::size_t>(n);
      }
      lock.lock();
      job_.written = j.written;
      job_.err = j.err;
      job_.running = false;
      done_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  job job_;               // guarded by mutex_
  bool stopping_ = false;  // guarded by mutex_
  std::thread thread_;
};

class fs_upload final : public upload {
 public:
  fs_upload(layout where, upload_claim claim) : layout_(std::move(where)), claim_(std::move(claim)) {}

  // Opens the data file and brings the running hash up to date with it. BLOB_UPLOAD_UNKNOWN when
  // the upload was committed or cancelled since the caller checked it.
  result<void> open() {
    const fs::path data = layout_.upload_data(id());
    fd_ = unique_fd(::open(data.c_str(), O_RDWR | O_APPEND | O_CLOEXEC));
    if (!fd_) {
      const int err = errno;
      if (is_absent(err)) return forget_unknown();
      return backend_failure("open", data, err);
    }
    struct stat st {};
    if (::fstat(fd_.get(), &st) != 0) return backend_failure("stat", data, errno);
    size_ = static_cast<std::uint64_t>(st.st_size);
    // Best effort: a file system without O_DIRECT (tmpfs) gets buffered writes only.
    direct_fd_ = unique_fd(::open(data.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC));
    // A cached hash that does not cover exactly the file (restart, failed write) is useless.
    if (claim_.hash() && claim_.hash()->size != size_) claim_.hash().reset();
    return ensure_hash();
  }

  const std::string& id() const override { return claim_.id(); }
  std::uint64_t size() const override { return size_; }

  // Aligned runs of whole blocks go through O_DIRECT: the bytes go from our buffer to the device
  // without a copy into the page cache, which on a VM costs more CPU than hashing them (2.7 CPU-s
  // per GB against 0.6) and throttles the writer as dirty pages pile up; the commit's fsync then has
  // little left to flush. Such a run is copied into the upload's own buffer and written on a
  // background thread while the caller receives the next piece (flush() or the next write() waits
  // for it). Anything unaligned (a chunk's tail) is written buffered, so the file always ends up
  // holding exactly the bytes received.
  result<void> write(std::string_view bytes) override {
    if (gone_) return fail(errc::blob_upload_unknown);
    if (auto r = flush(); !r) return r;
    if (auto r = ensure_hash(); !r) return r;
    running_hash& hash = *claim_.hash();
    while (!bytes.empty()) {
      if (auto r = flush(); !r) return r;
      const bool aligned = direct_fd_ && hash.size % kDirectAlignment == 0;
      const std::size_t direct = aligned ? std::min(bytes.size(), kDirectPiece) / kDirectAlignment * kDirectAlignment : 0;
      if (direct == 0) {
        const int err = write_fully(fd_.get(), bytes, [&hash](std::string_view piece) {
          hash.h.update(piece);
          hash.size += piece.size();
        });
        size_ = hash.size;
        if (err != 0) return backend_failure("write", layout_.upload_data(id()), err);
        return {};
      }
      if (!direct_buffer_) {
        direct_buffer_.reset(static_cast<char*>(::operator new[](kDirectPiece, std::align_val_t{kDirectAlignment})));
      }
      std::memcpy(direct_buffer_.get(), bytes.data(), direct);
      const std::string_view run(direct_buffer_.get(), direct);
      writer_.start(direct_fd_.get(), run, static_cast<off_t>(hash.size));
      pending_ = pending_write{static_cast<off_t>(hash.size), direct};
      hash.h.update(run);  // while the disk writes
      hash.size += direct;
      size_ = hash.size;
      bytes.remove_prefix(direct);
    }
    return {};
  }

  result<void> flush() override {
    if (!pending_) return {};
    const pending_write p = *pending_;
    pending_.reset();
    auto [written, err] = writer_.wait();
    if (err == 0) return {};
    if (err == EINVAL && written % kDirectAlignment == 0) {
      // The device wants a larger alignment: this run and everything after it go buffered.
      direct_fd_ = unique_fd();
      const std::string_view rest(direct_buffer_.get() + written, p.length - written);
      err = write_fully(fd_.get(), rest);
      if (err == 0) return {};
    }
    // The file holds fewer bytes than were hashed: forget the hash (the next request re-hashes the
    // file) and report what the file really holds.
    claim_.hash().reset();
    struct stat st {};
    size_ = ::fstat(fd_.get(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : static_cast<std::uint64_t>(p.offset);
    return backend_failure("write", layout_.upload_data(id()), err);
  }

  result<std::uint64_t> commit(const digest& expected) override {
    if (gone_) return fail(errc::blob_upload_unknown);
    if (auto r = flush(); !r) return std::unexpected(r.error());
    auto actual = final_digest(expected.algorithm());
    if (!actual) return std::unexpected(actual.error());
    if (*actual != expected) {
      discard();
      return fail(errc::digest_invalid, "digest does not match the uploaded content");
    }
    if (auto r = install_blob(layout_, expected, layout_.upload_data(id()), fd_.get()); !r)
      return std::unexpected(r.error());
    discard();
    return size_;
  }

 private:
  result<void> ensure_hash() {
    if (claim_.hash()) return {};
    auto hash = hash_file(fd_.get(), layout_.upload_data(id()), digest_algorithm::sha256);
    if (!hash) return std::unexpected(hash.error());
    size_ = hash->size;
    claim_.hash() = std::move(*hash);
    return {};
  }

  // The digest of all bytes received. sha256 spends the running hash (a later write or commit
  // re-hashes the file); sha512 is rare, so it is computed from the file rather than kept running.
  result<digest> final_digest(digest_algorithm algorithm) {
    if (algorithm == digest_algorithm::sha512) {
      auto hash = hash_file(fd_.get(), layout_.upload_data(id()), algorithm);
      if (!hash) return std::unexpected(hash.error());
      return hash->h.finish();
    }
    if (auto r = ensure_hash(); !r) return std::unexpected(r.error());
    running_hash hash = std::move(*claim_.hash());
    claim_.hash().reset();
    return hash.h.finish();
  }

  std::unexpected<error> forget_unknown() {
    gone_ = true;
    claim_.hash().reset();
    return fail(errc::blob_upload_unknown);
  }

  // Removes the upload. A failure leaves garbage, not a wrong answer: it is only logged.
  void discard() {
    (void)flush();  // nothing may write into the directory once it is removed
    gone_ = true;
    claim_.hash().reset();
    std::error_code ec;
    fs::remove_all(layout_.upload_dir(id()), ec);
    if (ec) log_failure("remove", layout_.upload_dir(id()), ec.value());
  }

  // O_DIRECT's alignment of buffer address, file offset and length; 4096 satisfies every common device.
  static constexpr std::size_t kDirectAlignment = 4096;
  // The largest run written at once: the size of the pieces request bodies arrive in.
  static constexpr std::size_t kDirectPiece = 1024 * 1024;

  struct aligned_delete {
    void operator()(char* p) const { ::operator delete[](p, std::align_val_t{kDirectAlignment}); }
  };
  struct pending_write {
    off_t offset;
    std::size_t length;
  };

  layout layout_;
  upload_claim claim_;
  unique_fd fd_;         // O_APPEND: buffered writes, hashing, fsync
  unique_fd direct_fd_;  // O_DIRECT on the same file, or none
  std::unique_ptr<char[], aligned_delete> direct_buffer_;  // the run being written, kDirectPiece bytes
  std::optional<pending_write> pending_;                    // the run writer_ is writing
  std::uint64_t size_ = 0;  // bytes accepted, including the pending run
  bool gone_ = false;  // committed, discarded or removed by someone else
  background_writer writer_;  // last: destroyed first, waiting for the write in flight
};

class fs_blob_store final : public blob_store {
 public:
  explicit fs_blob_store(layout where) : layout_(std::move(where)) {}

  result<std::uint64_t> stat(const digest& d) override {
    const fs::path path = layout_.blob(d);
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      if (is_absent(errno)) return fail(errc::blob_unknown);
      return backend_failure("stat", path, errno);
    }
    return static_cast<std::uint64_t>(st.st_size);
  }

  result<blob_reader> open(const digest& d) override {
    const fs::path path = layout_.blob(d);
    unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
      if (is_absent(errno)) return fail(errc::blob_unknown);
      return backend_failure("open", path, errno);
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return backend_failure("stat", path, errno);
    return blob_reader(fd.release(), static_cast<std::uint64_t>(st.st_size));
  }

  result<void> put(const digest& d, std::string_view bytes) override {
    auto name = new_uuid();
    if (!name) return std::unexpected(name.error());
    const fs::path tmp = layout_.tmp() / *name;
    unique_fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666));
    if (!fd) return backend_failure("create", tmp, errno);
    auto stored = [&]() -> result<void> {
      if (const int err = write_fully(fd.get(), bytes)) return backend_failure("write", tmp, err);
      return install_blob(layout_, d, tmp, fd.get());
    }();
    if (!stored) ::unlink(tmp.c_str());  // may be renamed already: then there is nothing to remove
    return stored;
  }

  result<void> remove(const digest& d) override {
    const fs::path path = layout_.blob(d);
    if (::unlink(path.c_str()) != 0) {
      if (is_absent(errno)) return fail(errc::blob_unknown);
      return backend_failure("unlink", path, errno);
    }
    return {};
  }

  result<std::string> create_upload(std::string_view repo) override {
    auto id = new_uuid();
    if (!id) return std::unexpected(id.error());
    // Built under tmp/ and renamed into uploads/, so an upload is never seen half-made: a crash
    // leaves only a directory in tmp/, which start-up clears.
    const fs::path staging = layout_.tmp() / *id;
    auto made = make_upload_dir(staging, repo);
    if (made && ::rename(staging.c_str(), layout_.upload_dir(*id).c_str()) != 0)
      made = backend_failure("rename", layout_.upload_dir(*id), errno);
    if (!made) {
      std::error_code ignored;
      fs::remove_all(staging, ignored);
      return std::unexpected(made.error());
    }
    return std::move(*id);
  }

  result<std::shared_ptr<upload>> open_upload(std::string_view repo, std::string_view id) override {
    if (auto r = check_owner(repo, id); !r) return std::unexpected(r.error());
    auto claim = claim_upload(id);
    if (!claim) return std::unexpected(claim.error());
    auto handle = std::make_shared<fs_upload>(layout_, std::move(*claim));
    if (auto r = handle->open(); !r) return std::unexpected(r.error());
    return handle;
  }

  result<std::uint64_t> upload_size(std::string_view repo, std::string_view id) override {
    if (auto r = check_owner(repo, id); !r) return std::unexpected(r.error());
    const fs::path data = layout_.upload_data(id);
    struct stat st {};
    if (::stat(data.c_str(), &st) != 0) {
      if (is_absent(errno)) return fail(errc::blob_upload_unknown);
      return backend_failure("stat", data, errno);
    }
    return static_cast<std::uint64_t>(st.st_size);
  }

  result<void> cancel_upload(std::string_view repo, std::string_view id) override {
    if (auto r = check_owner(repo, id); !r) return r;
    auto claim = claim_upload(id);
    if (!claim) return std::unexpected(claim.error());
    claim->hash().reset();  // the registry forgets the upload when the claim ends
    std::error_code ec;
    const auto removed = fs::remove_all(layout_.upload_dir(id), ec);
    if (ec) return backend_failure("remove", layout_.upload_dir(id), ec.value());
    if (removed == 0) return fail(errc::blob_upload_unknown);  // committed or cancelled meanwhile
    return {};
  }

  std::size_t purge_uploads(std::chrono::seconds idle) override {
    const auto cutoff = fs::file_time_type::clock::now() - idle;
    std::size_t purged = 0;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(layout_.uploads(), ec)) {
      const std::string id = entry.path().filename().string();
      if (!is_upload_id(id)) continue;
      std::error_code stat_ec;
      const auto written = fs::last_write_time(layout_.upload_data(id), stat_ec);
      if (stat_ec || written > cutoff) continue;
      auto claim = registry_->try_claim(id);
      if (!claim) continue;  // a request is writing to it: not abandoned
      claim->hash().reset();
      std::error_code remove_ec;
      fs::remove_all(layout_.upload_dir(id), remove_ec);
      if (remove_ec) {
        log_failure("remove", layout_.upload_dir(id), remove_ec.value());
      } else {
        ++purged;
      }
    }
    if (ec) log_failure("list", layout_.uploads(), ec.value());
    return purged;
  }

 private:
  // BLOB_UPLOAD_UNKNOWN unless `id` is well-formed and names an upload of `repo`.
  result<void> check_owner(std::string_view repo, std::string_view id) const {
    if (!is_upload_id(id)) return fail(errc::blob_upload_unknown);
    const fs::path path = layout_.upload_owner(id);
    std::string owner;
    if (const int err = read_small_file(path, kMaxOwnerSize, owner)) {
      if (is_absent(err)) return fail(errc::blob_upload_unknown);
      return backend_failure("read", path, err);
    }
    if (owner != repo) return fail(errc::blob_upload_unknown);
    return {};
  }

  result<upload_claim> claim_upload(std::string_view id) {
    auto claim = registry_->try_claim(std::string(id));
    if (!claim) return fail(errc::conflict, "another request is writing to this upload");
    return std::move(*claim);
  }

  // Fills the new directory `dir` with an empty data file and the owner; no fsync: only a commit
  // must survive power loss, and the page cache survives a killed process.
  static result<void> make_upload_dir(const fs::path& dir, std::string_view repo) {
    if (::mkdir(dir.c_str(), 0777) != 0) return backend_failure("mkdir", dir, errno);
    if (auto r = write_new_file(dir / "data", {}); !r) return r;
    return write_new_file(dir / "owner", repo);
  }

  static result<void> write_new_file(const fs::path& path, std::string_view contents) {
    unique_fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666));
    if (!fd) return backend_failure("create", path, errno);
    if (const int err = write_fully(fd.get(), contents)) return backend_failure("write", path, err);
    return {};
  }

  // An owner file is a repository name; a longer file cannot match one.
  static constexpr std::size_t kMaxOwnerSize = 1024;

  layout layout_;
  std::shared_ptr<upload_registry> registry_ = std::make_shared<upload_registry>();
};

// Creates the fixed directories of the layout (a fan-out directory comes with its first blob), then
// syncs each parent that gained an entry.
void create_layout(const layout& where) {
  const std::vector<fs::path> dirs = {where.root,
                                      where.root / "blobs",
                                      where.blobs(digest_algorithm::sha256),
                                      where.blobs(digest_algorithm::sha512),
                                      where.uploads(),
                                      where.tmp()};

  std::set<fs::path> changed;
  for (const auto& dir : dirs) {
    std::error_code ec;
    const bool created = fs::create_directories(dir, ec);
    if (ec) throw std::runtime_error(fmt::format("cannot create {}: {}", dir.string(), ec.message()));
    if (created) changed.insert(fs::absolute(dir).parent_path());
  }
  for (const auto& dir : changed) {
    if (const int err = fsync_dir(dir))
      throw std::runtime_error(
          fmt::format("cannot sync {}: {}", dir.string(), std::generic_category().message(err)));
  }
}

// Left-overs of put() and create_upload() that a crash interrupted; nothing else lives in tmp/.
// Also proves at start-up, rather than on the first push, that the root is writable.
void clear_tmp(const layout& where) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(where.tmp(), ec)) fs::remove_all(entry.path(), ec);
  const fs::path probe = where.tmp() / "probe";
  unique_fd fd(::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666));
  if (!fd || ::unlink(probe.c_str()) != 0) {
    const int err = errno;
    throw std::runtime_error(
        fmt::format("cannot write in {}: {}", where.tmp().string(), std::generic_category().message(err)));
  }
}

}  // namespace

std::unique_ptr<blob_store> make_fs_blob_store(const std::string& root) {
  layout where{fs::path(root)};
  create_layout(where);
  clear_tmp(where);
  return std::make_unique<fs_blob_store>(std::move(where));
}

}  // namespace berth::storage
