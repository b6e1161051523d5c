// Journal file format (see journal.h for how it is used). Little endian throughout.
//
//   file   = header record*
//   header = "DSJOURNAL1" (10 bytes) | u16 zero | u32 zero | u64 generation | u64 zero  (32 bytes)
//   record = u32 body_length | u32 zero | u64 xxh3(body) | body
//   body   = u64 seq | u64 offset | u16 path_len | path | bytes
//
// `seq` increases by one from record to record within a file; `path` names the segment file the
// bytes belong at `offset` of (relative to the data dir unless absolute).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace ds::journal {

inline constexpr size_t kHeaderSize = 32;
inline constexpr size_t kRecordHeaderSize = 16;
inline constexpr size_t kMaxPath = 4096;

void encode_header(uint64_t generation, std::string* out);
// Returns false when `buf` does not start with a valid header.
bool decode_header(std::string_view buf, uint64_t* generation);

void encode_record(uint64_t seq, uint64_t offset, std::string_view path, std::string_view bytes,
                   std::string* out);

struct Record {
  uint64_t seq = 0;
  uint64_t offset = 0;
  std::string_view path;
  std::string_view bytes;
  size_t total_size = 0;  // header + body
};
enum class DecodeResult { kOk, kIncomplete, kCorrupt };
DecodeResult decode_record(std::string_view buf, Record* out);

}  // namespace ds::journal
