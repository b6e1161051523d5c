#include "core/live_waiters.h"

#include <algorithm>
#include <functional>

namespace ds {

void LiveWaiterList::add(std::shared_ptr<LiveWaiter> w) {
  if (w->slot_ < list_.size() && list_[w->slot_].get() == w.get()) return;
  w->slot_ = list_.size();
  list_.push_back(std::move(w));
}

bool LiveWaiterList::remove(LiveWaiter* w) {
  size_t i = w->slot_;
  if (i >= list_.size() || list_[i].get() != w) return false;
  if (i + 1 != list_.size()) {
    list_[i] = std::move(list_.back());
    list_[i]->slot_ = i;
  }
  list_.pop_back();
  w->slot_ = LiveWaiter::kUnlinked;
  return true;
}

std::vector<std::shared_ptr<LiveWaiter>> LiveWaiterList::take() {
  std::vector<std::shared_ptr<LiveWaiter>> out;
  out.swap(list_);
  for (auto& w : out) w->slot_ = LiveWaiter::kUnlinked;
  list_.reserve(out.size());  // the same readers usually register again
  return out;
}

void wake_in_chunks(std::vector<std::shared_ptr<LiveWaiter>> batch, size_t chunk_size) {
  if (batch.empty()) return;
  chunk_size = std::max<size_t>(1, chunk_size);
  std::stable_sort(batch.begin(), batch.end(), [](const auto& a, const auto& b) {
    return std::less<const void*>()(a->affinity(), b->affinity());
  });
  if (batch.size() <= chunk_size && batch.front()->affinity() == batch.back()->affinity()) {
    LiveWaiter* first = batch.front().get();
    first->run_chunk([b = std::move(batch)] {
      for (const auto& w : b) w->wake();
    });
    return;
  }
  auto all = std::make_shared<const std::vector<std::shared_ptr<LiveWaiter>>>(std::move(batch));
  size_t begin = 0;
  while (begin < all->size()) {
    const void* aff = (*all)[begin]->affinity();
    size_t end = begin + 1;
    while (end < all->size() && end - begin < chunk_size && (*all)[end]->affinity() == aff) ++end;
    (*all)[begin]->run_chunk([all, begin, end] {
      for (size_t i = begin; i < end; ++i) (*all)[i]->wake();
    });
    begin = end;
  }
}

}  // namespace ds
