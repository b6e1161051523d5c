// core::Stream through a real StreamStore, Catalog and committer (the shared Journal and the
// per-file GroupCommit: every test runs with both) in a temp dir, on a FaultFs.
#include "core/stream.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include <filesystem>
#include <future>
#include <iterator>
#include <optional>
#include <ostream>
#include <memory>
#include <string>
#include <vector>

#include "api/live.h"
#include "core/clock.h"
#include "core/stream_store.h"
#include "store/group_commit.h"
#include "store/journal.h"
#include "fault_fs.h"
#include "temp_dir.h"

namespace ds {

// Readable gtest failure messages for outcomes (found by ADL, so it lives in namespace ds).
inline void PrintTo(AppendResult::Outcome o, std::ostream* os) {
  static const char* const kNames[] = {"kAppended",       "kDuplicate",          "kAlreadyClosed",
                                       "kClosed",         "kStaleEpoch",         "kEpochSeqInvalid",
                                       "kSeqGap",         "kStreamSeqRegression", "kError"};
  auto i = static_cast<size_t>(o);
  *os << (i < std::size(kNames) ? kNames[i] : "Outcome(?)");
}

namespace {

using Outcome = AppendResult::Outcome;
using Messages = std::vector<std::string>;

// Runs an async API and waits for its callback. The promise is owned by the callback, so it
// stays alive however late the callback (on the commit thread) finishes with it.
template <typename T, typename Start>
T wait_for(Start start) {
  auto p = std::make_shared<std::promise<T>>();
  auto f = p->get_future();
  start([p](T v) { p->set_value(std::move(v)); });
  return f.get();
}

enum class CommitMode { kGroupCommit, kJournal };

class StreamTest : public ::testing::TestWithParam<CommitMode> {
 protected:
  static constexpr const char* kTenant = "tenant";

  void SetUp() override { start(); }
  void TearDown() override { stop(); }

  void start() {
    ASSERT_TRUE(fs_.create_dirs(tmp_ / "streams"));
    Status s = Catalog::open(tmp_ / "catalog.db", &catalog_);
    ASSERT_TRUE(s) << s.message();
    if (GetParam() == CommitMode::kJournal) {
      Journal::ReplayStats rs;
      s = Journal::replay(&fs_, tmp_ / "journal", tmp_.path(), &rs);
      ASSERT_TRUE(s) << s.message();
      std::unique_ptr<Journal> j;
      s = Journal::open(&fs_, tmp_ / "journal", tmp_.path(), Journal::Options{}, rs.last_generation,
                        &j);
      ASSERT_TRUE(s) << s.message();
      commit_ = std::move(j);
    } else {
      commit_ = std::make_unique<GroupCommit>(GroupCommit::Options{1, 1});  // deterministic batches
    }
    StreamStore::Options o;
    o.data_dir = tmp_.path();
    o.fs = &fs_;
    o.log = log_options_;
    store_ = std::make_unique<StreamStore>(o, catalog_.get(), commit_.get());
    s = store_->open();
    ASSERT_TRUE(s) << s.message();
    store_->start_expiry();
  }
  void stop() {
    commit_.reset();  // drains pending syncs
    store_.reset();
    catalog_.reset();
  }
  // For tests with their own io_context: the committer's threads may still hold a waiter (and
  // with it a strand of that io_context) for a moment after an append was acknowledged. Stop them
  // and drop the stream before the io_context is destroyed (ASan saw a strand freed after its
  // service in CI otherwise). TearDown's stop() is then a no-op.
  void release_before_io(std::shared_ptr<Stream>& s) {
    stop();
    s.reset();
  }
  // Simulates a process restart: every in-memory object is rebuilt from the catalog and logs.
  void restart() {
    stop();
    start();
  }

  CreateOutcome create(CreateSpec spec) {
    spec.tenant = kTenant;
    if (spec.content_type.empty() && !spec.forked_from) spec.content_type = "text/plain";
    return wait_for<CreateOutcome>([&](auto done) { store_->create(std::move(spec), done); });
  }
  std::shared_ptr<Stream> create(const std::string& path, Messages messages = {}) {
    CreateSpec spec;
    spec.path = path;
    spec.messages = std::move(messages);
    CreateOutcome out = create(std::move(spec));
    EXPECT_TRUE(out.status) << out.status.message();
    EXPECT_TRUE(out.created);
    return out.stream;
  }
  std::shared_ptr<Stream> fork(const std::string& path, const std::string& source,
                               std::optional<uint64_t> offset, uint64_t sub_offset = 0) {
    CreateSpec spec;
    spec.path = path;
    spec.forked_from = source;
    spec.fork_offset = offset;
    spec.fork_sub_offset = sub_offset;
    CreateOutcome out = create(std::move(spec));
    EXPECT_TRUE(out.status) << out.status.message();
    return out.stream;
  }
  Status find(const std::string& path, std::shared_ptr<Stream>* out = nullptr) {
    std::shared_ptr<Stream> s;
    Status st = store_->find(kTenant, path, &s);
    if (out) *out = s;
    return st;
  }
  std::shared_ptr<Stream> must_find(const std::string& path) {
    std::shared_ptr<Stream> s;
    Status st = find(path, &s);
    EXPECT_TRUE(st) << path << ": " << st.message();
    return s;
  }

  static AppendResult append(Stream& s, AppendRequest req) {
    return wait_for<AppendResult>([&](auto done) { s.append(std::move(req), done); });
  }
  static AppendResult append(Stream& s, Messages messages) {
    AppendRequest req;
    req.messages = std::move(messages);
    return append(s, std::move(req));
  }
  static AppendResult append_as(Stream& s, const std::string& producer, uint64_t epoch,
                                uint64_t seq, Messages messages = {"m"}, bool close = false) {
    AppendRequest req;
    req.messages = std::move(messages);
    req.producer = ProducerStamp{producer, epoch, seq};
    req.close = close;
    return append(s, std::move(req));
  }
  static AppendResult append_seq(Stream& s, const std::string& stream_seq, Messages messages) {
    AppendRequest req;
    req.messages = std::move(messages);
    req.stream_seq = stream_seq;
    return append(s, std::move(req));
  }
  static AppendResult close(Stream& s, Messages messages = {}) {
    AppendRequest req;
    req.messages = std::move(messages);
    req.close = true;
    return append(s, std::move(req));
  }
  // Parks the commit thread in a callback until the returned promise is set: appends made
  // meanwhile are written to their log but not synced.
  std::shared_ptr<std::promise<void>> park_commit_thread() {
    auto parked = std::make_shared<std::promise<void>>();
    auto release = std::make_shared<std::promise<void>>();
    std::unique_ptr<File> other;
    EXPECT_TRUE(fs_.open(tmp_ / "parking", &other));
    Committer::Write w;
    w.file = std::shared_ptr<File>(std::move(other));
    commit_->commit(w, [parked, release](const Status&) {
      parked->set_value();
      release->get_future().wait();
    });
    parked->get_future().wait();
    return release;
  }
  // Starts a create (spec as given, tenant included) without waiting for its outcome.
  std::future<CreateOutcome> start_create(CreateSpec spec) {
    auto p = std::make_shared<std::promise<CreateOutcome>>();
    auto f = p->get_future();
    store_->create(std::move(spec), [p](CreateOutcome o) { p->set_value(std::move(o)); });
    return f;
  }
  // Starts an append without waiting for its outcome.
  static std::future<AppendResult> start_append(Stream& s, Messages messages) {
    auto p = std::make_shared<std::promise<AppendResult>>();
    auto f = p->get_future();
    AppendRequest req;
    req.messages = std::move(messages);
    s.append(std::move(req), [p](AppendResult r) { p->set_value(std::move(r)); });
    return f;
  }
  static Messages read_all(Stream& s, uint64_t from = 0) {
    ReadResult r;
    Status st = s.read(from, SIZE_MAX, &r);
    EXPECT_TRUE(st) << st.message();
    return r.messages;
  }

  test::TempDir tmp_;
  test::FaultFs fs_;
  StreamLog::Options log_options_;
  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<Committer> commit_;
  std::unique_ptr<StreamStore> store_;
};

// ---- Producer state machine ----

TEST_P(StreamTest, NewProducerStartingAtSeqZeroIsAccepted) {
  auto s = create("s");
  AppendResult r = append_as(*s, "p", 0, 0, {"a", "b"});
  EXPECT_EQ(r.outcome, Outcome::kAppended);
  EXPECT_EQ(r.first_position, 0u);
  EXPECT_EQ(r.next_position, 2u);
  EXPECT_EQ(r.producer_epoch, 0u);
  EXPECT_EQ(r.producer_seq, 0u);
  EXPECT_EQ(read_all(*s), (Messages{"a", "b"}));
}

TEST_P(StreamTest, NewProducerMayStartAtAnyEpoch) {
  auto s = create("s");
  AppendResult r = append_as(*s, "p", 7, 0);
  EXPECT_EQ(r.outcome, Outcome::kAppended);
  EXPECT_EQ(r.producer_epoch, 7u);
}

TEST_P(StreamTest, NewProducerWithNonZeroSeqIsEpochSeqInvalid) {
  auto s = create("s");
  AppendResult r = append_as(*s, "p", 0, 3);
  EXPECT_EQ(r.outcome, Outcome::kEpochSeqInvalid);
  EXPECT_EQ(r.expected_seq, 0u);
  EXPECT_EQ(r.received_seq, 3u);
  EXPECT_EQ(s->tail(), 0u);
}

TEST_P(StreamTest, SameEpochNextSeqIsAccepted) {
  auto s = create("s");
  ASSERT_EQ(append_as(*s, "p", 1, 0, {"a"}).outcome, Outcome::kAppended);
  AppendResult r = append_as(*s, "p", 1, 1, {"b"});
  EXPECT_EQ(r.outcome, Outcome::kAppended);
  EXPECT_EQ(r.producer_epoch, 1u);
  EXPECT_EQ(r.producer_seq, 1u);
  EXPECT_EQ(r.first_position, 1u);
  EXPECT_EQ(read_all(*s), (Messages{"a", "b"}));
}

TEST_P(StreamTest, DuplicateSeqIsDuplicateWithHighestAcceptedSeq) {
  auto s = create("s");
  for (uint64_t seq = 0; seq < 3; ++seq) {
    ASSERT_EQ(append_as(*s, "p", 0, seq, {"m" + std::to_string(seq)}).outcome,
              Outcome::kAppended);
  }
  AppendResult r = append_as(*s, "p", 0, 1, {"m1"});
  EXPECT_EQ(r.outcome, Outcome::kDuplicate);
  EXPECT_EQ(r.producer_epoch, 0u);
  EXPECT_EQ(r.producer_seq, 2u);
  EXPECT_EQ(read_all(*s), (Messages{"m0", "m1", "m2"}));
}

TEST_P(StreamTest, SeqGapReportsExpectedAndReceived) {
  auto s = create("s");
  ASSERT_EQ(append_as(*s, "p", 0, 0).outcome, Outcome::kAppended);
  AppendResult r = append_as(*s, "p", 0, 5);
  EXPECT_EQ(r.outcome, Outcome::kSeqGap);
  EXPECT_EQ(r.expected_seq, 1u);
  EXPECT_EQ(r.received_seq, 5u);
  EXPECT_EQ(s->tail(), 1u);
}

TEST_P(StreamTest, StaleEpochIsFencedWithCurrentEpoch) {
  auto s = create("s");
  ASSERT_EQ(append_as(*s, "p", 2, 0).outcome, Outcome::kAppended);
  AppendResult r = append_as(*s, "p", 1, 0);
  EXPECT_EQ(r.outcome, Outcome::kStaleEpoch);
  EXPECT_EQ(r.producer_epoch, 2u);
  EXPECT_EQ(s->tail(), 1u);
}

TEST_P(StreamTest, NewEpochWithNonZeroSeqIsEpochSeqInvalid) {
  auto s = create("s");
  ASSERT_EQ(append_as(*s, "p", 0, 0).outcome, Outcome::kAppended);
  AppendResult r = append_as(*s, "p", 1, 4);
  EXPECT_EQ(r.outcome, Outcome::kEpochSeqInvalid);
  EXPECT_EQ(r.expected_seq, 0u);
  EXPECT_EQ(r.received_seq, 4u);
  EXPECT_EQ(s->tail(), 1u);
}

TEST_P(StreamTest, NewEpochAtSeqZeroIsAcceptedAndFencesOldEpoch) {
  auto s = create("s");
  ASSERT_EQ(append_as(*s, "p", 0, 0).outcome, Outcome::kAppended);
  ASSERT_EQ(append_as(*s, "p", 0, 1).outcome, Outcome::kAppended);
  AppendResult r = append_as(*s, "p", 1, 0);
  EXPECT_EQ(r.outcome, Outcome::kAppended);
  EXPECT_EQ(r.producer_epoch, 1u);
  EXPECT_EQ(r.producer_seq, 0u);
  EXPECT_EQ(append_as(*s, "p", 0, 2).outcome, Outcome::kStaleEpoch);
}

TEST_P(StreamTest, ProducersAreTrackedIndependently) {
  auto s = create("s");
  ASSERT_EQ(append_as(*s, "a", 0, 0).outcome, Outcome::kAppended);
  ASSERT_EQ(append_as(*s, "a", 0, 1).outcome, Outcome::kAppended);
  EXPECT_EQ(append_as(*s, "b", 0, 0).outcome, Outcome::kAppended);
  EXPECT_EQ(append_as(*s, "b", 0, 1).outcome, Outcome::kAppended);
  EXPECT_EQ(append_as(*s, "a", 0, 2).outcome, Outcome::kAppended);
}

// ---- Stream-Seq ----

TEST_P(StreamTest, LowerStreamSeqIsRegression) {
  auto s = create("s");
  ASSERT_EQ(append_seq(*s, "002", {"a"}).outcome, Outcome::kAppended);
  EXPECT_EQ(append_seq(*s, "001", {"b"}).outcome, Outcome::kStreamSeqRegression);
  EXPECT_EQ(read_all(*s), (Messages{"a"}));
}

TEST_P(StreamTest, EqualStreamSeqIsRegression) {
  auto s = create("s");
  ASSERT_EQ(append_seq(*s, "002", {"a"}).outcome, Outcome::kAppended);
  EXPECT_EQ(append_seq(*s, "002", {"b"}).outcome, Outcome::kStreamSeqRegression);
  EXPECT_EQ(s->tail(), 1u);
}

TEST_P(StreamTest, HigherStreamSeqIsAccepted) {
  auto s = create("s");
  ASSERT_EQ(append_seq(*s, "002", {"a"}).outcome, Outcome::kAppended);
  EXPECT_EQ(append(*s, Messages{"no seq"}).outcome, Outcome::kAppended);
  EXPECT_EQ(append_seq(*s, "010", {"b"}).outcome, Outcome::kAppended);
  EXPECT_EQ(read_all(*s), (Messages{"a", "no seq", "b"}));
}

// ---- Closure ----

TEST_P(StreamTest, ClosedStreamRejectsAppends) {
  auto s = create("s", {"a"});
  AppendResult c = close(*s, {"last"});
  ASSERT_EQ(c.outcome, Outcome::kAppended);
  EXPECT_TRUE(c.closed);

  AppendResult r = append(*s, Messages{"x"});
  EXPECT_EQ(r.outcome, Outcome::kClosed);
  EXPECT_TRUE(r.closed);
  EXPECT_EQ(r.next_position, 2u);
  EXPECT_EQ(read_all(*s), (Messages{"a", "last"}));
  EXPECT_TRUE(s->closed());
}

TEST_P(StreamTest, ReadAtTailOfClosedStreamReportsClosed) {
  auto s = create("s", {"a"});
  ASSERT_EQ(close(*s).outcome, Outcome::kAppended);
  ReadResult r;
  ASSERT_TRUE(s->read(0, SIZE_MAX, &r));
  EXPECT_EQ(r.next_position, 1u);
  EXPECT_TRUE(r.up_to_date);
  EXPECT_TRUE(r.closed);
}

TEST_P(StreamTest, CloseOnlyOnClosedStreamIsAlreadyClosed) {
  auto s = create("s", {"a"});
  ASSERT_EQ(close(*s).outcome, Outcome::kAppended);
  AppendResult r = close(*s);
  EXPECT_EQ(r.outcome, Outcome::kAlreadyClosed);
  EXPECT_TRUE(r.closed);
  EXPECT_EQ(r.next_position, 1u);
}

TEST_P(StreamTest, CloseWithDataOnClosedStreamIsClosed) {
  auto s = create("s");
  ASSERT_EQ(close(*s).outcome, Outcome::kAppended);
  EXPECT_EQ(close(*s, {"more"}).outcome, Outcome::kClosed);
  EXPECT_EQ(s->tail(), 0u);
}

TEST_P(StreamTest, RetryOfClosingProducerRequestIsDuplicate) {
  auto s = create("s");
  ASSERT_EQ(append_as(*s, "p", 0, 0, {"a"}).outcome, Outcome::kAppended);
  ASSERT_EQ(append_as(*s, "p", 0, 1, {"b"}, /*close=*/true).outcome, Outcome::kAppended);

  AppendResult r = append_as(*s, "p", 0, 1, {"b"}, /*close=*/true);
  EXPECT_EQ(r.outcome, Outcome::kDuplicate);
  EXPECT_TRUE(r.closed);
  EXPECT_EQ(r.producer_epoch, 0u);
  EXPECT_EQ(r.producer_seq, 1u);
  EXPECT_EQ(append_as(*s, "p", 0, 2, {"c"}).outcome, Outcome::kClosed);
  EXPECT_EQ(read_all(*s), (Messages{"a", "b"}));
}

// ---- Durability and recovery ----

TEST_P(StreamTest, ReadersDoNotSeeDataBeforeItIsDurable) {
  auto s = create("s", {"durable"});
  auto release = park_commit_thread();
  auto pending = start_append(*s, {"pending"});

  EXPECT_EQ(s->tail(), 1u);
  EXPECT_EQ(read_all(*s), (Messages{"durable"}));
  release->set_value();
  EXPECT_EQ(pending.get().outcome, Outcome::kAppended);
  EXPECT_EQ(read_all(*s), (Messages{"durable", "pending"}));
}

TEST_P(StreamTest, RestartRecoversData) {
  auto s = create("s", {"a", "b"});
  ASSERT_EQ(append(*s, Messages{"c"}).outcome, Outcome::kAppended);
  s.reset();
  restart();
  s = must_find("s");
  EXPECT_EQ(read_all(*s), (Messages{"a", "b", "c"}));
  EXPECT_EQ(s->tail(), 3u);
}

TEST_P(StreamTest, RestartRecoversProducerState) {
  auto s = create("s");
  ASSERT_EQ(append_as(*s, "p", 3, 0).outcome, Outcome::kAppended);
  ASSERT_EQ(append_as(*s, "p", 3, 1).outcome, Outcome::kAppended);
  s.reset();
  restart();
  s = must_find("s");

  AppendResult dup = append_as(*s, "p", 3, 1);
  EXPECT_EQ(dup.outcome, Outcome::kDuplicate);
  EXPECT_EQ(dup.producer_seq, 1u);
  AppendResult gap = append_as(*s, "p", 3, 5);
  EXPECT_EQ(gap.outcome, Outcome::kSeqGap);
  EXPECT_EQ(gap.expected_seq, 2u);
  AppendResult stale = append_as(*s, "p", 2, 0);
  EXPECT_EQ(stale.outcome, Outcome::kStaleEpoch);
  EXPECT_EQ(stale.producer_epoch, 3u);
  EXPECT_EQ(append_as(*s, "p", 3, 2).outcome, Outcome::kAppended);
}

TEST_P(StreamTest, RestartRecoversStreamSeq) {
  auto s = create("s");
  ASSERT_EQ(append_seq(*s, "005", {"a"}).outcome, Outcome::kAppended);
  s.reset();
  restart();
  s = must_find("s");
  EXPECT_EQ(append_seq(*s, "004", {"b"}).outcome, Outcome::kStreamSeqRegression);
  EXPECT_EQ(append_seq(*s, "006", {"b"}).outcome, Outcome::kAppended);
}

TEST_P(StreamTest, RestartRecoversClosureAndClosingProducer) {
  auto s = create("s");
  ASSERT_EQ(append_as(*s, "p", 0, 0, {"a"}, /*close=*/true).outcome, Outcome::kAppended);
  s.reset();
  restart();
  s = must_find("s");

  EXPECT_TRUE(s->closed());
  EXPECT_EQ(read_all(*s), (Messages{"a"}));
  EXPECT_EQ(append(*s, Messages{"x"}).outcome, Outcome::kClosed);
  EXPECT_EQ(close(*s).outcome, Outcome::kAlreadyClosed);
  EXPECT_EQ(append_as(*s, "p", 0, 0, {"a"}, /*close=*/true).outcome, Outcome::kDuplicate);
}

TEST_P(StreamTest, FailedDatasyncFailsAppendAndHidesItsData) {
  auto s = create("s", {"acked"});
  fs_.fail_datasync(test::FaultFs::eio());
  AppendResult r = append(*s, Messages{"lost"});
  EXPECT_EQ(r.outcome, Outcome::kError);
  EXPECT_EQ(r.status.code(), Status::Code::kIoError);
  EXPECT_EQ(s->tail(), 1u);
  EXPECT_EQ(read_all(*s), (Messages{"acked"}));
}

TEST_P(StreamTest, AppendAfterDatasyncFaultClearsSucceedsWithOnlyAckedData) {
  auto s = create("s", {"acked"});
  fs_.fail_datasync(test::FaultFs::eio());
  ASSERT_EQ(append(*s, Messages{"lost"}).outcome, Outcome::kError);
  fs_.clear_faults();

  AppendResult r = append(*s, Messages{"next"});
  EXPECT_EQ(r.outcome, Outcome::kAppended);
  EXPECT_EQ(r.first_position, 1u);
  EXPECT_EQ(read_all(*s), (Messages{"acked", "next"}));

  s.reset();
  restart();
  EXPECT_EQ(read_all(*must_find("s")), (Messages{"acked", "next"}));
}

TEST_P(StreamTest, FailedDatasyncDoesNotAdvanceProducerState) {
  auto s = create("s");
  ASSERT_EQ(append_as(*s, "p", 0, 0, {"a"}).outcome, Outcome::kAppended);
  fs_.fail_datasync(test::FaultFs::eio());
  ASSERT_EQ(append_as(*s, "p", 0, 1, {"b"}).outcome, Outcome::kError);
  fs_.clear_faults();

  // The retry is new data, not a duplicate of the failed request.
  AppendResult retry = append_as(*s, "p", 0, 1, {"b"});
  EXPECT_EQ(retry.outcome, Outcome::kAppended);
  EXPECT_EQ(read_all(*s), (Messages{"a", "b"}));
}

TEST_P(StreamTest, FailedDatasyncOfCloseLeavesStreamOpen) {
  auto s = create("s", {"a"});
  fs_.fail_datasync(test::FaultFs::eio());
  ASSERT_EQ(close(*s).outcome, Outcome::kError);
  fs_.clear_faults();

  EXPECT_FALSE(s->closed());
  EXPECT_EQ(append(*s, Messages{"b"}).outcome, Outcome::kAppended);
  s.reset();
  restart();
  s = must_find("s");
  EXPECT_FALSE(s->closed());
  EXPECT_EQ(read_all(*s), (Messages{"a", "b"}));
}

TEST_P(StreamTest, FailedDatasyncFailsEveryUnacknowledgedAppend) {
  auto s = create("s", {"acked"});
  auto release = park_commit_thread();
  fs_.fail_datasync(test::FaultFs::eio());  // the disk fails every sync covering the appends
  auto first = start_append(*s, {"one"});
  auto second = start_append(*s, {"two"});
  release->set_value();

  EXPECT_EQ(first.get().outcome, Outcome::kError);
  EXPECT_EQ(second.get().outcome, Outcome::kError);
  fs_.clear_faults();
  EXPECT_EQ(read_all(*s), (Messages{"acked"}));
  EXPECT_EQ(append(*s, Messages{"three"}).outcome, Outcome::kAppended);
  EXPECT_EQ(read_all(*s), (Messages{"acked", "three"}));
}

// When an append rolls the segment and the fdatasync of the full segment fails, appends already
// written to it and waiting for the group commit must fail too: a later sync's success cannot vouch
// for pages an earlier sync failed to write (Linux reports a writeback error once).
TEST_P(StreamTest, FailedSegmentRollSyncFailsInFlightAppends) {
  stop();
  log_options_.segment_bytes = 64;
  start();
  auto s = create("s");
  auto release = park_commit_thread();
  auto in_flight = start_append(*s, {std::string(100, 'a')});  // fills the first segment
  fs_.fail_next_datasync(test::FaultFs::eio(), ".seg");
  AppendResult rolling = append(*s, Messages{"b"});  // rolls: syncs the full segment, fails
  EXPECT_EQ(rolling.outcome, Outcome::kError);
  release->set_value();

  EXPECT_EQ(in_flight.get().outcome, Outcome::kError);
  EXPECT_TRUE(read_all(*s).empty());
}

TEST_P(StreamTest, SlowDiskDelaysOnlyTheAckNotReadsOfDurableData) {
  auto s = create("s", {"acked"});
  fs_.hold_datasyncs();
  auto pending = start_append(*s, {"slow"});
  while (fs_.held_datasyncs() == 0) std::this_thread::yield();  // the sync is now stuck
  // Reads are served from durable data while the sync is stuck, and the append is not acked.
  EXPECT_EQ(read_all(*s), (Messages{"acked"}));
  EXPECT_EQ(pending.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
  fs_.release_datasyncs();
  EXPECT_EQ(pending.get().outcome, Outcome::kAppended);
  EXPECT_EQ(read_all(*s), (Messages{"acked", "slow"}));
}

TEST_P(StreamTest, WriteEnospcMapsToNoSpace) {
  auto s = create("s", {"a"});
  fs_.fail_next_write(test::FaultFs::enospc());
  AppendResult r = append(*s, Messages{"b"});
  EXPECT_EQ(r.outcome, Outcome::kError);
  EXPECT_EQ(r.status.code(), Status::Code::kNoSpace);
  EXPECT_EQ(read_all(*s), (Messages{"a"}));
  EXPECT_EQ(append(*s, Messages{"c"}).outcome, Outcome::kAppended);
  EXPECT_EQ(read_all(*s), (Messages{"a", "c"}));
}

TEST_P(StreamTest, ShortWriteFailsAppendAndLeavesNoTornFrame) {
  auto s = create("s", {"a"});
  fs_.short_write_next(9);
  AppendResult r = append_as(*s, "p", 0, 0, {"torn"});
  EXPECT_EQ(r.outcome, Outcome::kError);
  EXPECT_EQ(r.status.code(), Status::Code::kIoError);

  EXPECT_EQ(append_as(*s, "p", 0, 0, {"b"}).outcome, Outcome::kAppended);
  s.reset();
  restart();
  EXPECT_EQ(read_all(*must_find("s")), (Messages{"a", "b"}));
}

// Over-long Stream-Seq values (beyond kMaxTokenBytes) must be rejected rather than acknowledged
// and then lost on recovery.
TEST_P(StreamTest, AcknowledgedAppendWithHugeStreamSeqSurvivesRestart) {
  auto s = create("s", {"a"});
  AppendResult r = append_seq(*s, std::string(70000, '1'), {"b"});
  if (r.outcome != Outcome::kAppended) return;  // rejecting it is fine too
  ASSERT_EQ(append(*s, Messages{"c"}).outcome, Outcome::kAppended);
  s.reset();
  restart();
  EXPECT_EQ(read_all(*must_find("s")), (Messages{"a", "b", "c"}));
}

TEST_P(StreamTest, AppendsSpanSegmentsAcrossRestart) {
  stop();
  log_options_.segment_bytes = 128;
  start();
  auto s = create("s");
  Messages all;
  for (int i = 0; i < 20; ++i) {
    all.push_back("message " + std::to_string(i) + std::string(40, '.'));
    ASSERT_EQ(append(*s, Messages{all.back()}).outcome, Outcome::kAppended);
  }
  EXPECT_EQ(read_all(*s), all);
  s.reset();
  restart();
  EXPECT_EQ(read_all(*must_find("s")), all);
}

// ---- Forks ----

TEST_P(StreamTest, ForkReadsSourceBeforeForkOffsetAndOwnDataAfter) {
  auto src = create("src", {"a", "b", "c"});
  auto f = fork("f", "src", 2);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->tail(), 2u);
  ASSERT_EQ(append(*src, Messages{"d"}).outcome, Outcome::kAppended);
  AppendResult r = append(*f, Messages{"x"});
  ASSERT_EQ(r.outcome, Outcome::kAppended);
  EXPECT_EQ(r.first_position, 2u);

  EXPECT_EQ(read_all(*f), (Messages{"a", "b", "x"}));
  EXPECT_EQ(read_all(*f, 1), (Messages{"b", "x"}));
  EXPECT_EQ(read_all(*f, 2), (Messages{"x"}));
  EXPECT_EQ(read_all(*src), (Messages{"a", "b", "c", "d"}));
}

TEST_P(StreamTest, ForkWithoutOffsetStartsAtSourceTail) {
  auto src = create("src", {"a", "b"});
  auto f = fork("f", "src", std::nullopt);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->tail(), 2u);
  EXPECT_EQ(read_all(*f), (Messages{"a", "b"}));
}

TEST_P(StreamTest, ForkReadHonoursBudgetAcrossSourceBoundary) {
  auto src = create("src", {"0123456789", "0123456789"});
  auto f = fork("f", "src", 2);
  ASSERT_EQ(append(*f, Messages{"0123456789"}).outcome, Outcome::kAppended);
  ReadResult r;
  ASSERT_TRUE(f->read(0, 15, &r));
  EXPECT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.next_position, 1u);
  EXPECT_FALSE(r.up_to_date);
  ASSERT_TRUE(f->read(1, 20, &r));
  EXPECT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.next_position, 3u);
  EXPECT_TRUE(r.up_to_date);
}

TEST_P(StreamTest, ForkOfForkStitchesAllAncestors) {
  auto a = create("a", {"a0", "a1"});
  auto b = fork("b", "a", 1);
  ASSERT_EQ(append(*b, Messages{"b1", "b2"}).outcome, Outcome::kAppended);
  auto c = fork("c", "b", 2);
  ASSERT_EQ(append(*c, Messages{"c2"}).outcome, Outcome::kAppended);
  EXPECT_EQ(read_all(*c), (Messages{"a0", "b1", "c2"}));
}

TEST_P(StreamTest, ForkSurvivesRestart) {
  auto src = create("src", {"a", "b", "c"});
  auto f = fork("f", "src", 1);
  ASSERT_EQ(append(*f, Messages{"x"}).outcome, Outcome::kAppended);
  src.reset();
  f.reset();
  restart();
  EXPECT_EQ(read_all(*must_find("f")), (Messages{"a", "x"}));
}

TEST_P(StreamTest, BinarySubOffsetForkMaterialisesPrefix) {
  CreateSpec spec;
  spec.path = "src";
  spec.content_type = "application/octet-stream";
  spec.messages = {"hello", "world"};
  ASSERT_TRUE(create(std::move(spec)).status);

  auto f = fork("f", "src", 1, 3);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->tail(), 2u);
  EXPECT_EQ(read_all(*f), (Messages{"hello", "wor"}));
  ASSERT_EQ(append(*f, Messages{"ld!"}).outcome, Outcome::kAppended);
  EXPECT_EQ(read_all(*f), (Messages{"hello", "wor", "ld!"}));
  EXPECT_EQ(read_all(*must_find("src")), (Messages{"hello", "world"}));
}

TEST_P(StreamTest, DeletingSourceWithForksSoftDeletesIt) {
  create("src", {"a", "b"});
  auto f = fork("f", "src", 2);
  ASSERT_TRUE(store_->remove(kTenant, "src"));

  EXPECT_EQ(find("src").code(), Status::Code::kGone);
  EXPECT_EQ(store_->remove(kTenant, "src").code(), Status::Code::kGone);
  EXPECT_EQ(read_all(*f), (Messages{"a", "b"}));  // the fork still reads the source's data
}

TEST_P(StreamTest, SoftDeleteSurvivesRestart) {
  create("src", {"a"});
  fork("f", "src", 1);
  ASSERT_TRUE(store_->remove(kTenant, "src"));
  restart();
  EXPECT_EQ(find("src").code(), Status::Code::kGone);
  EXPECT_EQ(read_all(*must_find("f")), (Messages{"a"}));
}

TEST_P(StreamTest, DeletingLastForkCascadesToSoftDeletedSource) {
  auto src = create("src", {"a"});
  std::string src_dir = src->dir();
  src.reset();
  fork("f1", "src", 1);
  fork("f2", "src", 0);
  ASSERT_TRUE(store_->remove(kTenant, "src"));

  ASSERT_TRUE(store_->remove(kTenant, "f1"));
  EXPECT_EQ(find("src").code(), Status::Code::kGone);  // f2 still needs it
  ASSERT_TRUE(store_->remove(kTenant, "f2"));
  EXPECT_EQ(find("src").code(), Status::Code::kNotFound);
  EXPECT_EQ(find("f2").code(), Status::Code::kNotFound);
  EXPECT_FALSE(std::filesystem::exists(src_dir));
  EXPECT_EQ(store_->size(), 0u);

  restart();
  EXPECT_EQ(find("src").code(), Status::Code::kNotFound);
}

TEST_P(StreamTest, DeletingStreamWithoutForksRemovesItAtOnce) {
  auto s = create("s", {"a"});
  std::string dir = s->dir();
  s.reset();
  ASSERT_TRUE(store_->remove(kTenant, "s"));
  EXPECT_EQ(find("s").code(), Status::Code::kNotFound);
  EXPECT_FALSE(std::filesystem::exists(dir));
  EXPECT_EQ(store_->remove(kTenant, "s").code(), Status::Code::kNotFound);
}

// ---- batch reads ----

Messages batch_messages(const MessageBatch& b) {
  Messages out;
  for (size_t i = 0; i < b.size(); ++i) out.emplace_back(b[i]);
  return out;
}

TEST_P(StreamTest, BatchReadMatchesReadIncludingForkBudgets) {
  auto src = create("src", {"0123456789", "0123456789"});
  auto f = fork("f", "src", 2);
  ASSERT_EQ(append(*f, Messages{"0123456789", "tail"}).outcome, Outcome::kAppended);
  for (uint64_t from = 0; from <= 4; ++from) {
    for (size_t budget : {size_t{0}, size_t{15}, size_t{20}, size_t{25}, SIZE_MAX}) {
      ReadResult r;
      BatchReadResult b;
      ASSERT_TRUE(f->read(from, budget, &r));
      ASSERT_TRUE(f->read(from, budget, &b));
      EXPECT_EQ(batch_messages(b.messages), r.messages) << "from " << from << " budget " << budget;
      EXPECT_EQ(b.next_position, r.next_position);
      EXPECT_EQ(b.tail, r.tail);
      EXPECT_EQ(b.up_to_date, r.up_to_date);
      EXPECT_EQ(b.closed, r.closed);
    }
  }
}

TEST_P(StreamTest, DurableStateReportsTailAndClosureTogetherAndNotFoundAfterDelete) {
  auto s = create("s", {"a"});
  uint64_t tail = 0;
  bool closed = true;
  ASSERT_TRUE(s->durable_state(&tail, &closed));
  EXPECT_EQ(tail, 1u);
  EXPECT_FALSE(closed);
  AppendRequest req;
  req.messages = {"b"};
  req.close = true;
  ASSERT_EQ(append(*s, std::move(req)).outcome, Outcome::kAppended);
  ASSERT_TRUE(s->durable_state(&tail, &closed));
  EXPECT_EQ(tail, 2u);
  EXPECT_TRUE(closed);
  ASSERT_TRUE(store_->remove(kTenant, "s"));
  EXPECT_EQ(s->durable_state(&tail, &closed).code(), Status::Code::kNotFound);
}

TEST_P(StreamTest, ConcurrentBatchReadersSeeOnlyWholeDurablePrefixesWhileAppending) {
  auto s = create("s");
  constexpr int kMessages = 400;
  std::atomic<bool> done{false};
  std::atomic<int> bad{0};
  std::atomic<long> reads{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&] {
      BatchReadResult r;
      while (!done.load()) {
        uint64_t from = static_cast<uint64_t>(reads.load() % 7);
        if (!s->read(from, 64, &r)) {
          ++bad;
          continue;
        }
        ++reads;
        for (size_t i = 0; i < r.messages.size(); ++i) {
          if (r.messages[i] != "m" + std::to_string(from + i)) ++bad;
        }
        if (from <= r.tail && r.next_position > r.tail) ++bad;  // from > tail: next stays at from
      }
    });
  }
  for (int i = 0; i < kMessages; i += 2) {
    ASSERT_EQ(append(*s, Messages{"m" + std::to_string(i), "m" + std::to_string(i + 1)}).outcome,
              Outcome::kAppended);
  }
  done = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(reads.load(), 0);
  BatchReadResult all;
  ASSERT_TRUE(s->read(0, SIZE_MAX, &all));
  EXPECT_EQ(all.messages.size(), static_cast<size_t>(kMessages));
}

// ---- Live waiting (api/live.h LiveWait on core LiveWaiterList) ----

// Deadlines relative to now.
std::chrono::steady_clock::time_point in(std::chrono::milliseconds d) {
  return std::chrono::steady_clock::now() + d;
}
constexpr std::chrono::milliseconds kLong{30000};

TEST_P(StreamTest, LiveWaitsOnTwoThreadsAreEachWokenOnceByAnAppend) {
  auto s = create("/live-waits", {"a"});
  boost::asio::io_context io;
  auto guard = boost::asio::make_work_guard(io);
  std::atomic<int> woke{0}, timed_out{0}, waiting{0};
  constexpr int kConns = 2000;
  for (int i = 0; i < kConns; ++i) {
    auto strand = boost::asio::make_strand(io);
    boost::asio::co_spawn(
        strand,
        [&, s]() -> boost::asio::awaitable<void> {
          LiveWait w(co_await boost::asio::this_coro::executor);
          ++waiting;
          bool r = co_await w.wait(s, 1, in(kLong));
          (r ? woke : timed_out)++;
        },
        boost::asio::detached);
  }
  std::thread t1([&] { io.run(); }), t2([&] { io.run(); });
  while (waiting.load() < kConns) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // every wait registered
  EXPECT_EQ(append(*s, {"b"}).outcome, Outcome::kAppended);
  guard.reset();
  t1.join();
  t2.join();
  EXPECT_EQ(woke.load(), kConns);
  EXPECT_EQ(timed_out.load(), 0);
  release_before_io(s);
}

TEST_P(StreamTest, LiveWaitReturnsFalseAtItsDeadlineAndTrueWhenDataIsAlreadyThere) {
  auto s = create("/live-deadline", {"a"});
  boost::asio::io_context io;
  std::vector<int> results;
  std::chrono::steady_clock::duration first_wait{};
  boost::asio::co_spawn(
      boost::asio::make_strand(io),
      [&]() -> boost::asio::awaitable<void> {
        LiveWait w(co_await boost::asio::this_coro::executor);
        auto t0 = std::chrono::steady_clock::now();
        results.push_back(co_await w.wait(s, 1, t0 + std::chrono::milliseconds(50)));
        first_wait = std::chrono::steady_clock::now() - t0;
        // Later deadlines re-arm the (lazy) timer; an earlier one cuts it short.
        results.push_back(co_await w.wait(s, 1, in(std::chrono::milliseconds(80))));
        results.push_back(co_await w.wait(s, 1, in(std::chrono::milliseconds(10))));
        results.push_back(co_await w.wait(s, 0, in(kLong)));
      },
      boost::asio::detached);
  io.run();
  EXPECT_EQ(results, (std::vector<int>{0, 0, 0, 1}));
  EXPECT_GE(first_wait, std::chrono::milliseconds(50));
}

TEST_P(StreamTest, LiveWaitIsWokenByEveryAppendWhileReused) {
  auto s = create("/live-reuse", {"a"});
  boost::asio::io_context io;
  auto guard = boost::asio::make_work_guard(io);
  std::atomic<int> woke{0};
  std::atomic<uint64_t> waiting_at{0};
  boost::asio::co_spawn(
      boost::asio::make_strand(io),
      [&]() -> boost::asio::awaitable<void> {
        LiveWait w(co_await boost::asio::this_coro::executor);
        for (uint64_t pos = 1; pos <= 20; ++pos) {
          waiting_at = pos;
          if (co_await w.wait(s, pos, in(kLong))) ++woke;
        }
      },
      boost::asio::detached);
  std::thread t([&] { io.run(); });
  for (uint64_t pos = 1; pos <= 20; ++pos) {
    while (waiting_at.load() < pos) std::this_thread::sleep_for(std::chrono::microseconds(100));
    EXPECT_EQ(append(*s, {"m"}).outcome, Outcome::kAppended);
  }
  guard.reset();
  t.join();
  EXPECT_EQ(woke.load(), 20);
  release_before_io(s);
}

// A stream created with initial data is seen whole or not at all: until that data is durable
// it is not found, and a second create of the path waits for the first and is then decided
// against the finished stream (200 with its tail), not against a half-made one.
TEST_P(StreamTest, AStreamCreatedWithDataIsSeenOnlyWhole) {
  auto release = park_commit_thread();  // the initial data is written but not yet durable
  CreateSpec spec;
  spec.tenant = kTenant;
  spec.path = "whole";
  spec.content_type = "text/plain";
  spec.messages = {"first"};
  spec.closed = true;
  auto f1 = start_create(spec);
  EXPECT_EQ(find("whole").code(), Status::Code::kNotFound);
  auto f2 = start_create(spec);
  EXPECT_EQ(find("whole").code(), Status::Code::kNotFound);
  release->set_value();

  CreateOutcome o1 = f1.get();
  ASSERT_TRUE(o1.status) << o1.status.message();
  EXPECT_TRUE(o1.created);
  EXPECT_EQ(o1.next_position, 1u);
  EXPECT_TRUE(o1.closed);
  CreateOutcome o2 = f2.get();
  ASSERT_TRUE(o2.status) << o2.status.message();
  EXPECT_FALSE(o2.created);
  EXPECT_EQ(o2.next_position, 1u);
  EXPECT_TRUE(o2.closed);
  auto s = must_find("whole");
  ASSERT_TRUE(s);
  EXPECT_EQ(read_all(*s), (Messages{"first"}));
  EXPECT_TRUE(s->closed());
}

// A create whose initial data could not be made durable is undone: nothing is left under the
// path, and creating it again starts afresh.
TEST_P(StreamTest, ACreateWhoseDataFailsLeavesNothing) {
  fs_.fail_next_datasync(test::FaultFs::eio());
  CreateSpec spec;
  spec.path = "failed";
  spec.messages = {"lost"};
  CreateOutcome out = create(spec);
  EXPECT_FALSE(out.status);
  EXPECT_EQ(find("failed").code(), Status::Code::kNotFound);
  size_t dirs = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(tmp_ / "streams")) ++dirs;
  EXPECT_EQ(dirs, 0u);  // its log directory went with it
  auto s = create("failed", {"kept"});
  ASSERT_TRUE(s);
  EXPECT_EQ(read_all(*s), (Messages{"kept"}));
  restart();
  EXPECT_EQ(read_all(*must_find("failed")), (Messages{"kept"}));
}

// A create waiting behind one that fails is decided afresh: it makes the stream itself.
TEST_P(StreamTest, ACreateQueuedBehindAFailedOneMakesTheStream) {
  auto release = park_commit_thread();
  CreateSpec spec;
  spec.tenant = kTenant;
  spec.path = "retry";
  spec.content_type = "text/plain";
  spec.messages = {"mine"};
  auto f1 = start_create(spec);
  auto f2 = start_create(spec);
  fs_.fail_next_datasync(test::FaultFs::eio());  // the first create's data
  release->set_value();
  EXPECT_FALSE(f1.get().status);
  CreateOutcome o2 = f2.get();
  ASSERT_TRUE(o2.status) << o2.status.message();
  EXPECT_TRUE(o2.created);
  EXPECT_EQ(read_all(*must_find("retry")), (Messages{"mine"}));
}

// The server stopped between a create's catalog row and its initial data becoming durable: the
// create was never acknowledged, so the restart drops the row (still marked pending) and its log
// instead of serving an empty stream that a retried PUT would then take as already made.
TEST_P(StreamTest, ACreateThatNeverFinishedIsGoneAfterARestart) {
  StreamRecord r;
  r.tenant = kTenant;
  r.path = "half";
  r.content_type = "text/plain";
  r.created_ms = 1;
  r.pending = true;
  ASSERT_TRUE(catalog_->insert_stream(&r));
  const std::string dir = tmp_ / ("streams/" + std::to_string(r.id));
  ASSERT_TRUE(fs_.create_dirs(dir));
  restart();
  EXPECT_EQ(find("half").code(), Status::Code::kNotFound);
  EXPECT_FALSE(std::filesystem::exists(dir));
  auto s = create("half", {"again"});
  ASSERT_TRUE(s);
  EXPECT_EQ(read_all(*s), (Messages{"again"}));
  restart();
  EXPECT_EQ(read_all(*must_find("half")), (Messages{"again"}));
}

// After a clean stop a sliding TTL counts from the last access before the restart, not from the
// restart.
TEST_P(StreamTest, ASlidingTtlResumesFromThePersistedAccessAfterARestart) {
  const int64_t now = now_unix_millis();
  auto add_row = [&](const std::string& path, uint64_t ttl, int64_t last_access) {
    StreamRecord r;
    r.tenant = kTenant;
    r.path = path;
    r.content_type = "text/plain";
    r.created_ms = last_access;
    r.ttl_seconds = ttl;
    r.last_access_ms = last_access;
    EXPECT_TRUE(catalog_->insert_stream(&r));
    EXPECT_TRUE(StreamLog::create_empty(&fs_, tmp_ / ("streams/" + std::to_string(r.id)), 0));
    return r.id;
  };
  add_row("alive", 3600, now - 600'000);   // read 10 minutes ago, TTL 1 hour
  int64_t gone = add_row("stale", 60, now - 7'200'000);  // 2 hours ago, TTL 1 minute
  restart();  // a clean stop: the persisted times are the last accesses
  EXPECT_EQ(must_find("alive")->last_access_millis(), now - 600'000);
  EXPECT_EQ(find("stale").code(), Status::Code::kNotFound);
  EXPECT_FALSE(std::filesystem::exists(tmp_ / ("streams/" + std::to_string(gone))));
}

// After a crash the persisted times may be older than the last accesses: TTLs then count from
// the restart, so no stream expires earlier than its TTL allows.
TEST_P(StreamTest, AfterACrashSlidingTtlsCountFromTheRestart) {
  StreamRecord r;
  r.tenant = kTenant;
  r.path = "maybe-read-since";
  r.content_type = "text/plain";
  r.created_ms = 1;
  r.ttl_seconds = 60;
  r.last_access_ms = now_unix_millis() - 7'200'000;  // persisted 2 hours ago
  ASSERT_TRUE(catalog_->insert_stream(&r));
  ASSERT_TRUE(StreamLog::create_empty(&fs_, tmp_ / ("streams/" + std::to_string(r.id)), 0));
  stop();
  std::filesystem::remove(tmp_ / "ttl-clean-stop");  // as if the process had died
  const int64_t before = now_unix_millis();
  start();
  auto s = must_find("maybe-read-since");
  ASSERT_TRUE(s);
  EXPECT_GE(s->last_access_millis(), before);
}

// A live reader waiting on a stream with a TTL keeps it alive.
TEST_P(StreamTest, AWaitingLiveReaderKeepsATtlStreamAlive) {
  CreateSpec spec;
  spec.path = "watched";
  spec.ttl_seconds = 1;
  CreateOutcome out = create(spec);
  ASSERT_TRUE(out.status);
  out.stream->set_last_access(now_unix_millis() - 10'000);  // idle far longer than its TTL
  EXPECT_TRUE(out.stream->expired(now_unix_millis()));
  struct Parked final : LiveWaiter {
    void wake() override {}
  };
  auto waiter = std::make_shared<Parked>();
  ASSERT_TRUE(out.stream->add_live_waiter(out.stream->tail(), waiter));
  EXPECT_FALSE(out.stream->expired(now_unix_millis()));
  EXPECT_TRUE(find("watched"));
  EXPECT_TRUE(out.stream->remove_live_waiter(waiter.get()));
}

// What a restart resumes from is written at the latest when the store stops.
TEST_P(StreamTest, TheLastAccessIsPersistedWhenTheStoreStops) {
  CreateSpec spec;
  spec.path = "ttl";
  spec.ttl_seconds = 3600;
  CreateOutcome out = create(spec);
  ASSERT_TRUE(out.status);
  out.stream->touch();
  const int64_t at = out.stream->last_access_millis();
  const int64_t id = out.stream->record().id;
  out.stream.reset();
  restart();
  std::optional<int64_t> persisted;
  ASSERT_TRUE(catalog_->for_each_stream([&](const StreamRecord& r) {
    if (r.id == id) persisted = r.last_access_ms;
  }));
  EXPECT_EQ(persisted, at);
}

// An expired stream nobody asks for again is deleted by the sweeper, freeing its disk space.
TEST_P(StreamTest, TheSweeperDeletesExpiredStreamsNobodyLooksAt) {
  CreateSpec spec;
  spec.path = "short";
  spec.ttl_seconds = 1;
  spec.messages = {std::string(100'000, 'x')};
  CreateOutcome out = create(spec);
  ASSERT_TRUE(out.status) << out.status.message();
  const std::string dir = out.stream->dir();
  out.stream.reset();
  ASSERT_TRUE(std::filesystem::exists(dir));
  // TTL 1 s, one pass a second: gone within a few seconds without any lookup.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::filesystem::exists(dir) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_FALSE(std::filesystem::exists(dir));
  EXPECT_EQ(store_->size(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Committers, StreamTest,
                         ::testing::Values(CommitMode::kGroupCommit, CommitMode::kJournal),
                         [](const ::testing::TestParamInfo<CommitMode>& i) {
                           return i.param == CommitMode::kJournal ? "Journal" : "GroupCommit";
                         });

}  // namespace
}  // namespace ds
