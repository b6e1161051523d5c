#include "store/group_commit.h"

namespace ds {

GroupCommit::GroupCommit(Options options) : options_(options) {
  if (options_.workers < 1) options_.workers = 1;
  if (options_.max_syncs_per_file < 1) options_.max_syncs_per_file = 1;
  for (int i = 0; i < options_.workers; ++i) threads_.emplace_back([this] { run(); });
}

GroupCommit::~GroupCommit() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void GroupCommit::submit(std::shared_ptr<File> file, Callback done) {
  {
    std::lock_guard lk(mu_);
    File* key = file.get();
    FileState& fs = files_[key];
    if (!fs.file) fs.file = std::move(file);
    if (fs.queued.empty()) ready_.push_back(key);
    fs.queued.push_back(std::move(done));
  }
  cv_.notify_one();
}

GroupCommit::Stats GroupCommit::stats() const {
  std::lock_guard lk(mu_);
  return stats_;
}

GroupCommit::FileState* GroupCommit::pick_locked() {
  for (size_t i = 0; i < ready_.size(); ++i) {
    auto it = files_.find(ready_[i]);
    if (it == files_.end() || it->second.queued.empty()) {
      ready_.erase(ready_.begin() + static_cast<std::ptrdiff_t>(i));
      --i;
      continue;
    }
    if (it->second.syncing < options_.max_syncs_per_file) {
      ready_.erase(ready_.begin() + static_cast<std::ptrdiff_t>(i));
      return &it->second;
    }
  }
  return nullptr;
}

void GroupCommit::run() {
  std::unique_lock lk(mu_);
  for (;;) {
    FileState* fs = nullptr;
    cv_.wait(lk, [&] {
      fs = pick_locked();
      return fs != nullptr || (stopping_ && ready_.empty());
    });
    if (fs == nullptr) return;  // stopping and nothing left to pick
    auto ticket = std::make_shared<Ticket>();
    ticket->callbacks = std::move(fs->queued);
    fs->queued.clear();
    fs->tickets.push_back(ticket);
    fs->syncing++;
    std::shared_ptr<File> file = fs->file;
    File* key = file.get();

    lk.unlock();
    Status s = file->datasync();
    lk.lock();

    FileState& st = files_[key];
    st.syncing--;
    ticket->done = true;
    ticket->status = s;
    stats_.syncs++;
    // Finished tickets leave in creation order; one worker at a time runs a file's callbacks.
    while (!st.tickets.empty() && st.tickets.front()->done) {
      auto t = st.tickets.front();
      st.tickets.pop_front();
      if (!t->status) st.poisoned = true;
      Status result = st.poisoned && t->status
                          ? Status::io_error("an earlier fdatasync of this file failed")
                          : t->status;
      stats_.batches++;
      stats_.requests += t->callbacks.size();
      st.outbox.emplace_back(std::move(t), std::move(result));
    }
    if (st.tickets.empty()) st.poisoned = false;
    if (!st.queued.empty()) cv_.notify_all();  // a sync slot of this file freed up
    if (!st.delivering) {
      st.delivering = true;
      while (!files_[key].outbox.empty()) {
        auto batch = std::move(files_[key].outbox);
        files_[key].outbox.clear();
        lk.unlock();
        for (auto& [t, r] : batch) {
          for (auto& cb : t->callbacks) cb(r);
        }
        lk.lock();
      }
      FileState& after = files_[key];
      after.delivering = false;
      if (after.tickets.empty() && after.queued.empty() && after.syncing == 0) files_.erase(key);
    }
    if (stopping_) cv_.notify_all();
  }
}

}  // namespace ds
