#include "store/journal_format.h"

#include <xxhash.h>

#include <cstring>

#include "store/byte_codec.h"

namespace ds::journal {

namespace {
constexpr std::string_view kMagic = "DSJOURNAL1";

using codec::get;
using codec::put;
}  // namespace

void encode_header(uint64_t generation, std::string* out) {
  out->append(kMagic);
  put<uint16_t>(out, 0);
  put<uint32_t>(out, 0);
  put<uint64_t>(out, generation);
  put<uint64_t>(out, 0);
}

bool decode_header(std::string_view buf, uint64_t* generation) {
  if (buf.size() < kHeaderSize || buf.substr(0, kMagic.size()) != kMagic) return false;
  *generation = get<uint64_t>(buf.data() + 16);
  return true;
}

void encode_record(uint64_t seq, uint64_t offset, std::string_view path, std::string_view bytes,
                   std::string* out) {
  size_t body_len = 8 + 8 + 2 + path.size() + bytes.size();
  size_t start = out->size();
  put<uint32_t>(out, static_cast<uint32_t>(body_len));
  put<uint32_t>(out, 0);
  put<uint64_t>(out, 0);  // checksum, filled in below
  size_t body = out->size();
  put<uint64_t>(out, seq);
  put<uint64_t>(out, offset);
  put<uint16_t>(out, static_cast<uint16_t>(path.size()));
  out->append(path);
  out->append(bytes);
  uint64_t sum = XXH3_64bits(out->data() + body, body_len);
  std::memcpy(out->data() + start + 8, &sum, 8);
}

DecodeResult decode_record(std::string_view buf, Record* out) {
  if (buf.size() < kRecordHeaderSize) return DecodeResult::kIncomplete;
  uint32_t body_len = get<uint32_t>(buf.data());
  if (get<uint32_t>(buf.data() + 4) != 0 || body_len < 18) return DecodeResult::kCorrupt;
  if (buf.size() - kRecordHeaderSize < body_len) return DecodeResult::kIncomplete;
  std::string_view body = buf.substr(kRecordHeaderSize, body_len);
  if (XXH3_64bits(body.data(), body.size()) != get<uint64_t>(buf.data() + 8)) {
    return DecodeResult::kCorrupt;
  }
  uint16_t path_len = get<uint16_t>(body.data() + 16);
  if (path_len == 0 || path_len > kMaxPath || 18u + path_len > body.size()) {
    return DecodeResult::kCorrupt;
  }
  out->seq = get<uint64_t>(body.data());
  out->offset = get<uint64_t>(body.data() + 8);
  out->path = body.substr(18, path_len);
  out->bytes = body.substr(18 + path_len);
  out->total_size = kRecordHeaderSize + body_len;
  return DecodeResult::kOk;
}

}  // namespace ds::journal
