#include "core/live_frames.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace ds {
namespace {

std::shared_ptr<const LiveFrameCache::Frame> frame(std::string bytes, uint64_t next) {
  auto f = std::make_shared<LiveFrameCache::Frame>();
  f->bytes = std::move(bytes);
  f->next_position = next;
  f->count = 1;
  return f;
}

TEST(LiveFrameCacheTest, FindsAFrameOnlyUnderItsExactKey) {
  LiveFrameCache c;
  auto f = frame("data", 5);
  c.put(4, 5, false, "json", f);
  EXPECT_EQ(c.find(4, 5, false, "json"), f);
  EXPECT_EQ(c.find(3, 5, false, "json"), nullptr);  // a reader further behind
  EXPECT_EQ(c.find(4, 6, false, "json"), nullptr);  // the tail moved on
  EXPECT_EQ(c.find(4, 5, true, "json"), nullptr);   // closed since
  EXPECT_EQ(c.find(4, 5, false, "text"), nullptr);  // another encoding
}

TEST(LiveFrameCacheTest, StoringForANewerTailDropsFramesOfOlderTails) {
  LiveFrameCache c;
  auto old = frame("old", 5);
  c.put(4, 5, false, "json", old);
  c.put(5, 6, false, "json", frame("new", 6));
  EXPECT_EQ(c.find(4, 5, false, "json"), nullptr);
  EXPECT_NE(c.find(5, 6, false, "json"), nullptr);
  EXPECT_EQ(old.use_count(), 1);  // released by the cache
}

TEST(LiveFrameCacheTest, KeepsAtMostKSlotsFramesAndIgnoresOversizedOnes) {
  LiveFrameCache c;
  for (uint64_t from = 0; from < LiveFrameCache::kSlots + 2; ++from) {
    c.put(from, 100, false, "json", frame("f", 100));
  }
  size_t found = 0;
  for (uint64_t from = 0; from < LiveFrameCache::kSlots + 2; ++from) {
    if (c.find(from, 100, false, "json")) ++found;
  }
  EXPECT_EQ(found, LiveFrameCache::kSlots);
  EXPECT_NE(c.find(LiveFrameCache::kSlots + 1, 100, false, "json"), nullptr);  // newest kept
  c.put(200, 300, false, "json", frame(std::string(LiveFrameCache::kMaxFrameBytes + 1, 'x'), 300));
  EXPECT_EQ(c.find(200, 300, false, "json"), nullptr);
}

TEST(LiveFrameCacheTest, ClearDropsEverything) {
  LiveFrameCache c;
  c.put(1, 2, false, "json", frame("f", 2));
  c.clear();
  EXPECT_EQ(c.find(1, 2, false, "json"), nullptr);
}

}  // namespace
}  // namespace ds
