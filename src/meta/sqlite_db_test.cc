#include "meta/sqlite_db.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "meta/test_temp_dir.h"

namespace berth::meta::sqlite {
namespace {

class Migrate : public ::testing::Test {
 protected:
  connection open() {
    auto db = connection::open(path_, connection::mode::read_write);
    if (!db) throw std::runtime_error("cannot open the test database");
    return std::move(*db);
  }

  static std::int64_t version(connection& db) {
    auto st = db.prepare("PRAGMA user_version");
    auto row = st.step();
    return row && *row ? st.int64(0) : -1;
  }

  static std::int64_t count(connection& db, const std::string& table) {
    auto st = db.prepare("SELECT count(*) FROM " + table);
    auto row = st.step();
    return row && *row ? st.int64(0) : -1;
  }

  test_util::temp_dir dir_;
  std::string path_ = dir_.file("test.db");
};

constexpr const char* first[] = {"CREATE TABLE a (x INTEGER);"};
constexpr const char* both[] = {"CREATE TABLE a (x INTEGER);", "CREATE TABLE b (y INTEGER); INSERT INTO a VALUES (1);"};

TEST_F(Migrate, FreshDatabaseGetsEveryStep) {
  auto db = open();
  migrate(db, both, path_);
  EXPECT_EQ(version(db), 2);
  EXPECT_EQ(count(db, "a"), 1);
  EXPECT_EQ(count(db, "b"), 0);
}

TEST_F(Migrate, OnlyTheMissingStepsRunAndRerunningIsANoOp) {
  {
    auto db = open();
    migrate(db, first, path_);
    EXPECT_EQ(version(db), 1);
  }
  auto db = open();
  migrate(db, both, path_);  // would fail on "CREATE TABLE a" if step 0 ran again
  EXPECT_EQ(version(db), 2);
  migrate(db, both, path_);
  EXPECT_EQ(version(db), 2);
  EXPECT_EQ(count(db, "a"), 1);  // step 1's INSERT ran once
}

TEST_F(Migrate, RefusesANewerDatabaseNamingIt) {
  auto db = open();
  migrate(db, both, path_);
  try {
    migrate(db, first, path_);
    FAIL() << "a version-2 database was accepted by a version-1 schema";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path_), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("newer Berth"), std::string::npos) << e.what();
  }
  EXPECT_EQ(version(db), 2);
}

TEST_F(Migrate, AFailedStepLeavesThePreviousVersionIntact) {
  constexpr const char* broken[] = {"CREATE TABLE a (x INTEGER);",
                                    "CREATE TABLE b (y INTEGER); INSERT INTO nowhere VALUES (1);"};
  auto db = open();
  EXPECT_THROW(migrate(db, broken, path_), std::runtime_error);
  EXPECT_FALSE(db.in_transaction());
  EXPECT_EQ(version(db), 1);
  EXPECT_EQ(count(db, "b"), -1);  // step 1 rolled back as a whole: no table b
  migrate(db, both, path_);       // and the fixed step applies afterwards
  EXPECT_EQ(version(db), 2);
}

}  // namespace
}  // namespace berth::meta::sqlite
