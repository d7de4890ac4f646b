#include "meta/group_commit.h"

#include <gtest/gtest.h>

#include <cstdint>
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

TEST_F(group_commit_test, concurrent_submits_all_commit) {
  constexpr int threads = 8;
  constexpr int per_thread = 50;
  std::uint64_t batches = 0;
  {
    group_committer committer(std::move(*db_));
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&committer, t] {
        for (int i = 0; i < per_thread; ++i) {
          EXPECT_TRUE(committer.submit(insert(t * per_thread + i)).has_value());
        }
      });
    }
    for (auto& w : workers) w.join();
    batches = committer.batches();
  }
  auto reopened = connection::open(dir_.file("t.db"), connection::mode::read_write);
  ASSERT_TRUE(reopened.has_value());
  db_.emplace(std::move(*reopened));
  EXPECT_EQ(values().size(), static_cast<std::size_t>(threads * per_thread));
  std::printf("[ figures  ] %d writes from %d threads committed in %llu transactions\n", threads * per_thread,
              threads, static_cast<unsigned long long>(batches));
}

}  // namespace
}  // namespace berth::meta::sqlite
