#include "store/segment_summary.h"

#include <xxhash.h>

#include <cstring>

#include "store/byte_codec.h"

namespace ds {

namespace {

constexpr uint32_t kSummaryMagic = 0x31535344;  // "DSS1"

using codec::put;
using codec::put_str;
using codec::Reader;

}  // namespace

uint64_t SegmentSummary::end_position() const {
  uint64_t end = first_position;
  for (const auto& f : frames) end = f.meta.first_position + f.messages.size();
  return end;
}

Status SegmentSummary::from_segment(std::string_view segment, uint64_t first_position,
                                    SegmentSummary* out) {
  out->first_position = first_position;
  out->size = segment.size();
  out->frames.clear();
  size_t pos = 0;
  uint64_t next = first_position;
  while (pos < segment.size()) {
    DecodedFrame d;
    if (decode_frame(segment.substr(pos), &d) != DecodeResult::kOk ||
        d.meta.first_position != next) {
      return Status::corruption("segment does not decode to whole frames");
    }
    Frame f;
    f.meta = d.meta;
    std::memcpy(&f.checksum, segment.data() + pos + 8, 8);
    f.total_size = static_cast<uint32_t>(d.total_size);
    f.messages = std::move(d.messages);
    next += f.messages.size();
    pos += d.total_size;
    out->frames.push_back(std::move(f));
  }
  return Status::ok();
}

void SegmentSummary::encode(std::string* out) const {
  size_t start = out->size();
  put<uint32_t>(out, kSummaryMagic);
  put<uint64_t>(out, first_position);
  put<uint64_t>(out, size);
  put_str(out, bucket_prefix);
  put<uint8_t>(out, static_cast<uint8_t>(encoding));
  put<uint32_t>(out, static_cast<uint32_t>(frames.size()));
  for (const auto& f : frames) {
    put<uint64_t>(out, f.checksum);
    put<uint32_t>(out, f.total_size);
    uint8_t flags = 0;
    if (f.meta.closes) flags |= FrameMeta::kCloses;
    if (f.meta.producer) flags |= FrameMeta::kHasProducer;
    if (f.meta.stream_seq) flags |= FrameMeta::kHasStreamSeq;
    put<uint8_t>(out, flags);
    put<uint64_t>(out, f.meta.first_position);
    put<uint64_t>(out, f.meta.unix_millis);
    if (f.meta.producer) {
      put_str(out, f.meta.producer->id);
      put<uint64_t>(out, f.meta.producer->epoch);
      put<uint64_t>(out, f.meta.producer->seq);
    }
    if (f.meta.stream_seq) put_str(out, *f.meta.stream_seq);
    put<uint32_t>(out, static_cast<uint32_t>(f.messages.size()));
    for (auto [off, len] : f.messages) {
      put<uint32_t>(out, off);
      put<uint32_t>(out, len);
    }
  }
  put<uint64_t>(out, XXH3_64bits(out->data() + start, out->size() - start));
}

Status SegmentSummary::decode(std::string_view in, SegmentSummary* out) {
  auto bad = [] { return Status::corruption("segment summary is damaged"); };
  if (in.size() < 12) return bad();
  uint64_t sum;
  std::memcpy(&sum, in.data() + in.size() - 8, 8);
  in.remove_suffix(8);
  if (XXH3_64bits(in.data(), in.size()) != sum) return bad();
  Reader r(in);
  uint32_t magic, nframes;
  uint8_t enc;
  if (!r.get(&magic) || magic != kSummaryMagic || !r.get(&out->first_position) ||
      !r.get(&out->size) || !r.str(&out->bucket_prefix) || !r.get(&enc) || enc > 2 ||
      !r.get(&nframes)) {
    return bad();
  }
  out->encoding = static_cast<BucketEncoding>(enc);
  out->frames.clear();
  for (uint32_t i = 0; i < nframes; ++i) {
    Frame f;
    uint8_t flags;
    uint32_t nmsg;
    if (!r.get(&f.checksum) || !r.get(&f.total_size) || !r.get(&flags) ||
        !r.get(&f.meta.first_position) || !r.get(&f.meta.unix_millis)) {
      return bad();
    }
    f.meta.closes = flags & FrameMeta::kCloses;
    if (flags & FrameMeta::kHasProducer) {
      ProducerStamp p;
      if (!r.str(&p.id) || !r.get(&p.epoch) || !r.get(&p.seq)) return bad();
      f.meta.producer = std::move(p);
    }
    if (flags & FrameMeta::kHasStreamSeq) {
      std::string s;
      if (!r.str(&s)) return bad();
      f.meta.stream_seq = std::move(s);
    }
    if (!r.get(&nmsg)) return bad();
    for (uint32_t k = 0; k < nmsg; ++k) {
      uint32_t off, len;
      if (!r.get(&off) || !r.get(&len)) return bad();
      f.messages.emplace_back(off, len);
    }
    out->frames.push_back(std::move(f));
  }
  if (!r.done()) return bad();
  return Status::ok();
}

Status SegmentSummary::rebuild(const std::vector<std::string>& messages,
                               std::string* segment) const {
  if (messages.size() != end_position() - first_position) {
    return Status::corruption("fetched messages do not cover the segment");
  }
  segment->clear();
  segment->reserve(size);
  std::vector<std::string_view> views;
  for (const auto& f : frames) {
    views.clear();
    size_t at = f.meta.first_position - first_position;
    for (size_t i = 0; i < f.messages.size(); ++i) views.emplace_back(messages[at + i]);
    size_t start = segment->size();
    encode_frame(f.meta, views, segment);
    uint64_t sum;
    std::memcpy(&sum, segment->data() + start + 8, 8);
    if (sum != f.checksum || segment->size() - start != f.total_size) {
      return Status::corruption("a fetched frame does not match the evicted segment");
    }
  }
  if (segment->size() != size) return Status::corruption("rebuilt segment has the wrong size");
  return Status::ok();
}

}  // namespace ds
