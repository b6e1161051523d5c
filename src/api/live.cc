#include "api/live.h"

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <random>

#include "core/clock.h"

namespace ds {

namespace asio = boost::asio;

asio::awaitable<bool> wait_for_data(std::shared_ptr<Stream> stream, uint64_t from,
                                    std::chrono::steady_clock::time_point deadline) {
  auto ex = co_await asio::this_coro::executor;
  // One allocation for the timer and the flag; the wake-up posts the cancel to our executor.
  struct State {
    State(const asio::any_io_executor& e, std::chrono::steady_clock::time_point d) : timer(e, d) {}
    asio::steady_timer timer;
    std::atomic<bool> woke{false};
  };
  auto st = std::make_shared<State>(ex, deadline);
  uint64_t id = 0;
  bool registered = stream->add_waiter(from, &id, [st] {
    st->woke.store(true);
    asio::post(st->timer.get_executor(), [st] { st->timer.cancel(); });
  });
  if (!registered) co_return true;
  co_await st->timer.async_wait(asio::as_tuple(asio::use_awaitable));
  if (!st->woke.load()) stream->remove_waiter(id);  // a wake-up already removed it
  co_return st->woke.load();
}

asio::awaitable<void> sleep_until(std::chrono::steady_clock::time_point deadline) {
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer timer(ex, deadline);
  co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
}

std::string next_cursor(const std::string* client_cursor) {
  constexpr int64_t kEpochMs = 1728432000000;  // 2024-10-09T00:00:00Z
  constexpr int64_t kIntervalMs = 20000;
  int64_t interval = (now_unix_millis() - kEpochMs) / kIntervalMs;
  if (client_cursor != nullptr) {
    char* end = nullptr;
    long long c = std::strtoll(client_cursor->c_str(), &end, 10);
    if (end != client_cursor->c_str() && *end == '\0' && c >= interval) {
      thread_local std::mt19937 rng{std::random_device{}()};
      // 1..3600 seconds of jitter, in whole intervals (at least one).
      int64_t jitter_s = 1 + static_cast<int64_t>(rng() % 3600);
      interval = c + std::max<int64_t>(1, jitter_s * 1000 / kIntervalMs);
    }
  }
  return std::to_string(interval);
}

}  // namespace ds
