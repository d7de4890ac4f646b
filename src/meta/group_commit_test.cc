#include "meta/group_commit.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <future>
#include <thread>
#include <vector>

#include "meta/test_temp_dir.h"

namespace berth::meta::sqlite {
namespace {

class group_commit_test : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = connection::open(dir_.file("t.db"), connection::mode::read_write);
    ASSERT_TRUE(opened.has_value());
    db_.emplace(std::move(*opened));
    ASSERT_TRUE(db_->exec("CREATE TABLE t (v INTEGER PRIMARY KEY)").has_value());
  }

  // An operation that inserts `v` (failing on a duplicate, as a constraint error).
  static write_operation insert(std::int64_t v) {
    return [v](connection& db) { return db.prepare("INSERT INTO t(v) VALUES (?1)").bind(v).run(); };
  }

  std::vector<std::int64_t> values() {
    std::vector<std::int64_t> out;
    auto st = db_->prepare("SELECT v FROM t ORDER BY v");
    while (st.step().value_or(false)) out.push_back(st.int64(0));
    return out;
  }

  test_util::temp_dir dir_;
  std::optional<connection> db_;
};

TEST_F(group_commit_test, failing_operation_rolls_back_only_itself) {
  const write_operation first = insert(1);
  // Writes, then fails: its insert must not survive.
  const write_operation bad = [](connection& db) -> result<void> {
    if (auto r = db.prepare("INSERT INTO t(v) VALUES (2)").run(); !r) return r;
    return fail(errc::manifest_invalid, "refused");
  };
  const write_operation duplicate = insert(1);  // a SQLite constraint error
  const write_operation last = insert(3);
  const write_operation* ops[] = {&first, &bad, &duplicate, &last};

  auto results = commit_batch(*db_, ops);

  ASSERT_EQ(results.size(), 4u);
  EXPECT_TRUE(results[0].has_value());
  ASSERT_FALSE(results[1].has_value());
  EXPECT_EQ(results[1].error().code, errc::manifest_invalid);
  ASSERT_FALSE(results[2].has_value());
  EXPECT_EQ(results[2].error().code, errc::internal);
  EXPECT_TRUE(results[3].has_value());
  EXPECT_FALSE(db_->in_transaction());
  EXPECT_EQ(values(), (std::vector<std::int64_t>{1, 3}));
}

TEST_F(group_commit_test, failed_begin_fails_every_operation) {
  ASSERT_TRUE(db_->exec("BEGIN").has_value());  // BEGIN inside a transaction is an error
  const write_operation a = insert(1);
  const write_operation* ops[] = {&a};
  auto results = commit_batch(*db_, ops);
  ASSERT_FALSE(results[0].has_value());
  EXPECT_EQ(results[0].error().code, errc::internal);
  EXPECT_FALSE(db_->in_transaction());
  EXPECT_TRUE(values().empty());
}

// Writes queued while a commit is in flight join the next transaction: one commit for all of them.
TEST_F(group_commit_test, writes_queued_during_a_commit_share_the_next_one) {
  constexpr int followers = 40;
  std::promise<void> started;
  std::promise<void> gate;
  auto gate_open = gate.get_future().share();
  const write_operation first = [&](connection& db) {
    started.set_value();
    gate_open.wait();  // holds the writer inside the first batch
    return db.prepare("INSERT INTO t(v) VALUES (1000)").run();
  };
  std::vector<write_operation> ops;
  for (int i = 0; i < followers; ++i) ops.push_back(insert(i));
  std::vector<std::promise<result<void>>> outcomes(followers + 1);
  std::uint64_t batches = 0;
  {
    group_committer committer(std::move(*db_));
    committer.enqueue(first, durability::durable, [&](result<void> r) { outcomes[followers].set_value(std::move(r)); });
    started.get_future().wait();
    for (int i = 0; i < followers; ++i) {
      // Relaxed and durable writes mixed: the batch is then durable.
      committer.enqueue(ops[static_cast<std::size_t>(i)], i % 2 == 0 ? durability::relaxed : durability::durable,
                        [&, i](result<void> r) { outcomes[static_cast<std::size_t>(i)].set_value(std::move(r)); });
    }
    EXPECT_EQ(committer.queued(), static_cast<std::size_t>(followers));
    gate.set_value();
    for (auto& o : outcomes) EXPECT_TRUE(o.get_future().get().has_value());
    batches = committer.batches();
  }
  EXPECT_EQ(batches, 2u);
  auto reopened = connection::open(dir_.file("t.db"), connection::mode::read_write);
  ASSERT_TRUE(reopened.has_value());
  db_.emplace(std::move(*reopened));
  EXPECT_EQ(values().size(), static_cast<std::size_t>(followers + 1));
}

// A relaxed batch commits without fsync; the connection is back to synchronous=FULL afterwards, so
// the next durable batch is durable.
TEST_F(group_commit_test, relaxed_batch_restores_full_sync) {
  const auto synchronous = [&] {
    auto st = db_->prepare("PRAGMA synchronous");
    EXPECT_TRUE(st.step().value_or(false));
    return st.int64(0);
  };
  ASSERT_EQ(synchronous(), 2);  // FULL
  const write_operation a = insert(1);
  const write_operation* ops[] = {&a};
  auto results = commit_batch(*db_, ops, durability::relaxed);
  EXPECT_TRUE(results[0].has_value());
  EXPECT_EQ(synchronous(), 2);
  EXPECT_EQ(values(), std::vector<std::int64_t>{1});
}

TEST_F(group_commit_test, concurrent_enqueues_all_commit) {
  constexpr int threads = 8;
  constexpr int per_thread = 50;
  {
    group_committer committer(std::move(*db_));
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&committer, t] {
        for (int i = 0; i < per_thread; ++i) {
          const write_operation op = insert(t * per_thread + i);
          std::promise<result<void>> done;
          committer.enqueue(op, durability::durable, [&done](result<void> r) { done.set_value(std::move(r)); });
          EXPECT_TRUE(done.get_future().get().has_value());
        }
      });
    }
    for (auto& w : workers) w.join();
  }
  auto reopened = connection::open(dir_.file("t.db"), connection::mode::read_write);
  ASSERT_TRUE(reopened.has_value());
  db_.emplace(std::move(*reopened));
  EXPECT_EQ(values().size(), static_cast<std::size_t>(threads * per_thread));
}

}  // namespace
}  // namespace berth::meta::sqlite
