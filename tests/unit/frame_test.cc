#include "store/frame.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace ds {
namespace {

std::string encode(const FrameMeta& meta, const std::vector<std::string_view>& messages) {
  std::string out;
  encode_frame(meta, messages, &out);
  return out;
}

std::vector<std::string> messages_of(std::string_view frame, const DecodedFrame& d) {
  std::vector<std::string> out;
  for (auto [off, len] : d.messages) out.emplace_back(frame.substr(off, len));
  return out;
}

FrameMeta full_meta() {
  FrameMeta m;
  m.closes = true;
  m.first_position = 42;
  m.unix_millis = 1'700'000'000'123;
  m.producer = ProducerStamp{"writer-1", 3, 17};
  m.stream_seq = "seq-0009";
  return m;
}

TEST(Frame, RoundTripsPlainMessages) {
  FrameMeta m;
  m.first_position = 7;
  m.unix_millis = 99;
  std::string f = encode(m, {"a", "", "hello world"});

  DecodedFrame d;
  ASSERT_EQ(decode_frame(f, &d), DecodeResult::kOk);
  EXPECT_EQ(d.total_size, f.size());
  EXPECT_EQ(d.meta.first_position, 7u);
  EXPECT_EQ(d.meta.unix_millis, 99u);
  EXPECT_FALSE(d.meta.closes);
  EXPECT_FALSE(d.meta.producer.has_value());
  EXPECT_FALSE(d.meta.stream_seq.has_value());
  EXPECT_EQ(messages_of(f, d), (std::vector<std::string>{"a", "", "hello world"}));
}

TEST(Frame, RoundTripsProducerStampStreamSeqAndCloseFlag) {
  std::string f = encode(full_meta(), {"x", "yz"});

  DecodedFrame d;
  ASSERT_EQ(decode_frame(f, &d), DecodeResult::kOk);
  EXPECT_TRUE(d.meta.closes);
  EXPECT_EQ(d.meta.first_position, 42u);
  EXPECT_EQ(d.meta.unix_millis, 1'700'000'000'123u);
  ASSERT_TRUE(d.meta.producer.has_value());
  EXPECT_EQ(d.meta.producer->id, "writer-1");
  EXPECT_EQ(d.meta.producer->epoch, 3u);
  EXPECT_EQ(d.meta.producer->seq, 17u);
  EXPECT_EQ(d.meta.stream_seq, "seq-0009");
  EXPECT_EQ(messages_of(f, d), (std::vector<std::string>{"x", "yz"}));
}

TEST(Frame, RoundTripsProducerWithoutStreamSeq) {
  FrameMeta m;
  m.producer = ProducerStamp{"p", 0, 0};
  std::string f = encode(m, {"m"});

  DecodedFrame d;
  ASSERT_EQ(decode_frame(f, &d), DecodeResult::kOk);
  ASSERT_TRUE(d.meta.producer.has_value());
  EXPECT_EQ(d.meta.producer->id, "p");
  EXPECT_FALSE(d.meta.stream_seq.has_value());
  EXPECT_EQ(messages_of(f, d), (std::vector<std::string>{"m"}));
}

TEST(Frame, RoundTripsStreamSeqWithoutProducer) {
  FrameMeta m;
  m.stream_seq = "";  // present but empty is distinct from absent
  std::string f = encode(m, {"m"});

  DecodedFrame d;
  ASSERT_EQ(decode_frame(f, &d), DecodeResult::kOk);
  EXPECT_FALSE(d.meta.producer.has_value());
  EXPECT_EQ(d.meta.stream_seq, "");
}

TEST(Frame, RoundTripsZeroMessageCloseFrame) {
  FrameMeta m;
  m.closes = true;
  m.first_position = 5;
  std::string f = encode(m, {});

  DecodedFrame d;
  ASSERT_EQ(decode_frame(f, &d), DecodeResult::kOk);
  EXPECT_TRUE(d.meta.closes);
  EXPECT_EQ(d.meta.first_position, 5u);
  EXPECT_TRUE(d.messages.empty());
  EXPECT_EQ(d.total_size, f.size());
}

TEST(Frame, DecodesOnlyTheFirstOfConsecutiveFrames) {
  std::string two = encode(full_meta(), {"first"});
  size_t first_size = two.size();
  FrameMeta second;
  second.first_position = 43;
  encode_frame(second, {"second"}, &two);

  DecodedFrame d;
  ASSERT_EQ(decode_frame(two, &d), DecodeResult::kOk);
  EXPECT_EQ(d.total_size, first_size);
  ASSERT_EQ(decode_frame(std::string_view(two).substr(first_size), &d), DecodeResult::kOk);
  EXPECT_EQ(d.meta.first_position, 43u);
}

TEST(Frame, FlippedBodyByteIsCorrupt) {
  std::string f = encode(full_meta(), {"payload"});
  for (size_t i = kFrameHeaderSize; i < f.size(); ++i) {
    std::string bad = f;
    bad[i] ^= 0x01;
    DecodedFrame d;
    EXPECT_EQ(decode_frame(bad, &d), DecodeResult::kCorrupt) << "byte " << i;
  }
}

TEST(Frame, FlippedChecksumByteIsCorrupt) {
  std::string f = encode(full_meta(), {"payload"});
  f[8] ^= 0x80;
  DecodedFrame d;
  EXPECT_EQ(decode_frame(f, &d), DecodeResult::kCorrupt);
}

TEST(Frame, TruncatedBufferIsIncomplete) {
  std::string f = encode(full_meta(), {"payload", "more"});
  for (size_t n = 0; n < f.size(); ++n) {
    DecodedFrame d;
    EXPECT_EQ(decode_frame(std::string_view(f).substr(0, n), &d), DecodeResult::kIncomplete)
        << "length " << n;
  }
}

TEST(Frame, BadMagicIsCorrupt) {
  std::string f = encode(full_meta(), {"payload"});
  f[0] = 'X';
  DecodedFrame d;
  EXPECT_EQ(decode_frame(f, &d), DecodeResult::kCorrupt);
  EXPECT_FALSE(frame_body_length(f).has_value());
}

TEST(Frame, HeaderReportsBodyLength) {
  std::string f = encode(full_meta(), {"payload"});
  auto len = frame_body_length(f);
  ASSERT_TRUE(len.has_value());
  EXPECT_EQ(*len + kFrameHeaderSize, f.size());
  EXPECT_FALSE(frame_body_length(std::string_view(f).substr(0, kFrameHeaderSize - 1)).has_value());
}

}  // namespace
}  // namespace ds
