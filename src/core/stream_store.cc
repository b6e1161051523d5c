#include "core/stream_store.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "core/clock.h"
#include "core/content_type.h"

namespace ds {

StreamStore::StreamStore(Options options, Catalog* catalog, Committer* commit)
    : options_(std::move(options)), catalog_(catalog), commit_(commit) {
  sweeper_ = std::thread([this] { sweep(); });
  finisher_ = std::thread([this] { run_finisher(); });
}

StreamStore::~StreamStore() { stop(); }

namespace {
// Written by stop() once every TTL stream's last access is in the catalog; open() takes it away.
// Without it (a crash) the persisted times may be older than the last accesses, so a restart
// counts sliding TTLs from the start instead (never early).
constexpr const char* kCleanStopFile = "/ttl-clean-stop";
}  // namespace

void StreamStore::stop() {
  {
    std::lock_guard lk(sweep_mu_);
    sweep_stop_ = true;
  }
  sweep_cv_.notify_all();
  if (sweeper_.joinable()) sweeper_.join();
  {
    std::lock_guard lk(finish_mu_);
    finish_stop_ = true;
  }
  finish_cv_.notify_all();
  if (finisher_.joinable()) finisher_.join();  // runs what is queued first
  if (stopped_) return;
  stopped_ = true;
  // The last access times, for the next start, and the marker that they are complete.
  if (!expiry_pass(false)) return;
  const std::string marker = options_.data_dir + kCleanStopFile;
  std::unique_ptr<File> f;
  Status st = options_.fs->open(marker, &f);
  if (st) st = f->datasync();
  if (st) st = options_.fs->sync_dir(options_.data_dir);
  if (!st) spdlog::warn("cannot mark the stop as clean (TTLs restart at the next start): {}", st.message());
}

void StreamStore::post_finish(std::function<void()> task) {
  {
    std::lock_guard lk(finish_mu_);
    if (!finish_stop_) {
      finish_tasks_.push_back(std::move(task));
      finish_cv_.notify_one();
      return;
    }
  }
  // Only a create started after stop() gets here (a misuse). Finish it on a thread of its own:
  // the committer may call back inline with a stream lock held, which finish_create may take.
  std::thread(std::move(task)).detach();
}

bool StreamStore::stopping() {
  std::lock_guard lk(finish_mu_);
  return finish_stop_;
}

void StreamStore::run_finisher() {
  std::unique_lock lk(finish_mu_);
  for (;;) {
    finish_cv_.wait(lk, [&] { return finish_stop_ || !finish_tasks_.empty(); });
    if (finish_tasks_.empty()) return;  // stopping and drained
    auto task = std::move(finish_tasks_.front());
    finish_tasks_.pop_front();
    lk.unlock();
    task();
    lk.lock();
  }
}

void StreamStore::sweep() {
  std::unique_lock lk(sweep_mu_);
  auto next_expiry = std::chrono::steady_clock::now();
  while (!sweep_stop_) {
    sweep_cv_.wait_for(lk, std::chrono::milliseconds(100));
    if (sweep_stop_) break;
    if (expiry_started_ && std::chrono::steady_clock::now() >= next_expiry) {
      next_expiry = std::chrono::steady_clock::now() + std::chrono::milliseconds(kExpiryPassMs);
      lk.unlock();
      expiry_pass(true);
      lk.lock();
    }
    if (options_.max_open_logs <= 0 || Stream::open_logs() <= options_.max_open_logs) continue;
    lk.unlock();
    close_idle_logs(options_.max_open_logs * 9 / 10);
    lk.lock();
  }
}

void StreamStore::publish_locked(const std::string& k, const std::shared_ptr<Stream>& s) {
  const StreamRecord& r = s->record();
  streams_[k] = s;
  by_id_[r.id] = s;
  if (r.ttl_seconds || r.expires_at) expiring_.insert(r.id);
  if (r.last_access_ms) persisted_access_[r.id] = *r.last_access_ms;
}

bool StreamStore::expiry_pass(bool expire) {
  std::vector<std::pair<int64_t, int64_t>> writes;
  {
    std::lock_guard lk(mu_);
    for (auto it = expiring_.begin(); it != expiring_.end();) {
      auto found = by_id_.find(*it);
      std::shared_ptr<Stream> s = found == by_id_.end() ? nullptr : found->second;
      if (s && !s->soft_deleted && expire) {
        const StreamRecord& r = s->record();
        if (expire_locked(key(r.tenant, r.path), s)) s = nullptr;
      }
      if (!s || s->soft_deleted) {  // gone, or kept only for its forks
        persisted_access_.erase(*it);
        it = expiring_.erase(it);
        continue;
      }
      if (s->record().ttl_seconds) {
        int64_t at = s->last_access_millis();
        auto p = persisted_access_.find(*it);
        if (p == persisted_access_.end() || p->second != at) writes.emplace_back(*it, at);
      }
      ++it;
    }
  }
  if (Status st = catalog_->set_last_access(writes); !st) {
    spdlog::warn("cannot persist the last access of {} streams with a TTL: {}", writes.size(),
                 st.message());
    return false;  // persisted_access_ unchanged: the next pass writes them again
  }
  std::lock_guard lk(mu_);
  for (const auto& [id, at] : writes) {
    if (expiring_.count(id)) persisted_access_[id] = at;
  }
  return true;
}

size_t StreamStore::close_idle_logs(int64_t target) {
  std::vector<std::pair<int64_t, std::shared_ptr<Stream>>> loaded;
  {
    std::lock_guard lk(mu_);
    loaded.reserve(by_id_.size());
    for (auto& [id, s] : by_id_) loaded.emplace_back(0, s);
  }
  for (auto& [t, s] : loaded) t = s->loaded() ? s->last_access_millis() : INT64_MAX;
  std::sort(loaded.begin(), loaded.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  size_t closed = 0;
  for (auto& [t, s] : loaded) {
    if (Stream::open_logs() <= target || t == INT64_MAX) break;
    closed += s->try_unload();
  }
  return closed;
}

std::string StreamStore::stream_dir(int64_t id) const {
  return options_.data_dir + "/streams/" + std::to_string(id);
}

std::shared_ptr<Stream> StreamStore::make_stream(const StreamRecord& r,
                                                 std::shared_ptr<Stream> source) {
  auto s = std::make_shared<Stream>(r, std::move(source), options_.fs, stream_dir(r.id),
                                    options_.log, commit_);
  if (r.expires_at) s->expires_at_ms = parse_rfc3339(*r.expires_at);
  s->soft_deleted = r.soft_deleted;
  if (r.last_access_ms && clean_start_) {
    // The last stop persisted every access: resume the sliding TTL from the last one.
    s->set_last_access(std::min(now_unix_millis(), *r.last_access_ms));
  }
  return s;
}

Status StreamStore::open() {
  std::lock_guard lk(mu_);
  const std::string marker = options_.data_dir + kCleanStopFile;
  clean_start_ = options_.fs->exists(marker);
  if (clean_start_) {
    // Gone for good before anything runs: a crash from here on must not look like a clean stop.
    Status st = options_.fs->remove_all(marker);
    if (st) st = options_.fs->sync_dir(options_.data_dir);
    if (!st) return st;
  }
  std::vector<int64_t> unfinished;
  Status s = catalog_->for_each_stream([&](const StreamRecord& r) {
    if (r.pending) {
      // Its create never finished (never acknowledged): drop it; its log goes below.
      unfinished.push_back(r.id);
      return;
    }
    std::shared_ptr<Stream> source;
    if (r.fork_source) {
      auto it = by_id_.find(*r.fork_source);
      if (it != by_id_.end()) {
        source = it->second;
        source->fork_refs++;
      }
    }
    auto st = make_stream(r, source);
    publish_locked(key(r.tenant, r.path), st);
  });
  if (!s) return s;
  for (int64_t id : unfinished) {
    if (Status st = catalog_->delete_stream(id); !st) return st;
  }
  // Finish cascades interrupted by a crash: soft-deleted streams nobody forks any more.
  for (bool again = true; again;) {
    again = false;
    for (auto& [id, st] : by_id_) {
      if (st->soft_deleted && st->fork_refs == 0) {
        hard_delete_locked(st);
        again = true;
        break;
      }
    }
  }
  // Remove log directories whose stream is no longer in the catalog (deletes cut short).
  std::vector<std::string> names;
  options_.fs->list(options_.data_dir + "/streams", &names);
  for (const auto& n : names) {
    bool known = false;
    try {
      known = by_id_.count(std::stoll(n)) > 0;
    } catch (...) {
    }
    if (!known) options_.fs->remove_all(options_.data_dir + "/streams/" + n);
  }
  return Status::ok();
}

void StreamStore::hard_delete_locked(std::shared_ptr<Stream> s) {
  if (Status st = catalog_->delete_stream(s->record().id); !st) {
    spdlog::error("stream {}: cannot remove its catalog row (it comes back at the next start, or "
                  "its path answers 409 until then if it was being created): {}",
                  s->record().id, st.message());
  }
  streams_.erase(key(s->record().tenant, s->record().path));
  by_id_.erase(s->record().id);
  s->mark_deleted();
  options_.fs->remove_all(s->dir());
  if (auto src = s->source()) {
    src->fork_refs--;
    if (src->soft_deleted && src->fork_refs == 0 && by_id_.count(src->record().id)) {
      hard_delete_locked(src);
    }
  }
}

bool StreamStore::expire_locked(const std::string& k, std::shared_ptr<Stream> s) {
  (void)k;
  if (s->soft_deleted || !s->expired(now_unix_millis())) return false;
  if (s->fork_refs > 0) {
    catalog_->set_soft_deleted(s->record().id);
    s->soft_deleted = true;
    s->wake_all();  // live readers see it gone, as after a DELETE
    return false;
  }
  hard_delete_locked(s);
  return true;
}

Status StreamStore::find(const std::string& tenant, const std::string& path,
                         std::shared_ptr<Stream>* out) {
  std::lock_guard lk(mu_);
  std::string k = key(tenant, path);
  auto it = streams_.find(k);
  if (it == streams_.end()) return Status::not_found("stream not found");
  auto s = it->second;
  if (expire_locked(k, s)) return Status::not_found("stream not found");
  if (s->soft_deleted) return Status::gone("stream was deleted");
  *out = s;
  return Status::ok();
}

void StreamStore::wake_all() {
  std::vector<std::shared_ptr<Stream>> all;
  {
    std::lock_guard lk(mu_);
    for (auto& [k, s] : streams_) all.push_back(s);
  }
  for (auto& s : all) s->wake_all();
}

std::vector<std::pair<std::string, std::shared_ptr<Stream>>> StreamStore::list(
    const std::string& tenant) {
  std::vector<std::pair<std::string, std::shared_ptr<Stream>>> out;
  std::lock_guard lk(mu_);
  for (const auto& [k, s] : streams_) {
    const StreamRecord& r = s->record();
    if (r.kind != 0 || r.tenant != tenant || s->soft_deleted) continue;
    out.emplace_back(r.path, s);
  }
  return out;
}

size_t StreamStore::size() {
  std::lock_guard lk(mu_);
  return streams_.size();
}

Status StreamStore::remove(const std::string& tenant, const std::string& path) {
  std::lock_guard lk(mu_);
  std::string k = key(tenant, path);
  auto it = streams_.find(k);
  if (it == streams_.end()) return Status::not_found("stream not found");
  auto s = it->second;
  if (expire_locked(k, s)) return Status::not_found("stream not found");
  if (s->soft_deleted) return Status::gone("stream was deleted");
  if (s->fork_refs > 0) {
    if (Status st = catalog_->set_soft_deleted(s->record().id); !st) return st;
    s->soft_deleted = true;
    s->wake_all();
    return Status::ok();
  }
  hard_delete_locked(s);
  return Status::ok();
}

Status StreamStore::create_log_dirs(const std::vector<int64_t>& ids) {
  Status s = Status::ok();
  for (int64_t id : ids) {
    if (s = StreamLog::create_empty(options_.fs, stream_dir(id), 0); !s) break;
  }
  for (size_t i = 0; s && i < ids.size(); ++i) s = options_.fs->sync_dir(stream_dir(ids[i]));
  if (s && !ids.empty()) s = options_.fs->sync_dir(options_.data_dir + "/streams");
  if (!s) remove_log_dirs(ids);
  return s;
}

void StreamStore::remove_log_dirs(const std::vector<int64_t>& ids) {
  for (int64_t id : ids) options_.fs->remove_all(stream_dir(id));
}

std::shared_ptr<Stream> StreamStore::adopt(const StreamRecord& r) {
  auto s = make_stream(r, nullptr);
  std::lock_guard lk(mu_);
  publish_locked(key(r.tenant, r.path), s);
  return s;
}

namespace {
std::string fork_request_string(const CreateSpec& spec) {
  if (!spec.forked_from) return "";
  std::string r = *spec.forked_from + "|";
  r += spec.fork_offset ? std::to_string(*spec.fork_offset) : "tail";
  r += "|" + std::to_string(spec.fork_sub_offset);
  return r;
}
}  // namespace

void StreamStore::create(CreateSpec spec, std::function<void(CreateOutcome)> done) {
  CreateOutcome out;
  std::shared_ptr<Stream> stream;
  std::vector<std::string> initial;
  std::string k = key(spec.tenant, spec.path);
  bool with_data = false;  // initial data to append before the stream may be seen
  {
    std::lock_guard lk(mu_);
    if (auto c = creating_.find(k); c != creating_.end()) {
      // That create is writing its initial data: decide this one against its outcome.
      c->second.push_back([this, spec = std::move(spec), done = std::move(done)]() mutable {
        if (stopping()) {  // shutting down: the committer may be gone
          CreateOutcome o;
          o.status = Status::unavailable("server is shutting down");
          done(std::move(o));
          return;
        }
        create(std::move(spec), std::move(done));
      });
      return;
    }
    auto it = streams_.find(k);
    if (it != streams_.end() && !expire_locked(k, it->second)) {
      auto s = it->second;
      if (s->soft_deleted) {
        out.status = Status::conflict("a deleted stream still holds this path for its forks");
        done(out);
        return;
      }
      const StreamRecord& r = s->record();
      // Expires-At is compared as an instant: 2030-01-01T00:00:00Z is 2030-01-01T05:30:00+05:30.
      auto same_instant = [](const std::optional<std::string>& a,
                             const std::optional<std::string>& b) {
        if (!a || !b) return !a && !b;
        auto x = parse_rfc3339(*a);
        auto y = parse_rfc3339(*b);
        return x && y ? *x == *y : *a == *b;
      };
      bool expiry_same =
          r.ttl_seconds == spec.ttl_seconds && same_instant(r.expires_at, spec.expires_at);
      // A fork that inherited its expiry matches a re-create that names none.
      if (!r.fork_request.empty() && !spec.ttl_seconds && !spec.expires_at) expiry_same = true;
      bool same = (spec.content_type.empty() || same_media_type(r.content_type, spec.content_type)) &&
                  expiry_same && s->closed() == spec.closed && r.kind == spec.kind;
      if (spec.forked_from || !r.fork_request.empty()) {
        std::string want = fork_request_string(spec);
        // A fork created without an explicit offset matches a re-create naming the offset it got.
        same = same && (r.fork_request == want ||
                        (spec.forked_from && !spec.fork_offset &&
                         r.fork_request.rfind(*spec.forked_from + "|", 0) == 0));
      }
      if (!same) {
        out.status = Status::conflict("stream exists with a different configuration");
        done(out);
        return;
      }
      out.status = Status::ok();
      out.created = false;
      out.stream = s;
      out.next_position = s->tail();
      out.closed = s->closed();
      done(out);
      return;
    }

    StreamRecord rec;
    rec.tenant = spec.tenant;
    rec.path = spec.path;
    rec.kind = spec.kind;
    rec.content_type = spec.content_type;
    rec.ttl_seconds = spec.ttl_seconds;
    rec.expires_at = spec.expires_at;
    rec.created_ms = now_unix_millis();
    std::shared_ptr<Stream> source;
    std::string prefix;  // binary sub-offset: the inherited part of the anchor message
    if (spec.forked_from) {
      auto sit = streams_.find(key(spec.tenant, *spec.forked_from));
      if (sit == streams_.end() || expire_locked(sit->first, sit->second)) {
        out.status = Status::not_found("fork source stream not found");
        done(out);
        return;
      }
      source = sit->second;
      if (source->soft_deleted) {
        out.status = Status::conflict("fork source stream was deleted");
        done(out);
        return;
      }
      const StreamRecord& sr = source->record();
      if (rec.content_type.empty()) rec.content_type = sr.content_type;
      if (!same_media_type(rec.content_type, sr.content_type)) {
        out.status = Status::conflict("fork content type differs from the source's");
        done(out);
        return;
      }
      // TTL inheritance: a fork without its own expiry takes the source's.
      if (!rec.ttl_seconds && !rec.expires_at) {
        rec.ttl_seconds = sr.ttl_seconds;
        rec.expires_at = sr.expires_at;
      }
      uint64_t tail = source->tail();
      uint64_t at = spec.fork_offset.value_or(tail);
      if (at > tail) {
        out.status = Status::invalid("Stream-Fork-Offset is beyond the source stream's tail");
        done(out);
        return;
      }
      if (at < sr.fork_offset && source->source() == nullptr) {
        out.status = Status::invalid("Stream-Fork-Offset is before the source stream's start");
        done(out);
        return;
      }
      if (spec.fork_sub_offset > 0) {
        if (at >= tail) {
          out.status = Status::invalid("Stream-Fork-Sub-Offset points past the source's tail");
          done(out);
          return;
        }
        if (spec.json_mode) {
          if (at + spec.fork_sub_offset > tail) {
            out.status = Status::invalid("Stream-Fork-Sub-Offset passes the source's messages");
            done(out);
            return;
          }
          at += spec.fork_sub_offset;
        } else {
          std::vector<std::string> msg;
          Status st = source->read_range(at, at + 1, SIZE_MAX, &msg);
          if (!st || msg.size() != 1) {
            out.status = st ? Status::invalid("no message at Stream-Fork-Offset") : st;
            done(out);
            return;
          }
          if (spec.fork_sub_offset > msg[0].size()) {
            out.status = Status::invalid("Stream-Fork-Sub-Offset passes the end of the message");
            done(out);
            return;
          }
          if (spec.fork_sub_offset == msg[0].size()) {
            at += 1;  // the whole message: an ordinary fork after it
          } else {
            prefix = msg[0].substr(0, spec.fork_sub_offset);
          }
        }
      }
      rec.fork_source = sr.id;
      rec.fork_offset = at;
      rec.fork_request = fork_request_string(spec);
    }
    with_data = !prefix.empty() || !spec.messages.empty() || spec.closed;
    rec.pending = with_data;
    if (Status st = catalog_->insert_stream(&rec); !st) {
      out.status = st;
      done(out);
      return;
    }
    stream = make_stream(rec, source);
    Status st = stream->ensure_loaded();
    // The new stream's directory entry must survive a crash too.
    if (st) st = options_.fs->sync_dir(options_.data_dir + "/streams");
    if (!st) {
      catalog_->delete_stream(rec.id);
      out.status = st;
      done(out);
      return;
    }
    if (source) source->fork_refs++;
    if (with_data) {
      creating_[k];  // hidden until its initial data is durable (finish_create)
    } else {
      publish_locked(k, stream);
    }
    if (!prefix.empty()) initial.push_back(std::move(prefix));
    for (auto& m : spec.messages) initial.push_back(std::move(m));
  }
  out.stream = stream;
  out.created = true;
  if (!with_data) {
    out.status = Status::ok();
    out.next_position = stream->tail();
    done(out);
    return;
  }
  AppendRequest req;
  req.messages = std::move(initial);
  req.close = spec.closed;
  stream->append(std::move(req), [this, k = std::move(k), stream, out,
                                  done = std::move(done)](AppendResult r) mutable {
    post_finish([this, k = std::move(k), stream = std::move(stream), r = std::move(r),
                 out = std::move(out), done = std::move(done)]() mutable {
      finish_create(std::move(k), std::move(stream), std::move(r), std::move(out), std::move(done));
    });
  });
}

void StreamStore::finish_create(std::string k, std::shared_ptr<Stream> stream, AppendResult r,
                                CreateOutcome out, std::function<void(CreateOutcome)> done) {
  const int64_t id = stream->record().id;
  Status st = r.outcome == AppendResult::Outcome::kAppended
                  ? Status::ok()
                  : (r.status ? Status::io_error("initial data was not appended") : r.status);
  if (st) st = catalog_->clear_pending(id);
  std::vector<std::function<void()>> waiting;
  {
    std::lock_guard lk(mu_);
    if (st) {
      publish_locked(k, stream);
    } else {
      // Undo the create (it was never published, so only its row, log and source reference
      // go). The row is still pending, so a restart would drop it too.
      hard_delete_locked(stream);
    }
    if (auto c = creating_.find(k); c != creating_.end()) {
      waiting = std::move(c->second);
      creating_.erase(c);
    }
  }
  out.status = st;
  out.next_position = r.next_position;
  out.closed = r.closed;
  if (!st) out.stream = nullptr;
  done(std::move(out));
  for (auto& w : waiting) w();
}

}  // namespace ds
