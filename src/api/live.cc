#include "api/live.h"

#include <algorithm>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <optional>
#include <random>

#include "core/clock.h"

namespace ds {

namespace asio = boost::asio;

using Clock = std::chrono::steady_clock;
using WaitHandler = asio::async_result<asio::use_awaitable_t<>, void(bool)>::handler_type;

// The registration a LiveWait puts on a stream. All members are used on the connection's
// executor only (the timer and the wake-up complete there).
class LiveWait::Waiter final : public LiveWaiter, public std::enable_shared_from_this<Waiter> {
 public:
  explicit Waiter(const asio::any_io_executor& ex) : ex_(ex), timer_(ex) {
    if (const IoExecutor* io = ex.target<IoExecutor>()) io_ = *io;
  }

  asio::awaitable<bool> wait(std::shared_ptr<Stream> stream, uint64_t from,
                             Clock::time_point deadline) {
    if (!stream->add_live_waiter(from, shared_from_this())) co_return true;
    stream_ = std::move(stream);
    deadline_ = deadline;
    if (!timer_armed_ || timer_at_ > deadline) arm(deadline);
    bool woke = co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(bool)>(
        [this](WaitHandler h) { handler_.emplace(std::move(h)); }, asio::use_awaitable);
    stream_.reset();
    co_return woke;
  }

  // A chunk runs on this connection's I/O thread; wake_in_chunks() groups the waiters of one
  // thread into the same chunks, so each wake() below resumes its connection inline.
  void run_chunk(std::function<void()> chunk) override {
    if (io_) {
      asio::post(*io_, std::move(chunk));
    } else {
      asio::post(ex_, std::move(chunk));
    }
  }
  const void* affinity() const override {
    return io_ ? static_cast<const void*>(&io_->context()) : nullptr;
  }

  void wake() override {
    auto resume = [self = shared_from_this()] { self->complete(true); };
    if (io_) {
      asio::dispatch(*io_, std::move(resume));  // the usual case, without type erasure
    } else {
      asio::dispatch(ex_, std::move(resume));
    }
  }

  void interrupt() {
    // Unless a wake-up already claimed the registration (it then completes the wait itself).
    if (handler_ && stream_ && stream_->remove_live_waiter(this)) complete(true);
  }

  void close() {
    ++timer_gen_;
    timer_armed_ = false;
    timer_.cancel();
  }

 private:
  void arm(Clock::time_point at) {
    timer_at_ = at;
    timer_armed_ = true;
    uint64_t gen = ++timer_gen_;
    timer_.expires_at(at);
    timer_.async_wait([self = shared_from_this(), gen](const boost::system::error_code&) {
      self->on_timer(gen);
    });
  }

  void on_timer(uint64_t gen) {
    if (gen != timer_gen_) return;  // re-armed or closed since
    timer_armed_ = false;
    if (!handler_) return;  // not waiting: the next wait arms it again
    if (Clock::now() < deadline_) {
      arm(deadline_);
      return;
    }
    // Time out unless a wake-up already claimed the registration (it then completes the wait).
    if (stream_ && stream_->remove_live_waiter(this)) complete(false);
  }

  void complete(bool woke) {
    if (!handler_) return;
    WaitHandler h = std::move(*handler_);
    handler_.reset();
    std::move(h)(woke);
  }

  using IoExecutor = asio::io_context::executor_type;
  asio::any_io_executor ex_;
  std::optional<IoExecutor> io_;  // ex_ itself when it is an io_context's executor
  asio::steady_timer timer_;
  bool timer_armed_ = false;
  uint64_t timer_gen_ = 0;
  Clock::time_point timer_at_{};
  Clock::time_point deadline_{};
  std::shared_ptr<Stream> stream_;  // while waiting
  std::optional<WaitHandler> handler_;
};

LiveWait::LiveWait(const asio::any_io_executor& ex) : w_(std::make_shared<Waiter>(ex)) {}

LiveWait::~LiveWait() { w_->close(); }

asio::awaitable<bool> LiveWait::wait(std::shared_ptr<Stream> stream, uint64_t from,
                                     Clock::time_point deadline) {
  return w_->wait(std::move(stream), from, deadline);
}

void LiveWait::interrupt() { w_->interrupt(); }

asio::awaitable<void> sleep_until(std::chrono::steady_clock::time_point deadline) {
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer timer(ex, deadline);
  co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
}

std::string next_cursor(const std::string* client_cursor) {
  constexpr int64_t kEpochMs = 1728432000000;  // 2024-10-09T00:00:00Z
  constexpr int64_t kIntervalMs = 20000;
  int64_t interval = (now_unix_millis() - kEpochMs) / kIntervalMs;
  std::string now = std::to_string(interval);
  // The client's cursor, when it is a plain decimal number of any length (the request-target
  // limit bounds it; signs and other text are not cursors this protocol produces: ignored).
  if (client_cursor == nullptr || client_cursor->empty() ||
      !std::all_of(client_cursor->begin(), client_cursor->end(),
                   [](char c) { return c >= '0' && c <= '9'; })) {
    return now;
  }
  std::string c = client_cursor->substr(std::min(client_cursor->find_first_not_of('0'),
                                                 client_cursor->size() - 1));
  bool ahead_or_equal = c.size() != now.size() ? c.size() > now.size() : c >= now;
  if (!ahead_or_equal) return now;
  // §10.1: strictly greater than the client's cursor, by 1..3600 seconds of jitter in whole
  // intervals (at least one), in decimal so that no cursor can overflow.
  thread_local std::mt19937 rng{std::random_device{}()};
  uint32_t add = static_cast<uint32_t>(std::max<int64_t>(1, (1 + rng() % 3600) * 1000 / kIntervalMs));
  for (size_t i = c.size(); i-- > 0 && add > 0;) {
    uint32_t d = static_cast<uint32_t>(c[i] - '0') + add;
    c[i] = static_cast<char>('0' + d % 10);
    add = d / 10;
  }
  if (add > 0) c.insert(0, std::to_string(add));
  return c;
}

std::string CursorSequence::next() const {
  std::string now = next_cursor(nullptr);  // decimal, no leading zeros, like first_
  bool now_larger = now.size() != first_.size() ? now.size() > first_.size() : now > first_;
  return now_larger ? now : first_;
}

}  // namespace ds
