#include "api/access_log.h"

#include <unistd.h>

#include <cerrno>

namespace ds {

AccessLog::AccessLog(Options options) : options_(options) {
  buffer_.reserve(options_.flush_bytes * 2);
  writer_ = std::thread([this] { run(); });
}

AccessLog::~AccessLog() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  writer_.join();
}

void AccessLog::write(std::string_view line) {
  bool wake = false;
  {
    std::lock_guard lk(mu_);
    if (buffer_.size() + line.size() + 1 > options_.max_buffered) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    size_t before = buffer_.size();
    buffer_.append(line);
    buffer_.push_back('\n');
    wake = before < options_.flush_bytes && buffer_.size() >= options_.flush_bytes;
  }
  if (wake) cv_.notify_one();
}

void AccessLog::run() {
  std::string out;
  std::unique_lock lk(mu_);
  for (;;) {
    cv_.wait_for(lk, options_.flush_interval,
                 [&] { return stopping_ || buffer_.size() >= options_.flush_bytes; });
    bool stop = stopping_;
    out.swap(buffer_);
    lk.unlock();
    size_t off = 0;
    while (off < out.size()) {
      ssize_t n = ::write(options_.fd, out.data() + off, out.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // output gone: drop what remains of this batch
      off += static_cast<size_t>(n);
    }
    out.clear();
    lk.lock();
    if (stop && buffer_.empty()) return;
  }
}

}  // namespace ds
