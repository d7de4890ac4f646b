// The filesystem blob store. Layout, crash behaviour and the reasons for both: docs/storage-layout.md.
#include <fcntl.h>
#include <algorithm>
#include <atomic>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <new>
#include <optional>
#include <set>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

#include "storage/blob_store.h"

namespace berth::storage {

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

// Reads up to buf.size() bytes at `offset`, retrying on EINTR. Returns the count, or -errno.
ssize_t pread_some(int fd, std::span<char> buf, std::uint64_t offset) {
  for (;;) {
    const ssize_t n = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(offset));
    if (n >= 0) return n;
    if (errno != EINTR) return -errno;
  }
}

// Upload ids come from the upload service, which hands out UUIDs only; a path is built from one
// only when it is a plain file name all the same.
bool is_file_name(std::string_view id) {
  return !id.empty() && id != "." && id != ".." && id.find('/') == std::string_view::npos &&
         id.find('\0') == std::string_view::npos;
}

// Makes a directory's entries (a rename, a new file or subdirectory) durable. Returns 0 or the errno.
int fsync_dir(const fs::path& dir) {
  unique_fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return errno;
  return ::fsync(fd.get()) == 0 ? 0 : errno;
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
  fs::path tmp() const { return root / "tmp"; }
};

// The names in directory `dir`, sorted (none when it does not exist).
result<std::vector<std::string>> sorted_names(const fs::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) names.push_back(entry.path().filename().string());
  if (ec && !is_absent(ec.value())) return backend_failure("list", dir, ec.value());
  std::sort(names.begin(), names.end());
  return names;
}

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

class fs_reader final : public blob_reader {
 public:
  fs_reader(unique_fd fd, std::uint64_t size) : fd_(std::move(fd)), size_(size) {}

  std::uint64_t size() const override { return size_; }
  int native_handle() const override { return fd_.get(); }

  // A pread from the page cache, or from the disk as a page fault would: inline, as sendfile is.
  awaitable<result<std::size_t>> read(std::uint64_t offset, std::span<char> buf) override {
    const ssize_t n = pread_some(fd_.get(), buf, offset);
    if (n < 0) co_return backend_failure("read", fs::path("blob"), static_cast<int>(-n));
    co_return static_cast<std::size_t>(n);
  }

 private:
  unique_fd fd_;
  std::uint64_t size_;
};

// Appends one buffer at a time to a file on its own thread, so that an upload's disk write overlaps
// the receiving and hashing of the next piece, and keeps the file's dirty pages few: every
// kWriteBackWindow bytes it starts their write-back to the disk (sync_file_range) and waits for the
// window before, as RocksDB's bytes_per_sync does. The bytes stay in the page cache, so the first
// pull right after a push is served from memory, and the commit's fsync has at most two windows
// left to flush. (Writing with O_DIRECT instead kept throughput but sent the first pull to the disk:
// 0.23x Distribution's first download.) Thread-safety: start() and wait() are called by one thread
// at a time (the upload's owner); the destructor waits for the write in flight.
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

  // Starts appending `bytes` to `fd`, which then ends at `end`. REQUIRES: wait() has returned since
  // the last start(); `bytes` stays valid until it does; one `fd` for the writer's life.
  void start(int fd, std::string_view bytes, off_t end) {
    if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
    {
      std::lock_guard lock(mutex_);
      job_ = job{fd, bytes, end, 0, 0, true};
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
    off_t end = 0;
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
      j.err = write_fully(j.fd, j.bytes, [&j](std::string_view piece) { j.written += piece.size(); });
      if (j.err == 0) j.err = write_back(j.fd, j.end - static_cast<off_t>(j.bytes.size()), j.end);
      lock.lock();
      job_.written = j.written;
      job_.err = j.err;
      job_.running = false;
      done_.notify_all();
    }
  }

  // After [begin, end) is written: starts the write-back of what was written since the last window
  // once there is a window of it, after waiting for the previous window's. Returns 0 or the errno of
  // a failed write-back; a file system that has no sync_file_range is left to the commit's fsync.
  int write_back(int fd, off_t begin, off_t end) {
    if (started_ < 0) started_ = waited_ = begin;
    if (!write_back_ || end - started_ < kWriteBackWindow) return 0;
    if (started_ > waited_ &&
        ::sync_file_range(fd, waited_, started_ - waited_,
                          SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER) != 0) {
      return write_back_failed(errno);
    }
    waited_ = started_;
    if (::sync_file_range(fd, started_, end - started_, SYNC_FILE_RANGE_WRITE) != 0) return write_back_failed(errno);
    started_ = end;
    return 0;
  }

  int write_back_failed(int err) {
    if (err == EIO || err == ENOSPC) return err;
    write_back_ = false;  // EINVAL, ESPIPE, ENOSYS: not offered here
    return 0;
  }

  static constexpr off_t kWriteBackWindow = 16 << 20;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  job job_;               // guarded by mutex_
  bool stopping_ = false;  // guarded by mutex_
  // The writer thread's own: write-back started up to started_, waited for up to waited_ (-1: no
  // write yet).
  off_t started_ = -1;
  off_t waited_ = -1;
  bool write_back_ = true;
  std::thread thread_;
};

// An upload's data file, open for appending. A piece of kBackgroundPiece or more is copied into the
// upload's own buffer and appended on a background thread while the caller hashes it and receives
// the next (flush() or the next write() waits for it); a smaller one (a chunk's tail, a config
// blob) is appended at once, which costs less than handing it over.
class fs_upload final : public upload_data {
 public:
  fs_upload(layout where, std::string id, unique_fd fd, std::uint64_t size, blocking_pool& pool)
      : layout_(std::move(where)), id_(std::move(id)), fd_(std::move(fd)), size_(size), pool_(pool) {}

  std::uint64_t size() const override { return size_; }

  awaitable<result<void>> write(std::string_view bytes) override { co_return append(bytes); }
  awaitable<result<void>> flush() override { co_return wait_for_run(); }

  awaitable<result<std::size_t>> read(std::uint64_t offset, std::span<char> buf) override {
    const ssize_t n = pread_some(fd_.get(), buf, offset);
    if (n < 0) co_return backend_failure("read", layout_.upload_data(id_), static_cast<int>(-n));
    co_return static_cast<std::size_t>(n);
  }

  // fsync, rename into place (or drop: dedup), fsync the directory: on the pool, it waits on the disk.
  awaitable<result<void>> commit(const digest& d) override {
    co_return co_await pool_.run([&]() -> result<void> {
      if (auto r = wait_for_run(); !r) return r;
      if (auto r = install_blob(layout_, d, layout_.upload_data(id_), fd_.get()); !r) return r;
      // The upload directory is empty now; one left behind by a failure here is only garbage,
      // which the purge removes.
      std::error_code ec;
      fs::remove_all(layout_.upload_dir(id_), ec);
      if (ec) log_failure("remove", layout_.upload_dir(id_), ec.value());
      return {};
    });
  }

 private:
  result<void> append(std::string_view bytes) {
    while (!bytes.empty()) {
      if (auto r = wait_for_run(); !r) return r;
      if (bytes.size() < kBackgroundPiece) {
        const int err = write_fully(fd_.get(), bytes, [this](std::string_view piece) { size_ += piece.size(); });
        if (err != 0) return backend_failure("write", layout_.upload_data(id_), err);
        return {};
      }
      const std::size_t run = std::min(bytes.size(), kRun);
      if (!buffer_) buffer_ = std::make_unique_for_overwrite<char[]>(kRun);
      std::memcpy(buffer_.get(), bytes.data(), run);
      pending_ = static_cast<off_t>(size_);
      size_ += run;
      writer_.start(fd_.get(), std::string_view(buffer_.get(), run), static_cast<off_t>(size_));
      bytes.remove_prefix(run);
    }
    return {};
  }

  // Waits for the run in flight, if any.
  result<void> wait_for_run() {
    if (!pending_) return {};
    const off_t offset = *pending_;
    pending_.reset();
    const int err = writer_.wait().second;
    if (err == 0) return {};
    // The file holds fewer bytes than were accepted: report what it really holds.
    struct stat st {};
    size_ = ::fstat(fd_.get(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : static_cast<std::uint64_t>(offset);
    return backend_failure("write", layout_.upload_data(id_), err);
  }

  // The smallest piece worth a hand-over to the writer thread.
  static constexpr std::size_t kBackgroundPiece = 64 * 1024;
  // The largest run written at once: the size of the pieces request bodies arrive in.
  static constexpr std::size_t kRun = 1024 * 1024;

  layout layout_;
  std::string id_;
  unique_fd fd_;  // O_APPEND: writes, reads, fsync
  std::unique_ptr<char[]> buffer_;         // the run being written, kRun bytes
  std::optional<off_t> pending_;          // where the run writer_ is writing begins
  std::uint64_t size_;  // bytes accepted, including the pending run
  blocking_pool& pool_;
  background_writer writer_;  // last: destroyed first, waiting for the write in flight
};

class fs_blob_store final : public blob_store {
 public:
  fs_blob_store(layout where, blocking_pool& pool) : layout_(std::move(where)), pool_(pool) {}

  awaitable<result<std::uint64_t>> stat(const digest& d) override {
    const fs::path path = layout_.blob(d);
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      if (is_absent(errno)) co_return fail(errc::blob_unknown);
      co_return backend_failure("stat", path, errno);
    }
    co_return static_cast<std::uint64_t>(st.st_size);
  }

  awaitable<result<std::unique_ptr<blob_reader>>> open(const digest& d) override {
    const fs::path path = layout_.blob(d);
    unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
      if (is_absent(errno)) co_return fail(errc::blob_unknown);
      co_return backend_failure("open", path, errno);
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) co_return backend_failure("stat", path, errno);
    co_return std::make_unique<fs_reader>(std::move(fd), static_cast<std::uint64_t>(st.st_size));
  }

  // Unlinking a large file waits on the filesystem: on the pool. No fsync of the directory: a
  // deletion lost to a power failure leaves garbage, never a missing blob.
  awaitable<result<void>> remove(const digest& d) override {
    co_return co_await pool_.run([&]() -> result<void> {
      const fs::path path = layout_.blob(d);
      if (::unlink(path.c_str()) != 0 && !is_absent(errno)) return backend_failure("unlink", path, errno);
      return {};
    });
  }

  // Digest order is the layout's: the algorithms' directories ("sha256" < "sha512"), their fan-out
  // directories by name, each one's files by name. The cursor is the last digest listed; a page
  // reads the fan-out directories from the cursor's on, one at a time (for 100,000 blobs, a few
  // hundred names each).
  awaitable<result<blob_page>> list_blobs(std::string_view cursor, std::size_t n) override {
    co_return co_await pool_.run([&]() -> result<blob_page> {
      blob_page page;
      for (const auto algorithm : {digest_algorithm::sha256, digest_algorithm::sha512}) {
        auto fanouts = sorted_names(layout_.blobs(algorithm));
        if (!fanouts) return std::unexpected(fanouts.error());
        for (const auto& fanout : *fanouts) {
          const std::string prefix = fmt::format("{}:{}", layout::algorithm_dir(algorithm), fanout);
          if (cursor.substr(0, prefix.size()) > prefix) continue;  // wholly listed already
          const fs::path dir = layout_.blobs(algorithm) / fanout;
          auto names = sorted_names(dir);
          if (!names) return std::unexpected(names.error());
          for (const auto& name : *names) {
            auto d = digest::parse(fmt::format("{}:{}", layout::algorithm_dir(algorithm), name));
            if (!d || layout_.blob(*d) != dir / name || d->str() <= cursor) continue;
            struct stat st {};
            if (::stat((dir / name).c_str(), &st) != 0) {
              if (is_absent(errno)) continue;  // removed meanwhile
              return backend_failure("stat", dir / name, errno);
            }
            page.blobs.push_back(stored_blob{*d, static_cast<std::uint64_t>(st.st_size)});
            if (page.blobs.size() == n) {
              page.next = d->str();
              return page;
            }
          }
        }
      }
      return page;
    });
  }

  // Built under tmp/ and renamed into uploads/, so an upload is never seen half-made: a crash
  // leaves only a directory in tmp/, which start-up clears. No fsync: only a commit must survive
  // power loss, and the page cache survives a killed process.
  awaitable<result<void>> create_upload(std::string_view id) override {
    if (!is_file_name(id)) co_return fail(errc::blob_upload_unknown);
    const fs::path staging = layout_.tmp() / id;
    result<void> made;
    if (::mkdir(staging.c_str(), 0777) != 0) {
      made = backend_failure("mkdir", staging, errno);
    } else if (unique_fd fd(::open((staging / "data").c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666)); !fd) {
      made = backend_failure("create", staging / "data", errno);
    } else if (::rename(staging.c_str(), layout_.upload_dir(id).c_str()) != 0) {
      made = backend_failure("rename", layout_.upload_dir(id), errno);
    }
    if (!made) {
      std::error_code ignored;
      fs::remove_all(staging, ignored);
    }
    co_return made;
  }

  awaitable<result<std::unique_ptr<upload_data>>> open_upload(std::string_view id) override {
    if (!is_file_name(id)) co_return fail(errc::blob_upload_unknown);
    const fs::path data = layout_.upload_data(id);
    unique_fd fd(::open(data.c_str(), O_RDWR | O_APPEND | O_CLOEXEC));
    if (!fd) {
      if (is_absent(errno)) co_return fail(errc::blob_upload_unknown);
      co_return backend_failure("open", data, errno);
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) co_return backend_failure("stat", data, errno);
    co_return std::make_unique<fs_upload>(layout_, std::string(id), std::move(fd),
                                          static_cast<std::uint64_t>(st.st_size), pool_);
  }

  // On the pool: unlinking a large file frees its extents, which can take a while.
  awaitable<result<void>> delete_upload(std::string_view id) override {
    if (!is_file_name(id)) co_return fail(errc::blob_upload_unknown);
    co_return co_await pool_.run([&]() -> result<void> {
      std::error_code ec;
      const auto removed = fs::remove_all(layout_.upload_dir(id), ec);
      if (ec) return backend_failure("remove", layout_.upload_dir(id), ec.value());
      if (removed == 0) return fail(errc::blob_upload_unknown);
      return {};
    });
  }

  awaitable<result<std::vector<upload_entry>>> list_uploads() override {
    co_return co_await pool_.run([&]() -> result<std::vector<upload_entry>> {
      std::vector<upload_entry> out;
      std::error_code ec;
      for (const auto& entry : fs::directory_iterator(layout_.uploads(), ec)) {
        const std::string id = entry.path().filename().string();
        // The data file's time: the last byte received. A directory without one (a crash between
        // a commit's rename and the clean-up) is dated by the directory itself.
        std::error_code time_ec;
        auto written = fs::last_write_time(layout_.upload_data(id), time_ec);
        if (time_ec) written = fs::last_write_time(entry.path(), time_ec);
        if (time_ec) continue;
        out.push_back(upload_entry{id, std::chrono::time_point_cast<std::chrono::system_clock::duration>(fs::file_time_type::clock::to_sys(written))});
      }
      if (ec) return backend_failure("list", layout_.uploads(), ec.value());
      return out;
    });
  }

  // A file created and unlinked in tmp/, where every upload starts (page cache only: inline).
  awaitable<result<void>> probe() override {
    const fs::path file = layout_.tmp() / fmt::format("probe-{}", probes_.fetch_add(1, std::memory_order_relaxed));
    if (unique_fd fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666)); !fd)
      co_return backend_failure("create", file, errno);
    if (::unlink(file.c_str()) != 0) co_return backend_failure("unlink", file, errno);
    co_return result<void>{};
  }

 private:
  layout layout_;
  blocking_pool& pool_;
  std::atomic<std::uint64_t> probes_{0};  // names concurrent probes apart
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

// Left-overs of create_upload() (or of a probe) that a crash interrupted; nothing else lives in tmp/.
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

std::unique_ptr<blob_store> make_fs_blob_store(const std::string& root, blocking_pool& pool) {
  layout where{fs::path(root)};
  create_layout(where);
  clear_tmp(where);
  return std::make_unique<fs_blob_store>(std::move(where), pool);
}

}  // namespace berth::storage
