// Segment summaries and the S3 tier's local cache: eviction of sealed, uploaded segments and
// byte-exact fetch on read (the bucket is a fetcher over the messages the test wrote).
#include "store/segment_cache.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "store/segment_summary.h"
#include "store/stream_log.h"
#include "temp_dir.h"

namespace ds {
namespace {

namespace fs = std::filesystem;

std::string file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

std::vector<std::string> names_with(const std::string& dir, const std::string& ext) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ext) out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

class SegmentCacheTest : public ::testing::Test {
 protected:
  std::string dir() const { return tmp_ / "log"; }

  std::unique_ptr<StreamLog> open(Fs* fs, std::vector<FrameMeta>* replayed = nullptr,
                                  uint64_t segment_bytes = 200) {
    std::unique_ptr<StreamLog> log;
    StreamLog::Options o;
    o.segment_bytes = segment_bytes;
    Status s = StreamLog::open(
        fs, dir(), 0, o,
        [replayed](const FrameMeta& m, uint32_t) {
          if (replayed) replayed->push_back(m);
        },
        &log, nullptr);
    EXPECT_TRUE(s) << s.message();
    return log;
  }

  // Writes `n` frames of two messages; every third carries a producer stamp, the last a Stream-Seq.
  void write(StreamLog* log, int n) {
    for (int i = 0; i < n; ++i) {
      std::string a = "event-" + std::to_string(messages_.size()) + std::string(40, 'a');
      std::string b = "event-" + std::to_string(messages_.size() + 1) + "\xff\x00 bytes";
      messages_.push_back(a);
      messages_.push_back(b);
      FrameMeta m;
      m.unix_millis = 1000 + i;
      if (i % 3 == 0) m.producer = ProducerStamp{"p", 2, static_cast<uint64_t>(i)};
      if (i + 1 == n) m.stream_seq = "seq-" + std::to_string(i);
      ASSERT_TRUE(log->append(m, {a, b}));
    }
    ASSERT_TRUE(log->active_file()->datasync());
  }

  SegmentCache::Fetcher bucket() {
    return [this](const SegmentSummary& s, std::vector<std::string>* out) {
      ++fetches_;
      if (bucket_down_) return Status::unavailable("connection refused");
      out->assign(messages_.begin() + static_cast<long>(s.first_position),
                  messages_.begin() + static_cast<long>(s.end_position()));
      if (tamper_ && !out->empty()) (*out)[0][0] ^= 1;
      return Status::ok();
    };
  }

  SegmentCache::LogDir log_dir(uint64_t uploaded_next) const {
    SegmentCache::LogDir d;
    d.dir = dir();
    d.uploaded_next = uploaded_next;
    d.bucket_prefix = "p/tenants/t/streams/s/";
    d.encoding = BucketEncoding::kStreamText;
    return d;
  }

  test::TempDir tmp_;
  std::vector<std::string> messages_;
  int fetches_ = 0;
  bool bucket_down_ = false;
  bool tamper_ = false;
};

TEST_F(SegmentCacheTest, SummaryRebuildsTheSegmentByteForByte) {
  auto log = open(Fs::posix(), nullptr, 1 << 20);
  write(log.get(), 3);
  std::string seg = file_bytes(dir() + "/" + names_with(dir(), ".seg").front());
  SegmentSummary sum;
  ASSERT_TRUE(SegmentSummary::from_segment(seg, 0, &sum));
  sum.bucket_prefix = "x/";
  std::string enc;
  sum.encode(&enc);
  SegmentSummary back;
  ASSERT_TRUE(SegmentSummary::decode(enc, &back));
  EXPECT_EQ(back.end_position(), 6u);
  EXPECT_EQ(back.bucket_prefix, "x/");
  ASSERT_EQ(back.frames.size(), 3u);
  EXPECT_EQ(back.frames[0].meta.producer->id, "p");
  EXPECT_EQ(*back.frames[2].meta.stream_seq, "seq-2");
  std::string rebuilt;
  ASSERT_TRUE(back.rebuild(messages_, &rebuilt));
  EXPECT_EQ(rebuilt, seg);
}

TEST_F(SegmentCacheTest, RebuildRejectsMessagesThatDifferFromTheEvictedOnes) {
  auto log = open(Fs::posix(), nullptr, 1 << 20);
  write(log.get(), 2);
  SegmentSummary sum;
  ASSERT_TRUE(SegmentSummary::from_segment(
      file_bytes(dir() + "/" + names_with(dir(), ".seg").front()), 0, &sum));
  auto altered = messages_;
  altered[1].back() ^= 1;
  std::string out;
  EXPECT_EQ(sum.rebuild(altered, &out).code(), Status::Code::kCorruption);
  altered.pop_back();
  EXPECT_EQ(sum.rebuild(altered, &out).code(), Status::Code::kCorruption);
}

TEST_F(SegmentCacheTest, DamagedSummaryIsRejected) {
  SegmentSummary sum;
  sum.first_position = 7;
  std::string enc;
  sum.encode(&enc);
  enc[5] ^= 1;
  SegmentSummary back;
  EXPECT_FALSE(SegmentSummary::decode(enc, &back));
}

TEST_F(SegmentCacheTest, EvictsOnlyUploadedSealedSegmentsAndNeverTheActiveOne) {
  SegmentCache cache(Fs::posix(), 1);  // a budget nothing fits in
  cache.set_fetcher(bucket());
  auto log = open(&cache);
  write(log.get(), 12);
  auto segs = names_with(dir(), ".seg");
  ASSERT_GE(segs.size(), 4u);
  // Nothing uploaded: nothing to evict.
  ASSERT_TRUE(cache.enforce({log_dir(0)}));
  EXPECT_EQ(names_with(dir(), ".seg"), segs);
  // Everything uploaded: every sealed segment goes, the active one stays.
  ASSERT_TRUE(cache.enforce({log_dir(log->next_position())}));
  EXPECT_EQ(names_with(dir(), ".seg"), std::vector<std::string>{segs.back()});
  EXPECT_EQ(names_with(dir(), ".sum").size(), segs.size() - 1);
  EXPECT_EQ(cache.stats().evictions, segs.size() - 1);
  EXPECT_EQ(cache.stats().resident_bytes, fs::file_size(dir() + "/" + segs.back()));
  // The open log still reads everything through its descriptors, without fetching.
  std::vector<std::string> out;
  ASSERT_TRUE(log->read(0, log->next_position(), SIZE_MAX, &out));
  EXPECT_EQ(out, messages_);
  EXPECT_EQ(fetches_, 0);
}

TEST_F(SegmentCacheTest, ReopenedLogReplaysSummariesAndFetchesOnRead) {
  SegmentCache cache(Fs::posix(), 1);
  cache.set_fetcher(bucket());
  std::vector<FrameMeta> before;
  {
    auto log = open(&cache, &before);
    write(log.get(), 12);
    ASSERT_TRUE(cache.enforce({log_dir(log->next_position())}));
  }
  before.clear();
  {
    auto log = open(&cache, &before);
    ASSERT_EQ(before.size(), 12u);  // every frame's metadata, from the summaries
    EXPECT_EQ(before[9].producer->seq, 9u);
    EXPECT_EQ(*before[11].stream_seq, "seq-11");
    EXPECT_EQ(fetches_, 0);
    std::vector<std::string> out;
    ASSERT_TRUE(log->read(0, log->next_position(), SIZE_MAX, &out));
    EXPECT_EQ(out, messages_);
    int after_first_read = fetches_;
    EXPECT_GT(after_first_read, 0);
    out.clear();
    ASSERT_TRUE(log->read(0, log->next_position(), SIZE_MAX, &out));
    EXPECT_EQ(fetches_, after_first_read);  // fetched once, then local
    EXPECT_EQ(cache.stats().fetches, static_cast<uint64_t>(after_first_read));
    // Appends continue after the evicted history.
    messages_.push_back("tail");
    ASSERT_TRUE(log->append(FrameMeta{}, {messages_.back()}));
  }
  auto log = open(&cache);
  std::vector<std::string> out;
  ASSERT_TRUE(log->read(0, log->next_position(), SIZE_MAX, &out));
  EXPECT_EQ(out, messages_);
}

TEST_F(SegmentCacheTest, FailedOrMismatchedFetchIsUnavailableAndLeavesNoFile) {
  SegmentCache cache(Fs::posix(), 1);
  cache.set_fetcher(bucket());
  {
    auto log = open(&cache);
    write(log.get(), 12);
    ASSERT_TRUE(cache.enforce({log_dir(log->next_position())}));
  }
  size_t resident = names_with(dir(), ".seg").size();
  auto log = open(&cache);
  std::vector<std::string> out;
  bucket_down_ = true;
  EXPECT_EQ(log->read(0, 2, SIZE_MAX, &out).code(), Status::Code::kUnavailable);
  bucket_down_ = false;
  tamper_ = true;
  EXPECT_EQ(log->read(0, 2, SIZE_MAX, &out).code(), Status::Code::kUnavailable);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(names_with(dir(), ".seg").size(), resident);
  EXPECT_EQ(cache.stats().fetch_errors, 2u);
  tamper_ = false;
  ASSERT_TRUE(log->read(0, 2, SIZE_MAX, &out));
  EXPECT_EQ(out, std::vector<std::string>(messages_.begin(), messages_.begin() + 2));
}

TEST_F(SegmentCacheTest, WithoutATierAnEvictedSegmentIsUnavailableNotEmpty) {
  SegmentCache cache(Fs::posix(), 1);
  cache.set_fetcher(bucket());
  {
    auto log = open(&cache);
    write(log.get(), 12);
    ASSERT_TRUE(cache.enforce({log_dir(log->next_position())}));
  }
  std::unique_ptr<StreamLog> log;
  Status s = StreamLog::open(Fs::posix(), dir(), 0, {}, [](const FrameMeta&, uint32_t) {}, &log,
                             nullptr);
  EXPECT_EQ(s.code(), Status::Code::kUnavailable);
}

}  // namespace
}  // namespace ds
