#include "search/indexer.h"

#include <time.h>

#include <algorithm>
#include <chrono>

#include <spdlog/spdlog.h>

#include "search/event_text.h"

namespace ds {

using Clock = std::chrono::steady_clock;

namespace {
// How much of one session's log is read (and added) at a time. The indexer looks for searches
// waiting on other sessions, and at its batch budget, only between chunks, so a chunk bounds how
// long an urgent session waits behind a busy one: 64 KiB is ~100 typical events, tens of ms of
// Xapian work here. (It was 1 MiB: ~1,600 events, up to a second with appends running.) Smaller
// chunks cost one more log read and mark update per ~100 events, which does not show in profiles.
constexpr size_t kReadChunkBytes = 64u << 10;

// CPU time of the calling thread, in seconds (what indexing cost, whatever the machine's load).
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}
}  // namespace

struct Indexer::Wake {
  std::mutex mu;
  std::condition_variable cv;
  std::set<std::string> dirty;                              // sessions with new events
  std::map<std::string, std::shared_ptr<Session>> kicked;  // sessions searches wait for
  std::vector<Removal> removals;
  bool stop = false;

  void mark(const std::string& k) {
    {
      std::lock_guard lk(mu);
      dirty.insert(k);
    }
    cv.notify_one();
  }
};

Indexer::Indexer(SessionStore* sessions, SearchIndex* index, Options options)
    : sessions_(sessions), index_(index), options_(options), wake_(std::make_shared<Wake>()) {}

Indexer::~Indexer() { stop(); }

void Indexer::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { run(); });
}

void Indexer::stop() {
  {
    std::lock_guard lk(wake_->mu);
    wake_->stop = true;
  }
  wake_->cv.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool Indexer::reached(const std::string& tenant, const std::vector<Target>& targets) {
  std::vector<std::pair<std::string, std::shared_ptr<Session>>> behind;
  {
    std::lock_guard lk(mu_);
    auto tp = published_.find(tenant);
    for (const auto& t : targets) {
      if (t.tail == 0) continue;
      const Published* p = nullptr;
      if (tp != published_.end()) {
        auto it = tp->second.find(t.session->id());
        if (it != tp->second.end()) p = &it->second;
      }
      if (!p || p->catalog_id != t.session->catalog_id() || p->next < t.tail) {
        behind.emplace_back(key(tenant, t.session->id()), t.session);
      }
    }
  }
  if (behind.empty()) return true;
  {
    std::lock_guard lk(wake_->mu);
    for (auto& [k, s] : behind) wake_->kicked[k] = s;
  }
  wake_->cv.notify_one();
  return false;
}

void Indexer::session_removed(const std::string& tenant, const std::string& id,
                              int64_t catalog_id) {
  {
    std::lock_guard lk(wake_->mu);
    wake_->removals.push_back(Removal{tenant, id, catalog_id});
  }
  wake_->cv.notify_one();
}

Indexer::Stats Indexer::stats() {
  std::lock_guard lk(mu_);
  return stats_;
}

Indexer::Entry* Indexer::track(const std::shared_ptr<Session>& s, const SessionMark* mark) {
  std::string k = key(s->tenant(), s->id());
  auto it = entries_.find(k);
  if (it != entries_.end() && it->second.catalog_id == s->catalog_id()) {
    it->second.session = s;
    return &it->second;
  }
  bool stale_docs = it != entries_.end() || (mark && mark->catalog_id != s->catalog_id());
  if (it != entries_.end()) untrack(k, false);
  if (stale_docs) {
    if (Status st = index_->remove_session(s->tenant(), s->id()); !st) {
      spdlog::error("search indexer: {}", st.message());
    }
  }
  Entry e;
  e.session = s;
  e.catalog_id = s->catalog_id();
  if (mark && mark->catalog_id == e.catalog_id) e.next = mark->next;
  e.published = e.next;
  {
    std::lock_guard lk(mu_);
    // Stale documents are only gone after the next commit: publish position 0 until then.
    set_published(e, stale_docs ? 0 : e.next);
  }
  auto [pos, inserted] = entries_.emplace(k, std::move(e));
  (void)inserted;
  return &pos->second;
}

void Indexer::untrack(const std::string& k, bool remove_docs) {
  auto it = entries_.find(k);
  if (it == entries_.end()) return;
  Entry& e = it->second;
  if (e.waiter_id) e.session->stream()->remove_waiter(e.waiter_id);
  if (remove_docs) {
    if (Status st = index_->remove_session(e.session->tenant(), e.session->id()); !st) {
      spdlog::error("search indexer: {}", st.message());
    }
  }
  std::string tenant = e.session->tenant(), id = e.session->id();
  entries_.erase(it);
  std::lock_guard lk(mu_);
  auto tp = published_.find(tenant);
  if (tp != published_.end()) {
    tp->second.erase(id);
    if (tp->second.empty()) published_.erase(tp);
  }
}

void Indexer::set_published(const Entry& e, uint64_t next) {
  Published& p = published_[e.session->tenant()][e.session->id()];
  p.next = next;
  p.catalog_id = e.catalog_id;
}

void Indexer::rescan(std::map<std::string, std::map<std::string, SessionMark>>* marks) {
  std::set<std::string> seen;
  for (const auto& s : sessions_->list_all()) {
    std::string k = key(s->tenant(), s->id());
    seen.insert(k);
    const SessionMark* mark = nullptr;
    if (marks) {
      auto t = marks->find(s->tenant());
      if (t != marks->end()) {
        auto m = t->second.find(s->id());
        if (m != t->second.end()) mark = &m->second;
      }
    }
    bool known = entries_.count(k) && entries_[k].catalog_id == s->catalog_id();
    Entry* e = track(s, mark);
    if (!known || (e->waiter_id == 0 && s->stream()->tail() > e->next)) {
      std::lock_guard lk(wake_->mu);
      wake_->dirty.insert(k);
    }
  }
  std::vector<std::string> gone;
  for (auto& [k, e] : entries_) {
    if (!seen.count(k)) gone.push_back(k);
  }
  for (const auto& k : gone) untrack(k, true);
  if (marks) {
    for (const auto& [tenant, m] : *marks) {
      for (const auto& [id, mark] : m) {
        if (seen.count(key(tenant, id))) continue;
        if (Status st = index_->remove_session(tenant, id); !st) {
          spdlog::error("search indexer: {}", st.message());
        }
      }
    }
  }
}

Indexer::Chunk Indexer::read_chunk(const Entry& e) {
  // Documents are made right before they are added (cache-hot): building a whole chunk of
  // documents first cost ~15% more CPU per event.
  Chunk c;
  c.from = e.next;
  ReadResult rr;
  if (Status s = e.session->stream()->read(e.next, kReadChunkBytes, &rr); !s) return c;
  c.ok = true;
  c.tail = rr.tail;
  c.count = rr.messages.size();
  c.messages = std::move(rr.messages);
  return c;
}

bool Indexer::add_chunk(Chunk&& c, Entry& e, size_t* events) {
  if (!c.ok) return true;  // deleted (or unreadable): the rescan or session_removed() cleans up
  const std::string& tenant = e.session->tenant();
  const std::string& id = e.session->id();
  uint64_t pos = e.next;
  bool failed = false;
  std::string type;
  for (const auto& m : c.messages) {
    std::string text = extract_event_text(m, &type);
    Status s = index_->add(tenant, id, pos, type, text);
    if (!s) {
      spdlog::error("search indexer: {}", s.message());
      failed = true;
      break;
    }
    ++pos;
  }
  *events += pos - e.next;
  e.known_tail = c.tail;
  if (pos != e.next) {
    e.next = pos;
    if (Status s = index_->set_mark(tenant, id, SessionMark{e.catalog_id, e.next}); !s) {
      spdlog::error("search indexer: {}", s.message());
    }
  }
  return failed || c.count == 0 || e.next >= c.tail;
}

void Indexer::apply_removals() {
  std::vector<Removal> rs;
  {
    std::lock_guard lk(wake_->mu);
    rs.swap(wake_->removals);
  }
  for (const auto& r : rs) {
    std::string k = key(r.tenant, r.id);
    auto it = entries_.find(k);
    if (it == entries_.end()) {
      if (Status st = index_->remove_session(r.tenant, r.id); !st) {
        spdlog::error("search indexer: {}", st.message());
      }
    } else if (it->second.catalog_id == r.catalog_id) {
      untrack(k, true);
    }
  }
}

void Indexer::commit_and_publish(const std::set<std::string>& touched) {
  Status s = index_->commit();
  std::lock_guard lk(mu_);
  if (!s) {
    spdlog::error("search indexer: {}", s.message());
    for (const auto& k : touched) {
      auto it = entries_.find(k);
      if (it != entries_.end()) it->second.next = it->second.published;
    }
    return;
  }
  ++stats_.commits;
  for (const auto& k : touched) {
    auto it = entries_.find(k);
    if (it == entries_.end()) continue;
    stats_.indexed_events += it->second.next - it->second.published;
    it->second.published = it->second.next;
    set_published(it->second, it->second.next);
  }
}

void Indexer::watch(const std::string& k, Entry& e) {
  auto& stream = e.session->stream();
  if (e.waiter_id) {
    stream->remove_waiter(e.waiter_id);
    e.waiter_id = 0;
  }
  std::weak_ptr<Wake> weak = wake_;
  uint64_t id = 0;
  if (stream->add_waiter(e.next, &id, [weak, k] {
        if (auto w = weak.lock()) w->mark(k);
      })) {
    e.waiter_id = id;
  } else if (!stream->deleted() && stream->tail() > e.next) {
    std::lock_guard lk(wake_->mu);
    wake_->dirty.insert(k);
  }
}

void Indexer::run() {
  auto started = Clock::now();
  double started_cpu = thread_cpu_seconds();
  std::map<std::string, std::map<std::string, SessionMark>> marks;
  if (Status s = index_->open(&marks); !s) {
    spdlog::error("search index unavailable: {}", s.message());
    return;
  }
  rescan(&marks);
  marks.clear();
  commit_and_publish({});
  {
    std::lock_guard lk(mu_);
    for (auto& [k, e] : entries_) set_published(e, e.published);
  }
  auto next_rescan = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(options_.rescan_seconds));
  bool caught_up = false;
  uint64_t catch_up_events = 0;
  for (;;) {
    std::map<std::string, std::shared_ptr<Session>> kicked;
    {
      std::unique_lock lk(wake_->mu);
      wake_->cv.wait_until(lk, next_rescan, [&] {
        return wake_->stop || !wake_->dirty.empty() || !wake_->kicked.empty() ||
               !wake_->removals.empty();
      });
      if (wake_->stop) break;
      kicked.swap(wake_->kicked);
    }
    if (Clock::now() >= next_rescan) {
      rescan(nullptr);
      next_rescan = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(options_.rescan_seconds));
    }
    // Sessions a search waits for (`urgent`) go first, round-robin among themselves, then the
    // rest round-robin. Searches poll reached() and so re-kick what they wait for: a kicked
    // session already queued stays where it is. Once every urgent session is in, commit at once
    // so the waiting searches see it; otherwise commit after batch_events or batch_seconds.
    std::deque<std::string> urgent, normal;
    std::set<std::string> queued, done_now;
    bool commit_soon = false;
    auto take_kicks = [&](std::map<std::string, std::shared_ptr<Session>>& ks) {
      for (auto& [k, s] : ks) {
        if (s->stream()->deleted()) continue;
        commit_soon = true;
        if (done_now.count(k)) continue;  // in this batch already: the commit publishes it
        if (queued.count(k)) {
          auto it = std::find(normal.begin(), normal.end(), k);
          if (it == normal.end()) continue;  // already urgent
          normal.erase(it);
        }
        track(s, nullptr);
        urgent.push_back(k);
        queued.insert(k);
      }
    };
    take_kicks(kicked);
    {
      std::lock_guard lk(wake_->mu);
      for (const auto& k : wake_->dirty) {
        if (queued.insert(k).second) normal.push_back(k);
      }
      wake_->dirty.clear();
    }
    auto t0 = Clock::now();
    auto budget = std::chrono::duration<double>(options_.batch_seconds);
    size_t events = 0;
    std::set<std::string> touched;
    std::vector<std::string> done;
    while (!urgent.empty() || !normal.empty()) {
      bool from_urgent = !urgent.empty();
      std::deque<std::string>& q = from_urgent ? urgent : normal;
      std::string k = std::move(q.front());
      q.pop_front();
      auto it = entries_.find(k);
      if (it == entries_.end()) {
        queued.erase(k);
        continue;
      }
      Entry& e = it->second;
      touched.insert(k);
      Chunk c = read_chunk(e);
      uint64_t end = c.from + c.count;
      bool finished = !c.ok || c.count == 0 || end >= c.tail;
      if (!finished) q.push_back(k);
      bool reached_tail = add_chunk(std::move(c), e, &events);
      if (reached_tail != finished) {  // add failed part-way: treat as done (logged)
        auto& qq = from_urgent ? urgent : normal;
        auto pos = std::find(qq.begin(), qq.end(), k);
        if (pos != qq.end()) qq.erase(pos);
      }
      if (reached_tail) {
        done.push_back(k);
        done_now.insert(k);
        queued.erase(k);
      }
      if (events >= options_.batch_events || Clock::now() - t0 >= budget) break;
      std::map<std::string, std::shared_ptr<Session>> more;
      {
        std::lock_guard lk(wake_->mu);
        more.swap(wake_->kicked);
      }
      take_kicks(more);
      if (commit_soon && urgent.empty()) break;
    }
    {
      std::lock_guard lk(wake_->mu);
      for (const auto& k : urgent) wake_->dirty.insert(k);
      for (const auto& k : normal) wake_->dirty.insert(k);
    }
    apply_removals();
    commit_and_publish(touched);
    for (const auto& k : done) {
      auto it = entries_.find(k);
      if (it != entries_.end()) watch(k, it->second);
    }
    catch_up_events += events;
    uint64_t lag = 0;
    for (const auto& [k, e] : entries_) lag += e.known_tail > e.next ? e.known_tail - e.next : 0;
    bool idle = false;
    {
      std::lock_guard lk(wake_->mu);
      idle = wake_->dirty.empty() && wake_->kicked.empty();
    }
    std::lock_guard lk(mu_);
    stats_.lag_events = lag;
    if (!caught_up && idle) {
      caught_up = true;
      double secs = std::chrono::duration<double>(Clock::now() - started).count();
      double cpu = thread_cpu_seconds() - started_cpu;
      stats_.caught_up = true;
      stats_.catch_up_seconds = secs;
      stats_.catch_up_cpu_seconds = cpu;
      stats_.catch_up_events = catch_up_events;
      spdlog::info("search index caught up: {} events indexed in {:.3f} s ({:.0f} events/s, "
                   "{:.3f} s CPU = {:.0f} events per CPU-second), {} sessions",
                   catch_up_events, secs, secs > 0 ? catch_up_events / secs : 0.0, cpu,
                   cpu > 0 ? catch_up_events / cpu : 0.0, entries_.size());
    }
  }
  for (auto& [k, e] : entries_) {
    if (e.waiter_id) e.session->stream()->remove_waiter(e.waiter_id);
    e.waiter_id = 0;
  }
  apply_removals();
  commit_and_publish({});
}

}  // namespace ds
