#include "store/group_commit.h"

#include <unordered_map>
#include <vector>

namespace ds {

GroupCommit::GroupCommit() : thread_([this] { run(); }) {}

GroupCommit::~GroupCommit() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

void GroupCommit::submit(std::shared_ptr<File> file, Callback done) {
  {
    std::lock_guard lk(mu_);
    queue_.push_back(Request{std::move(file), std::move(done)});
  }
  cv_.notify_one();
}

GroupCommit::Stats GroupCommit::stats() const {
  std::lock_guard lk(mu_);
  return stats_;
}

void GroupCommit::run() {
  std::vector<Request> batch;
  std::unordered_map<File*, Status> results;
  for (;;) {
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty() && stopping_) return;
      batch.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
      queue_.clear();
    }
    results.clear();
    for (auto& r : batch) {
      auto [it, inserted] = results.try_emplace(r.file.get());
      if (inserted) it->second = r.file->datasync();
    }
    {
      std::lock_guard lk(mu_);
      stats_.batches++;
      stats_.syncs += results.size();
      stats_.requests += batch.size();
    }
    for (auto& r : batch) r.done(results[r.file.get()]);
    batch.clear();
  }
}

}  // namespace ds
