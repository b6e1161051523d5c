#include "core/session_store.h"

#include <simdjson.h>

#include <future>
#include <iterator>
#include <sqlite3.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <spdlog/spdlog.h>

#include "core/clock.h"
#include "core/json_dom.h"

namespace ds {

namespace json = boost::json;

boost::json::object Session::record() {
  std::lock_guard lk(mu_);
  return record_;
}

SessionSummary Session::summary() {
  std::lock_guard lk(mu_);
  return summary_;
}

int64_t Session::created_ms() {
  std::lock_guard lk(mu_);
  if (auto* v = record_.if_contains("created_at"); v && v->is_string()) {
    return parse_rfc3339(std::string(v->as_string())).value_or(0);
  }
  return 0;
}

void Session::apply_event(uint64_t position, std::string_view event_json) {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element e;
  if (parse_json_dom(parser, event_json, &e)) return;
  std::string_view type;
  if (e["type"].get(type)) return;
  std::lock_guard lk(mu_);
  if (position < summary_.applied_next) return;
  summary_.applied_next = position + 1;
  std::string_view processed;
  if (!e["processed_at"].get(processed)) {
    if (auto ms = parse_rfc3339(processed)) summary_.last_event_ms = std::max(summary_.last_event_ms, *ms);
  }
  constexpr std::string_view kStatus = "session.status_";
  if (type.starts_with(kStatus)) {
    std::string_view s = type.substr(kStatus.size());
    if (s == "running" || s == "idle" || s == "terminated") {
      summary_.status = std::string(s);
    } else if (s == "rescheduled" || s == "rescheduling") {
      summary_.status = "rescheduling";
    }
  } else if (type == "span.model_request_end") {
    simdjson::dom::object u;
    if (!e["model_usage"].get(u)) {
      auto add = [&](const char* k, uint64_t* to) {
        uint64_t v;
        if (!u[k].get(v)) *to = v > UINT64_MAX - *to ? UINT64_MAX : *to + v;  // saturates
      };
      add("input_tokens", &summary_.input_tokens);
      add("output_tokens", &summary_.output_tokens);
      add("cache_read_input_tokens", &summary_.cache_read_input_tokens);
      add("cache_creation_input_tokens", &summary_.cache_creation_input_tokens);
    }
  }
}

SessionStore::SessionStore(Catalog* catalog, StreamStore* streams)
    : catalog_(catalog), streams_(streams), committer_([this] { commit_loop(); }) {}

SessionStore::~SessionStore() {
  stop_expiry();
  {
    std::lock_guard lk(queue_mu_);
    stop_ = true;
  }
  queue_cv_.notify_all();
  committer_.join();
}

std::optional<int64_t> SessionStore::ttl_of(const json::object& record) {
  const json::value* v = record.if_contains("ttl_seconds");
  if (v == nullptr || !v->is_int64() || v->as_int64() < 0) return std::nullopt;
  // Capped at 100 years (as Stream-TTL): no overflow in milliseconds.
  return std::min<int64_t>(v->as_int64(), int64_t{100} * 365 * 86400) * 1000;
}

void SessionStore::start_expiry(std::function<void(const std::shared_ptr<Session>&)> expired) {
  expiry_ = std::thread([this, expired = std::move(expired)] { expiry_loop(expired); });
}

void SessionStore::stop_expiry() {
  {
    std::lock_guard lk(expiry_mu_);
    expiry_stop_ = true;
  }
  expiry_cv_.notify_all();
  if (expiry_.joinable()) expiry_.join();
}

void SessionStore::expiry_loop(std::function<void(const std::shared_ptr<Session>&)> expired) {
  while (true) {
    {
      std::unique_lock lk(expiry_mu_);
      expiry_cv_.wait_for(lk, std::chrono::seconds(1), [this] { return expiry_stop_; });
      if (expiry_stop_) return;
    }
    std::vector<std::pair<std::shared_ptr<Session>, int64_t>> candidates;
    {
      std::lock_guard lk(mu_);
      for (const auto& [k, ms] : ttl_ms_) {
        auto it = sessions_.find(k);
        if (it != sessions_.end()) candidates.emplace_back(it->second, ms);
      }
    }
    int64_t now = now_unix_millis();
    for (auto& [s, ms] : candidates) {
      // Retired atomically with the idleness check: an append racing the expiry is either
      // refused or keeps the session.
      if (!s->stream()->retire_if_idle(now, ms)) continue;
      Status st = remove(s);
      if (st) {
        spdlog::info("session {} expired (ttl_seconds {})", s->id(), ms / 1000);
        expired(s);
      } else if (st.code() != Status::Code::kNotFound) {
        spdlog::warn("session {} expired but could not be deleted: {}", s->id(), st.message());
      }
    }
  }
}

std::shared_ptr<Session> SessionStore::make_session(const std::string& tenant,
                                                    const std::string& id, int64_t catalog_id,
                                                    json::object record,
                                                    std::shared_ptr<Stream> stream) {
  auto s = std::make_shared<Session>(tenant, id, catalog_id, std::move(record), stream);
  std::weak_ptr<Session> weak = s;
  stream->set_message_hook([weak](uint64_t pos, std::string_view msg) {
    if (auto ss = weak.lock()) ss->apply_event(pos, msg);
  });
  return s;
}

Status SessionStore::attach_stream(const std::string& tenant, const std::string& id,
                                   std::shared_ptr<Stream>* out) {
  Status s = streams_->find(tenant, stream_path(id), out);
  if (s.code() != Status::Code::kNotFound) return s;
  // Create the session's stream (JSON mode).
  CreateSpec spec;
  spec.tenant = tenant;
  spec.path = stream_path(id);
  spec.kind = 1;
  spec.content_type = "application/json";
  spec.json_mode = true;
  std::promise<CreateOutcome> p;
  auto f = p.get_future();
  streams_->create(std::move(spec), [&p](CreateOutcome o) { p.set_value(std::move(o)); });
  CreateOutcome o = f.get();  // no initial data: completes synchronously
  if (!o.status) return o.status;
  *out = o.stream;
  return Status::ok();
}

Status SessionStore::open() {
  if (Status s = catalog_->exec(
          "CREATE TABLE IF NOT EXISTS sessions ("
          "  id INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT NOT NULL, session_id TEXT NOT NULL,"
          "  record TEXT NOT NULL, UNIQUE(tenant, session_id));");
      !s) {
    return s;
  }
  struct Row {
    int64_t id;
    std::string tenant, sid, record;
  };
  std::vector<Row> rows;
  {
    std::lock_guard clk(catalog_->mutex());
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(catalog_->db(), "SELECT id, tenant, session_id, record FROM sessions", -1,
                       &st, nullptr);
    while (sqlite3_step(st) == SQLITE_ROW) {
      rows.push_back(Row{sqlite3_column_int64(st, 0),
                         reinterpret_cast<const char*>(sqlite3_column_text(st, 1)),
                         reinterpret_cast<const char*>(sqlite3_column_text(st, 2)),
                         reinterpret_cast<const char*>(sqlite3_column_text(st, 3))});
    }
    sqlite3_finalize(st);
  }
  std::lock_guard lk(mu_);
  for (auto& r : rows) {
    std::shared_ptr<Stream> stream;
    if (Status s = attach_stream(r.tenant, r.sid, &stream); !s) return s;
    json::object rec;
    boost::system::error_code ec;
    json::value v = json::parse(r.record, ec);
    if (!ec && v.is_object()) rec = std::move(v.as_object());
    if (auto ttl = ttl_of(rec)) ttl_ms_[key(r.tenant, r.sid)] = *ttl;
    sessions_[key(r.tenant, r.sid)] = make_session(r.tenant, r.sid, r.id, std::move(rec), stream);
    per_tenant_[r.tenant]++;
  }
  return remove_orphan_streams();
}

Status SessionStore::remove_orphan_streams() {
  std::vector<std::pair<std::string, std::string>> orphans;  // tenant, stream path
  {
    std::lock_guard clk(catalog_->mutex());
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(catalog_->db(),
                       "SELECT tenant, path FROM streams WHERE kind=1 AND"
                       " substr(path, 1, 10) = char(1) || 'sessions/' AND NOT EXISTS"
                       " (SELECT 1 FROM sessions s WHERE s.tenant = streams.tenant AND"
                       "  s.session_id = substr(streams.path, 11))",  // UNIQUE(tenant, session_id)
                       -1, &st, nullptr);
    while (st && sqlite3_step(st) == SQLITE_ROW) {
      orphans.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)),
                           reinterpret_cast<const char*>(sqlite3_column_text(st, 1)));
    }
    sqlite3_finalize(st);
  }
  for (const auto& [tenant, path] : orphans) {
    Status s = streams_->remove(tenant, path);
    if (!s && s.code() != Status::Code::kNotFound) return s;
  }
  return Status::ok();
}

void SessionStore::create(const std::string& tenant, const std::string& id, json::object record,
                          std::function<void(SessionCreated)> done) {
  std::string k = key(tenant, id);
  {
    std::unique_lock lk(mu_);
    if (sessions_.count(k)) {
      lk.unlock();
      done(SessionCreated{Status::conflict("session " + id + " exists"), nullptr});
      return;
    }
    if (auto it = creating_.find(k); it != creating_.end()) {
      it->second.push_back(std::move(done));
      return;
    }
    creating_[k];
  }
  std::string now = format_rfc3339_millis(now_unix_millis());
  record["created_at"] = now;
  record["updated_at"] = now;
  PendingCreate c;
  c.tenant = tenant;
  c.id = id;
  c.record_text = json::serialize(record);
  c.record = std::move(record);
  c.done = std::move(done);
  {
    std::lock_guard lk(queue_mu_);
    queue_.push_back(std::move(c));
  }
  queue_cv_.notify_one();
}

Status SessionStore::create(const std::string& tenant, const std::string& id,
                            json::object record, std::shared_ptr<Session>* out) {
  std::promise<SessionCreated> p;
  auto f = p.get_future();
  create(tenant, id, std::move(record), [&p](SessionCreated c) { p.set_value(std::move(c)); });
  SessionCreated c = f.get();
  if (c.status) *out = std::move(c.session);
  return c.status;
}

void SessionStore::commit_loop() {
  std::unique_lock lk(queue_mu_);
  for (;;) {
    queue_cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, nothing left
    // At most kMaxBatch per transaction, so that one commit never holds the catalog for long.
    constexpr size_t kMaxBatch = 256;
    std::vector<PendingCreate> batch;
    if (queue_.size() <= kMaxBatch) {
      batch.swap(queue_);
    } else {
      batch.assign(std::make_move_iterator(queue_.begin()),
                   std::make_move_iterator(queue_.begin() + kMaxBatch));
      queue_.erase(queue_.begin(), queue_.begin() + kMaxBatch);
    }
    lk.unlock();
    commit_batch(batch);
    lk.lock();
  }
}

Status SessionStore::insert_session_row_locked(PendingCreate& c) {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(catalog_->db(),
                         "INSERT INTO sessions (tenant, session_id, record) VALUES (?,?,?)", -1,
                         &st, nullptr) != SQLITE_OK) {
    return Status::io_error(std::string("catalog prepare: ") + sqlite3_errmsg(catalog_->db()));
  }
  sqlite3_bind_text(st, 1, c.tenant.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 2, c.id.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 3, c.record_text.c_str(), -1, SQLITE_TRANSIENT);
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  if (rc == SQLITE_CONSTRAINT) return Status::conflict("session " + c.id + " exists");
  if (rc != SQLITE_DONE) {
    return Status::io_error(std::string("catalog insert: ") + sqlite3_errmsg(catalog_->db()));
  }
  c.rowid = sqlite3_last_insert_rowid(catalog_->db());
  return Status::ok();
}

void SessionStore::commit_batch(std::vector<PendingCreate>& batch) {
  std::vector<int64_t> dirs;  // stream ids whose log directories this batch creates
  int64_t now_ms = now_unix_millis();
  Status s = catalog_->transaction([&]() -> Status {
    for (auto& c : batch) {
      // A savepoint per session: a conflict undoes that session's rows only.
      if (Status st = catalog_->exec_locked("SAVEPOINT create_session"); !st) return st;
      c.stream.tenant = c.tenant;
      c.stream.path = stream_path(c.id);
      c.stream.kind = 1;
      c.stream.content_type = "application/json";
      c.stream.created_ms = now_ms;
      c.status = catalog_->insert_stream_locked(&c.stream);
      if (c.status.code() == Status::Code::kConflict) {
        c.status = Status::conflict("session " + c.id + " exists");
      }
      if (c.status && probe_) c.status = probe_("between_rows");
      if (c.status) c.status = insert_session_row_locked(c);
      if (!c.status) {
        if (Status st = catalog_->exec_locked("ROLLBACK TO create_session"); !st) return st;
      }
      if (Status st = catalog_->exec_locked("RELEASE create_session"); !st) return st;
      if (c.status) dirs.push_back(c.stream.id);
    }
    // The logs' directories must be durable before the rows naming them are: after a crash
    // before the commit they are orphans that StreamStore::open() removes.
    Status st = streams_->create_log_dirs(dirs);
    if (st && probe_) st = probe_("before_commit");
    return st;
  });
  if (!s) streams_->remove_log_dirs(dirs);

  struct Done {
    std::function<void(SessionCreated)> done;
    SessionCreated result;
  };
  std::vector<Done> dones;
  std::vector<std::pair<std::shared_ptr<Session>, size_t>> created;  // session, batch index
  for (size_t i = 0; i < batch.size(); ++i) {
    PendingCreate& c = batch[i];
    if (!s && c.status) c.status = s;
    if (!c.status) continue;
    auto stream = streams_->adopt(c.stream);
    created.emplace_back(make_session(c.tenant, c.id, c.rowid, std::move(c.record), stream), i);
  }
  {
    std::lock_guard lk(mu_);
    for (auto& [session, i] : created) {
      sessions_[key(batch[i].tenant, batch[i].id)] = session;
      per_tenant_[batch[i].tenant]++;
      if (auto ttl = ttl_of(session->record())) ttl_ms_[key(batch[i].tenant, batch[i].id)] = *ttl;
    }
    size_t next_created = 0;
    for (size_t i = 0; i < batch.size(); ++i) {
      PendingCreate& c = batch[i];
      std::shared_ptr<Session> session;
      if (next_created < created.size() && created[next_created].second == i) {
        session = created[next_created++].first;
      }
      dones.push_back(Done{std::move(c.done), SessionCreated{c.status, session}});
      auto it = creating_.find(key(c.tenant, c.id));
      if (it == creating_.end()) continue;
      Status later = c.status ? Status::conflict("session " + c.id + " exists") : c.status;
      for (auto& w : it->second) {
        dones.push_back(Done{std::move(w), SessionCreated{later, nullptr}});
      }
      creating_.erase(it);
    }
  }
  for (auto& d : dones) d.done(std::move(d.result));
}

Status SessionStore::get(const std::string& tenant, const std::string& id,
                         std::shared_ptr<Session>* out) {
  std::lock_guard lk(mu_);
  auto it = sessions_.find(key(tenant, id));
  if (it == sessions_.end()) return Status::not_found("session " + id + " not found");
  *out = it->second;
  return Status::ok();
}

Status SessionStore::save(const std::shared_ptr<Session>& s, json::object record) {
  record["updated_at"] = format_rfc3339_millis(now_unix_millis());
  std::string text = json::serialize(record);
  {
    std::lock_guard clk(catalog_->mutex());
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(catalog_->db(), "UPDATE sessions SET record=? WHERE id=?", -1, &st,
                       nullptr);
    sqlite3_bind_text(st, 1, text.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, s->catalog_id());
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return Status::io_error(sqlite3_errmsg(catalog_->db()));
  }
  std::lock_guard lk(s->mu_);
  s->record_ = std::move(record);
  return Status::ok();
}

Status SessionStore::remove(const std::shared_ptr<Session>& s) {
  {
    std::lock_guard lk(mu_);
    auto it = sessions_.find(key(s->tenant(), s->id()));
    if (it == sessions_.end() || it->second != s) return Status::not_found("session not found");
    if (Status st = catalog_->exec("DELETE FROM sessions WHERE id=" + std::to_string(s->catalog_id()));
        !st) {
      return st;
    }
    ttl_ms_.erase(it->first);
    sessions_.erase(it);
    per_tenant_[s->tenant()]--;
  }
  Status st = streams_->remove(s->tenant(), stream_path(s->id()));
  if (st.code() == Status::Code::kNotFound) return Status::ok();
  return st;
}

size_t SessionStore::count(const std::string& tenant) {
  std::lock_guard lk(mu_);
  auto it = per_tenant_.find(tenant);
  return it == per_tenant_.end() ? 0 : it->second;
}

std::vector<std::shared_ptr<Session>> SessionStore::list_all() {
  std::vector<std::shared_ptr<Session>> out;
  std::lock_guard lk(mu_);
  out.reserve(sessions_.size());
  for (auto& [k, s] : sessions_) out.push_back(s);
  return out;
}

std::vector<std::shared_ptr<Session>> SessionStore::list(const std::string& tenant) {
  std::vector<std::shared_ptr<Session>> out;
  std::lock_guard lk(mu_);
  for (auto& [k, s] : sessions_) {
    if (s->tenant() == tenant) out.push_back(s);
  }
  return out;
}

}  // namespace ds
