#include "store/stream_log.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "fault_fs.h"
#include "temp_dir.h"

namespace ds {
namespace {

namespace fs = std::filesystem;

struct Replayed {
  FrameMeta meta;
  uint32_t count;
};

class StreamLogTest : public ::testing::Test {
 protected:
  std::string dir() const { return tmp_ / "log"; }

  std::unique_ptr<StreamLog> open(uint64_t base = 0, StreamLog::Options options = {}) {
    replayed_.clear();
    stats_ = {};
    std::unique_ptr<StreamLog> log;
    Status s = StreamLog::open(
        &fs_, dir(), base, options,
        [this](const FrameMeta& m, uint32_t n) { replayed_.push_back({m, n}); }, &log, &stats_);
    EXPECT_TRUE(s) << s.message();
    return log;
  }

  static void append(StreamLog* log, std::vector<std::string_view> messages, FrameMeta meta = {}) {
    Status s = log->append(std::move(meta), messages);
    ASSERT_TRUE(s) << s.message();
  }

  static std::vector<std::string> read(const StreamLog& log, uint64_t from, uint64_t to,
                                       size_t max_bytes = SIZE_MAX) {
    std::vector<std::string> out;
    Status s = log.read(from, to, max_bytes, &out);
    EXPECT_TRUE(s) << s.message();
    return out;
  }

  std::vector<std::string> segment_files() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir())) {
      if (e.path().extension() == ".seg") out.push_back(e.path().string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  std::string only_segment() const {
    auto segs = segment_files();
    EXPECT_EQ(segs.size(), 1u);
    return segs.empty() ? "" : segs.front();
  }

  test::TempDir tmp_;
  test::FaultFs fs_;
  std::vector<Replayed> replayed_;
  StreamLog::RecoveryStats stats_;
};

void append_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::app);
  f << bytes;
}

void flip_byte(const std::string& path, uint64_t offset) {
  std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.get(c);
  f.seekp(static_cast<std::streamoff>(offset));
  f.put(static_cast<char>(c ^ 0x5a));
}

TEST_F(StreamLogTest, AppendedMessagesReadBackInOrder) {
  auto log = open();
  append(log.get(), {"a", "bb"});
  append(log.get(), {"ccc"});

  EXPECT_EQ(log->next_position(), 3u);
  EXPECT_EQ(log->bytes(), 6u);
  EXPECT_EQ(log->message_size(1), 2u);
  EXPECT_EQ(read(*log, 0, 3), (std::vector<std::string>{"a", "bb", "ccc"}));
  EXPECT_EQ(read(*log, 1, 2), (std::vector<std::string>{"bb"}));
}

TEST_F(StreamLogTest, ReadClampsRangeToTail) {
  auto log = open();
  append(log.get(), {"a", "b"});
  EXPECT_EQ(read(*log, 1, 100), (std::vector<std::string>{"b"}));
  EXPECT_TRUE(read(*log, 2, 100).empty());
}

TEST_F(StreamLogTest, ZeroMessageFrameAdvancesNoPosition) {
  auto log = open();
  append(log.get(), {"a"});
  FrameMeta close;
  close.closes = true;
  append(log.get(), {}, close);
  EXPECT_EQ(log->next_position(), 1u);
  EXPECT_EQ(read(*log, 0, 10), (std::vector<std::string>{"a"}));
}

TEST_F(StreamLogTest, ReadStopsBeforeExceedingMaxBytes) {
  auto log = open();
  append(log.get(), {"0123456789", "0123456789"});
  append(log.get(), {"0123456789"});
  EXPECT_EQ(read(*log, 0, 3, 25).size(), 2u);
  EXPECT_EQ(read(*log, 0, 3, 20).size(), 2u);
  EXPECT_EQ(read(*log, 0, 3, 19).size(), 1u);
  EXPECT_EQ(read(*log, 0, 3, 30).size(), 3u);
}

TEST_F(StreamLogTest, ReadReturnsOneMessageEvenWhenItExceedsMaxBytes) {
  auto log = open();
  append(log.get(), {"a much longer message than the budget", "x"});
  EXPECT_EQ(read(*log, 0, 2, 1), (std::vector<std::string>{"a much longer message than the budget"}));
  EXPECT_EQ(read(*log, 0, 2, 0).size(), 1u);
}

TEST_F(StreamLogTest, ReopenReplaysFramesInOrderWithMetadata) {
  {
    auto log = open();
    FrameMeta first;
    first.unix_millis = 1000;
    first.producer = ProducerStamp{"p1", 2, 0};
    first.stream_seq = "001";
    append(log.get(), {"a", "b"}, first);
    FrameMeta second;
    second.unix_millis = 2000;
    second.producer = ProducerStamp{"p1", 2, 1};
    append(log.get(), {"c"}, second);
    FrameMeta close;
    close.closes = true;
    close.unix_millis = 3000;
    append(log.get(), {}, close);
  }
  auto log = open();

  EXPECT_EQ(stats_.frames, 3u);
  EXPECT_EQ(stats_.truncated_bytes, 0u);
  ASSERT_EQ(replayed_.size(), 3u);
  EXPECT_EQ(replayed_[0].meta.first_position, 0u);
  EXPECT_EQ(replayed_[0].count, 2u);
  EXPECT_EQ(replayed_[0].meta.unix_millis, 1000u);
  ASSERT_TRUE(replayed_[0].meta.producer.has_value());
  EXPECT_EQ(replayed_[0].meta.producer->id, "p1");
  EXPECT_EQ(replayed_[0].meta.producer->epoch, 2u);
  EXPECT_EQ(replayed_[0].meta.producer->seq, 0u);
  EXPECT_EQ(replayed_[0].meta.stream_seq, "001");
  EXPECT_EQ(replayed_[1].meta.first_position, 2u);
  EXPECT_EQ(replayed_[1].count, 1u);
  EXPECT_EQ(replayed_[1].meta.producer->seq, 1u);
  EXPECT_FALSE(replayed_[1].meta.stream_seq.has_value());
  EXPECT_EQ(replayed_[2].meta.first_position, 3u);
  EXPECT_EQ(replayed_[2].count, 0u);
  EXPECT_TRUE(replayed_[2].meta.closes);
  EXPECT_FALSE(replayed_[2].meta.producer.has_value());

  EXPECT_EQ(log->next_position(), 3u);
  EXPECT_EQ(log->bytes(), 3u);
  EXPECT_EQ(read(*log, 0, 3), (std::vector<std::string>{"a", "b", "c"}));
}

TEST_F(StreamLogTest, RecoveryTruncatesTornTailFrame) {
  uint64_t intact_size = 0;
  {
    auto log = open();
    append(log.get(), {"kept-1"});
    append(log.get(), {"kept-2"});
    intact_size = fs::file_size(only_segment());
    append(log.get(), {"torn message"});
  }
  std::string seg = only_segment();
  uint64_t full = fs::file_size(seg);
  fs::resize_file(seg, intact_size + (full - intact_size) / 2);  // cut the last frame in half

  auto log = open();
  EXPECT_EQ(stats_.frames, 2u);
  EXPECT_EQ(stats_.truncated_bytes, (full - intact_size) / 2);
  EXPECT_EQ(fs::file_size(seg), intact_size);
  EXPECT_EQ(log->next_position(), 2u);
  EXPECT_EQ(read(*log, 0, 10), (std::vector<std::string>{"kept-1", "kept-2"}));
}

TEST_F(StreamLogTest, AppendAfterTornTailRecoveryIsReadableAndSurvivesReopen) {
  uint64_t intact_size = 0;
  {
    auto log = open();
    append(log.get(), {"kept"});
    intact_size = fs::file_size(only_segment());
    append(log.get(), {"torn"});
  }
  fs::resize_file(only_segment(), intact_size + 5);
  {
    auto log = open();
    append(log.get(), {"after"});
    EXPECT_EQ(read(*log, 0, 10), (std::vector<std::string>{"kept", "after"}));
  }
  auto log = open();
  EXPECT_EQ(stats_.frames, 2u);
  EXPECT_EQ(stats_.truncated_bytes, 0u);
  EXPECT_EQ(read(*log, 0, 10), (std::vector<std::string>{"kept", "after"}));
}

TEST_F(StreamLogTest, RecoveryTruncatesGarbageAfterLastFrame) {
  uint64_t intact_size = 0;
  {
    auto log = open();
    append(log.get(), {"a"});
    append(log.get(), {"b"});
    intact_size = fs::file_size(only_segment());
  }
  append_bytes(only_segment(), std::string("\x01garbage that is not a frame at all", 35));

  auto log = open();
  EXPECT_EQ(stats_.frames, 2u);
  EXPECT_EQ(stats_.truncated_bytes, 35u);
  EXPECT_EQ(fs::file_size(only_segment()), intact_size);
  EXPECT_EQ(read(*log, 0, 10), (std::vector<std::string>{"a", "b"}));
  append(log.get(), {"c"});
  EXPECT_EQ(read(*log, 0, 10), (std::vector<std::string>{"a", "b", "c"}));
}

TEST_F(StreamLogTest, RecoveryTruncatesPartialHeaderAtTail) {
  {
    auto log = open();
    append(log.get(), {"a"});
  }
  append_bytes(only_segment(), "DSF");  // shorter than a frame header

  auto log = open();
  EXPECT_EQ(stats_.frames, 1u);
  EXPECT_EQ(stats_.truncated_bytes, 3u);
  EXPECT_EQ(log->next_position(), 1u);
}

TEST_F(StreamLogTest, CorruptByteInLastFrameDropsOnlyThatFrame) {
  uint64_t intact_size = 0;
  {
    auto log = open();
    append(log.get(), {"first"});
    append(log.get(), {"second"});
    intact_size = fs::file_size(only_segment());
    append(log.get(), {"third"});
  }
  uint64_t full = fs::file_size(only_segment());
  flip_byte(only_segment(), full - 2);  // inside the last message

  auto log = open();
  EXPECT_EQ(stats_.frames, 2u);
  EXPECT_EQ(stats_.truncated_bytes, full - intact_size);
  EXPECT_EQ(log->next_position(), 2u);
  EXPECT_EQ(read(*log, 0, 10), (std::vector<std::string>{"first", "second"}));
}

TEST_F(StreamLogTest, SegmentsRollAndReadsSpanThem) {
  StreamLog::Options small;
  small.segment_bytes = 64;
  std::vector<std::string> all;
  auto log = open(0, small);
  for (int i = 0; i < 10; ++i) {
    std::string m = "message-" + std::to_string(i) + std::string(30, 'x');
    append(log.get(), {m});
    all.push_back(m);
  }
  EXPECT_GT(segment_files().size(), 1u);
  EXPECT_EQ(read(*log, 0, 10), all);
  EXPECT_EQ(read(*log, 3, 8), std::vector<std::string>(all.begin() + 3, all.begin() + 8));
}

TEST_F(StreamLogTest, RolledSegmentsSurviveReopen) {
  StreamLog::Options small;
  small.segment_bytes = 64;
  std::vector<std::string> all;
  {
    auto log = open(0, small);
    for (int i = 0; i < 6; ++i) {
      all.push_back("m" + std::to_string(i) + std::string(40, 'y'));
      append(log.get(), {all.back()});
    }
  }
  size_t segments = segment_files().size();
  ASSERT_GT(segments, 1u);

  auto log = open(0, small);
  EXPECT_EQ(stats_.frames, 6u);
  ASSERT_EQ(replayed_.size(), 6u);
  for (size_t i = 0; i < replayed_.size(); ++i) EXPECT_EQ(replayed_[i].meta.first_position, i);
  EXPECT_EQ(read(*log, 0, 6), all);
  all.push_back("after reopen");
  append(log.get(), {all.back()});
  EXPECT_EQ(read(*log, 0, 7), all);
  EXPECT_EQ(read(*log, 0, 7, 1).size(), 1u);
}

// Damage before the active segment is not a torn write (a roll syncs a segment whole first):
// open() refuses with kCorruption and leaves every file as it was, instead of truncating the
// acknowledged frames after it and letting new appends reuse their positions.
TEST_F(StreamLogTest, DamageInASealedSegmentOrAMissingSegmentIsRefusedNotTruncated) {
  StreamLog::Options small;
  small.segment_bytes = 64;
  {
    auto log = open(0, small);
    for (int i = 0; i < 6; ++i) append(log.get(), {"m" + std::to_string(i) + std::string(40, 'y')});
  }
  auto segs = segment_files();
  ASSERT_GE(segs.size(), 3u);
  auto sizes = [&] {
    std::vector<uintmax_t> out;
    for (const auto& p : segment_files()) out.push_back(fs::file_size(p));
    return out;
  };
  auto try_open = [&] {
    std::unique_ptr<StreamLog> log;
    return StreamLog::open(&fs_, dir(), 0, small, [](const FrameMeta&, uint32_t) {}, &log,
                           nullptr);
  };
  // A flipped byte in the first (sealed) segment.
  const auto before = sizes();
  flip_byte(segs.front(), 20);
  Status s = try_open();
  EXPECT_EQ(s.code(), Status::Code::kCorruption) << s.message();
  EXPECT_NE(s.message().find("damaged log"), std::string::npos) << s.message();
  EXPECT_EQ(segment_files(), segs);
  EXPECT_EQ(sizes(), before);
  flip_byte(segs.front(), 20);  // repaired: everything is back
  {
    auto log = open(0, small);
    EXPECT_EQ(log->next_position(), 6u);
  }
  // A middle segment missing.
  fs::rename(segs[1], tmp_ / "aside.seg");
  s = try_open();
  EXPECT_EQ(s.code(), Status::Code::kCorruption) << s.message();
  EXPECT_EQ(segment_files().size(), segs.size() - 1);  // nothing deleted
  // A middle segment truncated to nothing.
  fs::rename(tmp_ / "aside.seg", segs[1]);
  fs::resize_file(segs[1], 0);
  s = try_open();
  EXPECT_EQ(s.code(), Status::Code::kCorruption) << s.message();
  EXPECT_EQ(segment_files(), segs);
}

TEST_F(StreamLogTest, RollbackDiscardsLaterFramesInMemoryAndOnDisk) {
  {
    auto log = open();
    append(log.get(), {"keep"});
    StreamLog::Mark m = log->mark();
    uint64_t size_at_mark = fs::file_size(only_segment());
    append(log.get(), {"drop-1", "drop-2"});
    append(log.get(), {"drop-3"});

    ASSERT_TRUE(log->rollback(m));
    EXPECT_EQ(log->next_position(), 1u);
    EXPECT_EQ(log->bytes(), 4u);
    EXPECT_EQ(read(*log, 0, 10), (std::vector<std::string>{"keep"}));
    EXPECT_EQ(fs::file_size(only_segment()), size_at_mark);

    append(log.get(), {"next"});
    EXPECT_EQ(read(*log, 0, 10), (std::vector<std::string>{"keep", "next"}));
  }
  auto log = open();
  EXPECT_EQ(stats_.frames, 2u);
  EXPECT_EQ(read(*log, 0, 10), (std::vector<std::string>{"keep", "next"}));
}

TEST_F(StreamLogTest, RollbackAcrossSegmentRollRemovesNewSegments) {
  StreamLog::Options small;
  small.segment_bytes = 64;
  {
    auto log = open(0, small);
    append(log.get(), {"keep"});
    StreamLog::Mark m = log->mark();
    for (int i = 0; i < 5; ++i) append(log.get(), {std::string(50, 'z')});
    ASSERT_GT(segment_files().size(), 1u);

    ASSERT_TRUE(log->rollback(m));
    EXPECT_EQ(segment_files().size(), 1u);
    EXPECT_EQ(log->next_position(), 1u);
    append(log.get(), {"next"});
    EXPECT_EQ(read(*log, 0, 10), (std::vector<std::string>{"keep", "next"}));
  }
  auto log = open(0, small);
  EXPECT_EQ(read(*log, 0, 10), (std::vector<std::string>{"keep", "next"}));
}

TEST_F(StreamLogTest, BasePositionOffsetsEveryPosition) {
  {
    auto log = open(100);
    EXPECT_EQ(log->base_position(), 100u);
    EXPECT_EQ(log->next_position(), 100u);
    append(log.get(), {"a", "b"});
    append(log.get(), {"c"});
    EXPECT_EQ(log->next_position(), 103u);
    EXPECT_EQ(log->message_size(102), 1u);
    EXPECT_EQ(read(*log, 101, 103), (std::vector<std::string>{"b", "c"}));
    EXPECT_EQ(read(*log, 0, 103), (std::vector<std::string>{"a", "b", "c"}));
  }
  auto log = open(100);
  ASSERT_EQ(replayed_.size(), 2u);
  EXPECT_EQ(replayed_[0].meta.first_position, 100u);
  EXPECT_EQ(replayed_[1].meta.first_position, 102u);
  EXPECT_EQ(log->next_position(), 103u);
  EXPECT_EQ(read(*log, 100, 103), (std::vector<std::string>{"a", "b", "c"}));
}

TEST_F(StreamLogTest, ShortWriteLeavesNoPartialFrame) {
  auto log = open();
  append(log.get(), {"kept"});
  uint64_t size = fs::file_size(only_segment());

  fs_.short_write_next(7);
  EXPECT_FALSE(log->append(FrameMeta{}, {"lost"}));
  EXPECT_EQ(fs::file_size(only_segment()), size);
  EXPECT_EQ(log->next_position(), 1u);

  append(log.get(), {"next"});
  log.reset();
  log = open();
  EXPECT_EQ(stats_.truncated_bytes, 0u);
  EXPECT_EQ(read(*log, 0, 10), (std::vector<std::string>{"kept", "next"}));
}

TEST_F(StreamLogTest, RecoveryDropsFrameMissingItsLastBytes) {
  // What a crash in the middle of the pwrite leaves behind: a valid frame prefix at the tail.
  std::string torn;
  {
    auto log = open();
    append(log.get(), {"kept"});
    std::string frame;
    FrameMeta meta;
    meta.first_position = 1;
    encode_frame(meta, {"torn"}, &frame);
    torn = frame.substr(0, frame.size() - 3);
  }
  append_bytes(only_segment(), torn);

  auto log = open();
  EXPECT_EQ(stats_.frames, 1u);
  EXPECT_EQ(stats_.truncated_bytes, torn.size());
  EXPECT_EQ(read(*log, 0, 10), (std::vector<std::string>{"kept"}));
}

TEST_F(StreamLogTest, FailedWriteReportsItsStatus) {
  auto log = open();
  fs_.fail_next_write(test::FaultFs::enospc());
  Status s = log->append(FrameMeta{}, {"x"});
  EXPECT_EQ(s.code(), Status::Code::kNoSpace);
  EXPECT_EQ(log->next_position(), 0u);
  append(log.get(), {"y"});
  EXPECT_EQ(read(*log, 0, 10), (std::vector<std::string>{"y"}));
}

// ---- planned (batch) reads ----

std::vector<std::string> batch_strings(const MessageBatch& b) {
  std::vector<std::string> out;
  for (size_t i = 0; i < b.size(); ++i) out.emplace_back(b[i]);
  return out;
}

TEST_F(StreamLogTest, PlannedReadSelectsTheSameMessagesAsReadAcrossSegmentsAndBudgets) {
  StreamLog::Options small;
  small.segment_bytes = 100;
  auto log = open(0, small);
  for (int i = 0; i < 20; ++i) {
    append(log.get(), {"m" + std::to_string(i), std::string(static_cast<size_t>(i % 7) * 5, 'x')});
  }
  ASSERT_GT(segment_files().size(), 2u);
  for (uint64_t from : {0u, 1u, 7u, 39u, 40u}) {
    for (uint64_t to : {0u, 5u, 21u, 40u, 100u}) {
      for (size_t budget : {size_t{0}, size_t{1}, size_t{17}, size_t{60}, SIZE_MAX}) {
        MessageBatch b;
        log->plan_read(from, to, budget, &b);
        ASSERT_TRUE(b.load());
        EXPECT_EQ(batch_strings(b), read(*log, from, to, budget))
            << "from " << from << " to " << to << " budget " << budget;
      }
    }
  }
}

TEST_F(StreamLogTest, PlannedReadLoadsAfterTheLogIsClosed) {
  auto log = open();
  append(log.get(), {"a", "bb"});
  append(log.get(), {"ccc"});
  MessageBatch b;
  log->plan_read(0, 3, SIZE_MAX, &b);
  log.reset();  // unloaded (or deleted) while the read was pending: the run keeps its file
  ASSERT_TRUE(b.load());
  EXPECT_EQ(batch_strings(b), (std::vector<std::string>{"a", "bb", "ccc"}));
  EXPECT_EQ(b.message_bytes(), 6u);
}

TEST_F(StreamLogTest, BatchAccumulatesSeveralLoadsAndIsReusableAfterClear) {
  auto log = open();
  append(log.get(), {"a", "bb", "ccc", "dddd"});
  MessageBatch b;
  log->plan_read(0, 2, SIZE_MAX, &b);
  ASSERT_TRUE(b.load());
  log->plan_read(2, 4, SIZE_MAX, &b);  // grows the buffer: the first load's bytes are kept
  ASSERT_TRUE(b.load());
  EXPECT_EQ(batch_strings(b), (std::vector<std::string>{"a", "bb", "ccc", "dddd"}));
  b.clear();
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.message_bytes(), 0u);
  log->plan_read(1, 3, SIZE_MAX, &b);
  ASSERT_TRUE(b.load());
  EXPECT_EQ(batch_strings(b), (std::vector<std::string>{"bb", "ccc"}));
}

TEST_F(StreamLogTest, BatchJoinsMessagesAsJsonArrayOrConcatenation) {
  auto log = open();
  append(log.get(), {"{\"a\":1}", "2", "[3]"});
  MessageBatch b;
  std::string out = "x";
  b.append_json_array(&out);
  EXPECT_EQ(out, "x[]");
  log->plan_read(0, 3, SIZE_MAX, &b);
  ASSERT_TRUE(b.load());
  out.clear();
  b.append_json_array(&out);
  EXPECT_EQ(out, "[{\"a\":1},2,[3]]");
  out.clear();
  b.append_json_array(&out, 1);
  EXPECT_EQ(out, "[2,[3]]");
  out.clear();
  b.append_concatenated(&out);
  EXPECT_EQ(out, "{\"a\":1}2[3]");
}

TEST_F(StreamLogTest, PlannedReadOfTruncatedSegmentReportsCorruption) {
  auto log = open();
  append(log.get(), {"hello", "world"});
  MessageBatch b;
  log->plan_read(0, 2, SIZE_MAX, &b);
  fs::resize_file(only_segment(), fs::file_size(only_segment()) - 3);
  EXPECT_FALSE(b.load());
}

}  // namespace
}  // namespace ds
