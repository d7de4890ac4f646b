// For tests: runs coroutines to completion from plain test code.
#pragma once

#include <utility>  // before Asio: boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>
#include <vector>

namespace berth::test_util {

// Runs `a` on a private io_context until it completes and returns its value (rethrows what it throws).
template <class T>
T await(boost::asio::awaitable<T> a) {
  boost::asio::io_context ioc;
  std::optional<std::conditional_t<std::is_void_v<T>, bool, T>> out;
  std::exception_ptr thrown;
  boost::asio::co_spawn(
      ioc,
      [&]() -> boost::asio::awaitable<void> {
        if constexpr (std::is_void_v<T>) {
          co_await std::move(a);
          out.emplace(true);
        } else {
          out.emplace(co_await std::move(a));
        }
      },
      [&](std::exception_ptr e) { thrown = e; });
  ioc.run();
  if (thrown) std::rethrow_exception(thrown);
  if constexpr (!std::is_void_v<T>) return std::move(*out);
}

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
