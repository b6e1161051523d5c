#include "store/frame.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>

#include "store/byte_codec.h"

namespace ds {
namespace {

using codec::put;
using codec::Reader;

}  // namespace

void encode_frame(const FrameMeta& meta, const std::vector<std::string_view>& messages,
                  std::string* out) {
  size_t start = out->size();
  put<uint32_t>(out, kFrameMagic);
  put<uint32_t>(out, 0);  // body length, patched below
  put<uint64_t>(out, 0);  // checksum, patched below
  size_t body = out->size();
  uint8_t flags = 0;
  if (meta.closes) flags |= FrameMeta::kCloses;
  if (meta.producer) flags |= FrameMeta::kHasProducer;
  if (meta.stream_seq) flags |= FrameMeta::kHasStreamSeq;
  put<uint8_t>(out, flags);
  put<uint64_t>(out, meta.first_position);
  put<uint32_t>(out, static_cast<uint32_t>(messages.size()));
  put<uint64_t>(out, meta.unix_millis);
  if (meta.producer) {
    put<uint32_t>(out, static_cast<uint32_t>(meta.producer->id.size()));
    out->append(meta.producer->id);
    put<uint64_t>(out, meta.producer->epoch);
    put<uint64_t>(out, meta.producer->seq);
  }
  if (meta.stream_seq) {
    put<uint32_t>(out, static_cast<uint32_t>(meta.stream_seq->size()));
    out->append(*meta.stream_seq);
  }
  for (auto m : messages) {
    put<uint32_t>(out, static_cast<uint32_t>(m.size()));
    out->append(m);
  }
  uint32_t len = static_cast<uint32_t>(out->size() - body);
  uint64_t sum = XXH3_64bits(out->data() + body, len);
  std::memcpy(out->data() + start + 4, &len, 4);
  std::memcpy(out->data() + start + 8, &sum, 8);
}

std::optional<uint32_t> frame_body_length(std::string_view header) {
  if (header.size() < kFrameHeaderSize) return std::nullopt;
  uint32_t magic, len;
  std::memcpy(&magic, header.data(), 4);
  std::memcpy(&len, header.data() + 4, 4);
  if (magic != kFrameMagic) return std::nullopt;
  return len;
}

DecodeResult decode_frame(std::string_view buf, DecodedFrame* out) {
  if (buf.size() < kFrameHeaderSize) return DecodeResult::kIncomplete;
  auto len = frame_body_length(buf);
  if (!len) return DecodeResult::kCorrupt;
  if (buf.size() < kFrameHeaderSize + *len) return DecodeResult::kIncomplete;
  uint64_t sum;
  std::memcpy(&sum, buf.data() + 8, 8);
  std::string_view body = buf.substr(kFrameHeaderSize, *len);
  if (XXH3_64bits(body.data(), body.size()) != sum) return DecodeResult::kCorrupt;

  Reader r(body);
  uint8_t flags;
  uint32_t count;
  FrameMeta& m = out->meta;
  m = FrameMeta{};
  if (!r.get(&flags) || !r.get(&m.first_position) || !r.get(&count) || !r.get(&m.unix_millis)) {
    return DecodeResult::kCorrupt;
  }
  m.closes = flags & FrameMeta::kCloses;
  if (flags & FrameMeta::kHasProducer) {
    uint32_t n;
    std::string_view id;
    ProducerStamp p;
    if (!r.get(&n) || !r.bytes(n, &id) || !r.get(&p.epoch) || !r.get(&p.seq)) {
      return DecodeResult::kCorrupt;
    }
    p.id = std::string(id);
    m.producer = std::move(p);
  }
  if (flags & FrameMeta::kHasStreamSeq) {
    uint32_t n;
    std::string_view s;
    if (!r.get(&n) || !r.bytes(n, &s)) return DecodeResult::kCorrupt;
    m.stream_seq = std::string(s);
  }
  out->messages.clear();
  // Each message takes at least its 4-byte length: never reserve more than the body can hold.
  out->messages.reserve(std::min<size_t>(count, body.size() / 4));
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t n;
    std::string_view data;
    if (!r.get(&n)) return DecodeResult::kCorrupt;
    size_t at = kFrameHeaderSize + r.pos();
    if (!r.bytes(n, &data)) return DecodeResult::kCorrupt;
    out->messages.emplace_back(static_cast<uint32_t>(at), n);
  }
  if (!r.done()) return DecodeResult::kCorrupt;
  out->total_size = kFrameHeaderSize + *len;
  return DecodeResult::kOk;
}

}  // namespace ds
