// LiveFrameCache: encoded live-read data (e.g. an SSE `event: data` block) of one stream, shared by
// the live readers that wake at the same position. When an append wakes N readers that were all
// at the tail, the first one to run reads and encodes the new data once; the other N-1 find the
// immutable frame here and write the same bytes, without reading the log or encoding again.
//
// Guarantees:
// - A frame is found only under the exact key it was stored with: the read's start position, the
//   durable tail and closed flag it was read at, and the caller's variant (which names the
//   encoding). Durable data never changes, so a frame stored for a key stays correct for it.
// - Bounded: at most kSlots frames, each at most kMaxFrameBytes; frames for an older tail are
//   dropped when a frame for a newer tail is stored. Readers that are behind (catching up) are
//   expected to read on their own; their frames are not worth sharing.
// Thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace ds {

class LiveFrameCache {
 public:
  struct Frame {
    std::string bytes;           // encoded data, written as is
    uint64_t next_position = 0;  // resume position after this data
    size_t count = 0;            // messages encoded
  };
  static constexpr size_t kSlots = 4;
  static constexpr size_t kMaxFrameBytes = 256u << 10;

  // The frame stored for (from, tail, closed, variant), or null.
  std::shared_ptr<const Frame> find(uint64_t from, uint64_t tail, bool closed,
                                    std::string_view variant);
  // Stores a frame (ignored when larger than kMaxFrameBytes).
  void put(uint64_t from, uint64_t tail, bool closed, std::string_view variant,
           std::shared_ptr<const Frame> frame);
  // Drops every frame.
  void clear();

 private:
  struct Entry {
    uint64_t from = 0;
    uint64_t tail = 0;
    bool closed = false;
    std::string variant;
    std::shared_ptr<const Frame> frame;
  };
  std::mutex mu_;
  std::array<Entry, kSlots> slots_;
  size_t next_ = 0;
};

}  // namespace ds
