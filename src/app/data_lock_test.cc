#include "app/data_lock.h"

#include <fmt/core.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "meta/test_temp_dir.h"

namespace berth::app {
namespace {

std::string lock_file_text(const std::string& dir) {
  std::ifstream in(std::filesystem::path(dir) / "LOCK");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// flock(2) locks belong to an open file, so a second data_lock in the same process conflicts
// exactly as a second process would.
TEST(DataLock, ASecondHolderIsRefusedWithTheDirectoryAndPid) {
  meta::test_util::temp_dir tmp;
  const std::string dir = tmp.file("data");
  std::filesystem::create_directory(dir);
  std::optional<data_lock> first(std::in_place, dir);
  EXPECT_EQ(lock_file_text(dir), fmt::format("{}\n", ::getpid()));
  try {
    data_lock second(dir);
    FAIL() << "the directory was locked twice";
  } catch (const std::runtime_error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(dir), std::string::npos) << message;
    EXPECT_NE(message.find(fmt::format("pid {}", ::getpid())), std::string::npos) << message;
  }
  EXPECT_EQ(lock_file_text(dir), fmt::format("{}\n", ::getpid()));  // the refused one changed nothing

  first.reset();
  EXPECT_EQ(lock_file_text(dir), "");
  EXPECT_NO_THROW(data_lock again(dir));
}

TEST(DataLock, AnUncreatableLockFileIsAnError) {
  EXPECT_THROW(data_lock("/nonexistent/berth-data"), std::runtime_error);
}

}  // namespace
}  // namespace berth::app
