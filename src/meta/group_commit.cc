#include "meta/group_commit.h"

#include <future>
#include <utility>

namespace berth::meta::sqlite {
namespace {

// Ends a transaction that cannot commit: rolls back what SQLite has not already rolled back, and
// gives `cause` to every operation that would otherwise have reported success.
void abandon(connection& db, std::vector<result<void>>& results, const error& cause) {
  if (db.in_transaction()) (void)db.exec("ROLLBACK");  // a failure here is logged; nothing more to do
  for (auto& r : results) {
    if (r) r = std::unexpected(cause);
  }
}

// Runs one operation inside its own savepoint. Returns false when the transaction itself is lost
// (SQLite rolled it back, or the savepoint could not be managed), true otherwise.
bool run_in_savepoint(connection& db, const write_operation& op, result<void>& outcome) {
  if (auto r = db.exec("SAVEPOINT op"); !r) {
    outcome = std::unexpected(r.error());
    return false;
  }
  outcome = op(db);
  if (outcome) return db.exec("RELEASE op").has_value();
  // Some errors (disk full, I/O) make SQLite roll back the whole transaction, savepoints included.
  if (!db.in_transaction()) return false;
  return db.exec("ROLLBACK TO op").has_value() && db.exec("RELEASE op").has_value();
}

}  // namespace

std::vector<result<void>> commit_batch(connection& db, std::span<const write_operation* const> ops) {
  std::vector<result<void>> results(ops.size());
  if (auto r = db.exec("BEGIN IMMEDIATE"); !r) {
    abandon(db, results, r.error());
    return results;
  }
  for (std::size_t i = 0; i < ops.size(); ++i) {
    if (!run_in_savepoint(db, *ops[i], results[i])) {
      abandon(db, results, failure().error());
      return results;
    }
  }
  if (auto r = db.exec("COMMIT"); !r) abandon(db, results, r.error());
  return results;
}

group_committer::group_committer(connection db) : db_(std::move(db)), writer_([this] { writer_loop(); }) {}

group_committer::~group_committer() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  writer_.join();
}

result<void> group_committer::submit(const write_operation& op) {
  // The writer owns the promise, so the caller may return as soon as the result is set.
  std::promise<result<void>> promise;
  auto outcome = promise.get_future();
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(pending{&op, std::move(promise)});
  }
  wake_.notify_one();
  return outcome.get();
}

std::uint64_t group_committer::batches() const {
  std::lock_guard lock(mutex_);
  return batches_;
}

void group_committer::writer_loop() {
  std::vector<pending> batch;
  std::vector<const write_operation*> ops;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything queued has been committed
      batch.swap(queue_);
      ++batches_;
    }
    ops.clear();
    for (const pending& p : batch) ops.push_back(p.op);
    auto results = commit_batch(db_, ops);
    for (std::size_t i = 0; i < batch.size(); ++i) batch[i].outcome.set_value(std::move(results[i]));
    batch.clear();
  }
}

}  // namespace berth::meta::sqlite
