// LiveWaiter / LiveWaiterList: the live readers parked on one stream until new data is durable,
// and how they are woken: in chunks, each chunk run by one handler (e.g. on an I/O thread), instead
// of one posted completion per reader. With thousands of readers on one stream this keeps the
// wake-up to a few scheduler hand-offs per append, and the chunks spread over the I/O threads.
//
// Guarantees:
// - wake_in_chunks() calls wake() of every waiter in the batch exactly once; a chunk holds waiters
//   of one affinity only, in batch order; chunks run wherever their first waiter's run_chunk()
//   puts them (possibly in parallel).
// - A registration is either taken by take() (and then woken) or removed by remove(), never both:
//   remove() returns false once take() has claimed it.
// - No allocation per registration beyond the list's amortised growth.
// LiveWaiterList is not thread-safe: its owner (the Stream) guards it with its own lock.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <vector>

namespace ds {

class LiveWaiter {
 public:
  virtual ~LiveWaiter() = default;
  // The stream has new durable data, was closed or deleted, or is shutting down. Called once per
  // registration that take() claimed, on the thread running the chunk.
  virtual void wake() = 0;
  // Runs `chunk` (which wakes this waiter and the ones after it) where wake() should run. The
  // default runs it inline on the waking thread.
  virtual void run_chunk(std::function<void()> chunk) { chunk(); }
  // Waiters with the same affinity (e.g. the same I/O thread) are woken in the same chunks, so
  // that a chunk run on that thread resumes each of them inline. Null: no preference.
  virtual const void* affinity() const { return nullptr; }

 private:
  friend class LiveWaiterList;
  static constexpr size_t kUnlinked = static_cast<size_t>(-1);
  size_t slot_ = kUnlinked;  // index in the list holding it (guarded by that list's owner)
};

class LiveWaiterList {
 public:
  // Registers `w` (a waiter already registered here is left as it is).
  void add(std::shared_ptr<LiveWaiter> w);
  // Unregisters `w`; false when it is not registered (never was, or take() claimed it).
  bool remove(LiveWaiter* w);
  // Claims every registration, in registration order (removals may reorder the ones after them).
  std::vector<std::shared_ptr<LiveWaiter>> take();
  size_t size() const { return list_.size(); }
  bool empty() const { return list_.empty(); }

 private:
  std::vector<std::shared_ptr<LiveWaiter>> list_;
};

// Wakes every waiter of `batch` exactly once: the batch is grouped by affinity (keeping batch
// order within a group), then cut into chunks of at most `chunk_size` waiters of one affinity,
// each handed to the run_chunk() of its first waiter.
inline constexpr size_t kWakeChunk = 256;
void wake_in_chunks(std::vector<std::shared_ptr<LiveWaiter>> batch,
                    size_t chunk_size = kWakeChunk);

}  // namespace ds
