// run_blocking: runs work that can hold a thread for milliseconds — a Xapian search scoring long
// posting lists, reading its hits back from the logs — on a separate thread pool, so that the
// I/O thread keeps serving its other connections (appends, live reads) meanwhile. The coroutine
// resumes on its own executor once the work has returned.
#pragma once

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <exception>

#include "api/await.h"

namespace ds {

// Runs fn() on `pool` (inline when pool is null) and resumes when it has returned; an exception
// it throws is rethrown here. fn may refer to the caller's locals: the caller stays suspended
// until fn has returned.
template <typename F>
boost::asio::awaitable<void> run_blocking(boost::asio::thread_pool* pool, F fn) {
  if (pool == nullptr) {
    fn();
    co_return;
  }
  std::exception_ptr error;
  co_await await_callback<bool>([pool, &fn, &error](std::function<void(bool)> done) {
    boost::asio::post(*pool, [&fn, &error, done = std::move(done)] {
      try {
        fn();
      } catch (...) {
        error = std::current_exception();
      }
      done(true);
    });
  });
  if (error) std::rethrow_exception(error);
}

}  // namespace ds
