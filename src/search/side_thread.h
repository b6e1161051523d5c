// SideThread: one helper thread that runs one job at a time, for work a caller wants to do in
// parallel with its own only when a core is likely free (SearchIndex runs the second half of a
// large search on it).
//
// Guarantees: try_run() either takes the job (it will run exactly once, on the helper thread) or
// returns false at once without running it — when another job is queued or running. The
// destructor waits for a running job and then joins.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace ds {

class SideThread {
 public:
  SideThread();
  ~SideThread();
  SideThread(const SideThread&) = delete;
  SideThread& operator=(const SideThread&) = delete;

  bool try_run(std::function<void()> job);

 private:
  void run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::function<void()> job_;  // set: queued or running
  bool stop_ = false;
  std::thread thread_;  // last: starts after the members it uses
};

}  // namespace ds
