// SegmentSummary: what stays on disk of a sealed segment once its file is evicted to the bucket —
// every frame's metadata, checksum and message layout, but none of the message bytes.
//
// Guarantees:
// - A summary holds enough to replay the segment without its file: the log index (message offsets
//   and lengths within the segment file) and every frame's metadata (producer, Stream-Seq, close),
//   so writer state recovers exactly as from the file.
// - rebuild() turns the messages fetched back from the bucket into the segment file byte for byte;
//   it fails (kCorruption) unless every re-encoded frame matches the checksum recorded here, so a
//   fetched segment is either identical to the evicted one or not used.
// - The encoded summary carries its own checksum; decode() rejects a torn or altered one.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "store/frame.h"
#include "store/status.h"

namespace ds {

// How a stream's messages are laid out in its bucket objects (docs/s3.md).
enum class BucketEncoding : uint8_t {
  kSessionEvents = 0,  // one stored event per line, as is
  kStreamJson = 1,     // {"offset","data"|"text"|"base64"} lines, JSON-mode stream
  kStreamText = 2,     // {"offset","text"|"base64"} lines
};

struct SegmentSummary {
  struct Frame {
    FrameMeta meta;
    uint64_t checksum = 0;    // the frame header's xxh3 of the body
    uint32_t total_size = 0;  // header + body
    std::vector<std::pair<uint32_t, uint32_t>> messages;  // (offset in frame, length)
  };
  uint64_t first_position = 0;  // position of the segment's first message
  uint64_t size = 0;            // bytes of the segment file
  std::string bucket_prefix;    // key prefix of the stream's objects (with trailing '/')
  BucketEncoding encoding = BucketEncoding::kSessionEvents;
  std::vector<Frame> frames;

  // Positions the segment holds: [first_position, end_position()).
  uint64_t end_position() const;

  // Summarises the bytes of a sealed segment (every frame must be intact).
  static Status from_segment(std::string_view segment, uint64_t first_position,
                             SegmentSummary* out);
  void encode(std::string* out) const;
  static Status decode(std::string_view in, SegmentSummary* out);

  // The segment file's bytes from its messages (positions [first_position, end_position())).
  Status rebuild(const std::vector<std::string>& messages, std::string* segment) const;
};

}  // namespace ds
