// The contract every identity_store implementation passes: a value-parameterised GoogleTest suite
// (identity_store_contract.cc). A backend's own test file registers it with a few lines:
//
//   INSTANTIATE_TEST_SUITE_P(SQLite, IdentityStoreContract,
//                            ::testing::Values(identity_store_backend{"sqlite", [] { return ...; }}),
//                            identity_store_backend::name_of);
//
// and its test executable links the `identity_store_contract` object library.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "auth/identity_store.h"
#include "core/offload.h"

namespace berth::auth::contract {

// Storage for one test: starts empty and is dropped when the test ends (a temporary directory, a
// scratch database). open() may be called again after the previous store is destroyed and must
// then see everything written before (durability across reopen).
class identity_store_storage {
 public:
  virtual ~identity_store_storage() = default;
  virtual std::unique_ptr<identity_store> open(blocking_pool& pool) = 0;
};

struct identity_store_backend {
  std::string name;  // a test-name fragment: letters, digits, '_'
  std::function<std::unique_ptr<identity_store_storage>()> fresh_storage;

  static std::string name_of(const ::testing::TestParamInfo<identity_store_backend>& info) { return info.param.name; }
};
// GoogleTest prints a parameter in test names and failures: the backend's name, not its bytes.
inline void PrintTo(const identity_store_backend& b, std::ostream* os) { *os << b.name; }

class IdentityStoreContract : public ::testing::TestWithParam<identity_store_backend> {
 protected:
  void SetUp() override;
  void TearDown() override;
  // Destroys the store and opens the same storage again.
  void reopen();

  blocking_pool pool_{4};
  std::unique_ptr<identity_store_storage> storage_;
  std::unique_ptr<identity_store> store_;
};

}  // namespace berth::auth::contract
