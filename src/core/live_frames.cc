#include "core/live_frames.h"

namespace ds {

std::shared_ptr<const LiveFrameCache::Frame> LiveFrameCache::find(uint64_t from, uint64_t tail,
                                                                  bool closed,
                                                                  std::string_view variant) {
  std::lock_guard lk(mu_);
  for (const Entry& e : slots_) {
    if (e.frame && e.from == from && e.tail == tail && e.closed == closed && e.variant == variant) {
      return e.frame;
    }
  }
  return nullptr;
}

void LiveFrameCache::put(uint64_t from, uint64_t tail, bool closed, std::string_view variant,
                         std::shared_ptr<const Frame> frame) {
  if (!frame || frame->bytes.size() > kMaxFrameBytes) return;
  std::shared_ptr<const Frame> dropped[kSlots];  // released after the lock
  std::lock_guard lk(mu_);
  for (size_t i = 0; i < kSlots; ++i) {
    Entry& e = slots_[i];
    if (!e.frame) continue;
    if (e.from == from && e.tail == tail && e.closed == closed && e.variant == variant) return;
    if (e.tail < tail) dropped[i] = std::move(e.frame);  // data for an older tail: no one wakes there
  }
  Entry* slot = nullptr;
  for (Entry& e : slots_) {
    if (!e.frame) {
      slot = &e;
      break;
    }
  }
  if (slot == nullptr) {
    slot = &slots_[next_];
    next_ = (next_ + 1) % kSlots;
  }
  slot->from = from;
  slot->tail = tail;
  slot->closed = closed;
  slot->variant.assign(variant);
  slot->frame = std::move(frame);
}

void LiveFrameCache::clear() {
  std::shared_ptr<const Frame> dropped[kSlots];
  std::lock_guard lk(mu_);
  for (size_t i = 0; i < kSlots; ++i) dropped[i] = std::move(slots_[i].frame);
}

}  // namespace ds
