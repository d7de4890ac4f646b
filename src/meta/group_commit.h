// Group commit over one SQLite writer connection. Callers queue a write operation; a single writer
// thread takes every operation queued so far, runs them in ONE transaction (each in its own
// SAVEPOINT, so a failing operation rolls back only itself), commits once (one fsync for the whole
// batch) and then completes each caller with its own result. A lone caller is committed at once:
// the writer never waits for a batch to fill, batches form only while a commit is in flight.
// Callers do not block: a coroutine awaits commit() and resumes on its own executor.
//
// Thread-safety: enqueue() and commit() may be called from any number of threads. Operations run on
// the writer thread, one at a time, with exclusive use of the writer connection.
#pragma once

#include <utility>  // before Asio: boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <condition_variable>
#include <cstdint>
#include <functional>
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

// durable: the commit is fsynced before the write completes (survives a power failure).
// relaxed: committed without an fsync (WAL with synchronous=NORMAL): survives a crash of the
// process, not of the machine; the next durable commit syncs it too. A batch is durable when any
// of its writes is.
enum class durability { durable, relaxed };

// Runs `ops` in one transaction on `db`, each inside a savepoint, and commits. Returns one result
// per operation: the operation's own error, or success once committed. If the transaction as a
// whole fails (BEGIN, COMMIT, or SQLite rolling everything back), every operation that had not
// already failed on its own reports that error. Exposed for tests; group_committer uses it.
std::vector<result<void>> commit_batch(connection& db, std::span<const write_operation* const> ops,
                                       durability d = durability::durable);

class group_committer {
 public:
  // Called on the writer thread with the operation's result; must not block.
  using completion = std::move_only_function<void(result<void>)>;

  // Starts the writer thread, which owns `db` from now on.
  explicit group_committer(connection db);
  // Commits whatever is still queued, then stops the writer thread.
  // REQUIRES: no enqueue() is running or will run.
  ~group_committer();
  group_committer(const group_committer&) = delete;
  group_committer& operator=(const group_committer&) = delete;

  // Runs `op` in the next batch and calls `done` with its result once the batch has committed.
  // REQUIRES: `op` stays valid until `done` is called.
  void enqueue(const write_operation& op, durability d, completion done);

  // Runs `op` in the next batch; the caller resumes on its own executor with the result once the
  // batch has committed. The pending write keeps the caller's io_context running.
  boost::asio::awaitable<result<void>> commit(const write_operation& op, durability d) {
    namespace asio = boost::asio;
    return asio::async_initiate<const asio::use_awaitable_t<>&, void(result<void>)>(
        [this, &op, d](auto handler) {
          auto work = asio::prefer(asio::get_associated_executor(handler), asio::execution::outstanding_work.tracked);
          enqueue(op, d, [handler = std::move(handler), work = std::move(work)](result<void> r) mutable {
            auto ex = std::move(work);
            asio::post(ex, [handler = std::move(handler), r = std::move(r)]() mutable { handler(std::move(r)); });
          });
        },
        asio::use_awaitable);
  }

  // How many transactions the writer has committed or attempted, and how many operations wait for
  // the next one (for tests and measurements).
  std::uint64_t batches() const;
  std::size_t queued() const;

 private:
  struct pending {
    const write_operation* op;
    durability d;
    completion done;
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
