// The lock on a data directory: DATA/LOCK, locked with flock(2) for as long as a data_lock lives,
// so that two servers (or a server and an offline command that writes) never use one directory at
// once; their SQLite files would cope, but uploads and the start-up purge would not. The kernel
// drops the lock when the process ends, however it ends, so a crash leaves nothing to clean up.
// The file holds the holder's pid, for the message the next one gets.
// Thread-safety: construct and destroy on one thread.
#pragma once

#include <string>

namespace berth::app {

class data_lock {
 public:
  // Locks `data_dir` (which exists). Throws std::runtime_error naming the directory, and the pid of
  // the holder when known, when another process holds it; or when the file cannot be created.
  explicit data_lock(const std::string& data_dir);
  ~data_lock();
  data_lock(const data_lock&) = delete;
  data_lock& operator=(const data_lock&) = delete;

 private:
  int fd_;
};

}  // namespace berth::app
