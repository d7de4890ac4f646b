// The behaviour every metadata_store implementation must have, as one parameterised GoogleTest
// suite (metadata_store_contract.cc): ordering, idempotency, not-found answers, concurrent writes,
// durability across reopen, paging, and the upload records with their leases. A backend's own test
// file registers it in a few lines:
//
//   INSTANTIATE_TEST_SUITE_P(sqlite, metadata_store_contract,
//                            ::testing::Values(metadata_backend{"sqlite", [](const std::string& dir) {...}}),
//                            metadata_backend_name);
//
// and links the metadata_store_contract object library into its test binary. Backend-specific behaviour (schema
// versions, WAL, how leases of a dead process end) stays in the backend's own tests.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "meta/metadata_store.h"

namespace berth::meta {

// The pusher and time the tests record when they do not look at them.
inline const push_stamp test_stamp{"user:test", 1'000'000, ""};

struct metadata_backend {
  std::string name;
  // Opens the store kept under `location`, an empty directory of its own for each test; opening
  // the same location again must find what was stored before (the reopen tests).
  std::function<std::unique_ptr<metadata_store>(const std::string& location)> open;
};
// GoogleTest prints a parameter in test names and failures: the backend's name, not its bytes.
inline void PrintTo(const metadata_backend& b, std::ostream* os) { *os << b.name; }

inline std::string metadata_backend_name(const ::testing::TestParamInfo<metadata_backend>& info) {
  return info.param.name;
}

class metadata_store_contract : public ::testing::TestWithParam<metadata_backend> {
 protected:
  void SetUp() override;
  void TearDown() override;
  // Closes the store and opens it again on the same location.
  void reopen();

  std::string location_;
  std::unique_ptr<metadata_store> store_;
};

}  // namespace berth::meta
