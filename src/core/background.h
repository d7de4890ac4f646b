// One piece of work running beside the coroutine that started it, awaited later: the server reads
// the next piece of a blob while it writes the last one to the socket; the S3 store PUTs a full
// chunk while the request body keeps arriving. The work runs on the executor it is started on (a
// connection's strand, or the blocking pool for a blocking call) and owns everything it touches;
// it runs to its end even when nobody awaits it (a dropped owner), so work that borrows from its
// owner (a buffer, a reader) must be awaited before the owner lets go of them.
// Thread-safety: start(), finished() and wait() by one coroutine at a time; the work may complete on
// any thread.
#pragma once

#include <utility>  // before Asio: boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>

namespace berth {

// REQUIRES: T is default-constructible (what co_spawn hands over when the work throws).
template <class T>
class background {
 public:
  // Starts `work` on `ex`. REQUIRES: nothing started since the last wait().
  template <class Executor>
  void start(const Executor& ex, boost::asio::awaitable<T> work) {
    state_ = std::make_shared<state>();
    boost::asio::co_spawn(ex, std::move(work), [s = state_](std::exception_ptr thrown, T value) {
      std::move_only_function<void()> resume;
      {
        std::lock_guard lock(s->mutex);
        s->thrown = thrown;
        s->outcome.emplace(std::move(value));
        resume = std::move(s->resume);
      }
      if (resume) resume();
    });
  }

  // Starts the blocking call `f` on `ex` (the blocking pool's executor).
  template <class Executor, class F>
  void start_call(const Executor& ex, F f) {
    start(ex, call(std::move(f)));
  }

  bool started() const { return state_ != nullptr; }
  // Whether wait() would complete at once. REQUIRES: started().
  bool finished() const {
    std::lock_guard lock(state_->mutex);
    return state_->outcome.has_value();
  }

  // The result of the work started last, once it has finished (rethrows what it threw); resumes on
  // the caller's executor. REQUIRES: started().
  boost::asio::awaitable<T> wait() {
    auto initiate = [s = state_](auto handler) {
      std::unique_lock lock(s->mutex);
      if (s->outcome) {
        lock.unlock();
        boost::asio::post(std::move(handler));
        return;
      }
      s->resume = [h = std::move(handler)]() mutable { boost::asio::post(std::move(h)); };
    };
    co_await boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&, void()>(initiate,
                                                                                        boost::asio::use_awaitable);
    const auto s = std::move(state_);
    if (s->thrown) std::rethrow_exception(s->thrown);
    co_return std::move(*s->outcome);
  }

 private:
  struct state {
    std::mutex mutex;
    std::optional<T> outcome;                // guarded by mutex; set once the work has ended
    std::exception_ptr thrown;               // guarded by mutex
    std::move_only_function<void()> resume;  // guarded by mutex; the waiter, if it came first
  };

  // The coroutine's frame owns `f` (a lambda coroutine's captures would not outlive its call).
  template <class F>
  static boost::asio::awaitable<T> call(F f) {
    co_return f();
  }

  std::shared_ptr<state> state_;
};

}  // namespace berth
