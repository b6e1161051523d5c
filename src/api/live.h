// Live reading helpers shared by long-poll and SSE handlers.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "core/stream.h"

namespace ds {

// The live waiting of one connection, reused for each of its waits (an SSE response waits once per
// event). A wait costs no allocation and, while data keeps coming, no timer arming: the deadline
// timer is re-armed only when it fires early. Wake-ups come in chunks from the stream (see
// core/live_waiters.h): each chunk runs on an I/O thread and resumes its waiting connections there
// one after the other, so an append to a stream with N readers costs N/kWakeChunk scheduler
// hand-offs, spread over the I/O threads, instead of N.
// Created and used on the connection's executor; one wait at a time.
class LiveWait {
 public:
  explicit LiveWait(const boost::asio::any_io_executor& ex);
  ~LiveWait();  // cancels the deadline timer
  LiveWait(const LiveWait&) = delete;
  LiveWait& operator=(const LiveWait&) = delete;

  // Waits until `stream` has durable data at or after `from`, is closed or deleted, or `deadline`
  // passes. Returns true when woken by the stream (data, closure, deletion, shutdown), false on
  // timeout. Must be awaited on the executor given to the constructor.
  boost::asio::awaitable<bool> wait(std::shared_ptr<Stream> stream, uint64_t from,
                                    std::chrono::steady_clock::time_point deadline);

  // Ends the current wait, if any, as if woken (the caller then finds out why, e.g. the client
  // went away: Responder::watch_peer_close). On the constructor's executor.
  void interrupt();

  class Waiter;  // defined in live.cc

 private:
  std::shared_ptr<Waiter> w_;
};

// Sleeps until `deadline` (used between SSE heartbeats).
boost::asio::awaitable<void> sleep_until(std::chrono::steady_clock::time_point deadline);

// The protocol's cache-collapsing cursor: the current 20-second interval number since
// 2024-10-09T00:00:00Z, always strictly greater than the client's cursor when that one is not
// behind (random jitter added).
std::string next_cursor(const std::string* client_cursor);

// The cursors of one SSE connection: the first is next_cursor(client's cursor); each later one
// is the larger of that and the current interval, so they never go back (§10.1) and do not
// grow with every event (jitter is added once).
class CursorSequence {
 public:
  explicit CursorSequence(const std::string* client_cursor) : first_(next_cursor(client_cursor)) {}
  std::string next() const;

 private:
  std::string first_;
};

}  // namespace ds
