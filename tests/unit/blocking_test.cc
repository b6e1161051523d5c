// run_blocking (api/blocking.h): the work runs on the pool, the coroutine resumes on its own
// executor afterwards, exceptions come back to the coroutine, and the I/O thread is free while
// the work runs.
#include "api/blocking.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <future>
#include <stdexcept>
#include <thread>

namespace ds {
namespace {

namespace asio = boost::asio;

TEST(RunBlocking, RunsOnThePoolAndResumesOnTheCallersThread) {
  asio::io_context io;
  asio::thread_pool pool(1);
  std::thread::id io_thread, work_thread, resumed_on;
  bool done = false;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    io_thread = std::this_thread::get_id();
    co_await run_blocking(&pool, [&] { work_thread = std::this_thread::get_id(); });
    resumed_on = std::this_thread::get_id();
    done = true;
  }, asio::detached);
  io.run();
  pool.join();
  ASSERT_TRUE(done);
  EXPECT_NE(work_thread, io_thread);
  EXPECT_EQ(resumed_on, io_thread);
}

TEST(RunBlocking, WithoutAPoolRunsInline) {
  asio::io_context io;
  std::thread::id io_thread, work_thread;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    io_thread = std::this_thread::get_id();
    co_await run_blocking(nullptr, [&] { work_thread = std::this_thread::get_id(); });
  }, asio::detached);
  io.run();
  EXPECT_EQ(work_thread, io_thread);
}

TEST(RunBlocking, ExceptionsReachTheCoroutine) {
  asio::io_context io;
  asio::thread_pool pool(1);
  std::string caught;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    try {
      co_await run_blocking(&pool, [] { throw std::runtime_error("boom"); });
    } catch (const std::runtime_error& e) {
      caught = e.what();
    }
  }, asio::detached);
  io.run();
  pool.join();
  EXPECT_EQ(caught, "boom");
}

// While the work is blocked, other handlers of the same io_context still run: the blocked work
// waits for a promise that only another coroutine on the I/O thread fulfils. If run_blocking ran
// the work on the I/O thread, this would never finish (the test would hang, then time out).
TEST(RunBlocking, TheIoThreadServesOthersMeanwhile) {
  asio::io_context io;
  asio::thread_pool pool(1);
  std::promise<void> other_ran;
  bool finished = false;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    co_await run_blocking(&pool, [&] { other_ran.get_future().wait(); });
    finished = true;
  }, asio::detached);
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    other_ran.set_value();
    co_return;
  }, asio::detached);
  io.run();
  pool.join();
  EXPECT_TRUE(finished);
}

}  // namespace
}  // namespace ds
