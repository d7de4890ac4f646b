#include "meta/group_commit.h"

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

std::vector<result<void>> commit_batch(connection& db, std::span<const write_operation* const> ops, durability d) {
  std::vector<result<void>> results(ops.size());
  // The connection is FULL between batches; a relaxed batch lowers it for its own commit only.
  const bool relaxed = d == durability::relaxed;
  if (relaxed) (void)db.exec("PRAGMA synchronous = NORMAL");  // on failure: committed durably, no harm
  struct restore {
    connection& db;
    bool relaxed;
    ~restore() {
      if (relaxed) (void)db.exec("PRAGMA synchronous = FULL");
    }
  } restore_full{db, relaxed};
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

void group_committer::enqueue(const write_operation& op, durability d, completion done) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(pending{&op, d, std::move(done)});
  }
  wake_.notify_one();
}

std::uint64_t group_committer::batches() const {
  std::lock_guard lock(mutex_);
  return batches_;
}

std::size_t group_committer::queued() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
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
    durability d = durability::relaxed;
    for (const pending& p : batch) {
      ops.push_back(p.op);
      if (p.d == durability::durable) d = durability::durable;
    }
    auto results = commit_batch(db_, ops, d);
    for (std::size_t i = 0; i < batch.size(); ++i) batch[i].done(std::move(results[i]));
    batch.clear();
  }
}

}  // namespace berth::meta::sqlite
