#include "store/group_commit.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <memory>
#include <mutex>
#include <vector>

#include "fault_fs.h"
#include "temp_dir.h"

namespace ds {
namespace {

// One worker and one sync per file in flight: batching becomes deterministic for the tests that
// hold the worker inside a callback.
const GroupCommit::Options kSerial{1, 1};

class GroupCommitTest : public ::testing::Test {
 protected:
  std::shared_ptr<File> open_file(test::FaultFs* fs, const std::string& name) {
    std::unique_ptr<File> f;
    Status s = fs->open(tmp_ / name, &f);
    EXPECT_TRUE(s) << s.message();
    EXPECT_TRUE(f->pwrite("data", 4, 0));
    return std::shared_ptr<File>(std::move(f));
  }

  // Submits a request whose callback blocks the commit thread until the returned promise is set,
  // so that everything submitted meanwhile is queued into one later batch.
  std::shared_ptr<std::promise<void>> block_commit_thread(GroupCommit* gc, std::shared_ptr<File> f) {
    auto release = std::make_shared<std::promise<void>>();
    auto entered = std::make_shared<std::promise<void>>();
    auto entered_future = entered->get_future();
    gc->submit(std::move(f), [release, entered](const Status&) {
      entered->set_value();
      release->get_future().wait();
    });
    entered_future.wait();
    return release;
  }

  test::TempDir tmp_;
};

TEST_F(GroupCommitTest, CallbackRunsAfterDatasync) {
  test::FaultFs fs;
  auto file = open_file(&fs, "a");
  std::promise<std::pair<Status, int>> seen;
  {
    GroupCommit gc;
    gc.submit(file, [&](const Status& s) { seen.set_value({s, fs.datasyncs()}); });
    auto [status, syncs_before_callback] = seen.get_future().get();
    EXPECT_TRUE(status) << status.message();
    EXPECT_EQ(syncs_before_callback, 1);
  }
}

TEST_F(GroupCommitTest, CallbacksOfOneFileRunInSubmissionOrder) {
  test::FaultFs fs;
  std::vector<std::shared_ptr<File>> files = {open_file(&fs, "a"), open_file(&fs, "b"),
                                              open_file(&fs, "c")};
  std::mutex mu;
  std::vector<std::vector<int>> order(files.size());
  std::atomic<int> done{0};
  std::promise<void> all_done;
  constexpr int kRequests = 300;
  {
    GroupCommit gc;  // many workers, several syncs per file in flight
    for (int i = 0; i < kRequests; ++i) {
      size_t f = static_cast<size_t>(i) % files.size();
      gc.submit(files[f], [&, i, f](const Status& s) {
        EXPECT_TRUE(s);
        {
          std::lock_guard lk(mu);
          order[f].push_back(i);
        }
        if (++done == kRequests) all_done.set_value();
      });
    }
    all_done.get_future().wait();
  }
  for (size_t f = 0; f < files.size(); ++f) {
    ASSERT_EQ(order[f].size(), static_cast<size_t>(kRequests / 3));
    for (size_t k = 1; k < order[f].size(); ++k) EXPECT_LT(order[f][k - 1], order[f][k]);
  }
}

TEST_F(GroupCommitTest, ConcurrentSubmitsOnOneFileCoalesceIntoOneSync) {
  test::FaultFs fs;
  auto file = open_file(&fs, "a");
  constexpr int kRequests = 100;
  std::atomic<int> done{0};
  std::promise<void> all_done;
  {
    GroupCommit gc(kSerial);
    auto release = block_commit_thread(&gc, file);
    for (int i = 0; i < kRequests; ++i) {
      gc.submit(file, [&](const Status& s) {
        EXPECT_TRUE(s);
        if (++done == kRequests) all_done.set_value();
      });
    }
    release->set_value();
    all_done.get_future().wait();

    GroupCommit::Stats st = gc.stats();
    EXPECT_EQ(st.requests, kRequests + 1u);
    EXPECT_EQ(st.batches, 2u);
    EXPECT_EQ(st.syncs, 2u);  // the blocker's, then one for all queued requests
  }
  EXPECT_EQ(fs.datasyncs(), 2);
}

TEST_F(GroupCommitTest, BatchSyncsEachDistinctFileOnce) {
  test::FaultFs fs;
  auto blocker = open_file(&fs, "blocker");
  std::vector<std::shared_ptr<File>> files = {open_file(&fs, "a"), open_file(&fs, "b"),
                                              open_file(&fs, "c")};
  std::atomic<int> done{0};
  std::promise<void> all_done;
  {
    GroupCommit gc(kSerial);
    auto release = block_commit_thread(&gc, blocker);
    for (int i = 0; i < 30; ++i) {
      gc.submit(files[i % 3], [&](const Status&) {
        if (++done == 30) all_done.set_value();
      });
    }
    release->set_value();
    all_done.get_future().wait();
    EXPECT_EQ(gc.stats().syncs, 1u + 3u);
  }
  EXPECT_EQ(fs.datasyncs(), 4);
}

TEST_F(GroupCommitTest, DatasyncFailureReachesCallbacksOfThatFileOnly) {
  test::FaultFs healthy_fs;
  test::FaultFs failing_fs;
  auto healthy = open_file(&healthy_fs, "healthy");
  auto failing = open_file(&failing_fs, "failing");
  std::mutex mu;
  std::vector<std::pair<bool, Status>> results;  // (was the failing file, status)
  std::promise<void> all_done;
  {
    GroupCommit gc(kSerial);
    auto release = block_commit_thread(&gc, healthy);
    failing_fs.fail_datasync(test::FaultFs::eio());
    for (int i = 0; i < 6; ++i) {
      bool on_failing = i % 2 == 0;
      gc.submit(on_failing ? failing : healthy, [&, on_failing](const Status& s) {
        std::lock_guard lk(mu);
        results.emplace_back(on_failing, s);
        if (results.size() == 6) all_done.set_value();
      });
    }
    release->set_value();
    all_done.get_future().wait();
  }
  ASSERT_EQ(results.size(), 6u);
  for (const auto& [on_failing, s] : results) {
    if (on_failing) {
      EXPECT_EQ(s.code(), Status::Code::kIoError);
    } else {
      EXPECT_TRUE(s) << s.message();
    }
  }
}

TEST_F(GroupCommitTest, DatasyncFailureAffectsOnlyItsBatch) {
  test::FaultFs fs;
  auto file = open_file(&fs, "a");
  std::promise<Status> failed;
  std::promise<Status> ok;
  GroupCommit gc;  // destroyed (joined) before the promises its callbacks set
  fs.fail_datasync(test::FaultFs::eio());
  gc.submit(file, [&](const Status& s) { failed.set_value(s); });
  EXPECT_FALSE(failed.get_future().get());

  fs.clear_faults();
  gc.submit(file, [&](const Status& s) { ok.set_value(s); });
  EXPECT_TRUE(ok.get_future().get());
}

TEST_F(GroupCommitTest, DestructorRunsQueuedCallbacks) {
  test::FaultFs fs;
  auto file = open_file(&fs, "a");
  std::atomic<int> done{0};
  {
    GroupCommit gc;
    for (int i = 0; i < 50; ++i) gc.submit(file, [&](const Status&) { ++done; });
  }
  EXPECT_EQ(done.load(), 50);
}

}  // namespace
}  // namespace ds
