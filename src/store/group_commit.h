// GroupCommit: one thread that makes written frames durable with as few fdatasync calls as
// possible.
//
// Callers write their frame (pwrite) and then submit() the file with a callback. The thread takes
// every request queued so far, fdatasyncs each distinct file once, then runs the callbacks in
// submission order with the result of their file's sync. A callback therefore runs only after
// every byte written to its file before submit() is durable. Callbacks run on the commit thread:
// keep them short (post to an executor).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "store/fs.h"

namespace ds {

class GroupCommit {
 public:
  using Callback = std::function<void(const Status&)>;

  GroupCommit();
  ~GroupCommit();  // drains the queue, then stops the thread
  GroupCommit(const GroupCommit&) = delete;
  GroupCommit& operator=(const GroupCommit&) = delete;

  void submit(std::shared_ptr<File> file, Callback done);

  struct Stats {
    uint64_t batches = 0;
    uint64_t syncs = 0;
    uint64_t requests = 0;
  };
  Stats stats() const;

 private:
  void run();

  struct Request {
    std::shared_ptr<File> file;
    Callback done;
  };
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Request> queue_;
  bool stopping_ = false;
  Stats stats_;
  std::thread thread_;
};

}  // namespace ds
