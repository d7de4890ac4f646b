#include "app/data_lock.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace berth::app {
namespace {

// The pid the holder wrote, or "" (it has not written it yet, or the file was tampered with).
std::string holder_pid(int fd) {
  char buf[32] = {};
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return {};
  std::string pid(buf, static_cast<std::size_t>(n));
  while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
  if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) return {};
  return pid;
}

}  // namespace

data_lock::data_lock(const std::string& data_dir) {
  const auto path = (std::filesystem::path(data_dir) / "LOCK").string();
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw std::runtime_error(fmt::format("cannot create {}: {}", path, std::strerror(errno)));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    const std::string pid = err == EWOULDBLOCK ? holder_pid(fd_) : std::string();
    ::close(fd_);
    if (err != EWOULDBLOCK) throw std::runtime_error(fmt::format("cannot lock {}: {}", path, std::strerror(err)));
    throw std::runtime_error(fmt::format("data directory {} is in use by another Berth ({}); stop it first, or "
                                         "give this one another --data directory",
                                         data_dir, pid.empty() ? "pid unknown" : "pid " + pid));
  }
  // Only the holder writes, and only now: a stale pid left by a crash is overwritten before anyone
  // can read it (readers read only while the lock is held).
  const std::string text = fmt::format("{}\n", ::getpid());
  const bool written =
      ::ftruncate(fd_, 0) == 0 && ::pwrite(fd_, text.data(), text.size(), 0) == static_cast<ssize_t>(text.size());
  if (!written) spdlog::warn("cannot write the pid to {} (the lock holds without it)", path);
}

data_lock::~data_lock() {
  // Emptied before it is released: a pid left in the file names a process that crashed.
  [[maybe_unused]] const int emptied = ::ftruncate(fd_, 0);
  ::close(fd_);
}

}  // namespace berth::app
