// core::LiveWaiterList and wake_in_chunks: the batched wake-up of live readers.
#include "core/live_waiters.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace ds {
namespace {

// Records the order of wake-ups; chunks run inline or are handed to `post` when set.
struct Recorder {
  std::mutex mu;
  std::vector<int> woken;
  std::vector<int> chunk_heads;
  std::function<void(std::function<void()>)> post;
};

class RecordingWaiter final : public LiveWaiter {
 public:
  RecordingWaiter(Recorder* r, int id, const void* affinity = nullptr)
      : r_(r), id_(id), affinity_(affinity) {}
  const void* affinity() const override { return affinity_; }
  void wake() override {
    std::lock_guard lk(r_->mu);
    r_->woken.push_back(id_);
  }
  void run_chunk(std::function<void()> chunk) override {
    {
      std::lock_guard lk(r_->mu);
      r_->chunk_heads.push_back(id_);
    }
    if (r_->post) {
      r_->post(std::move(chunk));
    } else {
      chunk();
    }
  }

 private:
  Recorder* r_;
  int id_;
  const void* affinity_;
};

std::vector<std::shared_ptr<LiveWaiter>> make_waiters(Recorder* r, int n) {
  std::vector<std::shared_ptr<LiveWaiter>> v;
  for (int i = 0; i < n; ++i) v.push_back(std::make_shared<RecordingWaiter>(r, i));
  return v;
}

TEST(LiveWaitersTest, ChunksHoldOneAffinityEachAndKeepOrderWithinIt) {
  // Waiters of two I/O threads, interleaved as connections arrive: every chunk is run for one
  // thread only (so it can resume its connections inline), and each thread's waiters are woken
  // in their registration order.
  Recorder r;
  int thread_a = 0, thread_b = 0;
  std::vector<std::shared_ptr<LiveWaiter>> batch;
  for (int i = 0; i < 1000; ++i) {
    batch.push_back(std::make_shared<RecordingWaiter>(&r, i, i % 3 == 0 ? &thread_a : &thread_b));
  }
  wake_in_chunks(batch, 64);
  ASSERT_EQ(r.woken.size(), 1000u);
  std::vector<int> seen(1000, 0);
  for (int id : r.woken) seen[id]++;
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(seen[i], 1) << "waiter " << i;
  // Chunks run inline here, so `woken` is the concatenation of the chunks: cut it at the heads.
  size_t pos = 0;
  for (size_t c = 0; c < r.chunk_heads.size(); ++c) {
    ASSERT_EQ(r.woken[pos], r.chunk_heads[c]);
    size_t end = c + 1 < r.chunk_heads.size()
                     ? static_cast<size_t>(std::find(r.woken.begin(), r.woken.end(),
                                                     r.chunk_heads[c + 1]) - r.woken.begin())
                     : r.woken.size();
    EXPECT_LE(end - pos, 64u);
    bool a = r.woken[pos] % 3 == 0;
    for (size_t i = pos; i < end; ++i) {
      EXPECT_EQ(r.woken[i] % 3 == 0, a) << "chunk " << c << " mixes threads";
      if (i > pos) {
        EXPECT_LT(r.woken[i - 1], r.woken[i]) << "order within a thread";
      }
    }
    pos = end;
  }
  EXPECT_EQ(pos, r.woken.size());
}

TEST(LiveWaitersTest, ChunkedWakeUpWakesEveryWaiterOnceInOrder) {
  Recorder r;
  LiveWaiterList list;
  for (auto& w : make_waiters(&r, 1000)) list.add(w);
  wake_in_chunks(list.take(), 64);
  ASSERT_EQ(r.woken.size(), 1000u);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(r.woken[i], i);
  // 1000 / 64 rounded up chunks, each handed to its first waiter.
  ASSERT_EQ(r.chunk_heads.size(), 16u);
  for (size_t c = 0; c < r.chunk_heads.size(); ++c) EXPECT_EQ(r.chunk_heads[c], int(c * 64));
  EXPECT_TRUE(list.empty());
}

TEST(LiveWaitersTest, ChunksOnTwoThreadsWakeEveryWaiterExactlyOnce) {
  Recorder r;
  boost::asio::io_context io;
  auto guard = boost::asio::make_work_guard(io);
  r.post = [&io](std::function<void()> f) { boost::asio::post(io, std::move(f)); };
  std::thread t1([&] { io.run(); }), t2([&] { io.run(); });
  LiveWaiterList list;
  for (auto& w : make_waiters(&r, 10000)) list.add(w);
  wake_in_chunks(list.take(), 100);
  guard.reset();
  t1.join();
  t2.join();
  ASSERT_EQ(r.woken.size(), 10000u);
  std::vector<int> seen(10000, 0);
  for (int id : r.woken) seen[id]++;
  for (int i = 0; i < 10000; ++i) EXPECT_EQ(seen[i], 1) << "waiter " << i;
}

TEST(LiveWaitersTest, RemovedWaiterIsNotWoken) {
  Recorder r;
  LiveWaiterList list;
  auto ws = make_waiters(&r, 5);
  for (auto& w : ws) list.add(w);
  EXPECT_TRUE(list.remove(ws[1].get()));
  EXPECT_TRUE(list.remove(ws[4].get()));
  EXPECT_FALSE(list.remove(ws[4].get()));
  wake_in_chunks(list.take());
  std::vector<int> expect = {0, 3, 2};  // the last waiter moves into a removed one's slot
  EXPECT_EQ(r.woken, expect);
}

TEST(LiveWaitersTest, RemoveAfterTakeFailsSoTheWakeUpOwnsTheRegistration) {
  Recorder r;
  LiveWaiterList list;
  auto ws = make_waiters(&r, 2);
  for (auto& w : ws) list.add(w);
  auto batch = list.take();
  EXPECT_FALSE(list.remove(ws[0].get()));
  EXPECT_FALSE(list.remove(ws[1].get()));
  wake_in_chunks(std::move(batch));
  EXPECT_EQ(r.woken.size(), 2u);
}

TEST(LiveWaitersTest, AddingARegisteredWaiterTwiceRegistersItOnce) {
  Recorder r;
  LiveWaiterList list;
  auto ws = make_waiters(&r, 1);
  list.add(ws[0]);
  list.add(ws[0]);
  EXPECT_EQ(list.size(), 1u);
  wake_in_chunks(list.take());
  EXPECT_EQ(r.woken.size(), 1u);
  list.add(ws[0]);  // registers again after being woken
  EXPECT_EQ(list.size(), 1u);
}

}  // namespace
}  // namespace ds
