// Runs a coroutine to completion on the calling thread, for code outside the server's event loop:
// start-up (before the server runs), command-line tools and tests. It blocks the calling thread, so
// it never runs on an I/O thread. Work the coroutine sends elsewhere (the blocking pool) resumes it
// here. An exception thrown by the coroutine is rethrown.
#pragma once

#include <utility>  // before Asio: boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

namespace berth {

template <class T>
T sync_wait(boost::asio::awaitable<T> work) {
  boost::asio::io_context ioc(1);
  auto done = boost::asio::co_spawn(ioc, std::move(work), boost::asio::use_future);
  ioc.run();
  return done.get();
}

}  // namespace berth
