// fuzz_frame: the segment frame codec (store/frame.h).
//
// Mode byte (input[0] % 3):
//   0  decode_frame on the raw bytes (checksum as given: exercises the header checks);
//   1  the same, after patching in a correct xxh3 checksum and body length, so the fuzzer reaches
//      the body parser (flags, producer, stream-seq, message table) as a corrupted-but-checksummed
//      or hostile segment file would;
//   2  round trip: a FrameMeta and messages built from the input are encoded, and must decode to
//      exactly what was encoded; every strict prefix must decode as kIncomplete.
// Checked on every kOk decode: total_size <= buffer, message spans inside the frame, and
// re-encoding the decoded frame decodes to the same frame.
#include <fuzzer/FuzzedDataProvider.h>
#include <xxhash.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "store/frame.h"

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_frame: INVARIANT VIOLATED: %s\n", what);
  abort();
}

bool same_meta(const ds::FrameMeta& a, const ds::FrameMeta& b) {
  if (a.closes != b.closes || a.first_position != b.first_position ||
      a.unix_millis != b.unix_millis || a.stream_seq != b.stream_seq ||
      a.producer.has_value() != b.producer.has_value()) {
    return false;
  }
  if (a.producer) {
    return a.producer->id == b.producer->id && a.producer->epoch == b.producer->epoch &&
           a.producer->seq == b.producer->seq;
  }
  return true;
}

std::vector<std::string_view> messages_of(std::string_view buf, const ds::DecodedFrame& f) {
  std::vector<std::string_view> out;
  for (auto [off, len] : f.messages) out.push_back(buf.substr(off, len));
  return out;
}

void check_decoded(std::string_view buf, const ds::DecodedFrame& f) {
  if (f.total_size > buf.size() || f.total_size < ds::kFrameHeaderSize) fail("total_size out of range");
  for (auto [off, len] : f.messages) {
    if (off < ds::kFrameHeaderSize || uint64_t{off} + len > f.total_size) {
      fail("message span outside the frame");
    }
  }
  std::string again;
  auto msgs = messages_of(buf, f);
  ds::encode_frame(f.meta, msgs, &again);
  ds::DecodedFrame g;
  if (ds::decode_frame(again, &g) != ds::DecodeResult::kOk) fail("re-encoded frame does not decode");
  if (!same_meta(f.meta, g.meta) || messages_of(again, g) != msgs) fail("re-encode changed the frame");
}

void decode_and_check(std::string_view buf) {
  ds::DecodedFrame f;
  if (ds::decode_frame(buf, &f) == ds::DecodeResult::kOk) check_decoded(buf, f);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return -1;
  int mode = data[0] % 3;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);

  if (mode == 0) {
    decode_and_check(rest);
    return 0;
  }
  if (mode == 1) {
    std::string buf(rest);
    if (buf.size() < ds::kFrameHeaderSize) return 0;
    uint32_t magic = ds::kFrameMagic;
    std::memcpy(buf.data(), &magic, 4);
    uint32_t len = static_cast<uint32_t>(buf.size() - ds::kFrameHeaderSize);
    std::memcpy(buf.data() + 4, &len, 4);
    uint64_t sum = XXH3_64bits(buf.data() + ds::kFrameHeaderSize, len);
    std::memcpy(buf.data() + 8, &sum, 8);
    decode_and_check(buf);
    return 0;
  }

  FuzzedDataProvider p(data + 1, size - 1);
  ds::FrameMeta meta;
  meta.closes = p.ConsumeBool();
  meta.first_position = p.ConsumeIntegral<uint64_t>();
  meta.unix_millis = p.ConsumeIntegral<uint64_t>();
  if (p.ConsumeBool()) {
    ds::ProducerStamp ps;
    // Occasionally a long id (above 65535 bytes: regression for the former u16 length prefix).
    if (p.ConsumeBool()) {
      ps.id = p.ConsumeRandomLengthString(64);
    } else {
      ps.id.assign(p.ConsumeIntegralInRange<size_t>(0, 70000), 'p');
    }
    ps.epoch = p.ConsumeIntegral<uint64_t>();
    ps.seq = p.ConsumeIntegral<uint64_t>();
    meta.producer = std::move(ps);
  }
  if (p.ConsumeBool()) {
    if (p.ConsumeBool()) {
      meta.stream_seq = p.ConsumeRandomLengthString(64);
    } else {
      meta.stream_seq = std::string(p.ConsumeIntegralInRange<size_t>(0, 70000), 's');
    }
  }
  std::vector<std::string> owned;
  size_t n = p.ConsumeIntegralInRange<size_t>(0, 32);
  for (size_t i = 0; i < n; ++i) owned.push_back(p.ConsumeRandomLengthString(256));
  std::vector<std::string_view> msgs(owned.begin(), owned.end());

  std::string buf = p.ConsumeRandomLengthString(32);  // frames are appended after existing bytes
  size_t start = buf.size();
  ds::encode_frame(meta, msgs, &buf);
  std::string_view frame = std::string_view(buf).substr(start);
  ds::DecodedFrame f;
  if (ds::decode_frame(frame, &f) != ds::DecodeResult::kOk) {
    std::fprintf(stderr, "producer id %zu bytes, stream_seq %zu bytes, %zu messages\n",
                 meta.producer ? meta.producer->id.size() : 0,
                 meta.stream_seq ? meta.stream_seq->size() : 0, msgs.size());
    fail("an encoded frame does not decode (a field exceeds its length prefix?)");
  }
  if (f.total_size != frame.size()) fail("total_size is not the encoded size");
  if (!same_meta(meta, f.meta) || messages_of(frame, f) != msgs) fail("round trip changed the frame");
  check_decoded(frame, f);
  auto len = ds::frame_body_length(frame);
  if (!len || *len + ds::kFrameHeaderSize != frame.size()) fail("frame_body_length disagrees");
  // Every strict prefix (a torn write) is incomplete, never corrupt or ok. Sample a few cut points.
  for (size_t cut : {size_t{0}, ds::kFrameHeaderSize - 1, ds::kFrameHeaderSize, frame.size() / 2,
                     frame.size() - 1}) {
    if (cut >= frame.size()) continue;
    ds::DecodedFrame g;
    if (ds::decode_frame(frame.substr(0, cut), &g) != ds::DecodeResult::kIncomplete) {
      fail("a torn frame prefix is not kIncomplete");
    }
  }
  return 0;
}
