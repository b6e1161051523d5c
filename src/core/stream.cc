#include "core/stream.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>

#include "core/clock.h"
#include "core/metrics.h"
#include "store/offset.h"

namespace ds {

namespace {
std::atomic<int64_t> g_open_logs{0};
}  // namespace

int64_t Stream::open_logs() { return g_open_logs.load(); }

Stream::Stream(StreamRecord record, std::shared_ptr<Stream> source, Fs* fs, std::string dir,
               StreamLog::Options log_options, Committer* commit)
    : record_(std::move(record)),
      source_(std::move(source)),
      fs_(fs),
      dir_(std::move(dir)),
      log_options_(log_options),
      commit_(commit),
      last_access_ms_(now_unix_millis()) {}

Stream::~Stream() {
  if (log_) --g_open_logs;
}

Status Stream::ensure_loaded() {
  std::lock_guard lk(mu_);
  return load_locked();
}

void Stream::apply_meta_locked(const FrameMeta& meta) {
  if (meta.producer) {
    ProducerState& p = producers_[meta.producer->id];
    p.epoch = meta.producer->epoch;
    p.last_seq = meta.producer->seq;
  }
  if (meta.stream_seq) last_stream_seq_ = meta.stream_seq;
  if (meta.closes) {
    closed_written_ = true;
    closed_by_ = meta.producer;
  }
  last_append_ms_ = static_cast<int64_t>(meta.unix_millis);
}

Status Stream::load_locked() {
  if (log_) return Status::ok();
  if (deleted_) return Status::not_found("stream deleted");
  producers_.clear();
  last_stream_seq_.reset();
  closed_written_ = false;
  closed_by_.reset();
  last_append_ms_ = record_.created_ms;
  std::unique_ptr<StreamLog> log;
  StreamLog::RecoveryStats recovered;
  Status s = StreamLog::open(
      fs_, dir_, record_.fork_offset, log_options_,
      [this](const FrameMeta& meta, uint32_t) { apply_meta_locked(meta); }, &log, &recovered);
  if (!s) {
    spdlog::error("stream {} ({}): {}", record_.id, dir_, s.message());
    return s;
  }
  if (recovered.truncated_bytes > 0) {
    spdlog::warn("stream {} ({}): dropped a torn tail of {} bytes (never acknowledged)",
                 record_.id, dir_, recovered.truncated_bytes);
  }
  log_ = std::move(log);
  ++g_open_logs;
  written_next_ = durable_next_ = log_->next_position();
  if (hook_) {
    std::vector<std::string> chunk;
    for (uint64_t p = log_->base_position(); p < durable_next_; p += chunk.size()) {
      chunk.clear();
      if (Status rs = log_->read(p, durable_next_, 4u << 20, &chunk); !rs) return rs;
      for (size_t i = 0; i < chunk.size(); ++i) hook_(p + i, chunk[i]);
    }
  }
  closed_durable_ = closed_written_;
  durable_mark_ = log_->mark();
  return Status::ok();
}

void Stream::append(AppendRequest req, std::function<void(AppendResult)> done) {
  AppendResult r;
  uint64_t end = 0;
  StreamLog::Mark mark_after{};
  StreamLog::Appended written;
  {
    std::lock_guard lk(mu_);
    if (Status s = load_locked(); !s) {
      r.status = s;
      done(r);
      return;
    }
    last_access_ms_ = now_unix_millis();
    if (broken_) {
      r.status = Status::unavailable("stream is recovering from a storage failure; retry");
      done(r);
      return;
    }
    r.next_position = written_next_;
    if ((req.stream_seq && req.stream_seq->size() > kMaxTokenBytes) ||
        (req.producer && req.producer->id.size() > kMaxTokenBytes)) {
      r.status = Status::invalid("Stream-Seq and Producer-Id must be at most 1024 bytes");
      done(r);
      return;
    }
    if (closed_written_) {
      r.closed = true;
      if (req.producer && closed_by_ && closed_by_->id == req.producer->id &&
          closed_by_->epoch == req.producer->epoch && closed_by_->seq == req.producer->seq) {
        r.outcome = AppendResult::Outcome::kDuplicate;
        r.producer_epoch = req.producer->epoch;
        r.producer_seq = req.producer->seq;
      } else if (req.messages.empty() && req.close && !req.producer) {
        r.outcome = AppendResult::Outcome::kAlreadyClosed;
      } else {
        r.outcome = AppendResult::Outcome::kClosed;
        done(r);
        return;
      }
    } else {
      if (req.producer) {
        const ProducerStamp& p = *req.producer;
        auto it = producers_.find(p.id);
        r.producer_epoch = p.epoch;
        if (it != producers_.end() && p.epoch < it->second.epoch) {
          r.outcome = AppendResult::Outcome::kStaleEpoch;
          r.producer_epoch = it->second.epoch;
          done(r);
          return;
        }
        if (it == producers_.end() || p.epoch > it->second.epoch) {
          if (p.seq != 0) {
            r.outcome = AppendResult::Outcome::kEpochSeqInvalid;
            r.expected_seq = 0;
            r.received_seq = p.seq;
            done(r);
            return;
          }
        } else if (p.seq <= it->second.last_seq) {
          r.outcome = AppendResult::Outcome::kDuplicate;
          r.producer_seq = it->second.last_seq;
        } else if (p.seq > it->second.last_seq + 1) {
          r.outcome = AppendResult::Outcome::kSeqGap;
          r.expected_seq = it->second.last_seq + 1;
          r.received_seq = p.seq;
          done(r);
          return;
        }
      }
      if (r.outcome != AppendResult::Outcome::kDuplicate) {
        if (req.stream_seq && last_stream_seq_ && *req.stream_seq <= *last_stream_seq_) {
          r.outcome = AppendResult::Outcome::kStreamSeqRegression;
          done(r);
          return;
        }
        FrameMeta meta;
        meta.closes = req.close;
        meta.producer = req.producer;
        meta.stream_seq = req.stream_seq;
        meta.unix_millis = static_cast<uint64_t>(now_unix_millis());
        if (req.offset_placeholder_at) {
          size_t at = *req.offset_placeholder_at;
          for (size_t i = 0; i < req.messages.size(); ++i) {
            std::string& m = req.messages[i];
            if (m.size() < at + kOffsetWidth) continue;
            std::string digits = format_offset(written_next_ + i);
            m.replace(at, kOffsetWidth, digits);
          }
        }
        std::vector<std::string_view> views(req.messages.begin(), req.messages.end());
        if (Status s = log_->append(meta, views, &written); !s) {
          // A failed segment roll means an fdatasync failed: appends already in flight can no
          // longer be trusted either, so they fail too and the log is cut back (on_synced).
          if (inflight_ > 0) broken_ = true;
          r.status = s;
          done(r);
          return;
        }
        apply_meta_locked(meta);
        if (!req.messages.empty()) {
          Metrics& mx = Metrics::get();
          mx.appends++;
          mx.appended_events += req.messages.size();
          size_t bytes = 0;
          for (const auto& m : req.messages) bytes += m.size();
          mx.appended_bytes += bytes;
        }
        r.outcome = AppendResult::Outcome::kAppended;
        r.first_position = written_next_;
        written_next_ = log_->next_position();
        r.next_position = written_next_;
        r.closed = closed_written_;
        r.unix_millis = static_cast<int64_t>(meta.unix_millis);
        if (req.producer) r.producer_seq = req.producer->seq;
      }
    }
    // Every success waits for the sync of everything written so far (a duplicate may be
    // acknowledging data that is still in flight). Committed under mu_ so that the committer
    // sees this stream's writes in log order.
    ++inflight_;
    end = written_next_;
    mark_after = log_->mark();
    bool closes = r.closed;
    std::vector<std::string> observed;
    if (hook_ && r.outcome == AppendResult::Outcome::kAppended) observed = std::move(req.messages);
    Committer::Write w;
    w.file = log_->active_file();
    w.path = log_->active_path();
    w.offset = written.offset;
    w.bytes = written.frame;  // empty unless this request wrote a frame: a barrier
    commit_->commit(w, [self = shared_from_this(), end, closes, mark_after, r,
                        done = std::move(done),
                        observed = std::move(observed)](const Status& s) {
      self->on_synced(s, end, closes, mark_after, r, done, observed);
    });
  }
}

void Stream::on_synced(const Status& s, uint64_t end, bool closes, StreamLog::Mark mark_after,
                       AppendResult result, const std::function<void(AppendResult)>& done,
                       const std::vector<std::string>& messages) {
  Wakeups wake;
  {
    std::lock_guard lk(mu_);
    --inflight_;
    if (s && !broken_) {
      if (hook_) {
        for (size_t i = 0; i < messages.size(); ++i) hook_(result.first_position + i, messages[i]);
      }
      if (end > durable_next_ || (closes && !closed_durable_)) {
        durable_next_ = std::max(durable_next_, end);
        if (closes) closed_durable_ = true;
        durable_mark_ = mark_after;
        wake = take_waiters_locked();
      }
    } else {
      broken_ = true;
      result.outcome = AppendResult::Outcome::kError;
      result.status = s ? Status::io_error("an earlier write to this stream failed; retry") : s;
    }
    if (broken_ && inflight_ == 0 && log_) {
      // Cut the log back to what was acknowledged, then rebuild writer state from the log. If the
      // cut itself fails the stream stays broken (appends answer 503; reads keep working).
      if (log_->rollback(durable_mark_)) {
        log_.reset();
        --g_open_logs;
        broken_ = false;
        load_locked();
      }
    }
  }
  // Acknowledge first: with thousands of live readers, waking them all takes a while and the
  // writer should not wait behind it.
  done(result);
  wake.run();
}

Stream::Wakeups Stream::take_waiters_locked() {
  Wakeups out;
  out.functions.reserve(waiters_.size());
  for (auto& [id, fn] : waiters_) out.functions.push_back(std::move(fn));
  waiters_.clear();
  out.live = live_waiters_.take();
  return out;
}

void Stream::Wakeups::run() {
  for (auto& w : functions) w();
  wake_in_chunks(std::move(live));
}

Status Stream::read(uint64_t from, size_t max_bytes, ReadResult* out) {
  BatchReadResult b;
  if (Status s = read(from, max_bytes, &b); !s) return s;
  out->messages.clear();
  out->messages.reserve(b.messages.size());
  for (size_t i = 0; i < b.messages.size(); ++i) out->messages.emplace_back(b.messages[i]);
  out->next_position = b.next_position;
  out->tail = b.tail;
  out->up_to_date = b.up_to_date;
  out->closed = b.closed;
  return Status::ok();
}

Status Stream::read_range(uint64_t from, uint64_t to, size_t max_bytes,
                          std::vector<std::string>* out) {
  MessageBatch b;
  if (Status s = read_range(from, to, max_bytes, &b); !s) return s;
  out->reserve(out->size() + b.size());
  for (size_t i = 0; i < b.size(); ++i) out->emplace_back(b[i]);
  return Status::ok();
}

Status Stream::read(uint64_t from, size_t max_bytes, BatchReadResult* out) {
  uint64_t tail;
  bool closed;
  {
    std::lock_guard lk(mu_);
    if (Status s = load_locked(); !s) return s;
    last_access_ms_ = now_unix_millis();
    tail = durable_next_;
    closed = closed_durable_;
  }
  out->messages.clear();
  if (from < tail) {
    if (Status s = read_range(from, tail, max_bytes, &out->messages); !s) return s;
  }
  out->tail = tail;
  out->next_position = std::min(from, tail) + out->messages.size();
  if (from > tail) out->next_position = from;
  out->up_to_date = out->next_position >= tail;
  out->closed = closed && out->up_to_date;
  return Status::ok();
}

Status Stream::read_range(uint64_t from, uint64_t to, size_t max_bytes, MessageBatch* out) {
  size_t before = out->size();
  size_t bytes_before = out->message_bytes();
  if (from < record_.fork_offset && source_) {
    uint64_t src_to = std::min(to, record_.fork_offset);
    if (Status s = source_->read_range(from, src_to, max_bytes, out); !s) return s;
    from += out->size() - before;
    if (from < src_to) return Status::ok();  // budget exhausted inside the source
  }
  if (from >= to) return Status::ok();
  size_t used = out->message_bytes() - bytes_before;
  if (used >= max_bytes && out->size() > before) return Status::ok();
  {
    std::lock_guard lk(mu_);
    if (Status s = load_locked(); !s) return s;
    uint64_t own_to = std::min(to, durable_next_);
    if (from >= own_to) return Status::ok();
    // Guarantee progress: when the source part already used the budget, the own part may still
    // add nothing; when nothing was read at all it reads at least one message.
    size_t budget = max_bytes > used ? max_bytes - used : 0;
    if (budget == 0) return Status::ok();
    // Do not exceed the budget with the first own message when something was already read.
    if (out->size() > before && log_->message_size(from) > budget) return Status::ok();
    log_->plan_read(from, own_to, budget, out);
  }
  return out->load();
}

WriterSnapshot Stream::writer_snapshot() {
  std::lock_guard lk(mu_);
  WriterSnapshot w;
  if (!load_locked()) return w;
  for (const auto& [id, p] : producers_) w.producers[id] = {p.epoch, p.last_seq};
  w.stream_seq = last_stream_seq_;
  if (closed_durable_) w.closed_by = closed_by_;
  w.written_next = written_next_;
  w.durable_next = durable_next_;
  if (closed_written_ != closed_durable_) w.written_next = UINT64_MAX;  // a close is in flight
  return w;
}

Status Stream::message_at(uint64_t position, std::string* out) {
  std::lock_guard lk(mu_);
  if (Status s = load_locked(); !s) return s;
  if (position < record_.fork_offset || position >= durable_next_) {
    return Status::invalid("no message at that position");
  }
  std::vector<std::string> v;
  if (Status s = log_->read(position, position + 1, SIZE_MAX, &v); !s) return s;
  *out = std::move(v.at(0));
  return Status::ok();
}

Status Stream::durable_state(uint64_t* tail, bool* closed) {
  std::lock_guard lk(mu_);
  if (Status s = load_locked(); !s) return s;
  last_access_ms_ = now_unix_millis();  // as read(): live reading keeps a sliding TTL alive
  *tail = durable_next_;
  *closed = closed_durable_;
  return Status::ok();
}

uint64_t Stream::tail() {
  std::lock_guard lk(mu_);
  load_locked();
  return durable_next_;
}

bool Stream::closed() {
  std::lock_guard lk(mu_);
  load_locked();
  return closed_durable_;
}

int64_t Stream::last_append_millis() {
  std::lock_guard lk(mu_);
  load_locked();
  return last_append_ms_;
}

bool Stream::add_waiter(uint64_t from, uint64_t* id, std::function<void()> wake) {
  std::lock_guard lk(mu_);
  if (deleted_ || closed_durable_ || durable_next_ > from) return false;
  *id = next_waiter_id_++;
  waiters_.emplace(*id, std::move(wake));
  return true;
}

void Stream::remove_waiter(uint64_t id) {
  std::lock_guard lk(mu_);
  waiters_.erase(id);
}

bool Stream::add_live_waiter(uint64_t from, std::shared_ptr<LiveWaiter> w) {
  std::lock_guard lk(mu_);
  if (deleted_ || closed_durable_ || durable_next_ > from) return false;
  live_waiters_.add(std::move(w));
  return true;
}

bool Stream::remove_live_waiter(LiveWaiter* w) {
  std::lock_guard lk(mu_);
  return live_waiters_.remove(w);
}

Stream::Wakeups Stream::delete_locked() {
  deleted_ = true;
  if (log_) --g_open_logs;
  log_.reset();
  return take_waiters_locked();
}

void Stream::mark_deleted() {
  Wakeups wake;
  {
    std::lock_guard lk(mu_);
    wake = delete_locked();
  }
  wake.run();
}

void Stream::set_message_hook(MessageHook hook) {
  std::lock_guard lk(mu_);
  hook_ = std::move(hook);
}

void Stream::wake_all() {
  Wakeups wake;
  {
    std::lock_guard lk(mu_);
    wake = take_waiters_locked();
  }
  wake.run();
}

bool Stream::deleted() {
  std::lock_guard lk(mu_);
  return deleted_;
}

bool Stream::try_unload() {
  std::lock_guard lk(mu_);
  // Waiters need no open log (they are woken by appends, which reopen it first).
  if (!log_ || inflight_ > 0 || broken_) return false;
  live_frames_.clear();
  log_.reset();
  --g_open_logs;
  return true;
}

bool Stream::loaded() {
  std::lock_guard lk(mu_);
  return log_ != nullptr;
}

int64_t Stream::last_access_millis() {
  std::lock_guard lk(mu_);
  return last_access_ms_;
}

void Stream::touch() {
  std::lock_guard lk(mu_);
  last_access_ms_ = now_unix_millis();
}

void Stream::set_last_access(int64_t unix_ms) {
  std::lock_guard lk(mu_);
  last_access_ms_ = unix_ms;
}

bool Stream::expired(int64_t now_ms) {
  if (expires_at_ms && now_ms >= *expires_at_ms) return true;
  if (record_.ttl_seconds) return idle_for(now_ms, static_cast<int64_t>(*record_.ttl_seconds) * 1000);
  return false;
}

bool Stream::retire_if_idle(int64_t now_ms, int64_t ms) {
  Wakeups wake;
  {
    std::lock_guard lk(mu_);
    if (deleted_ || !idle_locked(now_ms, ms)) return false;
    wake = delete_locked();  // appends from here on find the stream gone
  }
  wake.run();
  return true;
}

bool Stream::idle_for(int64_t now_ms, int64_t ms) {
  std::lock_guard lk(mu_);
  return idle_locked(now_ms, ms);
}

bool Stream::idle_locked(int64_t now_ms, int64_t ms) {
  if (!live_waiters_.empty()) {  // a live reader (long-poll, SSE) waiting is an access
    last_access_ms_ = std::max(last_access_ms_, now_ms);
    return false;
  }
  return now_ms >= last_access_ms_ + ms;
}

}  // namespace ds
