// await_callback: turns a callback-style store/core operation into something a handler coroutine
// can co_await. The callback may run on any thread (e.g. the group-commit thread); the coroutine
// resumes on its own executor.
#pragma once

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <functional>
#include <memory>

namespace ds {

// `start` receives a std::function<void(T)>; call it exactly once with the result.
template <typename T, typename F>
boost::asio::awaitable<T> await_callback(F start) {
  namespace asio = boost::asio;
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(T)>(
      [&start](auto handler) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        start(std::function<void(T)>([h](T v) {
          auto ex = asio::get_associated_executor(*h);
          asio::post(ex, [h, v = std::move(v)]() mutable { (*h)(std::move(v)); });
        }));
      },
      asio::use_awaitable);
}

}  // namespace ds
