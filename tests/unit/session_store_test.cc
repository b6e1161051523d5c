// core::SessionStore creation: a session and its stream are committed together (one catalog
// transaction, log directory durable first), concurrent creations share one commit, and a crash
// or an I/O error at any step leaves both or neither after a restart. Real Catalog, StreamStore
// and GroupCommit in a temp dir, on a FaultFs.
#include "core/session_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/stream_store.h"
#include "store/group_commit.h"
#include "fault_fs.h"
#include "temp_dir.h"

namespace ds {
namespace {

constexpr const char* kTenant = "tenant";

class SessionStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { start(); }
  void TearDown() override { stop(); }

  void start() {
    ASSERT_TRUE(fs_.create_dirs(tmp_ / "streams"));
    Status s = Catalog::open(tmp_ / "catalog.db", &catalog_);
    ASSERT_TRUE(s) << s.message();
    commit_ = std::make_unique<GroupCommit>(GroupCommit::Options{1, 1});
    StreamStore::Options o;
    o.data_dir = tmp_.path();
    o.fs = &fs_;
    streams_ = std::make_unique<StreamStore>(o, catalog_.get(), commit_.get());
    s = streams_->open();
    ASSERT_TRUE(s) << s.message();
    sessions_ = std::make_unique<SessionStore>(catalog_.get(), streams_.get());
    s = sessions_->open();
    ASSERT_TRUE(s) << s.message();
  }
  void stop() {
    sessions_.reset();
    commit_.reset();
    streams_.reset();
    catalog_.reset();
  }
  // A process restart: every in-memory object is rebuilt from the catalog and the logs.
  void restart() {
    stop();
    start();
  }

  Status create(const std::string& id, std::shared_ptr<Session>* out = nullptr) {
    std::shared_ptr<Session> s;
    Status st = sessions_->create(kTenant, id, boost::json::object{{"title", id}}, &s);
    if (out != nullptr) *out = s;
    return st;
  }
  bool session_exists(const std::string& id) {
    std::shared_ptr<Session> s;
    return static_cast<bool>(sessions_->get(kTenant, id, &s));
  }
  bool stream_exists(const std::string& id) {
    std::shared_ptr<Stream> s;
    return static_cast<bool>(streams_->find(kTenant, SessionStore::stream_path(id), &s));
  }
  int64_t count_rows(const std::string& table) {
    std::lock_guard lk(catalog_->mutex());
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(catalog_->db(), ("SELECT count(*) FROM " + table).c_str(), -1, &st,
                       nullptr);
    int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    return n;
  }
  size_t log_dirs() {
    std::vector<std::string> names;
    fs_.list(tmp_ / "streams", &names);
    return names.size();
  }
  AppendResult append(const std::shared_ptr<Session>& s, std::string event) {
    AppendRequest req;
    req.messages.push_back(std::move(event));
    std::promise<AppendResult> p;
    auto f = p.get_future();
    s->stream()->append(std::move(req), [&p](AppendResult r) { p.set_value(std::move(r)); });
    return f.get();
  }
  // Expects the state after a failed creation of `id` next to `kept` good sessions.
  void expect_absent_after_restart(const std::string& id, int64_t kept) {
    restart();
    EXPECT_FALSE(session_exists(id));
    EXPECT_FALSE(stream_exists(id));
    EXPECT_EQ(count_rows("sessions"), kept);
    EXPECT_EQ(count_rows("streams"), kept);
    EXPECT_EQ(log_dirs(), static_cast<size_t>(kept));  // no orphan log directory either
    // The id is free again, and a session created under it starts empty.
    std::shared_ptr<Session> s;
    ASSERT_TRUE(create(id, &s));
    EXPECT_EQ(s->stream()->tail(), 0u);
  }

  test::TempDir tmp_;
  test::FaultFs fs_;
  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<GroupCommit> commit_;
  std::unique_ptr<StreamStore> streams_;
  std::unique_ptr<SessionStore> sessions_;
};

TEST_F(SessionStoreTest, CreatedSessionAndItsEventsSurviveRestart) {
  std::shared_ptr<Session> s;
  ASSERT_TRUE(create("a", &s));
  EXPECT_EQ(append(s, R"({"type":"user.message"})").outcome, AppendResult::Outcome::kAppended);
  restart();
  ASSERT_TRUE(sessions_->get(kTenant, "a", &s));
  EXPECT_EQ(s->record().at("title"), "a");
  EXPECT_EQ(s->stream()->tail(), 1u);
}

TEST_F(SessionStoreTest, CreationWritesBothRowsAndADurableLogDirectory) {
  int dir_syncs = fs_.dir_syncs();
  ASSERT_TRUE(create("a"));
  EXPECT_EQ(count_rows("sessions"), 1);
  EXPECT_EQ(count_rows("streams"), 1);
  EXPECT_EQ(log_dirs(), 1u);
  EXPECT_EQ(fs_.dir_syncs() - dir_syncs, 2);  // the stream's directory, then streams/
}

TEST_F(SessionStoreTest, ExistingIdIsConflict) {
  ASSERT_TRUE(create("a"));
  EXPECT_EQ(create("a").code(), Status::Code::kConflict);
  EXPECT_EQ(count_rows("sessions"), 1);
}

TEST_F(SessionStoreTest, CreationsQueuedDuringACommitShareTheNextOne) {
  // Hold the first commit open (inside its transaction) until ten more creations are queued.
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> commits{0};
  stop();
  start();
  sessions_->set_failure_probe([&](std::string_view point) {
    if (point != "before_commit") return Status::ok();
    if (commits++ == 0) {
      std::unique_lock lk(mu);
      cv.wait(lk, [&] { return release; });
    }
    return Status::ok();
  });
  auto first = std::async(std::launch::async, [&] { return create("first"); });
  while (commits.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::vector<std::future<Status>> rest;
  std::atomic<int> done{0};
  std::promise<void> all_done;
  for (int i = 0; i < 10; ++i) {
    sessions_->create(kTenant, "s" + std::to_string(i), {}, [&](SessionCreated c) {
      EXPECT_TRUE(c.status) << c.status.message();
      if (++done == 10) all_done.set_value();
    });
  }
  {
    std::lock_guard lk(mu);
    release = true;
  }
  cv.notify_all();
  EXPECT_TRUE(first.get());
  all_done.get_future().wait();
  EXPECT_EQ(commits.load(), 2);  // the held one, then all ten together
  EXPECT_EQ(count_rows("sessions"), 11);
  restart();
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(session_exists("s" + std::to_string(i)));
}

TEST_F(SessionStoreTest, SecondCreateOfAnIdBeingCreatedWaitsAndGetsConflict) {
  std::promise<void> release;
  auto released = release.get_future().share();
  stop();
  start();
  std::atomic<bool> held{false};
  sessions_->set_failure_probe([&](std::string_view point) {
    if (point == "before_commit" && !held.exchange(true)) released.wait();
    return Status::ok();
  });
  auto first = std::async(std::launch::async, [&] { return create("a"); });
  while (!held.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  auto second = std::async(std::launch::async, [&] {
    std::shared_ptr<Session> s;
    Status st = create("a");
    // Once the second create returns, the first one's session is visible.
    EXPECT_TRUE(sessions_->get(kTenant, "a", &s));
    return st;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  release.set_value();
  EXPECT_TRUE(first.get());
  EXPECT_EQ(second.get().code(), Status::Code::kConflict);
  EXPECT_EQ(count_rows("sessions"), 1);
}

TEST_F(SessionStoreTest, FailureBetweenTheTwoRowsLeavesNeitherAfterRestart) {
  ASSERT_TRUE(create("kept"));
  stop();
  start();
  sessions_->set_failure_probe([](std::string_view point) {
    return point == "between_rows" ? test::FaultFs::eio() : Status::ok();
  });
  EXPECT_EQ(create("a").code(), Status::Code::kIoError);
  EXPECT_FALSE(session_exists("a"));
  EXPECT_FALSE(stream_exists("a"));
  expect_absent_after_restart("a", 1);
}

TEST_F(SessionStoreTest, FailedLogDirectorySyncFailsTheBatchAndLeavesNothing) {
  ASSERT_TRUE(create("kept"));
  fs_.fail_next_sync_dir(test::FaultFs::eio());
  EXPECT_EQ(create("a").code(), Status::Code::kIoError);
  EXPECT_FALSE(session_exists("a"));
  EXPECT_FALSE(stream_exists("a"));
  EXPECT_EQ(log_dirs(), 1u);
  expect_absent_after_restart("a", 1);
}

TEST_F(SessionStoreTest, FailureBeforeCommitLeavesNeitherAfterRestart) {
  ASSERT_TRUE(create("kept"));
  stop();
  start();
  sessions_->set_failure_probe([](std::string_view point) {
    return point == "before_commit" ? test::FaultFs::eio() : Status::ok();
  });
  EXPECT_EQ(create("a").code(), Status::Code::kIoError);
  expect_absent_after_restart("a", 1);
}

// Crashes (the process dies) at each step of a creation: after the restart the session and its
// stream are both absent, and so are their log directories. The store runs in the child only
// (fork copies no threads), the parent restarts on what the child left on disk.
class SessionStoreCrashTest : public SessionStoreTest,
                              public ::testing::WithParamInterface<const char*> {};

TEST_P(SessionStoreCrashTest, CrashDuringCreationLeavesNeitherAfterRestart) {
  GTEST_FLAG_SET(death_test_style, "fast");
  ASSERT_TRUE(create("kept"));
  stop();
  const std::string point = GetParam();
  EXPECT_EXIT(
      {
        start();
        sessions_->set_failure_probe([&](std::string_view p) {
          if (p == point) _exit(42);  // kill -9 at this point: no destructor, no rollback
          return Status::ok();
        });
        create("a");
        _exit(0);
      },
      ::testing::ExitedWithCode(42), "");
  start();
  expect_absent_after_restart("a", 1);
}

INSTANTIATE_TEST_SUITE_P(Points, SessionStoreCrashTest,
                         ::testing::Values("between_rows", "before_commit"));

TEST_F(SessionStoreTest, StreamLeftWithoutItsSessionIsRemovedAtOpen) {
  // What a delete interrupted between its two steps leaves: the stream row without the session.
  std::shared_ptr<Session> s;
  ASSERT_TRUE(create("a", &s));
  ASSERT_EQ(append(s, R"({"type":"user.message"})").outcome, AppendResult::Outcome::kAppended);
  s.reset();
  ASSERT_TRUE(catalog_->exec("DELETE FROM sessions WHERE session_id='a'"));
  restart();
  EXPECT_FALSE(stream_exists("a"));
  EXPECT_EQ(count_rows("streams"), 0);
  EXPECT_EQ(log_dirs(), 0u);
  ASSERT_TRUE(create("a", &s));
  EXPECT_EQ(s->stream()->tail(), 0u);  // not the old session's events
}

}  // namespace
}  // namespace ds
