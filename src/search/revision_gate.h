// RevisionGate: keeps a tenant database's commits and its searches apart, so that a search never
// reads a revision the writer has discarded.
//
// Why: Xapian's glass backend lets a reader go on reading revision R while the writer builds
// R + 1, but once R + 1 is committed the blocks R alone uses may be reused for R + 2. A search
// still reading R then fails with DatabaseModifiedError — every retry, when commits follow each
// other faster than the search runs (SearchIndexTest.SearchesNeverFailWhileCommitsFollowEachOther)
// — or reads a block in the middle of being rewritten.
//
// Guarantee: a reader holds the gate shared from before it opens or reopens its handle until it
// has read everything it needs; a commit holds it exclusively. So while any reader is in, no
// commit runs, and each reader's revision stays the latest committed one for as long as it reads.
// A commit waiting for the gate keeps new readers out (writer preference): a steady stream of
// searches cannot starve commits, and a reader waits at most for one commit and the readers
// already in. Not recursive: a thread must not take the gate twice.
#pragma once

#include <condition_variable>
#include <mutex>

namespace ds {

class RevisionGate {
 public:
  // Shared side (readers); usable with std::shared_lock.
  void lock_shared() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return !writing_ && writers_waiting_ == 0; });
    ++readers_;
  }
  void unlock_shared() {
    std::lock_guard lk(mu_);
    if (--readers_ == 0 && writers_waiting_ > 0) cv_.notify_all();
  }

  // Exclusive side (the commit); usable with std::unique_lock.
  void lock() {
    std::unique_lock lk(mu_);
    ++writers_waiting_;
    cv_.wait(lk, [&] { return !writing_ && readers_ == 0; });
    --writers_waiting_;
    writing_ = true;
  }
  void unlock() {
    std::lock_guard lk(mu_);
    writing_ = false;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int readers_ = 0;
  int writers_waiting_ = 0;
  bool writing_ = false;
};

}  // namespace ds
