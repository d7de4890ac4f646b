// The behaviour every blob_store implementation must have, as one parameterised GoogleTest suite
// (blob_store_contract.cc): not-found answers, reads at any offset, uploads appended in pieces of
// any size, dedup on commit, concurrent commits of the same and of different blobs, concurrent
// deletes, durability across reopen. A backend's own test file registers it in a few lines:
//
//   INSTANTIATE_TEST_SUITE_P(fs, blob_store_contract,
//                            ::testing::Values(blob_backend{"fs", [](const std::string& dir, blocking_pool& pool) {...}}),
//                            blob_backend_name);
//
// and links the blob_store_contract object library into its test binary. What only one backend does (its layout on
// disk, write-back, start-up clean-up) stays in its own tests.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <ostream>
#include <optional>
#include <string>

#include "core/offload.h"
#include "storage/blob_store.h"

namespace berth::storage {

struct blob_backend {
  std::string name;
  // Opens the store kept under `location`, an empty directory of its own for each test; opening
  // the same location again must find what was stored before (the reopen tests).
  std::function<std::unique_ptr<blob_store>(const std::string& location, blocking_pool& pool)> open;
};
// GoogleTest prints a parameter in test names and failures: the backend's name, not its bytes.
inline void PrintTo(const blob_backend& b, std::ostream* os) { *os << b.name; }

inline std::string blob_backend_name(const ::testing::TestParamInfo<blob_backend>& info) { return info.param.name; }

class blob_store_contract : public ::testing::TestWithParam<blob_backend> {
 protected:
  void SetUp() override;
  void TearDown() override;
  // Closes the store and opens it again on the same location.
  void reopen();

  std::string location_;
  std::optional<blocking_pool> pool_;
  std::unique_ptr<blob_store> store_;
};

}  // namespace berth::storage
