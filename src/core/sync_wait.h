// Runs a coroutine to completion on the calling thread, for code outside the server's event loop:
// start-up (before the server runs), command-line tools and tests. It blocks the calling thread, so
// it never runs on an I/O thread. Work the coroutine sends elsewhere (the blocking pool) resumes it
// here. An exception thrown by the coroutine is rethrown. T need not be default-constructible.
#pragma once

#include <utility>  // before Asio: boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <exception>
#include <optional>
#include <type_traits>

namespace berth {

template <class T>
T sync_wait(boost::asio::awaitable<T> work) {
  boost::asio::io_context ioc(1);
  std::optional<std::conditional_t<std::is_void_v<T>, bool, T>> out;
  std::exception_ptr thrown;
  boost::asio::co_spawn(
      ioc,
      [&]() -> boost::asio::awaitable<void> {
        if constexpr (std::is_void_v<T>) {
          co_await std::move(work);
          out.emplace(true);
        } else {
          T value = co_await std::move(work);  // GCC 12: a co_await is its own statement
          out.emplace(std::move(value));
        }
      },
      [&](std::exception_ptr e) { thrown = e; });
  ioc.run();
  if (thrown) std::rethrow_exception(thrown);
  if constexpr (!std::is_void_v<T>) return std::move(*out);
}

}  // namespace berth
