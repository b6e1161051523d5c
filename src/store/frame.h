// Frame: the unit written to a segment file by one append.
//
// One append request (a batch of messages, possibly empty for a close-only request) becomes one
// frame, written with one pwrite. Layout (little endian):
//
//   u32 magic "DSF1" | u32 body_length | u64 xxh3(body) | body
//   body = u8 flags | u64 first_position | u32 message_count | u64 unix_millis
//          [flags & kHasProducer]  u32 id_len | id | u64 epoch | u64 seq
//          [flags & kHasStreamSeq] u32 len | bytes
//          message_count x (u32 len | bytes)
//
// A frame is all-or-nothing: recovery keeps a frame only when its checksum matches, so a batch is
// never half visible. Producer and Stream-Seq state travel inside the frame that they guard, so
// the data and the dedup state cannot disagree after a crash.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ds {

inline constexpr uint32_t kFrameMagic = 0x31465344;  // "DSF1"
inline constexpr size_t kFrameHeaderSize = 16;

struct ProducerStamp {
  std::string id;
  uint64_t epoch = 0;
  uint64_t seq = 0;
};

struct FrameMeta {
  enum Flags : uint8_t { kCloses = 1, kHasProducer = 2, kHasStreamSeq = 4 };
  bool closes = false;
  uint64_t first_position = 0;
  uint64_t unix_millis = 0;
  std::optional<ProducerStamp> producer;
  std::optional<std::string> stream_seq;
};

// Appends the encoded frame to *out.
void encode_frame(const FrameMeta& meta, const std::vector<std::string_view>& messages,
                  std::string* out);

// Where each message of a decoded frame lies, relative to the start of the frame.
struct DecodedFrame {
  FrameMeta meta;
  std::vector<std::pair<uint32_t, uint32_t>> messages;  // (offset in frame, length)
  size_t total_size = 0;                                // header + body
};

enum class DecodeResult { kOk, kIncomplete, kCorrupt };

// Decodes the frame at the start of `buf`. kIncomplete: more bytes are needed (a torn tail when
// at end of file); kCorrupt: bad magic, checksum or structure.
DecodeResult decode_frame(std::string_view buf, DecodedFrame* out);

// Reads the body length from a frame header (first kFrameHeaderSize bytes); nullopt if the magic
// is wrong.
std::optional<uint32_t> frame_body_length(std::string_view header);

}  // namespace ds
