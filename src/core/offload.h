// Runs blocking work (SQLite commits, fsync) on a thread pool so the I/O threads never wait on disk.
// Usage inside a coroutine: `auto r = co_await pool.run([&] { return store.put(...); });`
// Thread-safety: run() may be called from any thread; the callable runs on a pool thread and the
// coroutine resumes on its own executor.
#pragma once

#include <utility>  // before Asio: boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstddef>
#include <type_traits>
#include <utility>

namespace berth {

class blocking_pool {
 public:
  explicit blocking_pool(std::size_t threads) : pool_(threads) {}
  ~blocking_pool() { pool_.join(); }

  template <class F>
  boost::asio::awaitable<std::invoke_result_t<F&>> run(F f) {
    using R = std::invoke_result_t<F&>;
    co_return co_await boost::asio::co_spawn(
        pool_.get_executor(),
        [&f]() -> boost::asio::awaitable<R> {
          if constexpr (std::is_void_v<R>) {
            f();
            co_return;
          } else {
            co_return f();
          }
        },
        boost::asio::use_awaitable);
  }

  // Runs the coroutine `a` on a pool thread and resumes the caller on its own executor with the
  // result: for a loop of blocking steps written as awaitables (a backend's reads that complete
  // inline on a local disk and suspend on a network one). REQUIRES: T is default-constructible.
  template <class T>
  boost::asio::awaitable<T> run(boost::asio::awaitable<T> a) {
    co_return co_await boost::asio::co_spawn(pool_.get_executor(), std::move(a), boost::asio::use_awaitable);
  }

  // For fire-and-forget work (asio::post, co_spawn with detached) that nobody awaits.
  boost::asio::thread_pool::executor_type executor() { return pool_.get_executor(); }

  void join() { pool_.join(); }

 private:
  boost::asio::thread_pool pool_;
};

}  // namespace berth
