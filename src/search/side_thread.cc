#include "search/side_thread.h"

namespace ds {

SideThread::SideThread() : thread_([this] { run(); }) {}

SideThread::~SideThread() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool SideThread::try_run(std::function<void()> job) {
  {
    std::lock_guard lk(mu_);
    if (job_ || stop_) return false;
    job_ = std::move(job);
  }
  cv_.notify_all();
  return true;
}

void SideThread::run() {
  std::unique_lock lk(mu_);
  for (;;) {
    cv_.wait(lk, [&] { return stop_ || job_; });
    if (!job_) return;  // stopping, nothing queued
    std::function<void()> job = job_;
    lk.unlock();
    job();
    lk.lock();
    job_ = nullptr;
  }
}

}  // namespace ds
