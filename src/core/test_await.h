// For tests: runs many coroutines at once from plain test code (one at a time: core/sync_wait.h).
#pragma once

#include <utility>  // before Asio: boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace berth::test_util {

// Runs `count` coroutines made by make(i) at once on `threads` threads, until all complete.
inline void await_all(int count, int threads, const std::function<boost::asio::awaitable<void>(int)>& make) {
  boost::asio::io_context ioc(threads);
  std::mutex mutex;
  std::exception_ptr thrown;  // guarded by mutex
  for (int i = 0; i < count; ++i) {
    boost::asio::co_spawn(ioc, make(i), [&](std::exception_ptr e) {
      std::lock_guard lock(mutex);
      if (e) thrown = e;
    });
  }
  std::vector<std::jthread> runners;
  for (int t = 1; t < threads; ++t) runners.emplace_back([&ioc] { ioc.run(); });
  ioc.run();
  runners.clear();
  if (thrown) std::rethrow_exception(thrown);
}

}  // namespace berth::test_util
