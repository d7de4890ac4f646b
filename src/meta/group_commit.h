// Group commit over one SQLite writer connection. Callers submit a write operation and block; a
// single writer thread takes every operation queued so far, runs them in ONE transaction (each in
// its own SAVEPOINT, so a failing operation rolls back only itself), commits once (one fsync for
// the whole batch) and then wakes each caller with its own result. A lone caller is committed at
// once: the writer never waits for a batch to fill, batches form only while a commit is in flight.
//
// Thread-safety: submit() may be called from any number of threads. Operations run on the writer
// thread, one at a time, with exclusive use of the writer connection.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <future>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "core/error.h"
#include "meta/sqlite_db.h"

namespace berth::meta::sqlite {

// A write: runs on the writer connection inside a transaction. Its changes are kept only if it
// returns success and the batch commits.
using write_operation = std::function<result<void>(connection&)>;

// Runs `ops` in one transaction on `db`, each inside a savepoint, and commits. Returns one result
// per operation: the operation's own error, or success once committed. If the transaction as a
// whole fails (BEGIN, COMMIT, or SQLite rolling everything back), every operation that had not
// already failed on its own reports that error. Exposed for tests; group_committer uses it.
std::vector<result<void>> commit_batch(connection& db, std::span<const write_operation* const> ops);

class group_committer {
 public:
  // Starts the writer thread, which owns `db` from now on.
  explicit group_committer(connection db);
  // Commits whatever is still queued, then stops the writer thread.
  // REQUIRES: no submit() is running or will run.
  ~group_committer();
  group_committer(const group_committer&) = delete;
  group_committer& operator=(const group_committer&) = delete;

  // Runs `op` in the next batch and returns its result once the batch has committed (durable).
  result<void> submit(const write_operation& op);

  // How many transactions the writer has committed or attempted (for measurements).
  std::uint64_t batches() const;

 private:
  // A queued operation. `op` stays valid while its caller waits on `outcome`.
  struct pending {
    const write_operation* op;
    std::promise<result<void>> outcome;
  };
  void writer_loop();

  connection db_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<pending> queue_;  // guarded by mutex_
  bool stopping_ = false;        // guarded by mutex_
  std::uint64_t batches_ = 0;    // guarded by mutex_
  std::thread writer_;           // last: started after everything it uses
};

}  // namespace berth::meta::sqlite
