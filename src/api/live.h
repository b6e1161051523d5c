// Live reading helpers shared by long-poll and SSE handlers.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "core/stream.h"

namespace ds {

// Waits until `stream` has durable data at or after `from`, is closed or deleted, or `deadline`
// passes. Returns true when woken by the stream (data, closure, deletion, shutdown), false on
// timeout. Must be awaited on the connection's executor.
boost::asio::awaitable<bool> wait_for_data(std::shared_ptr<Stream> stream, uint64_t from,
                                           std::chrono::steady_clock::time_point deadline);

// Sleeps until `deadline` (used between SSE heartbeats).
boost::asio::awaitable<void> sleep_until(std::chrono::steady_clock::time_point deadline);

// The protocol's cache-collapsing cursor: the current 20-second interval number since
// 2024-10-09T00:00:00Z, always strictly greater than the client's cursor when that one is not
// behind (random jitter added).
std::string next_cursor(const std::string* client_cursor);

}  // namespace ds
