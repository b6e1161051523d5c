// store::Journal: records made durable by the shared journal, and replay after a crash that lost
// what the segment files held only in the page cache.
//
// A crash is simulated by copying the data dir while the journal runs (after the acks), then
// cutting the copy's segment files back to what an fdatasync-less disk might have kept.
#include "store/journal.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "fault_fs.h"
#include "store/journal_format.h"
#include "temp_dir.h"

namespace ds {
namespace {

namespace fs = std::filesystem;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::vector<std::string> wal_files(const std::string& dir) {
  std::vector<std::string> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".wal") out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override { fs::create_directories(tmp_ / "streams/1"); }

  std::unique_ptr<Journal> open_journal(Journal::Options o = {}, Fs* fs = nullptr) {
    std::unique_ptr<Journal> j;
    Status s = Journal::open(fs != nullptr ? fs : &fs_, tmp_ / "journal", tmp_.path(), o, 0, &j);
    EXPECT_TRUE(s) << s.message();
    return j;
  }
  std::shared_ptr<File> open_segment(const std::string& rel) {
    std::unique_ptr<File> f;
    EXPECT_TRUE(fs_.open(tmp_ / rel, &f));
    return std::shared_ptr<File>(std::move(f));
  }
  // Writes `bytes` at `offset` of `file` and commits them; returns the commit's status.
  static std::future<Status> write_and_commit(Journal& j, const std::shared_ptr<File>& file,
                                              const std::string& path, uint64_t offset,
                                              const std::string& bytes) {
    EXPECT_TRUE(file->pwrite(bytes.data(), bytes.size(), offset));
    return commit(j, file, path, offset, bytes);
  }
  // Commits `bytes`, which the caller already wrote at `offset` of `file` (so that a write fault
  // armed in between hits the journal's write, not the segment file's).
  static std::future<Status> commit(Journal& j, const std::shared_ptr<File>& file,
                                    const std::string& path, uint64_t offset,
                                    const std::string& bytes) {
    auto p = std::make_shared<std::promise<Status>>();
    Committer::Write w;
    w.file = file;
    w.path = path;
    w.offset = offset;
    w.bytes = bytes;
    j.commit(w, [p](const Status& s) { p->set_value(s); });
    return p->get_future();
  }
  // Snapshots the data dir as a crash would leave it, cuts segment file `rel` back to its first
  // `kept` bytes (what the disk had), replays the copy's journal and returns that file's bytes.
  std::string crash_and_replay(const std::string& rel, uint64_t kept,
                               Journal::ReplayStats* st = nullptr) {
    std::string crash = snapshot("crash");
    fs::resize_file(crash + "/" + rel, kept);
    Status s = Journal::replay(Fs::posix(), crash + "/journal", crash, st);
    EXPECT_TRUE(s) << s.message();
    return slurp(crash + "/" + rel);
  }
  // A copy of the data dir as a crash would leave it if the page cache held the segment files.
  std::string snapshot(const std::string& name) {
    std::string dst = tmp_ / name;
    fs::create_directories(dst);
    fs::copy(tmp_ / "streams", dst + "/streams", fs::copy_options::recursive);
    // The checkpointer may delete a retired journal file meanwhile; one that vanished had its
    // segment files synced, so skipping it is what a crash at that instant would leave.
    fs::create_directories(dst + "/journal");
    for (const auto& e : fs::directory_iterator(tmp_ / "journal")) {
      std::error_code ec;
      fs::copy_file(e.path(), dst + "/journal/" + e.path().filename().string(), ec);
    }
    return dst;
  }

  test::TempDir tmp_;
  test::FaultFs fs_;
};

TEST_F(JournalTest, ReplayRestoresAcknowledgedBytesTheSegmentFileLost) {
  auto j = open_journal();
  auto seg = open_segment("streams/1/a.seg");
  std::string path = tmp_ / "streams/1/a.seg";
  std::string expected;
  std::vector<std::future<Status>> acks;
  for (int i = 0; i < 50; ++i) {
    std::string rec = "record-" + std::to_string(i) + std::string(100, 'x');
    acks.push_back(write_and_commit(*j, seg, path, expected.size(), rec));
    expected += rec;
  }
  for (auto& a : acks) ASSERT_TRUE(a.get());
  std::string crash = snapshot("crash");
  // The disk kept only the first 300 bytes of the segment file, and a torn page after them.
  fs::resize_file(crash + "/streams/1/a.seg", 300);
  {
    std::ofstream out(crash + "/streams/1/a.seg", std::ios::binary | std::ios::app);
    out << std::string(37, '\0');
  }
  Journal::ReplayStats st;
  Status s = Journal::replay(Fs::posix(), crash + "/journal", crash, &st);
  ASSERT_TRUE(s) << s.message();
  EXPECT_EQ(slurp(crash + "/streams/1/a.seg"), expected);
  EXPECT_EQ(st.records, 50u);
  EXPECT_GT(st.rewritten, 0u);
  EXPECT_LT(st.rewritten, 50u);  // records still intact on disk are left alone
  EXPECT_EQ(st.skipped, 0u);
  EXPECT_TRUE(wal_files(crash + "/journal").empty());  // replayed journals are removed
}

// A journal write that fails after putting whole records in the file (a short write on a full
// disk): its appends are answered as failed and rolled back by their owner, so a crash must not
// replay them into the segment file.
TEST_F(JournalTest, AFailedWriteIsNotReplayed) {
  auto j = open_journal();
  auto seg = open_segment("streams/1/a.seg");
  std::string path = tmp_ / "streams/1/a.seg";
  std::string good(400, 'g');
  ASSERT_TRUE(write_and_commit(*j, seg, path, 0, good).get());
  std::string failed(600, 'F');
  ASSERT_TRUE(seg->pwrite(failed.data(), failed.size(), good.size()));
  fs_.short_write_next(1u << 20);  // the whole batch reaches the file, then the write fails
  ASSERT_FALSE(commit(*j, seg, path, good.size(), failed).get());
  ASSERT_TRUE(seg->truncate(good.size()));  // the owner rolls its log back
  // A crash now, with the segment file as the disk had it before the failed append.
  EXPECT_EQ(crash_and_replay("streams/1/a.seg", good.size()), good);
}

TEST_F(JournalTest, ReplayOfIntactSegmentsRewritesNothing) {
  auto j = open_journal();
  auto seg = open_segment("streams/1/a.seg");
  std::string path = tmp_ / "streams/1/a.seg";
  ASSERT_TRUE(write_and_commit(*j, seg, path, 0, "hello").get());
  ASSERT_TRUE(write_and_commit(*j, seg, path, 5, "world").get());
  std::string crash = snapshot("crash");
  Journal::ReplayStats st;
  int syncs_before = fs_.datasyncs();
  ASSERT_TRUE(Journal::replay(&fs_, crash + "/journal", crash, &st));
  EXPECT_EQ(st.records, 2u);
  EXPECT_EQ(st.rewritten, 0u);
  // Intact bytes may live only in the page cache: the file is synced before the journal goes.
  EXPECT_GE(fs_.datasyncs(), syncs_before + 1);
  EXPECT_EQ(slurp(crash + "/streams/1/a.seg"), "helloworld");
}

TEST_F(JournalTest, ReplaySkipsSegmentFilesThatNoLongerExist) {
  auto j = open_journal();
  auto a = open_segment("streams/1/a.seg");
  fs::create_directories(tmp_ / "streams/2");
  auto b = open_segment("streams/2/b.seg");
  ASSERT_TRUE(write_and_commit(*j, a, tmp_ / "streams/1/a.seg", 0, "keep").get());
  ASSERT_TRUE(write_and_commit(*j, b, tmp_ / "streams/2/b.seg", 0, "deleted").get());
  std::string crash = snapshot("crash");
  fs::remove_all(crash + "/streams/2");  // the stream was deleted before the crash
  fs::resize_file(crash + "/streams/1/a.seg", 0);
  Journal::ReplayStats st;
  ASSERT_TRUE(Journal::replay(Fs::posix(), crash + "/journal", crash, &st));
  EXPECT_EQ(st.skipped, 1u);
  EXPECT_FALSE(fs::exists(crash + "/streams/2"));  // replay never recreates a deleted stream
  EXPECT_EQ(slurp(crash + "/streams/1/a.seg"), "keep");
}

// Hand-built journal files: the replay rules on torn records and sequence gaps.
class JournalReplayRules : public JournalTest {
 protected:
  void write_journal(uint64_t gen, const std::vector<std::string>& records, size_t cut = 0) {
    std::string buf;
    journal::encode_header(gen, &buf);
    for (const auto& r : records) buf += r;
    buf.resize(buf.size() - cut);
    fs::create_directories(tmp_ / "journal");
    char name[32];
    std::snprintf(name, sizeof name, "%020llu.wal", static_cast<unsigned long long>(gen));
    std::ofstream(tmp_ / ("journal/" + std::string(name)), std::ios::binary) << buf;
  }
  static std::string rec(uint64_t seq, uint64_t offset, const std::string& bytes) {
    std::string out;
    journal::encode_record(seq, offset, "streams/1/a.seg", bytes, &out);
    return out;
  }
  Journal::ReplayStats replay() {
    Journal::ReplayStats st;
    Status s = Journal::replay(Fs::posix(), tmp_ / "journal", tmp_.path(), &st);
    EXPECT_TRUE(s) << s.message();
    return st;
  }
};

TEST_F(JournalReplayRules, StopsAtATornRecord) {
  std::ofstream(tmp_ / "streams/1/a.seg", std::ios::binary) << "";
  write_journal(1, {rec(1, 0, "aaaa"), rec(2, 4, "bbbb"), rec(3, 8, "cccc")}, /*cut=*/2);
  auto st = replay();
  EXPECT_EQ(st.records, 2u);
  EXPECT_GT(st.torn_bytes, 0u);
  EXPECT_EQ(slurp(tmp_ / "streams/1/a.seg"), "aaaabbbb");
}

TEST_F(JournalReplayRules, StopsAtACorruptRecord) {
  std::ofstream(tmp_ / "streams/1/a.seg", std::ios::binary) << "";
  std::string bad = rec(2, 4, "bbbb");
  bad[bad.size() - 1] ^= 0x40;  // checksum no longer matches
  write_journal(1, {rec(1, 0, "aaaa"), bad, rec(3, 8, "cccc")});
  auto st = replay();
  EXPECT_EQ(st.records, 1u);
  EXPECT_EQ(slurp(tmp_ / "streams/1/a.seg"), "aaaa");
}

TEST_F(JournalReplayRules, StopsAtASequenceGap) {
  std::ofstream(tmp_ / "streams/1/a.seg", std::ios::binary) << "";
  write_journal(1, {rec(1, 0, "aaaa"), rec(3, 4, "bbbb")});
  auto st = replay();
  EXPECT_EQ(st.records, 1u);
  EXPECT_EQ(slurp(tmp_ / "streams/1/a.seg"), "aaaa");
}

TEST_F(JournalReplayRules, LaterFilesWinOverEarlierOnes) {
  // A rolled-back frame rewritten after a failed sync: the newer journal file has the last word.
  std::ofstream(tmp_ / "streams/1/a.seg", std::ios::binary) << "";
  write_journal(1, {rec(1, 0, "aaaa"), rec(2, 4, "old!")});
  write_journal(2, {rec(3, 4, "new!")});
  auto st = replay();
  EXPECT_EQ(st.files, 2u);
  EXPECT_EQ(st.last_generation, 2u);
  EXPECT_EQ(slurp(tmp_ / "streams/1/a.seg"), "aaaanew!");
  EXPECT_TRUE(wal_files(tmp_ / "journal").empty());
}

TEST_F(JournalReplayRules, AFileWithATornHeaderIsIgnored) {
  std::ofstream(tmp_ / "streams/1/a.seg", std::ios::binary) << "";
  write_journal(1, {rec(1, 0, "aaaa")});
  fs::create_directories(tmp_ / "journal");
  std::ofstream(tmp_ / "journal/00000000000000000002.wal", std::ios::binary) << "DSJOU";
  auto st = replay();
  EXPECT_EQ(st.records, 1u);
  EXPECT_EQ(st.last_generation, 2u);  // the next journal must not reuse generation 2
  EXPECT_EQ(slurp(tmp_ / "streams/1/a.seg"), "aaaa");
}

TEST_F(JournalReplayRules, ZeroPaddingAfterTheLastRecordIsACleanEnd) {
  // What a direct-I/O journal file looks like: records, then zeros up to the block boundary.
  std::ofstream(tmp_ / "streams/1/a.seg", std::ios::binary) << "";
  write_journal(1, {rec(1, 0, "aaaa"), rec(2, 4, "bbbb"), std::string(4000, '\0')});
  auto st = replay();
  EXPECT_EQ(st.records, 2u);
  EXPECT_EQ(st.torn_bytes, 0u);
  EXPECT_EQ(slurp(tmp_ / "streams/1/a.seg"), "aaaabbbb");
}

TEST_F(JournalReplayRules, ATornRecordBeforeZeroPaddingStillCountsAsTorn) {
  std::ofstream(tmp_ / "streams/1/a.seg", std::ios::binary) << "";
  std::string torn = rec(2, 4, "bbbb");
  torn.resize(torn.size() - 3);
  write_journal(1, {rec(1, 0, "aaaa"), torn, std::string(100, '\0')});
  auto st = replay();
  EXPECT_EQ(st.records, 1u);
  EXPECT_EQ(st.torn_bytes, torn.size());
  EXPECT_EQ(slurp(tmp_ / "streams/1/a.seg"), "aaaa");
}

// Direct I/O (the server's default where the filesystem allows): each batch is one aligned
// O_DSYNC write that rewrites the file's last partial block; no fdatasync.
class JournalDirectTest : public JournalTest {
 protected:
  std::unique_ptr<Journal> open_direct(Journal::Options o = {}) {
    auto j = open_journal(o, &direct_fs_);
    if (j && !j->stats().direct_io) direct_unsupported_ = true;
    return j;
  }
  test::FaultFs direct_fs_{Fs::posix(), /*direct=*/true};
  bool direct_unsupported_ = false;
};

TEST_F(JournalDirectTest, BatchesOfEverySizeAreDurableWithoutAnyFdatasync) {
  auto j = open_direct();
  if (direct_unsupported_) GTEST_SKIP() << "the test directory's filesystem has no direct I/O";
  auto seg = open_segment("streams/1/a.seg");
  std::string path = tmp_ / "streams/1/a.seg";
  std::string expected;
  // Records from a few bytes to several blocks, so that batches start and end at every position
  // within a block and some span many blocks.
  for (int i = 0; i < 200; ++i) {
    size_t n = i % 17 == 0 ? 9000 + static_cast<size_t>(i) : 1 + static_cast<size_t>(i * 37 % 700);
    std::string r(n, static_cast<char>('a' + i % 26));
    ASSERT_TRUE(write_and_commit(*j, seg, path, expected.size(), r).get()) << i;
    expected += r;
  }
  EXPECT_EQ(direct_fs_.datasyncs(), 0);  // journal writes were durable on return; segments wait
  EXPECT_TRUE(j->stats().direct_io);
  Journal::ReplayStats st;
  // The disk lost every segment byte.
  EXPECT_EQ(crash_and_replay("streams/1/a.seg", 0, &st), expected);
  EXPECT_EQ(st.records, 200u);
  EXPECT_EQ(st.torn_bytes, 0u);  // the block padding is not a torn write
}

TEST_F(JournalDirectTest, ConcurrentCommitsAcrossRotationsAllReplay) {
  Journal::Options o;
  o.rotate_bytes = 16 << 10;  // several files
  auto j = open_direct(o);
  if (direct_unsupported_) GTEST_SKIP() << "the test directory's filesystem has no direct I/O";
  constexpr int kThreads = 4, kEach = 150;
  std::vector<std::shared_ptr<File>> segs;
  for (int t = 0; t < kThreads; ++t) segs.push_back(open_segment("streams/1/" + std::to_string(t) + ".seg"));
  std::vector<std::thread> threads;
  std::vector<std::string> expected(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::string path = tmp_ / ("streams/1/" + std::to_string(t) + ".seg");
      for (int i = 0; i < kEach; ++i) {
        std::string r = std::to_string(t) + ":" + std::to_string(i) + std::string(50 + i % 90, '.');
        EXPECT_TRUE(write_and_commit(*j, segs[t], path, expected[t].size(), r).get());
        expected[t] += r;
      }
    });
  }
  for (auto& th : threads) th.join();
  // One last record per stream, so that the newest journal file covers every stream.
  for (int t = 0; t < kThreads; ++t) {
    std::string path = tmp_ / ("streams/1/" + std::to_string(t) + ".seg");
    ASSERT_TRUE(write_and_commit(*j, segs[t], path, expected[t].size(), "end").get());
    expected[t] += "end";
  }
  EXPECT_GT(j->stats().rotations, 2u);
  std::string crash = snapshot("crash");
  // The disk lost every segment byte: replay must put back, at the right offsets, every record
  // of the journal files still present (retired files were checkpointed and deleted, so only a
  // suffix of each stream comes back; what lies before it stays a hole of zeros).
  for (int t = 0; t < kThreads; ++t) {
    fs::resize_file(crash + "/streams/1/" + std::to_string(t) + ".seg", 0);
  }
  Journal::ReplayStats st;
  ASSERT_TRUE(Journal::replay(Fs::posix(), crash + "/journal", crash, &st));
  EXPECT_EQ(st.torn_bytes, 0u);
  EXPECT_GT(st.records, 0u);
  for (int t = 0; t < kThreads; ++t) {
    std::string got = slurp(crash + "/streams/1/" + std::to_string(t) + ".seg");
    ASSERT_EQ(got.size(), expected[t].size()) << t;
    size_t first = got.find_first_not_of('\0');
    ASSERT_NE(first, std::string::npos) << t;
    EXPECT_EQ(got.substr(first), expected[t].substr(first)) << t;
  }
}

TEST_F(JournalDirectTest, FailedWriteFailsItsBatchAndTheNextGoesToANewFile) {
  auto j = open_direct();
  if (direct_unsupported_) GTEST_SKIP() << "the test directory's filesystem has no direct I/O";
  auto seg = open_segment("streams/1/a.seg");
  std::string path = tmp_ / "streams/1/a.seg";
  ASSERT_TRUE(write_and_commit(*j, seg, path, 0, "acked").get());
  auto before = wal_files(tmp_ / "journal");
  ASSERT_TRUE(seg->pwrite("lost!", 5, 5));
  direct_fs_.fail_next_write(test::FaultFs::eio());  // the journal's write of the next batch
  EXPECT_FALSE(commit(*j, seg, path, 5, "lost!").get());
  ASSERT_TRUE(seg->truncate(5));  // the owner cuts its log back, as Stream does
  ASSERT_TRUE(write_and_commit(*j, seg, path, 5, "after").get());
  EXPECT_NE(wal_files(tmp_ / "journal").back(), before.back());
  EXPECT_TRUE(j->stats().direct_io);
  // "acked" is durable either way (the retired file's checkpoint synced it, or that file is still
  // there to replay); the disk lost everything after it.
  EXPECT_EQ(crash_and_replay("streams/1/a.seg", 5), "ackedafter");
  EXPECT_EQ(j->stats().failed_batches, 1u);
}

TEST_F(JournalDirectTest, AFailedRotationGoesOnInTheCurrentFileWithoutDamagingIt) {
  Journal::Options o;
  o.rotate_bytes = 8192;
  auto j = open_direct(o);
  if (direct_unsupported_) GTEST_SKIP() << "the test directory's filesystem has no direct I/O";
  auto seg = open_segment("streams/1/a.seg");
  std::string path = tmp_ / "streams/1/a.seg";
  const auto files = wal_files(tmp_ / "journal");
  const int dir_syncs = direct_fs_.dir_syncs();
  direct_fs_.fail_next_sync_dir(test::FaultFs::eio());  // the next rotation fails
  std::string expected;
  // Commit until the journal tried (and failed) to start its next file; that batch was then
  // written to the current file, after records of the same 4 KiB block.
  for (int i = 0; direct_fs_.dir_syncs() == dir_syncs; ++i) {
    ASSERT_LT(i, 100);
    std::string r = "r" + std::to_string(i) + std::string(700, 'a' + i % 26);
    ASSERT_TRUE(write_and_commit(*j, seg, path, expected.size(), r).get()) << i;
    expected += r;
  }
  EXPECT_EQ(wal_files(tmp_ / "journal"), files);  // still the first file
  Journal::ReplayStats st;
  EXPECT_EQ(crash_and_replay("streams/1/a.seg", 0, &st), expected);  // nothing was checkpointed
  EXPECT_EQ(st.torn_bytes, 0u);
}

// Preallocation: journal files start as a zero-filled spare; retired files become the next spare.
// Run with direct I/O (direct_fs_) and through the page cache (fs_).
class JournalSpareTest : public JournalDirectTest, public ::testing::WithParamInterface<bool> {
 protected:
  Fs* fs() { return GetParam() ? static_cast<Fs*>(&direct_fs_) : &fs_; }
  test::FaultFs& faults() { return GetParam() ? direct_fs_ : fs_; }
  static Journal::Options options() {
    Journal::Options o;
    o.preallocate = true;
    o.rotate_bytes = 64 << 10;
    o.rotate_interval = std::chrono::hours(1);  // rotations by size only, however slow the run
    return o;
  }
  std::unique_ptr<Journal> open_spare(Journal::Options o = options()) {
    auto j = open_journal(o, fs());
    if (GetParam() && j && !j->stats().direct_io) direct_unsupported_ = true;
    return j;
  }
  // Waits until every retired file was checkpointed (deleted or made the spare).
  static void wait_for_checkpoints(const Journal& j) {
    for (int i = 0; i < 1000; ++i) {
      auto st = j.stats();
      if (st.checkpoints + 1 == st.rotations) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ADD_FAILURE() << "checkpoints did not catch up";
  }
  // A journal file must be its header, records, then nothing but zeros: no bytes of an earlier
  // use of the file may follow the last record.
  static void expect_records_then_zeros(const std::string& path) {
    std::string buf = slurp(path);
    uint64_t gen = 0;
    ASSERT_TRUE(journal::decode_header(buf, &gen)) << path;
    size_t pos = journal::kHeaderSize;
    journal::Record r;
    std::optional<uint64_t> seq;  // as replay: records follow each other by sequence number
    while (pos < buf.size() &&
           journal::decode_record(std::string_view(buf).substr(pos), &r) == journal::DecodeResult::kOk &&
           (!seq || r.seq == *seq + 1)) {
      seq = r.seq;
      pos += r.total_size;
    }
    EXPECT_EQ(buf.find_first_not_of('\0', pos), std::string::npos) << path << " at " << pos;
  }
  static bool all_zeros(const std::string& path) {
    return slurp(path).find_first_not_of('\0') == std::string::npos;
  }
  // Commits records of a few hundred bytes to streams/1/a.seg from offset 0, at least `n` and
  // until `until` holds (at most 20,000); returns what it wrote.
  std::string commit_records(Journal& j, int n, const std::string& tag,
                             const std::function<bool()>& until = [] { return true; }) {
    auto seg = open_segment("streams/1/a.seg");
    std::string path = tmp_ / "streams/1/a.seg";
    std::string expected;
    for (int i = 0; i < n || !until(); ++i) {
      if (i == 20000) {
        ADD_FAILURE() << "condition not reached";
        break;
      }
      std::string r = tag + std::to_string(i) + std::string(100 + i * 53 % 400, 'a' + i % 26);
      EXPECT_TRUE(write_and_commit(j, seg, path, expected.size(), r).get()) << i;
      expected += r;
    }
    return expected;
  }
  // Crash with every segment byte lost: the records of the live journal files come back at
  // their offsets (a suffix of `expected`; checkpointed ones were synced, here a hole of zeros),
  // and the zeros after the last record are no torn write.
  void expect_replay_restores_a_suffix(const std::string& expected) {
    Journal::ReplayStats rs;
    std::string got = crash_and_replay("streams/1/a.seg", 0, &rs);
    EXPECT_EQ(rs.torn_bytes, 0u);
    ASSERT_EQ(got.size(), expected.size());
    size_t first = got.find_first_not_of('\0');
    ASSERT_NE(first, std::string::npos);
    EXPECT_EQ(got.substr(first), expected.substr(first));
  }
};

INSTANTIATE_TEST_SUITE_P(DirectAndPageCache, JournalSpareTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Direct" : "PageCache"; });

TEST_P(JournalSpareTest, FilesStartFromSparesAndHoldOnlyTheirOwnRecords) {
  auto j = open_spare();
  if (direct_unsupported_) GTEST_SKIP() << "the test directory's filesystem has no direct I/O";
  // Until files recycled from retired ones were used (only the first spare is made from scratch).
  std::string expected = commit_records(*j, 100, "r", [&] { return j->stats().spares_used >= 3; });
  EXPECT_GE(j->stats().spares, 3u);
  wait_for_checkpoints(*j);
  std::string crash = snapshot("files");
  auto wals = wal_files(crash + "/journal");
  ASSERT_FALSE(wals.empty());
  for (const auto& w : wals) expect_records_then_zeros(crash + "/journal/" + w);
  expect_replay_restores_a_suffix(expected);
  j.reset();
  // A clean shutdown leaves no journal, and a whole zero-filled spare for the next start.
  EXPECT_TRUE(wal_files(tmp_ / "journal").empty());
  EXPECT_FALSE(fs::exists(tmp_ / "journal/spare.tmp"));
  ASSERT_TRUE(fs::exists(tmp_ / "journal/spare"));
  EXPECT_GE(fs::file_size(tmp_ / "journal/spare"), 64u << 10);
  EXPECT_TRUE(all_zeros(tmp_ / "journal/spare"));
}

TEST_P(JournalSpareTest, TheNextStartBeginsInTheSpareAndDiscardsAHalfMadeOne) {
  {
    auto j = open_spare();
    if (direct_unsupported_) GTEST_SKIP() << "the test directory's filesystem has no direct I/O";
    commit_records(*j, 50, "a");
  }
  ASSERT_TRUE(fs::exists(tmp_ / "journal/spare"));
  // A crash while a spare was being made leaves `spare.tmp` with anything in it.
  std::ofstream(tmp_ / "journal/spare.tmp", std::ios::binary) << std::string(5000, 'x');
  auto j = open_spare();
  // The background may be making the next spare there already, but from nothing: not from it.
  EXPECT_EQ(slurp(tmp_ / "journal/spare.tmp").find('x'), std::string::npos);
  EXPECT_TRUE(j->stats().preallocated);
  EXPECT_EQ(j->stats().spares_used, 1u);
  std::string expected = commit_records(*j, 20, "b");
  expect_replay_restores_a_suffix(expected);
  j.reset();
  EXPECT_FALSE(fs::exists(tmp_ / "journal/spare.tmp"));
  EXPECT_TRUE(all_zeros(tmp_ / "journal/spare"));
}

TEST_P(JournalSpareTest, ASpareOfAnotherLengthIsReplacedAtOpen) {
  fs::create_directories(tmp_ / "journal");
  // Left by a run with longer journal files: 4× this run's spare.
  std::ofstream(tmp_ / "journal/spare", std::ios::binary) << std::string(256 << 10, '\0');
  auto j = open_spare();
  if (direct_unsupported_) GTEST_SKIP() << "the test directory's filesystem has no direct I/O";
  EXPECT_EQ(j->stats().spares, 1u);  // made at open, and the first file started as it
  EXPECT_TRUE(j->stats().preallocated);
  auto wals = wal_files(tmp_ / "journal");
  ASSERT_EQ(wals.size(), 1u);
  EXPECT_EQ(fs::file_size(tmp_ / ("journal/" + wals[0])), 64u << 10);
}

TEST_F(JournalTest, WithoutPreallocationAnEarlierRunsSparesAreDeleted) {
  fs::create_directories(tmp_ / "journal");
  std::ofstream(tmp_ / "journal/spare", std::ios::binary) << std::string(8192, '\0');
  std::ofstream(tmp_ / "journal/spare.tmp", std::ios::binary) << std::string(100, '\0');
  auto j = open_journal();  // Options::preallocate is false by default
  EXPECT_FALSE(fs::exists(tmp_ / "journal/spare"));
  EXPECT_FALSE(fs::exists(tmp_ / "journal/spare.tmp"));
  EXPECT_FALSE(j->stats().preallocated);
}

TEST_P(JournalSpareTest, ASpareThatFailsToStartIsReplacedByAnEmptyFile) {
  { auto j = open_spare(); }
  if (direct_unsupported_) GTEST_SKIP() << "the test directory's filesystem has no direct I/O";
  ASSERT_TRUE(fs::exists(tmp_ / "journal/spare"));
  // The header write into the spare fails (direct: and then the page-cache retry's sync).
  faults().fail_next_write(test::FaultFs::eio());
  if (GetParam()) faults().fail_next_datasync(test::FaultFs::eio());
  auto j = open_spare();
  ASSERT_NE(j, nullptr);
  EXPECT_FALSE(j->stats().preallocated);
  EXPECT_EQ(j->stats().direct_io, GetParam());
  // A new spare is made and used.
  std::string expected = commit_records(*j, 100, "c", [&] { return j->stats().spares_used >= 1; });
  wait_for_checkpoints(*j);  // no snapshot of a retired file while it is zeroed
  expect_replay_restores_a_suffix(expected);
}

TEST_P(JournalSpareTest, WhileNoSpareCanBeMadeFilesGrowAndRecyclingResumesAfterwards) {
  faults().fail_writes(test::FaultFs::eio(), "spare.tmp");  // e.g. a full disk
  Journal::Options o = options();
  o.spare_retry_delay = std::chrono::milliseconds(0);
  auto j = open_spare(o);
  if (direct_unsupported_) GTEST_SKIP() << "the test directory's filesystem has no direct I/O";
  int n = 0;
  std::string expected = commit_records(*j, 0, "e", [&] {
    if (++n == 400) {
      auto st = j->stats();
      EXPECT_GE(st.rotations, 3u);  // the journal went on, in files that grow as written
      EXPECT_EQ(st.spares, 0u);
      EXPECT_EQ(st.spares_used, 0u);
      faults().clear_faults();
    }
    return n > 400 && j->stats().spares_used >= 1;
  });
  EXPECT_EQ(j->stats().failed_batches, 0u);
  wait_for_checkpoints(*j);
  expect_replay_restores_a_suffix(expected);
}

TEST_P(JournalSpareTest, ARecycledFileIsZeroedPastWritesThatFailed) {
  if (GetParam()) GTEST_SKIP() << "a failed direct write writes nothing (FaultFs)";
  auto j = open_spare();
  auto seg = open_segment("streams/1/a.seg");
  std::string path = tmp_ / "streams/1/a.seg";
  std::string expected;
  auto commit_one = [&](size_t n) {
    std::string r(n, static_cast<char>('a' + expected.size() % 26));
    auto ack = write_and_commit(*j, seg, path, expected.size(), r).get();
    if (ack) expected += r;
    return ack;
  };
  // In a file that started as a spare, a write leaves 3,000 bytes of a batch behind the last
  // record and fails. The next commit rotates, and that file, retired, becomes a spare again:
  // zeros past its records are not enough, the failed batch's bytes must go too.
  EXPECT_TRUE(j->stats().preallocated);  // the first file too
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(commit_one(300));
  // The next spare is made in the background: let it be, so that the fault hits the journal.
  for (int i = 0; i < 2000 && j->stats().spares < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ(j->stats().spares, 2u);
  std::string lost(5000, '!');
  ASSERT_TRUE(seg->pwrite(lost.data(), lost.size(), expected.size()));
  fs_.short_write_next(3000);  // the journal's write of the next batch
  ASSERT_FALSE(commit(*j, seg, path, expected.size(), lost).get());
  ASSERT_TRUE(seg->truncate(expected.size()));  // the owner cuts its log back
  EXPECT_EQ(j->stats().failed_batches, 1u);
  // Fill files until the rotation into that recycled file (two rotations on), then one small
  // record in it.
  const uint64_t used = j->stats().spares_used;
  while (j->stats().spares_used < used + 2) ASSERT_TRUE(commit_one(700));
  ASSERT_TRUE(commit_one(10));
  wait_for_checkpoints(*j);
  std::string crash = snapshot("files");
  auto wals = wal_files(crash + "/journal");
  ASSERT_FALSE(wals.empty());
  expect_records_then_zeros(crash + "/journal/" + wals.back());  // not the failed batch's bytes
}

TEST_F(JournalTest, WithoutDirectIoTheJournalSyncsThroughThePageCache) {
  auto j = open_journal();  // fs_ offers no direct I/O
  auto seg = open_segment("streams/1/a.seg");
  ASSERT_TRUE(write_and_commit(*j, seg, tmp_ / "streams/1/a.seg", 0, "x").get());
  EXPECT_FALSE(j->stats().direct_io);
  EXPECT_GT(fs_.datasyncs(), 0);
}

// The tests below run with one sync slot (the writer syncs every batch itself, no sync threads:
// the server's default) and with four (syncs handed to sync threads while the writer batches).
class JournalSlotsTest : public JournalTest, public ::testing::WithParamInterface<int> {
 protected:
  std::unique_ptr<Journal> open_journal_with_slots() {
    Journal::Options o;
    o.max_syncs_in_flight = GetParam();
    return open_journal(o);
  }
};

INSTANTIATE_TEST_SUITE_P(SyncSlots, JournalSlotsTest, ::testing::Values(1, 4));

TEST_P(JournalSlotsTest, FailedSyncFailsItsBatchAndTheNextRecordGoesToANewFile) {
  auto j = open_journal_with_slots();
  auto seg = open_segment("streams/1/a.seg");
  std::string path = tmp_ / "streams/1/a.seg";
  ASSERT_TRUE(write_and_commit(*j, seg, path, 0, "acked").get());
  auto before = wal_files(tmp_ / "journal");
  ASSERT_EQ(before.size(), 1u);
  fs_.fail_next_datasync(test::FaultFs::eio());
  Status failed = write_and_commit(*j, seg, path, 5, "lost!").get();
  EXPECT_FALSE(failed);
  ASSERT_TRUE(seg->truncate(5));  // the owner cuts its log back, as Stream does
  ASSERT_TRUE(write_and_commit(*j, seg, path, 5, "after").get());
  auto after = wal_files(tmp_ / "journal");
  EXPECT_NE(after.back(), before.back());  // written to a newer journal file
  // "acked" is durable either way (the retired file's checkpoint synced it, or that file is still
  // there to replay); the disk lost everything after it.
  EXPECT_EQ(crash_and_replay("streams/1/a.seg", 5), "ackedafter");
  EXPECT_EQ(j->stats().failed_batches, 1u);
}

TEST_P(JournalSlotsTest, FailedWriteFailsTheBatchAndRecoversOnceTheDiskDoes) {
  auto j = open_journal_with_slots();
  auto seg = open_segment("streams/1/a.seg");
  std::string path = tmp_ / "streams/1/a.seg";
  ASSERT_TRUE(seg->pwrite("x", 1, 0));
  fs_.fail_next_write(test::FaultFs::enospc());  // hits the journal's pwrite
  Status s = commit(*j, seg, path, 0, "x").get();
  EXPECT_EQ(s.code(), Status::Code::kNoSpace);
  EXPECT_TRUE(write_and_commit(*j, seg, path, 0, "y").get());
}

TEST_P(JournalSlotsTest, CallbacksRunInSubmissionOrderAndBarriersWaitForEarlierRecords) {
  auto j = open_journal_with_slots();
  auto seg = open_segment("streams/1/a.seg");
  std::string path = tmp_ / "streams/1/a.seg";
  std::mutex mu;
  std::vector<int> order;
  std::promise<void> all;
  const int n = 200;
  fs_.hold_datasyncs();  // everything queues up behind a slow disk
  for (int i = 0; i < n; ++i) {
    std::string b = std::to_string(i);
    ASSERT_TRUE(seg->pwrite(b.data(), b.size(), 0));
    Committer::Write w;
    w.file = seg;
    w.path = path;
    w.bytes = (i % 3 == 2) ? std::string_view() : std::string_view(b);  // every third: a barrier
    j->commit(w, [&, i](const Status& s) {
      EXPECT_TRUE(s) << s.message();
      std::lock_guard lk(mu);
      order.push_back(i);
      if (static_cast<int>(order.size()) == n) all.set_value();
    });
  }
  {
    std::lock_guard lk(mu);
    EXPECT_TRUE(order.empty());  // nothing acknowledged while the disk holds the syncs
  }
  fs_.release_datasyncs();
  all.get_future().wait();
  std::vector<int> expected(n);
  for (int i = 0; i < n; ++i) expected[i] = i;
  EXPECT_EQ(order, expected);
  auto st = j->stats();
  EXPECT_EQ(st.records, static_cast<uint64_t>(n - n / 3));
  EXPECT_LT(st.syncs, static_cast<uint64_t>(n - n / 3));  // batched
}

TEST_F(JournalTest, RotationCheckpointsAndRemovesOldFiles) {
  Journal::Options o;
  o.rotate_bytes = 4096;
  auto j = open_journal(o);
  auto seg = open_segment("streams/1/a.seg");
  std::string path = tmp_ / "streams/1/a.seg";
  std::string expected;
  for (int i = 0; i < 200; ++i) {
    std::string rec(100, static_cast<char>('a' + i % 26));
    ASSERT_TRUE(write_and_commit(*j, seg, path, expected.size(), rec).get());
    expected += rec;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (j->stats().checkpoints < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_GE(j->stats().rotations, 4u);
  EXPECT_GE(j->stats().checkpoints, 3u);
  EXPECT_LE(wal_files(tmp_ / "journal").size(), 3u);  // current + at most two retired
  // What the journal no longer holds was synced to the segment file by the checkpoints; what it
  // still holds replays: either way a crash now loses nothing.
  std::string crash = snapshot("crash");
  ASSERT_TRUE(Journal::replay(Fs::posix(), crash + "/journal", crash, nullptr));
  EXPECT_EQ(slurp(crash + "/streams/1/a.seg"), expected);
}

TEST_F(JournalTest, CleanShutdownSyncsSegmentsAndLeavesNoJournal) {
  auto j = open_journal();
  auto seg = open_segment("streams/1/a.seg");
  ASSERT_TRUE(write_and_commit(*j, seg, tmp_ / "streams/1/a.seg", 0, "data").get());
  int syncs_before = fs_.datasyncs();
  j.reset();
  EXPECT_GT(fs_.datasyncs(), syncs_before);  // the checkpoint synced the segment file
  EXPECT_TRUE(wal_files(tmp_ / "journal").empty());
  EXPECT_EQ(slurp(tmp_ / "streams/1/a.seg"), "data");
}

TEST_F(JournalTest, IdleJournalIsRetiredAfterTheRotateInterval) {
  Journal::Options o;
  o.rotate_interval = std::chrono::milliseconds(50);
  auto j = open_journal(o);
  auto seg = open_segment("streams/1/a.seg");
  ASSERT_TRUE(write_and_commit(*j, seg, tmp_ / "streams/1/a.seg", 0, "data").get());
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (j->stats().checkpoints < 1 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(j->stats().checkpoints, 1u);
  auto files = wal_files(tmp_ / "journal");
  ASSERT_EQ(files.size(), 1u);  // only the new, empty file
  EXPECT_EQ(fs::file_size(tmp_ / ("journal/" + files[0])), journal::kHeaderSize);
}

}  // namespace
}  // namespace ds

namespace ds {
namespace {

TEST_F(JournalTest, CheckpointsOnceAFileCoversManySegmentFiles) {
  Journal::Options o;
  o.max_dirty_files = 4;
  auto j = open_journal(o);
  for (int i = 0; i < 12; ++i) {
    std::string rel = "streams/1/" + std::to_string(i) + ".seg";
    auto seg = open_segment(rel);
    ASSERT_TRUE(write_and_commit(*j, seg, tmp_ / rel, 0, "x").get());
  }
  EXPECT_GE(j->stats().rotations, 3u);  // the first file plus one per 4 segment files
}

TEST_F(JournalTest, OpenFailsCleanlyWhenTheFirstFileCannotBeSynced) {
  fs_.fail_datasync(test::FaultFs::eio());
  std::unique_ptr<Journal> j;
  Status s = Journal::open(&fs_, tmp_ / "journal", tmp_.path(), Journal::Options{}, 0, &j);
  EXPECT_FALSE(s);
  EXPECT_EQ(j, nullptr);
  fs_.clear_faults();
}

}  // namespace
}  // namespace ds
