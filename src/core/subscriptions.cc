#include "core/subscriptions.h"

#include <openssl/rand.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <map>
#include <random>

#include "core/clock.h"
#include "http/webhook_client.h"
#include "store/offset.h"

namespace ds {

namespace json = boost::json;

struct Subscriptions::Entry {
  Subscription sub;
  bool unsaved = false;     // changed since its record was last written (the thread writes it)
  // The wake whose webhook POST is running ("": none). Compared with the current wake: a
  // callback can end a wake before its POST returns, the next wake's POST can start before the
  // old one returns, and a subscription deleted and created again restarts its generations.
  std::string delivering;
  // Linked paths appended to since the last look: checked first, so that an idle subscription
  // with many links finds its pending work without walking them all.
  std::set<std::string> hot;
};

namespace {

Status ensure_table(Catalog* catalog) {
  return catalog->exec(
      "CREATE TABLE IF NOT EXISTS subscriptions (tenant TEXT NOT NULL, id TEXT NOT NULL, "
      "record TEXT NOT NULL, PRIMARY KEY (tenant, id));");
}

constexpr int64_t kMaxBackoffMs = 60000;

std::string random_id(const char* prefix) {
  unsigned char b[12];
  RAND_bytes(b, sizeof b);
  static const char* kHex = "0123456789abcdef";
  std::string out = prefix;
  for (unsigned char c : b) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

Subscriptions::Reply error(int http, const char* code, std::string message,
                           Status::Code status = Status::Code::kInvalid) {
  Subscriptions::Reply r;
  switch (status) {
    case Status::Code::kNotFound: r.status = Status::not_found(message); break;
    case Status::Code::kConflict: r.status = Status::conflict(message); break;
    case Status::Code::kForbidden: r.status = Status::forbidden(message); break;
    case Status::Code::kIoError: r.status = Status::io_error(message); break;
    default: r.status = Status::invalid(message); break;
  }
  r.http = http;
  r.code = code;
  r.body = json::serialize(json::object{
      {"type", "error"},
      {"error", json::object{{"code", code}, {"message", message}}}});
  return r;
}

Subscriptions::Reply ok(int http, std::string body) {
  Subscriptions::Reply r;
  r.http = http;
  r.body = std::move(body);
  return r;
}

Subscriptions::Reply not_found(const std::string& id) {
  return error(404, "SUBSCRIPTION_NOT_FOUND", "no subscription " + id, Status::Code::kNotFound);
}

Subscriptions::Reply io_failure(const Status& s) {
  return error(500, "INTERNAL", "could not store the subscription: " + s.message(),
               Status::Code::kIoError);
}

struct Token {
  char kind = 0;  // 'c' webhook callback, 'l' pull-wake lease
  uint64_t generation = 0;
  std::string wake_id, id, tenant;
};

}  // namespace

Subscriptions::Subscriptions(Options options, Catalog* catalog, StreamStore* streams,
                             const SigningKeys* keys)
    : options_(options), catalog_(catalog), streams_(streams), keys_(keys) {}

Subscriptions::~Subscriptions() { stop(); }

Status Subscriptions::open() {
  if (Status s = ensure_table(catalog_); !s) return s;
  std::vector<Committed> rows;
  if (Status s = committed(&rows); !s) return s;
  std::lock_guard lk(mu_);
  // Each tenant's streams, listed once (StreamStore::list walks every stream).
  std::map<std::string, std::vector<std::pair<std::string, std::shared_ptr<Stream>>>> listed;
  for (auto& [tenant, id, record] : rows) {
    auto e = std::make_unique<Entry>();
    if (Status s = Subscription::from_record(tenant, id, record, &e->sub); !s) return s;
    Subscription& sub = e->sub;
    if (!sub.config.webhook && !sub.wake_id.empty() && sub.holder.empty()) {
      // A pull-wake wake nobody claimed: its events may not have reached the wake stream before
      // the stop (the record is written first). Wake again (next generation) rather than wait
      // for a claim that may never come; a duplicate wake event is harmless.
      sub.wake_id.clear();
      sub.snapshot.clear();
      e->unsaved = true;
    }
    if (sub.config.pattern) {
      // Matches not linked yet were created (or first noticed) after the subscription's last
      // write: link them from their start so nothing they hold is skipped.
      auto l = listed.find(tenant);
      if (l == listed.end()) l = listed.emplace(tenant, streams_->list(tenant)).first;
      for (const auto& [path, stream] : l->second) {
        if (path == sub.config.wake_stream || sub.links.count(path)) continue;
        if (!glob_match(*sub.config.pattern, path)) continue;
        sub.links[path] = StreamLink{true, false, stream->record().fork_offset, stream->record().id};
        e->unsaved = true;
      }
    }
    std::string k = key(tenant, id);
    by_tenant_[tenant].insert(id);
    sync_tenant_locked(tenant);
    dirty_.insert(k);
    subs_[k] = std::move(e);
  }
  count_ = static_cast<int64_t>(subs_.size());
  {
    std::lock_guard il(inbox_mu_);
    kick_ = true;  // look at every subscription once: work may have been pending at the stop
  }
  pool_ = std::make_unique<boost::asio::thread_pool>(static_cast<size_t>(options_.delivery_threads));
  thread_ = std::thread([this] { run(); });
  return Status::ok();
}

void Subscriptions::stop() {
  {
    std::lock_guard lk(inbox_mu_);
    if (stop_) return;
    stop_ = true;
  }
  inbox_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (pool_) {
    pool_->stop();  // webhooks not sent yet stay in flight: their leases end and wake again
    pool_->join();
  }
}

// ---- helpers (mu_ held) ------------------------------------------------------------------

bool Subscriptions::stream_now(const std::string& tenant, const std::string& path,
                               StreamNow* out) {
  std::shared_ptr<Stream> s;
  if (!streams_->find(tenant, path, &s)) return false;
  out->tail = s->tail();
  out->id = s->record().id;
  out->start = s->record().fork_offset;
  return true;
}

StreamLink Subscriptions::explicit_link(const std::string& tenant, const std::string& path) {
  StreamNow now;
  bool exists = stream_now(tenant, path, &now);
  return StreamLink{false, true, exists ? now.tail : 0, exists ? now.id : 0};
}

std::optional<uint64_t> Subscriptions::link_tail_locked(Entry& e, const std::string& path,
                                                        StreamLink& link) {
  StreamNow now;
  if (!stream_now(e.sub.tenant, path, &now)) return std::nullopt;
  if (link.stream_id != now.id) {
    // First sight of the stream (an explicit link made before it existed), or a stream deleted
    // and created again under the path: everything it holds is unprocessed.
    link.acked = now.start;
    link.stream_id = now.id;
    e.unsaved = true;
  }
  return now.tail;
}

std::vector<WakeStream> Subscriptions::wake_streams_locked(Entry& e) {
  std::vector<WakeStream> pending, rest;
  for (auto& [path, link] : e.sub.links) {
    std::optional<uint64_t> tail = link_tail_locked(e, path, link);
    if (!tail) continue;
    (*tail > link.acked ? pending : rest).push_back(WakeStream{path, &link, *tail});
  }
  // Pending streams first; at most kMaxSubscriptionStreams in one wake.
  for (auto& w : rest) {
    if (pending.size() >= kMaxSubscriptionStreams) break;
    pending.push_back(std::move(w));
  }
  if (pending.size() > kMaxSubscriptionStreams) pending.resize(kMaxSubscriptionStreams);
  return pending;
}

bool Subscriptions::pending_locked(Entry& e, std::vector<std::string>* gone) {
  for (const std::string& path : e.hot) {
    auto l = e.sub.links.find(path);
    if (l == e.sub.links.end()) continue;
    std::optional<uint64_t> tail = link_tail_locked(e, path, l->second);
    if (tail && *tail > l->second.acked) return true;
  }
  e.hot.clear();
  for (auto& [path, link] : e.sub.links) {
    std::optional<uint64_t> tail = link_tail_locked(e, path, link);
    if (tail && *tail > link.acked) return true;
    if (!tail && !link.explicit_ && gone) gone->push_back(path);
  }
  return false;
}

void Subscriptions::prune_links_locked(Entry& e, const std::vector<std::string>& gone) {
  for (const std::string& path : gone) e.sub.links.erase(path);
  if (!gone.empty()) e.unsaved = true;
}

std::vector<WakeStream> Subscriptions::start_wake_locked(Entry& e) {
  Subscription& s = e.sub;
  s.generation++;
  s.wake_id = random_id("w_");
  s.holder.clear();
  s.lease_until_ms = 0;
  e.hot.clear();
  e.unsaved = true;
  return snapshot_locked(e);
}

std::vector<WakeStream> Subscriptions::snapshot_locked(Entry& e) {
  std::vector<WakeStream> streams = wake_streams_locked(e);
  e.sub.snapshot.clear();
  for (const WakeStream& w : streams) e.sub.snapshot[w.path] = w.tail;
  return streams;
}

void Subscriptions::schedule_retry_locked(Entry& e, int64_t now) {
  Subscription& s = e.sub;
  s.wake_id.clear();
  s.holder.clear();
  s.lease_until_ms = 0;
  s.snapshot.clear();
  s.failed = true;
  s.attempts++;
  int64_t base = kMaxBackoffMs;
  if (s.attempts <= 7) base = std::min<int64_t>(kMaxBackoffMs, int64_t{1000} << (s.attempts - 1));
  thread_local std::mt19937_64 rng{std::random_device{}()};
  double jitter = std::uniform_real_distribution<double>(0.8, 1.2)(rng);
  s.next_attempt_ms = now + static_cast<int64_t>(static_cast<double>(base) * jitter);
  e.unsaved = true;
}

std::string Subscriptions::make_token(const Subscription& s, char kind) const {
  std::string payload = std::string(1, kind) + "\n" + std::to_string(s.generation) + "\n" +
                        s.wake_id + "\n" + s.id + "\n" + s.tenant;
  return "dsw_" + base64url_encode(payload) + "." + base64url_encode(keys_->mac(payload));
}

namespace {

bool parse_token(const SigningKeys& keys, const std::string& token, Token* out) {
  if (token.rfind("dsw_", 0) != 0) return false;
  size_t dot = token.find('.');
  if (dot == std::string::npos) return false;
  std::string payload, mac;
  if (!base64url_decode(std::string_view(token).substr(4, dot - 4), &payload) ||
      !base64url_decode(std::string_view(token).substr(dot + 1), &mac)) {
    return false;
  }
  std::string expect = keys.mac(payload);
  if (mac.size() != expect.size() || CRYPTO_memcmp(mac.data(), expect.data(), mac.size()) != 0) {
    return false;
  }
  std::vector<std::string> parts;
  size_t start = 0;
  for (int i = 0; i < 4; ++i) {
    size_t nl = payload.find('\n', start);
    if (nl == std::string::npos) return false;
    parts.push_back(payload.substr(start, nl - start));
    start = nl + 1;
  }
  if (parts[0].size() != 1) return false;
  out->kind = parts[0][0];
  auto g = parse_canonical_uint(parts[1], UINT64_MAX);
  if (!g) return false;
  out->generation = *g;
  out->wake_id = parts[2];
  out->id = parts[3];
  out->tenant = payload.substr(start);
  return true;
}

}  // namespace

std::optional<std::string> Subscriptions::token_tenant(const std::string& token) {
  Token t;
  if (!parse_token(*keys_, token, &t)) return std::nullopt;
  return t.tenant;
}

void Subscriptions::kick() {
  {
    std::lock_guard lk(inbox_mu_);
    kick_ = true;
  }
  inbox_cv_.notify_one();
}

Status Subscriptions::save(const Subscription& sub) {
  std::string record = sub.record_json();
  Status s = catalog_->transaction([&]() -> Status {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(catalog_->db(),
                           "INSERT INTO subscriptions (tenant, id, record) VALUES (?, ?, ?) "
                           "ON CONFLICT (tenant, id) DO UPDATE SET record = excluded.record",
                           -1, &st, nullptr) != SQLITE_OK) {
      return Status::io_error(std::string("catalog prepare: ") + sqlite3_errmsg(catalog_->db()));
    }
    sqlite3_bind_text(st, 1, sub.tenant.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, sub.id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, record.c_str(), -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
      return Status::io_error(std::string("catalog write: ") + sqlite3_errmsg(catalog_->db()));
    }
    return Status::ok();
  });
  if (s) version_.fetch_add(1);
  return s;
}

Status Subscriptions::erase(const std::string& tenant, const std::string& id) {
  Status s = catalog_->transaction([&]() -> Status {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(catalog_->db(), "DELETE FROM subscriptions WHERE tenant = ? AND id = ?",
                           -1, &st, nullptr) != SQLITE_OK) {
      return Status::io_error(std::string("catalog prepare: ") + sqlite3_errmsg(catalog_->db()));
    }
    sqlite3_bind_text(st, 1, tenant.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, id.c_str(), -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
      return Status::io_error(std::string("catalog delete: ") + sqlite3_errmsg(catalog_->db()));
    }
    return Status::ok();
  });
  if (s) version_.fetch_add(1);
  return s;
}

// ---- the bucket mirror and restore --------------------------------------------------------

Status Subscriptions::committed(std::vector<Committed>* out) {
  std::lock_guard cl(catalog_->mutex());
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(catalog_->db(), "SELECT tenant, id, record FROM subscriptions", -1, &st,
                         nullptr) != SQLITE_OK) {
    return Status::io_error(std::string("catalog: ") + sqlite3_errmsg(catalog_->db()));
  }
  while (sqlite3_step(st) == SQLITE_ROW) {
    out->push_back(Committed{reinterpret_cast<const char*>(sqlite3_column_text(st, 0)),
                             reinterpret_cast<const char*>(sqlite3_column_text(st, 1)),
                             reinterpret_cast<const char*>(sqlite3_column_text(st, 2))});
  }
  sqlite3_finalize(st);
  return Status::ok();
}

Status Subscriptions::restore(const std::vector<Committed>& records) {
  if (Status s = ensure_table(catalog_); !s) return s;
  for (const auto& r : records) {
    Subscription sub;
    if (Status s = Subscription::from_record(r.tenant, r.id, r.record, &sub); !s) {
      // One bad record must not block every restore: the rest comes back without it.
      spdlog::error("restore: subscription {} of tenant {} skipped: {}", r.id, r.tenant,
                    s.message());
      continue;
    }
    for (auto& [path, link] : sub.links) {
      StreamNow now;
      if (stream_now(sub.tenant, path, &now)) {
        link.stream_id = now.id;
        link.acked = std::clamp(link.acked, now.start, now.tail);
      } else {
        link.stream_id = 0;
        link.acked = 0;
      }
    }
    sub.wake_id.clear();
    sub.holder.clear();
    sub.lease_until_ms = 0;
    sub.snapshot.clear();
    sub.failed = false;
    sub.attempts = 0;
    sub.next_attempt_ms = 0;
    if (Status s = save(sub); !s) return s;
  }
  return Status::ok();
}

// ---- notifications -------------------------------------------------------------------------

void Subscriptions::note_append(const std::string& tenant, const std::string& path,
                                int64_t stream_id, uint64_t before) {
  if (!any()) return;
  {
    std::lock_guard lk(inbox_mu_);
    if (!inbox_tenants_.count(tenant)) return;
    auto [it, added] = inbox_.try_emplace(key(tenant, path), Note{tenant, path, stream_id, before});
    if (!added) {
      if (it->second.stream_id != stream_id) {
        it->second = Note{tenant, path, stream_id, before};  // a newer stream under the path
      } else {
        it->second.before = std::min(it->second.before, before);
      }
      return;  // the thread has been woken for it already
    }
  }
  inbox_cv_.notify_one();
}

void Subscriptions::sync_tenant_locked(const std::string& tenant) {
  std::lock_guard lk(inbox_mu_);
  if (by_tenant_.count(tenant)) {
    inbox_tenants_[tenant] = static_cast<int>(by_tenant_[tenant].size());
  } else {
    inbox_tenants_.erase(tenant);
  }
}

void Subscriptions::drain_inbox_locked(bool on_thread) {
  std::unordered_map<std::string, Note> notes;
  std::vector<WakeWritten> written;
  {
    std::lock_guard lk(inbox_mu_);
    notes.swap(inbox_);
    written.swap(written_);
  }
  for (const WakeWritten& r : written) {
    auto it = subs_.find(r.key);
    if (it == subs_.end() || it->second->sub.generation != r.generation ||
        it->second->sub.wake_id != r.wake_id) {
      continue;  // that wake is over (or the subscription deleted)
    }
    Entry& e = *it->second;
    if (r.ok) {
      e.sub.failed = false;
      e.sub.attempts = 0;
      e.sub.next_attempt_ms = 0;
    } else if (!e.sub.holder.empty()) {
      // A worker claimed this wake meanwhile (claims do not need the event): its lease stands.
      spdlog::warn("subscription {}: writing its wake to {} failed: {}", e.sub.id,
                   e.sub.config.wake_stream, r.why);
    } else {
      spdlog::warn("subscription {}: writing its wake to {} failed: {}", e.sub.id,
                   e.sub.config.wake_stream, r.why);
      schedule_retry_locked(e, now_unix_millis());
    }
    e.unsaved = true;
    dirty_.insert(r.key);
  }
  for (const auto& [unused, n] : notes) {
    auto t = by_tenant_.find(n.tenant);
    if (t == by_tenant_.end()) continue;
    for (const std::string& id : t->second) {
      std::string k = key(n.tenant, id);
      Entry& e = *subs_[k];
      Subscription& s = e.sub;
      if (n.path == s.config.wake_stream) continue;
      // An existing link's acked position is never moved here: the note may be late (a worker
      // may have acked past `before` already); link_tail_locked() notices a re-created stream.
      if (!s.links.count(n.path)) {
        if (!s.config.pattern || !glob_match(*s.config.pattern, n.path)) continue;
        s.links[n.path] = StreamLink{true, false, n.before, n.stream_id};
        e.unsaved = true;
      }
      e.hot.insert(n.path);
      dirty_.insert(k);
    }
  }
  // What was drained here is the thread's to act on: a request handler draining must wake it
  // (it may have been notified already and found the inbox empty).
  if (!on_thread && (!notes.empty() || !written.empty())) kick();
}

// ---- the delivery thread -----------------------------------------------------------------

void Subscriptions::run() {
  int64_t deadline = 0;  // earliest lease or retry time (0 = none)
  while (true) {
    {
      std::unique_lock lk(inbox_mu_);
      auto ready = [&] { return stop_ || kick_ || !inbox_.empty() || !written_.empty(); };
      if (deadline == 0) {
        inbox_cv_.wait(lk, ready);
      } else {
        int64_t wait_ms = deadline - now_unix_millis();
        if (wait_ms > 0) inbox_cv_.wait_for(lk, std::chrono::milliseconds(wait_ms), ready);
      }
      if (stop_) return;
      kick_ = false;
    }
    std::vector<std::function<void()>> after;
    {
      std::lock_guard lk(mu_);
      drain_inbox_locked(true);
      int64_t now = now_unix_millis();
      std::set<std::string> todo;
      todo.swap(dirty_);
      deadline = 0;
      for (auto& [k, e] : subs_) {
        const Subscription& s = e->sub;
        bool due = (s.lease_until_ms && s.lease_until_ms <= now) ||
                   (s.next_attempt_ms && s.next_attempt_ms <= now && s.wake_id.empty());
        std::vector<std::function<void()>> sends;  // a new wake's delivery
        if (due || todo.count(k)) evaluate_locked(*e, now, &sends);
        if (e->unsaved) {
          if (Status st = save(e->sub); st) {
            e->unsaved = false;
          } else {
            spdlog::warn("subscription {}: {}", e->sub.id, st.message());
            if (!sends.empty()) {
              // A wake goes out only once its generation is stored: undo it, try again later.
              sends.clear();
              e->sub.wake_id.clear();
              e->sub.holder.clear();
              e->sub.lease_until_ms = 0;
              e->sub.snapshot.clear();
              e->delivering.clear();
            }
            dirty_.insert(k);
          }
        }
        for (auto& f : sends) after.push_back(std::move(f));
        auto soonest = [&](int64_t t) {
          if (t > now && (deadline == 0 || t < deadline)) deadline = t;
        };
        if (!s.wake_id.empty() && s.lease_until_ms) soonest(s.lease_until_ms);
        if (s.wake_id.empty() && s.next_attempt_ms) soonest(s.next_attempt_ms);
        if (e->unsaved) soonest(now + 1000);  // a failed write: try again
      }
    }
    for (auto& f : after) f();
  }
}

void Subscriptions::evaluate_locked(Entry& e, int64_t now,
                                    std::vector<std::function<void()>>* after) {
  Subscription& s = e.sub;
  if (!s.wake_id.empty() && s.lease_until_ms && s.lease_until_ms <= now &&
      e.delivering != s.wake_id) {
    // The lease ran out: its holder (or webhook) is fenced from now on.
    s.wake_id.clear();
    s.holder.clear();
    s.lease_until_ms = 0;
    s.snapshot.clear();
    e.unsaved = true;
  }
  if (!s.wake_id.empty()) return;  // a wake is in flight
  if (s.next_attempt_ms > now) return;
  std::vector<std::string> gone;  // glob links of streams that no longer exist
  if (!pending_locked(e, &gone)) {
    if (s.next_attempt_ms != 0) {  // a retry came due with nothing left to deliver
      s.next_attempt_ms = 0;
      s.attempts = 0;
      s.failed = false;
      e.unsaved = true;
    }
    prune_links_locked(e, gone);  // idle: a good moment to forget streams that are gone
    return;
  }
  std::vector<WakeStream> streams = start_wake_locked(e);
  std::string k = key(s.tenant, s.id);
  if (s.config.webhook) {
    s.lease_until_ms = now + s.config.lease_ttl_ms;
    e.delivering = s.wake_id;
    json::object body{{"subscription_id", s.id},
                      {"wake_id", s.wake_id},
                      {"generation", s.generation},
                      {"streams", wake_streams_json(streams)},
                      {"callback_url", s.base_url + "/v1/stream/__ds/subscriptions/" + s.id + "/callback"},
                      {"callback_token", make_token(s, 'c')}};
    after->push_back([this, k, g = s.generation, w = s.wake_id, b = json::serialize(body)] {
      boost::asio::post(*pool_, [this, k, g, w, b] { deliver_webhook(k, g, w, b); });
    });
  } else {
    write_wake_events(e, after);
  }
}

void Subscriptions::write_wake_events(Entry& e, std::vector<std::function<void()>>* after) {
  const Subscription& s = e.sub;
  std::vector<std::string> messages;
  int64_t ts = now_unix_millis();
  for (const auto& [path, tail] : s.snapshot) {
    auto l = s.links.find(path);
    if (l == s.links.end() || tail <= l->second.acked) continue;
    messages.push_back(json::serialize(json::object{{"type", "wake"},
                                                    {"subscription_id", s.id},
                                                    {"stream", path},
                                                    {"generation", s.generation},
                                                    {"ts", ts}}));
  }
  after->push_back([this, tenant = s.tenant, id = s.id, wake = s.config.wake_stream,
                    g = s.generation, w = s.wake_id, messages = std::move(messages)]() mutable {
    // The outcome goes through the inbox: the append's callback may run inline, under the wake
    // stream's lock, and mu_ is taken before stream locks (tail_of), never after.
    auto finish = [this, k = key(tenant, id), g, w](bool ok, std::string why) {
      {
        std::lock_guard lk(inbox_mu_);
        written_.push_back(WakeWritten{k, g, w, ok, std::move(why)});
      }
      inbox_cv_.notify_one();
    };
    std::shared_ptr<Stream> stream;
    Status st = streams_->find(tenant, wake, &stream);
    if (!st) {
      finish(false, st.message());
      return;
    }
    AppendRequest req;
    req.messages = std::move(messages);
    stream->append(std::move(req), [finish](AppendResult r) {
      bool ok = r.outcome == AppendResult::Outcome::kAppended;
      finish(ok, ok ? "" : r.status.message().empty() ? "the stream refused it (closed?)"
                                                       : r.status.message());
    });
  });
}

void Subscriptions::deliver_webhook(std::string k, uint64_t generation, std::string wake_id,
                                    std::string body) {
  std::string url;
  {
    std::lock_guard lk(mu_);
    auto it = subs_.find(k);
    // Gone, or that wake is over (a callback ended it, or the subscription was deleted and made
    // again under its id): nothing to send.
    if (it == subs_.end() || it->second->sub.wake_id != wake_id) {
      if (it != subs_.end() && it->second->delivering == wake_id) it->second->delivering.clear();
      return;
    }
    url = it->second->sub.config.webhook_url;
  }
  int64_t t = now_unix_millis() / 1000;
  WebhookResponse r = post_webhook(url, body,
                                   {{"Content-Type", "application/json"},
                                    {"Webhook-Signature", keys_->sign(t, body)},
                                    {"User-Agent", "durable-sessions"}},
                                   options_.webhook_timeout_ms, options_.webhook_targets());
  {
    std::lock_guard lk(mu_);
    auto it = subs_.find(k);
    if (it == subs_.end()) return;
    Entry& e = *it->second;
    Subscription& s = e.sub;
    if (e.delivering == wake_id) e.delivering.clear();
    if (s.generation != generation || s.wake_id != wake_id) return;  // that wake is over
    int64_t now = now_unix_millis();
    if (r.sent && r.status >= 200 && r.status < 300) {
      s.failed = false;
      s.attempts = 0;
      s.next_attempt_ms = 0;
      std::error_code ec;
      json::value v = json::parse(r.body, ec);
      bool done = !ec && v.is_object() && v.as_object().if_contains("done") &&
                  v.as_object().at("done").is_bool() && v.as_object().at("done").as_bool();
      if (done) {  // synchronous completion: everything in the wake's snapshot is processed
        for (const auto& [path, tail] : s.snapshot) {
          auto l = s.links.find(path);
          if (l != s.links.end()) l->second.acked = std::max(l->second.acked, tail);
        }
        s.wake_id.clear();
        s.lease_until_ms = 0;
        s.snapshot.clear();
      } else {
        s.lease_until_ms = now + s.config.lease_ttl_ms;  // the receiver calls back
      }
    } else {
      spdlog::warn("subscription {}: webhook delivery failed: {}", s.id,
                   r.sent ? "HTTP " + std::to_string(r.status) : r.error);
      schedule_retry_locked(e, now);
    }
    e.unsaved = true;
    dirty_.insert(k);
  }
  kick();
}

// ---- requests --------------------------------------------------------------------------------

Subscriptions::Reply Subscriptions::put(const std::string& tenant, const std::string& id,
                                        const SubscriptionConfig& config,
                                        const std::string& base_url) {
  std::lock_guard lk(mu_);
  drain_inbox_locked(false);
  std::string k = key(tenant, id);
  if (auto it = subs_.find(k); it != subs_.end()) {
    if (it->second->sub.config.canonical_config() != config.canonical_config()) {
      return error(409, "SUBSCRIPTION_CONFLICT",
                   "subscription " + id + " exists with a different configuration",
                   Status::Code::kConflict);
    }
    return ok(200, subscription_json(it->second->sub, keys_->kid()));
  }
  if (!config.webhook &&
      std::binary_search(config.streams.begin(), config.streams.end(), config.wake_stream)) {
    return error(400, "INVALID_REQUEST", "wake_stream cannot also be one of the subscription's streams");
  }
  if (!config.webhook) {
    std::shared_ptr<Stream> wake;
    if (!streams_->find(tenant, config.wake_stream, &wake)) {
      return error(400, "WAKE_STREAM_NOT_FOUND",
                   "wake_stream " + config.wake_stream + " does not exist: create it first");
    }
  }
  auto e = std::make_unique<Entry>();
  Subscription& s = e->sub;
  s.tenant = tenant;
  s.id = id;
  s.config = config;
  s.created_ms = now_unix_millis();
  s.base_url = base_url;
  for (const std::string& path : config.streams) s.links[path] = explicit_link(tenant, path);
  if (config.pattern) {
    for (const auto& [path, stream] : streams_->list(tenant)) {
      if (path == config.wake_stream || !glob_match(*config.pattern, path)) continue;
      StreamLink& l = s.links[path];
      if (!l.explicit_) {
        l.acked = stream->tail();
        l.stream_id = stream->record().id;
      }
      l.glob = true;
    }
  }
  if (Status st = save(s); !st) return io_failure(st);
  by_tenant_[tenant].insert(id);
  sync_tenant_locked(tenant);
  Reply r = ok(201, subscription_json(s, keys_->kid()));
  subs_[k] = std::move(e);
  count_ = static_cast<int64_t>(subs_.size());
  // An append between the tails read above and the registration just now was not noticed (the
  // tenant had no subscription then): look at the links once more.
  dirty_.insert(k);
  kick();
  return r;
}

Subscriptions::Reply Subscriptions::get(const std::string& tenant, const std::string& id) {
  std::lock_guard lk(mu_);
  drain_inbox_locked(false);
  auto it = subs_.find(key(tenant, id));
  if (it == subs_.end()) return not_found(id);
  return ok(200, subscription_json(it->second->sub, keys_->kid()));
}

Subscriptions::Reply Subscriptions::remove(const std::string& tenant, const std::string& id) {
  std::lock_guard lk(mu_);
  std::string k = key(tenant, id);
  auto it = subs_.find(k);
  if (it == subs_.end()) return not_found(id);
  if (Status st = erase(tenant, id); !st) return io_failure(st);
  subs_.erase(it);
  dirty_.erase(k);
  by_tenant_[tenant].erase(id);
  if (by_tenant_[tenant].empty()) by_tenant_.erase(tenant);
  sync_tenant_locked(tenant);
  count_ = static_cast<int64_t>(subs_.size());
  return ok(204, "");
}

Subscriptions::Reply Subscriptions::add_streams(const std::string& tenant, const std::string& id,
                                                const std::vector<std::string>& paths) {
  std::lock_guard lk(mu_);
  drain_inbox_locked(false);
  auto it = subs_.find(key(tenant, id));
  if (it == subs_.end()) return not_found(id);
  Subscription& s = it->second->sub;
  if (!s.config.webhook &&
      std::find(paths.begin(), paths.end(), s.config.wake_stream) != paths.end()) {
    return error(400, "INVALID_REQUEST", "the wake_stream cannot be one of the subscription's streams");
  }
  Subscription before = s;
  for (const std::string& path : paths) {
    auto l = s.links.find(path);
    if (l != s.links.end()) {
      l->second.explicit_ = true;
      continue;
    }
    s.links[path] = explicit_link(tenant, path);
  }
  if (Status st = save(s); !st) {
    s = std::move(before);
    return io_failure(st);
  }
  return ok(204, "");
}

Subscriptions::Reply Subscriptions::remove_stream(const std::string& tenant, const std::string& id,
                                                  const std::string& path) {
  std::lock_guard lk(mu_);
  drain_inbox_locked(false);
  auto it = subs_.find(key(tenant, id));
  if (it == subs_.end()) return not_found(id);
  Subscription& s = it->second->sub;
  auto l = s.links.find(path);
  if (l == s.links.end() || !l->second.explicit_) return ok(204, "");
  StreamLink old = l->second;
  l->second.explicit_ = false;
  if (s.config.pattern && glob_match(*s.config.pattern, path) && path != s.config.wake_stream) {
    l->second.glob = true;  // the pattern still matches: the glob link stays
  } else if (!l->second.glob) {
    s.links.erase(l);
  }
  if (Status st = save(s); !st) {
    s.links[path] = old;
    return io_failure(st);
  }
  return ok(204, "");
}

Subscriptions::Reply Subscriptions::claim(const std::string& tenant, const std::string& id,
                                          const std::string& worker) {
  std::lock_guard lk(mu_);
  drain_inbox_locked(false);
  auto it = subs_.find(key(tenant, id));
  if (it == subs_.end()) return not_found(id);
  Entry& e = *it->second;
  Subscription& s = e.sub;
  if (s.config.webhook) {
    return error(400, "INVALID_REQUEST", "claim is for pull-wake subscriptions; " + id +
                                             " delivers by webhook");
  }
  int64_t now = now_unix_millis();
  if (!s.holder.empty() && s.lease_until_ms > now) {
    Reply r = error(409, "ALREADY_CLAIMED", "subscription " + id + " is claimed by " + s.holder,
                    Status::Code::kConflict);
    r.body = json::serialize(json::object{
        {"type", "error"},
        {"error", json::object{{"code", "ALREADY_CLAIMED"},
                               {"message", "subscription " + id + " is claimed"},
                               {"current_holder", s.holder},
                               {"generation", s.generation}}}});
    return r;
  }
  Subscription before = s;
  // No wake waiting to be claimed (or its lease ran out): a new one; otherwise claim the
  // waiting wake, with the tails as of now.
  std::vector<WakeStream> streams = s.wake_id.empty() || !s.holder.empty() ? start_wake_locked(e)
                                                                           : snapshot_locked(e);
  s.holder = worker;
  s.lease_until_ms = now + s.config.lease_ttl_ms;
  s.failed = false;  // a worker has the wake: whatever failed before no longer matters
  s.attempts = 0;
  s.next_attempt_ms = 0;
  if (Status st = save(s); !st) {
    s = std::move(before);
    return io_failure(st);
  }
  e.unsaved = false;
  json::object body{{"wake_id", s.wake_id},
                    {"generation", s.generation},
                    {"token", make_token(s, 'l')},
                    {"streams", wake_streams_json(streams)},
                    {"lease_ttl_ms", s.config.lease_ttl_ms}};
  kick();  // the lease's expiry is a new deadline
  return ok(200, json::serialize(body));
}

Subscriptions::Reply Subscriptions::ack(const std::string& token, const std::string& id,
                                        std::string_view body, bool webhook) {
  Token t;
  if (!parse_token(*keys_, token, &t) || t.id != id || t.kind != (webhook ? 'c' : 'l')) {
    return error(401, "UNAUTHORIZED", "missing or invalid wake token (Authorization: Bearer)",
                 Status::Code::kForbidden);
  }
  std::error_code ec;
  json::value doc = json::parse(body, ec);
  if (ec || !doc.is_object()) return error(400, "INVALID_REQUEST", "body must be a JSON object");
  const json::object& o = doc.as_object();
  const json::value* wake = o.if_contains("wake_id");
  const json::value* gen = o.if_contains("generation");
  const json::value* acks = o.if_contains("acks");
  const json::value* done = o.if_contains("done");
  if (!wake || !wake->is_string() || !gen || !(gen->is_int64() || gen->is_uint64()) ||
      (acks && !acks->is_null() && !acks->is_array()) ||
      (done && !done->is_null() && !done->is_bool())) {
    return error(400, "INVALID_REQUEST",
                 "body needs wake_id (string) and generation (integer); acks is an array, done a "
                 "boolean");
  }
  uint64_t generation = gen->is_uint64() ? gen->as_uint64() : static_cast<uint64_t>(gen->as_int64());
  bool is_done = done && done->is_bool() && done->as_bool();

  std::lock_guard lk(mu_);
  drain_inbox_locked(false);
  auto it = subs_.find(key(t.tenant, id));
  if (it == subs_.end()) return not_found(id);
  Entry& e = *it->second;
  Subscription& s = e.sub;
  int64_t now = now_unix_millis();
  bool live_lease = s.lease_until_ms > now || (webhook && !s.wake_id.empty() && e.delivering == s.wake_id);
  if (s.wake_id.empty() || t.generation != s.generation || t.wake_id != s.wake_id ||
      generation != s.generation || wake->as_string() != s.wake_id || !live_lease ||
      (!webhook && s.holder.empty())) {
    Reply r = error(409, "FENCED", "this wake is no longer current", Status::Code::kForbidden);
    return r;
  }
  Subscription before = s;
  if (acks && acks->is_array()) {
    for (const json::value& a : acks->as_array()) {
      const json::value* stream = a.is_object() ? a.as_object().if_contains("stream") : nullptr;
      const json::value* offset = a.is_object() ? a.as_object().if_contains("offset") : nullptr;
      if (!stream || !stream->is_string() || !offset || !offset->is_string()) {
        s = std::move(before);
        return error(400, "INVALID_REQUEST", "each ack is {\"stream\": path, \"offset\": offset}");
      }
      auto pos = parse_offset(std::string_view(offset->as_string()));
      auto l = s.links.find(std::string(stream->as_string()));
      if (!pos || l == s.links.end()) {
        s = std::move(before);
        return error(400, "INVALID_REQUEST",
                     !pos ? "ack offset is not an offset of this server"
                          : "stream " + std::string(stream->as_string()) + " is not linked");
      }
      std::optional<uint64_t> tail = link_tail_locked(e, l->first, l->second);
      if (!tail || *pos > *tail) {
        s = std::move(before);
        return error(400, "INVALID_REQUEST", "ack offset is past the stream's tail");
      }
      l->second.acked = std::max(l->second.acked, *pos);
    }
  }
  bool next_wake = false;
  if (is_done) {
    s.wake_id.clear();
    s.holder.clear();
    s.lease_until_ms = 0;
    s.snapshot.clear();
    next_wake = pending_locked(e, nullptr);
  } else {
    s.lease_until_ms = now + s.config.lease_ttl_ms;  // heartbeat
  }
  if (Status st = save(s); !st) {
    s = std::move(before);
    return io_failure(st);
  }
  e.unsaved = false;
  dirty_.insert(it->first);
  kick();
  return ok(200, json::serialize(json::object{{"ok", true}, {"next_wake", next_wake}}));
}

Subscriptions::Reply Subscriptions::release(const std::string& token, const std::string& id,
                                            std::string_view body) {
  std::error_code ec;
  json::value doc = json::parse(body, ec);
  if (ec || !doc.is_object()) return error(400, "INVALID_REQUEST", "body must be a JSON object");
  doc.as_object().erase("acks");
  doc.as_object()["done"] = true;
  Reply r = ack(token, id, json::serialize(doc), false);
  if (r.status) {
    r.http = 204;
    r.body.clear();
  }
  return r;
}

}  // namespace ds
