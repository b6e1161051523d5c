#include "store/tier.h"

#include <sqlite3.h>
#include <zstd.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <algorithm>
#include <future>
#include <spdlog/spdlog.h>

#include "core/clock.h"
#include "store/api_keys.h"
#include "store/s3/sigv4.h"

namespace ds {

namespace json = boost::json;

namespace {

constexpr std::string_view kSessionsPath = "\x01sessions/";

std::string offset16(uint64_t v) {
  std::string s = std::to_string(v);
  return std::string(s.size() < 16 ? 16 - s.size() : 0, '0') + s;
}

Status exec_sql(sqlite3* db, const char* sql) {
  if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK) {
    return Status::io_error(std::string("catalog: ") + sqlite3_errmsg(db));
  }
  return Status::ok();
}

std::string fingerprint(std::string_view text) { return s3::sha256_hex(text); }

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = s[i];
    size_t n = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : 99;
    if (n == 99 || i + n >= s.size() + (n == 0 ? 1 : 0)) {
      if (n == 0) {
        ++i;
        continue;
      }
      return false;
    }
    for (size_t k = 1; k <= n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
    }
    i += n + 1;
  }
  return true;
}

std::string base64(std::string_view in) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += t[(v >> 6) & 63];
    out += t[v & 63];
  }
  if (i < in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    if (i + 1 < in.size()) v |= uint8_t(in[i + 1]) << 8;
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += i + 1 < in.size() ? t[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

bool unbase64(std::string_view in, std::string* out) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    int v = val(c);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return true;
}

Status zstd_compress(std::string_view in, int level, std::string* out) {
  out->resize(ZSTD_compressBound(in.size()));
  size_t n = ZSTD_compress(out->data(), out->size(), in.data(), in.size(), level);
  if (ZSTD_isError(n)) return Status::io_error(std::string("zstd: ") + ZSTD_getErrorName(n));
  out->resize(n);
  return Status::ok();
}

Status zstd_decompress(std::string_view in, std::string* out) {
  std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> ctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
  ZSTD_inBuffer ib{in.data(), in.size(), 0};
  std::string buf(ZSTD_DStreamOutSize(), '\0');
  size_t ret = 1;  // 0 once a frame is complete
  for (;;) {
    ZSTD_outBuffer ob{buf.data(), buf.size(), 0};
    ret = ZSTD_decompressStream(ctx.get(), &ob, &ib);
    if (ZSTD_isError(ret)) return Status::corruption(std::string("zstd: ") + ZSTD_getErrorName(ret));
    out->append(buf.data(), ob.pos);
    // Done when the input is consumed and the decoder has nothing more to flush.
    if (ib.pos == ib.size && ob.pos < ob.size) break;
  }
  if (ret != 0) return Status::corruption("zstd: truncated frame");
  return Status::ok();
}

// One line of a generic stream's events object.
std::string stream_line(uint64_t position, std::string_view msg, bool json_mode) {
  std::string line = "{\"offset\":\"" + offset16(position) + "\",";
  if (json_mode && msg.find('\n') == std::string_view::npos && msg.find('\r') == std::string_view::npos) {
    line += "\"data\":";
    line += msg;
  } else if (valid_utf8(msg)) {
    line += "\"text\":" + json::serialize(json::value(json::string(msg)));
  } else {
    line += "\"base64\":\"" + base64(msg) + "\"";
  }
  line += '}';
  return line;
}

// Inverse of stream_line: the message bytes and the offset.
Status parse_stream_line(std::string_view line, uint64_t* position, std::string* msg) {
  constexpr std::string_view kHead = "{\"offset\":\"";
  if (!line.starts_with(kHead) || line.size() < kHead.size() + 18 || line.back() != '}') {
    return Status::corruption("malformed stream line");
  }
  *position = std::stoull(std::string(line.substr(kHead.size(), 16)));
  std::string_view rest = line.substr(kHead.size() + 18);  // after `",`
  rest.remove_suffix(1);
  constexpr std::string_view kData = "\"data\":";
  if (rest.starts_with(kData)) {
    *msg = std::string(rest.substr(kData.size()));
    return Status::ok();
  }
  boost::system::error_code ec;
  json::value v = json::parse(line, ec);
  if (ec || !v.is_object()) return Status::corruption("malformed stream line");
  auto& o = v.as_object();
  if (auto* t = o.if_contains("text"); t && t->is_string()) {
    *msg = std::string(t->as_string());
    return Status::ok();
  }
  if (auto* b = o.if_contains("base64"); b && b->is_string()) {
    msg->clear();
    if (unbase64(std::string(b->as_string()), msg)) return Status::ok();
  }
  return Status::corruption("malformed stream line");
}

// The offset of a stored session event (first "offset" field of the stored layout).
bool session_line_offset(std::string_view line, uint64_t* position) {
  constexpr std::string_view kKey = "\"offset\":\"";
  size_t at = line.find(kKey);
  if (at == std::string_view::npos || at + kKey.size() + 16 > line.size()) return false;
  try {
    *position = std::stoull(std::string(line.substr(at + kKey.size(), 16)));
  } catch (...) {
    return false;
  }
  return true;
}

}  // namespace

Tier::Tier(TierOptions options, s3::S3Client* s3, Catalog* catalog, StreamStore* streams,
           SessionStore* sessions)
    : options_(std::move(options)),
      s3_(s3),
      catalog_(catalog),
      streams_(streams),
      sessions_(sessions) {
  if (options_.cache) {
    options_.cache->set_fetcher(
        [this](const SegmentSummary& summary, std::vector<std::string>* out) {
          return fetch_messages(summary, out);
        });
  }
}

Tier::~Tier() { stop(); }

std::string Tier::events_name(uint64_t first, uint64_t last) {
  return offset16(first) + "-" + offset16(last) + ".jsonl.zst";
}

std::string Tier::session_prefix(const std::string& tenant, const std::string& id) const {
  std::string p = options_.prefix.empty() ? "" : options_.prefix + "/";
  return p + "tenants/" + s3::uri_encode(tenant, true) + "/sessions/" + s3::uri_encode(id, true) +
         "/";
}

std::string Tier::subscription_key(const std::string& tenant, const std::string& id) {
  return "tenants/" + s3::uri_encode(tenant, true) + "/subscriptions/" + s3::uri_encode(id, true) +
         ".json";
}

std::string Tier::stream_prefix(const std::string& tenant, const std::string& path) const {
  std::string p = options_.prefix.empty() ? "" : options_.prefix + "/";
  return p + "tenants/" + s3::uri_encode(tenant, true) + "/streams/" +
         s3::uri_encode(path, true) + "/";
}

std::string Tier::prefix_for(const StreamRecord& r) const {
  if (r.kind == 1 && r.path.starts_with(kSessionsPath)) {
    return session_prefix(r.tenant, r.path.substr(kSessionsPath.size()));
  }
  return stream_prefix(r.tenant, r.path);
}

Status Tier::open() {
  if (Status s = catalog_->exec(
          "CREATE TABLE IF NOT EXISTS tier_uploads ("
          "  stream_id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, path TEXT NOT NULL,"
          "  created_ms INTEGER NOT NULL, uploaded_next INTEGER NOT NULL, meta_hash TEXT NOT NULL);"
          "CREATE TABLE IF NOT EXISTS tier_deletions ("
          "  id INTEGER PRIMARY KEY AUTOINCREMENT, prefix TEXT NOT NULL UNIQUE);"
          "CREATE TABLE IF NOT EXISTS tier_mirror ("
          "  key TEXT PRIMARY KEY, source TEXT NOT NULL, hash TEXT NOT NULL);");
      !s) {
    return s;
  }
  // Added with the writer state in the metadata objects (fails harmlessly once it exists).
  catalog_->exec("ALTER TABLE tier_uploads ADD COLUMN writer TEXT NOT NULL DEFAULT '';");
  std::lock_guard clk(catalog_->mutex());
  std::lock_guard lk(mu_);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(catalog_->db(),
                     "SELECT stream_id, tenant, path, created_ms, uploaded_next, meta_hash, writer "
                     "FROM tier_uploads",
                     -1, &st, nullptr);
  while (sqlite3_step(st) == SQLITE_ROW) {
    State s;
    s.tenant = reinterpret_cast<const char*>(sqlite3_column_text(st, 1));
    s.path.assign(reinterpret_cast<const char*>(sqlite3_column_blob(st, 2)),
                  sqlite3_column_bytes(st, 2));
    s.created_ms = sqlite3_column_int64(st, 3);
    s.uploaded_next = static_cast<uint64_t>(sqlite3_column_int64(st, 4));
    s.meta_hash = reinterpret_cast<const char*>(sqlite3_column_text(st, 5));
    s.writer = reinterpret_cast<const char*>(sqlite3_column_text(st, 6));
    s.in_catalog = true;
    put_state_locked(sqlite3_column_int64(st, 0), s);
  }
  sqlite3_finalize(st);
  sqlite3_prepare_v2(catalog_->db(), "SELECT prefix FROM tier_deletions", -1, &st, nullptr);
  while (sqlite3_step(st) == SQLITE_ROW) {
    deleting_.insert(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
  }
  sqlite3_finalize(st);
  return Status::ok();
}

Status Tier::save_state(int64_t id, const State& s) {
  std::lock_guard clk(catalog_->mutex());
  return save_state_locked(id, s);
}

Status Tier::save_state_locked(int64_t id, const State& s) {
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(catalog_->db(),
                     "INSERT OR REPLACE INTO tier_uploads (stream_id, tenant, path, created_ms,"
                     " uploaded_next, meta_hash, writer) VALUES (?,?,?,?,?,?,?)",
                     -1, &st, nullptr);
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_text(st, 2, s.tenant.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_blob(st, 3, s.path.data(), static_cast<int>(s.path.size()), SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 4, s.created_ms);
  sqlite3_bind_int64(st, 5, static_cast<int64_t>(s.uploaded_next));
  sqlite3_bind_text(st, 6, s.meta_hash.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 7, s.writer.c_str(), -1, SQLITE_TRANSIENT);
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return Status::io_error(sqlite3_errmsg(catalog_->db()));
  return Status::ok();
}

void Tier::start() {
  std::lock_guard lk(mu_);
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { run(); });
  mirror_thread_ = std::thread([this] { run_mirror_requests(); });
  for (int i = 0; i < std::max(1, options_.upload_threads); ++i) {
    workers_.emplace_back([this] { work(); });
  }
}

bool Tier::acquire(const std::string& prefix) {
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return stop_ || !busy_.count(prefix); });
  if (stop_) return false;
  busy_.insert(prefix);
  return true;
}

void Tier::release(const std::string& prefix) {
  {
    std::lock_guard lk(mu_);
    busy_.erase(prefix);
  }
  cv_.notify_all();
}

void Tier::put_state_locked(int64_t id, const State& st) {
  auto [it, added] = state_.try_emplace(id, st);
  if (!added) {
    if (it->second.tenant != st.tenant || it->second.path != st.path) {
      ids_by_name_[it->second.tenant + '\0' + it->second.path].erase(id);
    }
    it->second = st;
  }
  ids_by_name_[st.tenant + '\0' + st.path].insert(id);
}

void Tier::erase_state_locked(int64_t id) {
  auto it = state_.find(id);
  if (it == state_.end()) return;
  auto n = ids_by_name_.find(it->second.tenant + '\0' + it->second.path);
  if (n != ids_by_name_.end()) {
    n->second.erase(id);
    if (n->second.empty()) ids_by_name_.erase(n);
  }
  state_.erase(it);
  if (!waiters_.count(id)) rounds_.erase(id);  // a waiter's round must keep counting up
}

Status Tier::retire(int64_t id, const std::string& prefix) {
  {
    // Only a stream still known here: another thread may have retired it (and uploaded its
    // successor under the same prefix) since the caller decided to.
    std::lock_guard lk(mu_);
    if (!state_.count(id)) return Status::ok();
  }
  {
    std::lock_guard clk(catalog_->mutex());
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(catalog_->db(), "INSERT OR IGNORE INTO tier_deletions (prefix) VALUES (?);",
                       -1, &st, nullptr);
    sqlite3_bind_text(st, 1, prefix.c_str(), -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return Status::io_error(sqlite3_errmsg(catalog_->db()));
  }
  catalog_->exec("DELETE FROM tier_uploads WHERE stream_id=" + std::to_string(id));
  std::lock_guard lk(mu_);
  deleting_.insert(prefix);
  erase_state_locked(id);
  dirty_.erase(id);
  pending_since_ms_.erase(id);
  return Status::ok();
}

Status Tier::settle_prefix(const StreamRecord& r, const std::string& prefix) {
  std::vector<int64_t> older;
  {
    std::lock_guard lk(mu_);
    if (auto n = ids_by_name_.find(r.tenant + '\0' + r.path); n != ids_by_name_.end()) {
      for (int64_t id : n->second) {
        // Catalog ids only grow (AUTOINCREMENT): a larger id is a newer stream, never retired
        // on behalf of an older one.
        if (id < r.id || (id == r.id && state_[id].created_ms != r.created_ms)) older.push_back(id);
      }
    }
  }
  for (int64_t id : older) {
    if (Status s = retire(id, prefix); !s) return s;
  }
  bool queued;
  {
    std::lock_guard lk(mu_);
    queued = deleting_.count(prefix) > 0;
  }
  return queued ? delete_prefix(prefix) : Status::ok();
}

Status Tier::delete_prefix(const std::string& prefix) {
  std::vector<s3::ObjectInfo> objects;
  Status s = s3_->list_objects(prefix, &objects);
  for (size_t i = 0; s && i < objects.size(); ++i) s = s3_->delete_object(objects[i].key);
  if (!s) {
    std::lock_guard lk(mu_);
    stats_.errors++;
    spdlog::warn("s3 deletion of {} failed (will retry): {}", prefix, s.message());
    return s;
  }
  {
    std::lock_guard clk(catalog_->mutex());
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(catalog_->db(), "DELETE FROM tier_deletions WHERE prefix=?;", -1, &st,
                       nullptr);
    sqlite3_bind_text(st, 1, prefix.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_step(st);
    sqlite3_finalize(st);
  }
  std::lock_guard lk(mu_);
  deleting_.erase(prefix);
  return Status::ok();
}

void Tier::work() {
  for (;;) {
    int64_t id = 0;
    Urgent job;
    uint64_t round = 0;
    {
      std::unique_lock lk(mu_);
      // Oldest request first (FIFO), skipping prefixes another thread is writing.
      auto ready = urgent_order_.end();
      cv_.wait(lk, [&] {
        if (stop_) return true;
        for (ready = urgent_order_.begin(); ready != urgent_order_.end(); ++ready) {
          if (!busy_.count(urgent_[*ready].prefix)) return true;
        }
        return false;
      });
      if (stop_) return;
      id = *ready;
      urgent_order_.erase(ready);
      job = std::move(urgent_[id]);
      urgent_.erase(id);
      busy_.insert(job.prefix);
      round = begin_round_locked(id);
    }
    uint64_t b = 0, bb = 0;
    Status s = upload_stream(job.stream, job.meta, &b, &bb);
    resolve_waiters(id, s ? Status::ok() : Status::unavailable(s.message()), round);
    release(job.prefix);
  }
}

Status Tier::persist_states() {
  std::vector<std::pair<int64_t, State>> todo;
  {
    std::lock_guard lk(mu_);
    for (int64_t id : dirty_) {
      if (auto it = state_.find(id); it != state_.end()) todo.emplace_back(id, it->second);
    }
    dirty_.clear();
  }
  if (todo.empty()) return Status::ok();
  Status result;
  auto mark = [&] {
    std::lock_guard lk(mu_);
    for (const auto& [id, st] : todo) {
      if (auto it = state_.find(id); it != state_.end()) it->second.in_catalog = true;
    }
  };
  {
    std::lock_guard clk(catalog_->mutex());
    result = exec_sql(catalog_->db(), "BEGIN;");
    for (size_t i = 0; result && i < todo.size(); ++i) {
      result = save_state_locked(todo[i].first, todo[i].second);
    }
    if (result) {
      result = exec_sql(catalog_->db(), "COMMIT;");
    } else {
      exec_sql(catalog_->db(), "ROLLBACK;");
    }
  }
  if (!result) {
    std::lock_guard lk(mu_);
    for (const auto& [id, st] : todo) dirty_.insert(id);
  } else {
    mark();
  }
  return result;
}

void Tier::stop() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  s3_->cancel();  // uploads in progress end now, not after S3's timeouts and retries
  if (thread_.joinable()) thread_.join();
  if (mirror_thread_.joinable()) mirror_thread_.join();
  for (auto& w : workers_) w.join();
  workers_.clear();
  std::deque<std::pair<std::string, std::function<void(Status)>>> unserved;
  {
    std::lock_guard lk(mu_);
    unserved.swap(mirror_requests_);
  }
  for (auto& [name, done] : unserved) done(Status::unavailable("server is shutting down"));
  persist_states();
  std::map<int64_t, std::vector<Waiter>> left;
  {
    std::lock_guard lk(mu_);
    left.swap(waiters_);
  }
  for (auto& [id, ws] : left) {
    for (auto& w : ws) w.done(Status::unavailable("server is shutting down"));
  }
}

void Tier::when_uploaded(const std::shared_ptr<Stream>& stream, uint64_t next,
                         std::function<void(Status)> done, bool meta) {
  const StreamRecord& r = stream->record();
  const bool closed = stream->closed();
  std::string prefix = prefix_for(r);
  bool stopping = false;
  {
    std::lock_guard lk(mu_);
    auto it = state_.find(r.id);
    bool same = it != state_.end() && it->second.created_ms == r.created_ms;
    // Closure lives in the metadata object: a close (with or without data) waits for it.
    bool need_meta = meta || (closed && !(same && it->second.closed_in_bucket));
    bool have = same && it->second.uploaded_next >= next && !need_meta;
    if (!have && stop_) {
      stopping = true;
    } else if (!have) {
      waiters_[r.id].push_back(Waiter{next, std::move(done), need_meta, rounds_[r.id]});
      auto [u, added] = urgent_.try_emplace(r.id, Urgent{stream, prefix, need_meta});
      if (added) {
        urgent_order_.push_back(r.id);
      } else {
        u->second.meta = u->second.meta || need_meta;
      }
      cv_.notify_all();
      return;
    }
  }
  done(stopping ? Status::unavailable("server is shutting down") : Status::ok());
}

void Tier::resolve_waiters(int64_t id, const Status& failure, uint64_t round) {
  // Waiters whose position is uploaded (and, for meta waiters, who arrived before this round)
  // succeed; after a failure, every other waiter fails.
  std::vector<std::pair<Waiter, Status>> ready;
  {
    std::lock_guard lk(mu_);
    auto it = waiters_.find(id);
    if (it == waiters_.end()) return;
    auto st = state_.find(id);
    uint64_t up = st != state_.end() ? st->second.uploaded_next : 0;
    auto& ws = it->second;
    for (size_t i = 0; i < ws.size();) {
      if (ws[i].next <= up && (!ws[i].meta || (failure.is_ok() && ws[i].round < round))) {
        ready.emplace_back(std::move(ws[i]), Status::ok());
      } else if (!failure.is_ok()) {
        ready.emplace_back(std::move(ws[i]), failure);
      } else {
        ++i;
        continue;
      }
      ws.erase(ws.begin() + static_cast<long>(i));
    }
    if (ws.empty()) waiters_.erase(it);
  }
  for (auto& [w, s] : ready) w.done(s);
}

TierStats Tier::stats() {
  std::lock_guard lk(mu_);
  TierStats s = stats_;
  int64_t oldest = INT64_MAX;
  for (auto& [id, since] : pending_since_ms_) oldest = std::min(oldest, since);
  s.lag_seconds = oldest == INT64_MAX ? 0 : (now_unix_millis() - oldest) / 1000.0;
  s.pending_deletions = deleting_.size();
  return s;
}

// ---- mirrors -------------------------------------------------------------------------------

void Tier::add_mirror(MirrorSource source) {
  Mirror m;
  {
    std::lock_guard clk(catalog_->mutex());
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(catalog_->db(), "SELECT key, hash FROM tier_mirror WHERE source=?", -1, &st,
                       nullptr);
    sqlite3_bind_text(st, 1, source.name.c_str(), -1, SQLITE_TRANSIENT);
    while (sqlite3_step(st) == SQLITE_ROW) {
      m.in_bucket[reinterpret_cast<const char*>(sqlite3_column_text(st, 0))] =
          reinterpret_cast<const char*>(sqlite3_column_text(st, 1));
    }
    sqlite3_finalize(st);
  }
  m.source = std::move(source);
  std::lock_guard ml(mirror_mu_);
  mirrors_.push_back(std::move(m));
}

Status Tier::mirror_now(const std::string& name) {
  std::lock_guard ml(mirror_mu_);
  for (size_t i = 0; i < mirrors_.size(); ++i) {
    if (mirrors_[i].source.name == name) return mirror(i);
  }
  return Status::not_found("no mirror named " + name);
}

void Tier::when_mirrored(const std::string& name, std::function<void(Status)> done) {
  {
    std::lock_guard lk(mu_);
    if (!stop_) {
      mirror_requests_.emplace_back(name, std::move(done));
      cv_.notify_all();
      return;
    }
  }
  done(Status::unavailable("server is shutting down"));
}

void Tier::run_mirror_requests() {
  for (;;) {
    std::deque<std::pair<std::string, std::function<void(Status)>>> batch;
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !mirror_requests_.empty(); });
      if (stop_) return;
      batch.swap(mirror_requests_);
    }
    // One pass per source named, after every request of the batch arrived: it covers them all.
    std::map<std::string, Status> outcome;
    for (const auto& [name, done] : batch) {
      if (!outcome.count(name)) outcome[name] = mirror_now(name);
    }
    for (auto& [name, done] : batch) done(outcome[name]);
  }
}

Status Tier::mirror(size_t index) {
  Mirror& m = mirrors_[index];
  std::optional<uint64_t> version;
  if (m.source.version) {
    version = m.source.version();  // before the snapshot: a later change gets another pass
    if (m.uploaded_version == version) return Status::ok();
  }
  std::map<std::string, std::string> now;
  if (Status s = m.source.snapshot(&now); !s) return s;
  const std::string root = options_.prefix.empty() ? "" : options_.prefix + "/";
  auto record = [&](const std::string& key, const std::string* hash) {
    std::lock_guard clk(catalog_->mutex());
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(catalog_->db(),
                       hash ? "INSERT OR REPLACE INTO tier_mirror (key, source, hash) VALUES (?,?,?)"
                            : "DELETE FROM tier_mirror WHERE key=?",
                       -1, &st, nullptr);
    sqlite3_bind_text(st, 1, key.c_str(), -1, SQLITE_TRANSIENT);
    if (hash) {
      sqlite3_bind_text(st, 2, m.source.name.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(st, 3, hash->c_str(), -1, SQLITE_TRANSIENT);
    }
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? Status::ok() : Status::io_error(sqlite3_errmsg(catalog_->db()));
  };
  Status result;
  s3::PutOptions po;
  po.content_type = "application/json";
  for (const auto& [key, body] : now) {
    std::string hash = fingerprint(body);
    auto it = m.in_bucket.find(key);
    if (it != m.in_bucket.end() && it->second == hash) continue;
    Status s = s3_->put_object(root + key, body, po);
    if (s) s = record(key, &hash);
    if (!s) {
      result = s;
      continue;
    }
    m.in_bucket[key] = hash;
  }
  for (auto it = m.in_bucket.begin(); it != m.in_bucket.end();) {
    if (now.count(it->first)) {
      ++it;
      continue;
    }
    Status s = s3_->delete_object(root + it->first);
    if (s) s = record(it->first, nullptr);
    if (!s) {
      result = s;
      ++it;
      continue;
    }
    it = m.in_bucket.erase(it);
  }
  if (!result) {
    spdlog::warn("s3 mirror of {} failed (will retry): {}", m.source.name, result.message());
    std::lock_guard lk(mu_);
    stats_.errors++;
    return result;
  }
  m.uploaded_version = version;
  return Status::ok();
}

void Tier::run() {
  auto next_full = std::chrono::steady_clock::now();
  for (;;) {
    {
      std::unique_lock lk(mu_);
      cv_.wait_until(lk, next_full, [&] { return stop_; });
      if (stop_) return;
    }
    if (std::chrono::steady_clock::now() < next_full) continue;
    pass();
    persist_states();
    {
      std::lock_guard ml(mirror_mu_);
      for (size_t i = 0; i < mirrors_.size(); ++i) mirror(i);
    }
    {
      std::lock_guard lk(mu_);
      stats_.passes++;
    }
    next_full = std::chrono::steady_clock::now() + options_.flush_interval;
  }
}

void Tier::pass() {
  // Streams gone from the catalog: queue the deletion of their objects.
  std::vector<StreamRecord> records;
  catalog_->for_each_stream([&](const StreamRecord& r) { records.push_back(r); });
  std::map<int64_t, const StreamRecord*> by_id;
  for (auto& r : records) by_id[r.id] = &r;
  struct Gone {
    int64_t id;
    std::string tenant, path, prefix;
    int64_t created_ms;
  };
  std::vector<Gone> vanished;
  {
    std::lock_guard lk(mu_);
    for (auto& [id, st] : state_) {
      auto it = by_id.find(id);
      if (it == by_id.end() || it->second->created_ms != st.created_ms || it->second->soft_deleted) {
        StreamRecord r;
        r.tenant = st.tenant;
        r.path = st.path;
        r.kind = st.path.starts_with(kSessionsPath) ? 1 : 0;
        vanished.push_back(Gone{id, st.tenant, st.path, prefix_for(r), st.created_ms});
      }
    }
  }
  for (const Gone& g : vanished) {
    // A stream created after the listing above (and uploaded since) is not gone.
    std::shared_ptr<Stream> live;
    if (streams_->find(g.tenant, g.path, &live) && live->record().id == g.id &&
        live->record().created_ms == g.created_ms) {
      continue;
    }
    if (!acquire(g.prefix)) return;  // no upload under the prefix while its state goes
    bool newer = false;  // a successor uploaded under the prefix since the listing
    {
      std::lock_guard lk(mu_);
      if (auto n = ids_by_name_.find(g.tenant + '\0' + g.path); n != ids_by_name_.end()) {
        newer = !n->second.empty() && *n->second.rbegin() > g.id;
      }
    }
    Status s = newer ? Status::ok() : retire(g.id, g.prefix);
    release(g.prefix);
    if (!s) spdlog::warn("s3: cannot queue the deletion of {}: {}", g.prefix, s.message());
  }
  process_deletions();

  uint64_t backlog = 0, backlog_bytes = 0;
  for (auto& r : records) {
    if (r.soft_deleted) continue;
    {
      std::lock_guard lk(mu_);
      if (stop_) return;
      if (deleting_.count(prefix_for(r))) continue;  // old objects must go first
    }
    std::shared_ptr<Stream> stream;
    if (!streams_->find(r.tenant, r.path, &stream) || stream->record().id != r.id) continue;
    const std::string prefix = prefix_for(r);
    if (!acquire(prefix)) return;
    uint64_t round;
    {
      std::lock_guard lk(mu_);
      round = begin_round_locked(r.id);
    }
    Status s = upload_stream(stream, true, &backlog, &backlog_bytes);
    release(prefix);
    if (!s) spdlog::warn("s3 upload of {} failed (will retry): {}", prefix, s.message());
    resolve_waiters(r.id, s ? Status::ok() : Status::unavailable(s.message()), round);
  }
  {
    std::lock_guard lk(mu_);
    stats_.backlog_events = backlog;
    stats_.backlog_bytes = backlog_bytes;
  }
  enforce_cache(records);
}

void Tier::enforce_cache(const std::vector<StreamRecord>& records) {
  if (!options_.cache) return;
  std::vector<SegmentCache::LogDir> dirs;
  for (const auto& r : records) {
    if (r.soft_deleted) continue;
    std::shared_ptr<Stream> stream;
    if (!streams_->find(r.tenant, r.path, &stream)) continue;
    SegmentCache::LogDir d;
    d.dir = stream->dir();
    d.bucket_prefix = prefix_for(r);
    bool session = r.kind == 1 && r.path.starts_with(kSessionsPath);
    d.encoding = session ? BucketEncoding::kSessionEvents
                 : r.content_type.find("json") != std::string::npos ? BucketEncoding::kStreamJson
                                                                     : BucketEncoding::kStreamText;
    {
      std::lock_guard lk(mu_);
      auto it = state_.find(r.id);
      bool known = it != state_.end() && it->second.created_ms == r.created_ms;
      d.uploaded_next = known ? it->second.uploaded_next : 0;  // measured, nothing evictable
    }
    dirs.push_back(std::move(d));
  }
  options_.cache->enforce(dirs);
}

Status Tier::fetch_messages(const SegmentSummary& summary, std::vector<std::string>* out) {
  uint64_t first = summary.first_position, end = summary.end_position();
  std::vector<s3::ObjectInfo> objects;
  std::string events = summary.bucket_prefix + "events/";
  if (Status s = s3_->list_objects(events, &objects); !s) return s;
  // Objects overlapping [first, end), in offset order ("{first}-{last}.jsonl.zst", 16 digits).
  std::vector<std::pair<uint64_t, std::string>> keys;
  for (const auto& o : objects) {
    std::string_view leaf = std::string_view(o.key).substr(events.size());
    if (leaf.size() != 43 || !leaf.ends_with(".jsonl.zst") || leaf[16] != '-') continue;
    uint64_t a = std::stoull(std::string(leaf.substr(0, 16)));
    uint64_t b = std::stoull(std::string(leaf.substr(17, 16)));
    if (b < first || a >= end) continue;
    keys.emplace_back(a, o.key);
  }
  std::sort(keys.begin(), keys.end());
  out->clear();
  bool session = summary.encoding == BucketEncoding::kSessionEvents;
  for (const auto& [a, key] : keys) {
    if (first + out->size() >= end) break;
    std::string z, body;
    if (Status s = s3_->get_object(key, &z); !s) return s;
    if (Status s = zstd_decompress(z, &body); !s) {
      return Status::corruption(key + ": " + s.message());
    }
    size_t start = 0;
    while (start < body.size()) {
      size_t nl = body.find('\n', start);
      if (nl == std::string::npos) return Status::corruption(key + ": torn line");
      std::string_view line(body.data() + start, nl - start);
      start = nl + 1;
      uint64_t pos = 0;
      std::string msg;
      if (session) {
        if (!session_line_offset(line, &pos)) return Status::corruption(key + ": no offset");
        msg = std::string(line);
      } else if (Status s = parse_stream_line(line, &pos, &msg); !s) {
        return Status::corruption(key + ": " + s.message());
      }
      uint64_t expect = first + out->size();
      if (pos < expect) continue;  // before the segment, or an overlap already taken
      if (pos >= end) break;
      if (pos > expect) return Status::corruption(key + ": gap before offset " + offset16(pos));
      out->push_back(std::move(msg));
    }
  }
  if (first + out->size() != end) {
    return Status::not_found("the bucket does not hold every event of the segment");
  }
  return Status::ok();
}

Status Tier::process_deletions() {
  std::vector<std::string> todo;
  {
    std::lock_guard lk(mu_);
    todo.assign(deleting_.begin(), deleting_.end());
  }
  Status result;
  for (const auto& prefix : todo) {
    if (!acquire(prefix)) return Status::unavailable("stopping");
    bool still;
    {
      std::lock_guard lk(mu_);
      still = deleting_.count(prefix) > 0;  // an upload under it may have done it meanwhile
    }
    Status s = still ? delete_prefix(prefix) : Status::ok();
    release(prefix);
    if (!s) result = s;
  }
  return result;
}

Status Tier::meta_for(const std::shared_ptr<Stream>& stream, const std::string& writer,
                      std::string* out) {
  const StreamRecord& r = stream->record();
  json::object o;
  if (r.kind == 1 && r.path.starts_with(kSessionsPath)) {
    std::string id = r.path.substr(kSessionsPath.size());
    std::shared_ptr<Session> session;
    if (Status s = sessions_->get(r.tenant, id, &session); !s) return s;
    o["id"] = id;
    o["type"] = "session";
    o["tenant"] = r.tenant;
    o["closed"] = stream->closed();
    o["record"] = session->record();
  } else {
    o["path"] = r.path;
    o["type"] = "stream";
    o["tenant"] = r.tenant;
    o["content_type"] = r.content_type;
    if (r.ttl_seconds) o["ttl_seconds"] = *r.ttl_seconds;
    if (r.expires_at) o["expires_at"] = *r.expires_at;
    o["created_ms"] = r.created_ms;
    o["closed"] = stream->closed();
    if (const auto& src = stream->source(); src && r.fork_source) {
      o["fork"] = json::object{{"source", src->record().path}, {"offset", r.fork_offset}};
    }
  }
  if (!writer.empty()) {
    boost::system::error_code ec;
    json::value w = json::parse(writer, ec);
    if (!ec) o["writer"] = std::move(w);
  }
  *out = json::serialize(o);
  return Status::ok();
}

Status Tier::upload_stream(const std::shared_ptr<Stream>& stream, bool with_meta,
                           uint64_t* backlog, uint64_t* backlog_bytes) {
  const StreamRecord& r = stream->record();
  std::string prefix = prefix_for(r);
  bool session = r.kind == 1 && r.path.starts_with(kSessionsPath);
  bool json_mode = session || r.content_type.find("json") != std::string::npos;
  // Only the stream that has the name now is uploaded: an upload queued for a stream deleted
  // since must neither write under the prefix nor retire its successor (settle_prefix below).
  std::shared_ptr<Stream> live;
  if (!streams_->find(r.tenant, r.path, &live) || live->record().id != r.id ||
      live->record().created_ms != r.created_ms) {
    return Status::not_found(r.path + " was deleted");  // its waiters fail (503), never hang
  }
  if (Status s = settle_prefix(r, prefix); !s) return s;
  State st;
  {
    std::lock_guard lk(mu_);
    auto it = state_.find(r.id);
    if (it != state_.end() && it->second.created_ms == r.created_ms) st = it->second;
    st.tenant = r.tenant;
    st.path = r.path;
    st.created_ms = r.created_ms;
  }
  auto fail = [&](const Status& s) {
    std::lock_guard lk(mu_);
    stats_.errors++;
    return s;
  };
  WriterSnapshot snap = stream->writer_snapshot();
  uint64_t tail = snap.durable_next;
  // Events not in the bucket yet count as backlog until they are (also while the metadata
  // object cannot be written).
  auto note_backlog = [&](const std::vector<std::string>* msgs) {
    std::lock_guard lk(mu_);
    if (!pending_since_ms_.count(r.id)) pending_since_ms_[r.id] = now_unix_millis();
    *backlog += tail - st.uploaded_next;
    if (msgs) {
      for (auto& m : *msgs) *backlog_bytes += m.size();
    }
  };
  // The stream's row goes into the catalog before its first object goes into the bucket, so that
  // a crash right after cannot forget that objects exist under the prefix (a deletion then
  // would leave them behind for good).
  if (!st.in_catalog) {
    if (Status s = save_state(r.id, st); !s) return fail(s);
    st.in_catalog = true;
    std::lock_guard lk(mu_);
    put_state_locked(r.id, st);
  }

  // The metadata object: uploaded (when it changed) before the first events object, so that a
  // listing finds the session early, and after the events, with the writer state (producers,
  // Stream-Seq, closing producer) as of the end of what is in the bucket. The writer state is
  // exact only at a position with no append in flight; otherwise the previous one stays.
  auto put_meta = [&](const std::string& writer) {
    const bool closed = stream->closed();  // read first: closure only goes one way
    std::string meta;
    if (!meta_for(stream, writer, &meta)) return Status::ok();  // the session went away
    std::string hash = fingerprint(meta);
    const bool changed = hash != st.meta_hash;
    if (changed) {
      s3::PutOptions po;
      po.content_type = "application/json";
      Status s = s3_->put_object(prefix + (session ? "session.json" : "stream.json"), meta, po);
      if (!s) return fail(s);
      st.meta_hash = hash;
      st.writer = writer;
    }
    if (changed || st.closed_in_bucket != closed) {
      st.closed_in_bucket = closed;
      std::lock_guard lk(mu_);
      put_state_locked(r.id, st);
      if (changed) dirty_.insert(r.id);
    }
    return Status::ok();
  };
  if (st.meta_hash.empty()) {
    if (Status s = put_meta(st.writer); !s) {
      note_backlog(nullptr);
      return s;
    }
  }

  while (st.uploaded_next < tail) {
    std::vector<std::string> msgs;
    if (Status s = stream->read_range(st.uploaded_next, tail, options_.max_object_bytes, &msgs);
        !s || msgs.empty()) {
      return fail(s ? Status::io_error("read_range returned nothing") : s);
    }
    uint64_t first = st.uploaded_next;
    uint64_t last = first + msgs.size() - 1;
    std::string body;
    for (size_t i = 0; i < msgs.size(); ++i) {
      if (session) {
        body += msgs[i];
      } else {
        body += stream_line(first + i, msgs[i], json_mode);
      }
      body += '\n';
    }
    std::string z;
    if (Status s = zstd_compress(body, options_.zstd_level, &z); !s) return fail(s);
    s3::PutOptions po;
    po.content_type = "application/zstd";
    std::string key = prefix + "events/" + events_name(first, last);
    if (Status s = s3_->put_object(key, z, po); !s) {
      note_backlog(&msgs);
      return fail(s);
    }
    st.uploaded_next = last + 1;
    std::lock_guard lk(mu_);
    put_state_locked(r.id, st);
    dirty_.insert(r.id);
    stats_.objects_uploaded++;
    stats_.bytes_uploaded += z.size();
    stats_.events_uploaded += msgs.size();
  }
  // Writer state only moves forward (seqs, epochs, Stream-Seq, closure), so when the state with
  // appends in flight equals the one in the bucket, the durable one does too: the metadata is
  // rewritten only when the state changed, at a point with nothing in flight.
  std::string writer = st.writer;
  auto without_as_of = [](const std::string& w) {
    size_t at = w.find(",\"producers\"");
    return at == std::string::npos ? std::string() : w.substr(at);
  };
  if (snap.written_next == snap.durable_next && st.uploaded_next == tail) {
    json::object w;
    w["as_of"] = tail;
    json::object producers;
    for (const auto& [id, p] : snap.producers) {
      producers[id] = json::object{{"epoch", p.first}, {"seq", p.second}};
    }
    w["producers"] = std::move(producers);
    if (snap.stream_seq) w["stream_seq"] = *snap.stream_seq;
    if (snap.closed_by) {
      w["closed_by"] = json::object{{"id", snap.closed_by->id},
                                    {"epoch", snap.closed_by->epoch},
                                    {"seq", snap.closed_by->seq}};
    }
    writer = json::serialize(w);
    if (without_as_of(writer) == without_as_of(st.writer)) writer = st.writer;
  }
  if (with_meta || writer != st.writer || (stream->closed() && !st.closed_in_bucket)) {
    if (Status s = put_meta(writer); !s) return s;
  }
  std::lock_guard lk(mu_);
  pending_since_ms_.erase(r.id);
  return Status::ok();
}

// ---- restore ----------------------------------------------------------------------------------

Status Tier::restore_catalog(RestorePlan* plan) {
  std::string root = (options_.prefix.empty() ? "" : options_.prefix + "/") + "tenants/";
  std::vector<s3::ObjectInfo> objects;
  if (Status s = s3_->list_objects(root, &objects); !s) return s;
  // Group by "{tenant}/{sessions|streams}/{name}/".
  std::map<std::string, RestoreItem> items;
  for (const auto& o : objects) {
    std::string_view rest = std::string_view(o.key).substr(root.size());
    size_t a = rest.find('/');
    if (a == std::string_view::npos) continue;
    size_t b = rest.find('/', a + 1);
    if (b == std::string_view::npos) continue;
    if (rest.substr(a + 1, b - a - 1) == "subscriptions") {
      if (!rest.ends_with(".json") || rest.find('/', b + 1) != std::string_view::npos) continue;
      std::string text;
      if (Status s = s3_->get_object(o.key, &text); !s) return s;
      boost::system::error_code ec;
      json::value v = json::parse(text, ec);
      const json::object* so = v.if_object();
      auto field = [so](const char* k) -> const json::string* {
        const json::value* f = so ? so->if_contains(k) : nullptr;
        return f ? f->if_string() : nullptr;
      };
      const json::string* tenant = field("tenant");
      const json::string* id = field("id");
      if (ec || !tenant || !id || !so->contains("record")) {
        // One bad object must not block every restore: the rest comes back without it.
        spdlog::error("restore: {} is not a subscription object; skipped", o.key);
        continue;
      }
      plan->subscriptions.push_back(
          {std::string(*tenant), std::string(*id), json::serialize(so->at("record"))});
      continue;
    }
    size_t c = rest.find('/', b + 1);
    if (c == std::string_view::npos) continue;
    std::string group(rest.substr(0, c + 1));
    std::string_view kind = rest.substr(a + 1, b - a - 1);
    std::string_view leaf = rest.substr(c + 1);
    RestoreItem& item = items[group];
    item.session = kind == "sessions";
    if (kind != "sessions" && kind != "streams") continue;
    if (leaf == "session.json" || leaf == "stream.json") {
      if (Status s = s3_->get_object(o.key, &item.meta); !s) return s;
    } else if (leaf.starts_with("events/") && leaf.ends_with(".jsonl.zst")) {
      item.event_keys.push_back(o.key);
    }
  }
  if (Status s = catalog_->exec(
          "CREATE TABLE IF NOT EXISTS sessions ("
          "  id INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT NOT NULL, session_id TEXT NOT NULL,"
          "  record TEXT NOT NULL, UNIQUE(tenant, session_id));");
      !s) {
    return s;
  }
  // API keys (hashes), so that the restored server is not open to everyone.
  std::string keys;
  Status ks = s3_->get_object((options_.prefix.empty() ? "" : options_.prefix + "/") + kApiKeysKey,
                              &keys);
  if (ks) {
    if (Status s = ApiKeys::restore(catalog_, keys); !s) return s;
  } else if (ks.code() != Status::Code::kNotFound) {
    return ks;
  }
  for (auto& [group, item] : items) {
    if (item.meta.empty()) {
      spdlog::warn("restore: {}{} has events but no metadata object; skipped", root, group);
      continue;
    }
    boost::system::error_code ec;
    json::value v = json::parse(item.meta, ec);
    if (ec || !v.is_object()) return Status::corruption("restore: bad metadata in " + group);
    auto& o = v.as_object();
    item.tenant = o.contains("tenant") ? std::string(o["tenant"].as_string()) : "";
    if (item.session) {
      item.name = std::string(o["id"].as_string());
      std::string record = json::serialize(o["record"]);
      std::lock_guard clk(catalog_->mutex());
      sqlite3_stmt* st = nullptr;
      sqlite3_prepare_v2(catalog_->db(),
                         "INSERT INTO sessions (tenant, session_id, record) VALUES (?,?,?)", -1,
                         &st, nullptr);
      sqlite3_bind_text(st, 1, item.tenant.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(st, 2, item.name.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(st, 3, record.c_str(), -1, SQLITE_TRANSIENT);
      int rc = sqlite3_step(st);
      sqlite3_finalize(st);
      if (rc != SQLITE_DONE) return Status::io_error(sqlite3_errmsg(catalog_->db()));
    } else {
      item.name = std::string(o["path"].as_string());
    }
    plan->items.push_back(std::move(item));
  }
  return Status::ok();
}

Status Tier::append_sync(const std::shared_ptr<Stream>& s, std::vector<std::string> msgs,
                         bool close) {
  AppendRequest ar;
  ar.messages = std::move(msgs);
  ar.close = close;
  std::promise<AppendResult> p;
  auto f = p.get_future();
  s->append(std::move(ar), [&p](AppendResult r) { p.set_value(std::move(r)); });
  AppendResult r = f.get();
  if (r.outcome == AppendResult::Outcome::kAppended ||
      r.outcome == AppendResult::Outcome::kAlreadyClosed) {
    return Status::ok();
  }
  return r.status ? Status::io_error("restore: append refused") : r.status;
}

Status Tier::restore_writer(const std::shared_ptr<Stream>& stream, const json::object& meta,
                            uint64_t restored_next) {
  bool closed = false;
  if (auto* c = meta.if_contains("closed"); c && c->is_bool()) closed = c->as_bool();
  std::vector<FrameMeta> frames;
  const json::object* w = nullptr;
  if (auto* v = meta.if_contains("writer"); v && v->is_object()) w = &v->as_object();
  uint64_t now = static_cast<uint64_t>(now_unix_millis());
  std::optional<ProducerStamp> closed_by;
  if (w) {
    if (auto* a = w->if_contains("as_of"); a && a->to_number<uint64_t>() > restored_next) {
      // Deduplicating appends whose events are not there would lose them: drop the state.
      spdlog::error("restore: {}: writer state is ahead of the events in the bucket; producer "
                    "state not restored", stream->record().path);
      w = nullptr;
    }
  }
  if (w) {
    auto stamp = [](const json::object& o, const std::string& id) {
      ProducerStamp p;
      p.id = id;
      p.epoch = o.at("epoch").to_number<uint64_t>();
      p.seq = o.at("seq").to_number<uint64_t>();
      return p;
    };
    if (auto* ps = w->if_contains("producers"); ps && ps->is_object()) {
      for (const auto& [id, v] : ps->as_object()) {
        FrameMeta m;
        m.unix_millis = now;
        m.producer = stamp(v.as_object(), std::string(id));
        frames.push_back(std::move(m));
      }
    }
    if (auto* ss = w->if_contains("stream_seq"); ss && ss->is_string()) {
      FrameMeta m;
      m.unix_millis = now;
      m.stream_seq = std::string(ss->as_string());
      frames.push_back(std::move(m));
    }
    if (auto* cb = w->if_contains("closed_by"); cb && cb->is_object()) {
      closed_by = stamp(cb->as_object(), std::string(cb->as_object().at("id").as_string()));
    }
  }
  if (closed) {
    FrameMeta m;
    m.unix_millis = now;
    m.closes = true;
    m.producer = closed_by;
    frames.push_back(std::move(m));
  }
  if (frames.empty()) return Status::ok();
  // Writer state travels in frame metadata (frame.h): write empty frames carrying it straight to
  // the stream's log, with the stream's own log closed; its next use replays them.
  if (!stream->try_unload() && stream->loaded()) {
    return Status::io_error("restore: " + stream->record().path + " is busy");
  }
  Fs* fs = options_.fs ? options_.fs : Fs::posix();
  std::unique_ptr<StreamLog> log;
  StreamLog::Options lo;
  if (options_.segment_bytes) lo.segment_bytes = options_.segment_bytes;
  if (Status s = StreamLog::open(
          fs, stream->dir(), stream->record().fork_offset, lo,
          [](const FrameMeta&, uint32_t) {}, &log, nullptr);
      !s) {
    return s;
  }
  for (auto& m : frames) {
    if (Status s = log->append(m, {}); !s) return s;
  }
  return log->active_file()->datasync();
}

Status Tier::restore_logs(const RestorePlan& plan) {
  // Sources before their forks; a fork whose source is not in the bucket comes back as a plain
  // stream (its objects hold every position).
  std::vector<const RestoreItem*> order;
  std::set<std::string> placed;  // tenant '\0' path
  std::vector<const RestoreItem*> forks;
  auto fork_source = [](const json::object& meta) -> std::optional<std::string> {
    if (auto* f = meta.if_contains("fork"); f && f->is_object()) {
      if (auto* src = f->as_object().if_contains("source"); src && src->is_string()) {
        return std::string(src->as_string());
      }
    }
    return std::nullopt;
  };
  std::set<std::string> all;
  for (const auto& item : plan.items) {
    if (!item.session) all.insert(item.tenant + '\0' + item.name);
  }
  for (const auto& item : plan.items) {
    boost::system::error_code ec;
    json::value v = json::parse(item.meta, ec);
    if (!item.session && !ec && v.is_object() && fork_source(v.as_object())) {
      forks.push_back(&item);
    } else {
      order.push_back(&item);
      placed.insert(item.tenant + '\0' + item.name);
    }
  }
  for (bool progress = true; progress && !forks.empty();) {
    progress = false;
    for (auto it = forks.begin(); it != forks.end();) {
      std::string src = *fork_source(json::parse((*it)->meta).as_object());
      std::string k = (*it)->tenant + '\0' + src;
      if (placed.count(k) || !all.count(k)) {
        order.push_back(*it);
        placed.insert((*it)->tenant + '\0' + (*it)->name);
        it = forks.erase(it);
        progress = true;
      } else {
        ++it;
      }
    }
  }
  order.insert(order.end(), forks.begin(), forks.end());  // cycles: cannot happen; be safe

  for (const RestoreItem* ip : order) {
    const RestoreItem& item = *ip;
    boost::system::error_code ec;
    json::object meta = json::parse(item.meta, ec).as_object();
    std::shared_ptr<Stream> stream;
    if (item.session) {
      std::shared_ptr<Session> session;
      if (Status s = sessions_->get(item.tenant, item.name, &session); !s) return s;
      stream = session->stream();
    } else {
      CreateSpec spec;
      spec.tenant = item.tenant;
      spec.path = item.name;
      spec.content_type = std::string(meta["content_type"].as_string());
      spec.json_mode = spec.content_type.find("json") != std::string::npos;
      if (auto* t = meta.if_contains("ttl_seconds")) spec.ttl_seconds = t->to_number<uint64_t>();
      if (auto* e = meta.if_contains("expires_at")) spec.expires_at = std::string(e->as_string());
      if (auto src = fork_source(meta); src && placed.count(item.tenant + '\0' + *src) &&
                                        all.count(item.tenant + '\0' + *src)) {
        std::shared_ptr<Stream> source;
        if (streams_->find(item.tenant, *src, &source)) {
          spec.forked_from = *src;
          spec.fork_offset = meta["fork"].as_object()["offset"].to_number<uint64_t>();
        }
      }
      std::promise<CreateOutcome> p;
      auto f = p.get_future();
      streams_->create(std::move(spec), [&p](CreateOutcome o) { p.set_value(std::move(o)); });
      CreateOutcome o = f.get();
      if (!o.status) return o.status;
      stream = o.stream;
    }
    uint64_t next = stream->tail();
    for (const auto& key : item.event_keys) {
      std::string z, body;
      if (Status s = s3_->get_object(key, &z); !s) return s;
      if (Status s = zstd_decompress(z, &body); !s) {
        return Status::corruption("restore: " + key + ": " + s.message());
      }
      std::vector<std::string> batch;
      size_t start = 0;
      while (start < body.size()) {
        size_t nl = body.find('\n', start);
        if (nl == std::string::npos) return Status::corruption("restore: " + key + ": torn line");
        std::string_view line(body.data() + start, nl - start);
        start = nl + 1;
        uint64_t pos = 0;
        std::string msg;
        if (item.session) {
          if (!session_line_offset(line, &pos)) {
            return Status::corruption("restore: " + key + ": event without offset");
          }
          msg = std::string(line);
        } else if (Status s = parse_stream_line(line, &pos, &msg); !s) {
          return Status::corruption("restore: " + key + ": " + s.message());
        }
        uint64_t expect = next + batch.size();
        if (pos < expect) continue;  // overlap with an earlier object (re-upload after a crash)
        if (pos > expect) {
          return Status::corruption("restore: " + key + ": gap before offset " + offset16(pos));
        }
        batch.push_back(std::move(msg));
      }
      if (!batch.empty()) {
        size_t n = batch.size();
        if (Status s = append_sync(stream, std::move(batch), false); !s) return s;
        next += n;
      }
    }
    // Producer, Stream-Seq and closure state as of the end of the restored events.
    if (Status s = restore_writer(stream, meta, next); !s) return s;
    // Everything restored is, by construction, in the bucket.
    State st;
    st.tenant = stream->record().tenant;
    st.path = stream->record().path;
    st.created_ms = stream->record().created_ms;
    st.uploaded_next = stream->tail();
    st.meta_hash = "";  // re-upload the metadata once (its form may have changed)
    if (auto* w = meta.if_contains("writer"); w && w->is_object()) st.writer = json::serialize(*w);
    if (Status s = save_state(stream->record().id, st); !s) return s;
    st.in_catalog = true;
    std::lock_guard lk(mu_);
    put_state_locked(stream->record().id, st);
  }
  return Status::ok();
}

}  // namespace ds
