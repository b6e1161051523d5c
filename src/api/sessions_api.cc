#include "api/sessions_api.h"

#include <strings.h>

#include <algorithm>
#include <boost/asio/this_coro.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <set>

#include "api/append_headers.h"
#include "api/router.h"
#include "api/await.h"
#include "api/event_body.h"
#include "api/http_util.h"
#include "api/live.h"
#include "api/search_api.h"
#include "core/clock.h"
#include "core/metrics.h"
#include "core/ulid.h"
#include "search/indexer.h"
#include "store/offset.h"
#include "store/tier.h"

namespace ds {

namespace asio = boost::asio;
namespace json = boost::json;
using std::chrono::steady_clock;

namespace {

constexpr size_t kReadChunk = 1u << 20;
constexpr size_t kMaxScanBytes = 8u << 20;  // per request, before answering with next_page
// Per step of a live (SSE) response: a reader that does not read holds about this much (the
// events read, and the frame written from them) while its write waits, so it stays small.
constexpr size_t kMaxLiveScanBytes = 1u << 20;
constexpr size_t kDefaultLimit = 1000;
constexpr std::string_view kInvalidSessionId =
    "invalid session id: ids match [A-Za-z0-9._:~-]{1,128} and are not '.' or '..'";
constexpr size_t kMaxLimit = 10000;

// ---- responses ----------------------------------------------------------------------------

asio::awaitable<void> reply(const HttpRequest& req, Responder& res, HttpResponse r) {
  add_common_headers(req, &r);
  co_await res.send(std::move(r));
}

asio::awaitable<void> reply_json(const HttpRequest& req, Responder& res, int status,
                                 std::string body) {
  HttpResponse r(status);
  r.set("Content-Type", "application/json");
  r.body = std::move(body);
  co_await reply(req, res, std::move(r));
}

asio::awaitable<void> reply_error(const HttpRequest& req, Responder& res, int status,
                                  std::string_view message) {
  HttpResponse r = error_response(status, error_type_for_status(status), message, req.request_id);
  if (status == 409) r.set("x-should-retry", "false");
  co_await reply(req, res, std::move(r));
}

asio::awaitable<void> reply_status(const HttpRequest& req, Responder& res, const Status& s) {
  HttpResponse r = error_response(s, req.request_id);
  if (r.status == 409) r.set("x-should-retry", "false");
  co_await reply(req, res, std::move(r));
}

bool wants_json(const HttpRequest& req) {
  const std::string* a = req.header("accept");
  return a && a->find("application/json") != std::string::npos;
}


// ---- session objects ----------------------------------------------------------------------

json::object agent_snapshot(const json::value* agent) {
  json::object a{{"type", "agent"},
                 {"id", ""},
                 {"version", 1},
                 {"name", ""},
                 {"description", nullptr},
                 {"system", nullptr},
                 {"model", json::object{{"id", "unknown"}}},
                 {"execution_identity", json::object{{"type", "service_account"}}},
                 {"mcp_servers", json::array()},
                 {"skills", json::array()},
                 {"tools", json::array()},
                 {"multiagent", nullptr}};
  if (agent == nullptr || agent->is_null()) return a;
  if (agent->is_string()) {
    a["id"] = agent->as_string();
    a["name"] = agent->as_string();
    return a;
  }
  if (!agent->is_object()) return a;
  const json::object& in = agent->as_object();
  if (auto* id = in.if_contains("id"); id && id->is_string()) {
    a["id"] = *id;
    a["name"] = *id;
  }
  if (auto* v = in.if_contains("version"); v && v->is_number()) a["version"] = *v;
  if (auto* v = in.if_contains("name"); v && v->is_string()) a["name"] = *v;
  if (auto* m = in.if_contains("model")) {
    if (m->is_string()) {
      a["model"] = json::object{{"id", m->as_string()}};
    } else if (m->is_object()) {
      json::object model = m->as_object();
      if (auto* e = model.if_contains("effort"); e && e->is_string()) {
        model["effort"] = json::object{{"type", e->as_string()}};
      }
      a["model"] = std::move(model);
    }
  }
  for (const char* k : {"system", "tools", "mcp_servers", "skills", "description"}) {
    if (auto* v = in.if_contains(k)) a[k] = *v;
  }
  return a;
}

// Type checks of the session fields the wire contract defines (§1.2, §3): a value of the wrong
// type is a 400 naming the field, instead of being stored and echoed back to SDKs that would
// then fail to read the session. Returns "" when fine.
std::string check_session_fields(const json::object& b) {
  auto is_str_or_null = [](const json::value* v) { return v == nullptr || v->is_string() || v->is_null(); };
  auto is_array = [](const json::value* v) { return v == nullptr || v->is_array(); };
  if (const json::value* a = b.if_contains("agent"); a && !a->is_null()) {
    if (!a->is_string() && !a->is_object()) return "agent must be an agent id (string) or an object";
    if (a->is_object()) {
      const json::object& o = a->as_object();
      if (const json::value* id = o.if_contains("id"); id && !id->is_string()) return "agent.id must be a string";
      if (const json::value* v = o.if_contains("version"); v && !v->is_number()) return "agent.version must be a number";
      if (const json::value* m = o.if_contains("model"); m && !m->is_string() && !m->is_object()) {
        return "agent.model must be a model id (string) or an object";
      }
      for (const char* k : {"name", "system", "description"}) {
        if (!is_str_or_null(o.if_contains(k))) return std::string("agent.") + k + " must be a string or null";
      }
      for (const char* k : {"tools", "mcp_servers", "skills"}) {
        if (!is_array(o.if_contains(k))) return std::string("agent.") + k + " must be an array";
      }
    }
  }
  if (const json::value* v = b.if_contains("budget"); v && !v->is_null() && !v->is_object()) {
    return "budget must be an object or null";
  }
  if (const json::value* v = b.if_contains("resources"); v && !v->is_null()) {
    if (!v->is_array()) return "resources must be an array";
    for (const json::value& r : v->as_array()) {
      if (!r.is_object() || !r.as_object().contains("type") || !r.as_object().at("type").is_string()) {
        return "each resource must be an object with a string type";
      }
    }
  }
  if (const json::value* v = b.if_contains("vault_ids"); v && !v->is_null()) {
    if (!v->is_array()) return "vault_ids must be an array of strings";
    for (const json::value& id : v->as_array()) {
      if (!id.is_string()) return "vault_ids must be an array of strings";
    }
  }
  return "";
}

// Fills in what the API adds to a stored resource (§3.5): id, created_at, updated_at and the
// default mount_path of file and github_repository resources (memory_store has no id).
void complete_resource(json::object& r, const std::string& now) {
  std::string type(r.at("type").as_string());
  if (type == "memory_store") return;
  if (!r.contains("id")) r["id"] = "sesrsc_" + new_ulid();
  if (!r.contains("created_at")) r["created_at"] = now;
  if (!r.contains("updated_at")) r["updated_at"] = now;
  if (r.contains("mount_path")) return;
  if (type == "file") {
    if (const json::value* f = r.if_contains("file_id"); f && f->is_string()) {
      r["mount_path"] = "/mnt/session/uploads/" + std::string(f->as_string());
    }
  } else if (type == "github_repository") {
    if (const json::value* u = r.if_contains("url"); u && u->is_string()) {
      std::string url(u->as_string());
      while (!url.empty() && url.back() == '/') url.pop_back();
      std::string name = url.substr(url.find_last_of('/') + 1);
      if (name.size() > 4 && name.ends_with(".git")) name.resize(name.size() - 4);
      r["mount_path"] = "/workspace/" + name;
    }
  }
}

std::string render_session(Session& s) {
  json::object rec = s.record();
  SessionSummary sum = s.summary();
  auto& stream = s.stream();
  uint64_t tail = stream->tail();
  bool closed = stream->closed();
  json::object o;
  o["id"] = s.id();
  o["type"] = "session";
  o["agent"] = rec.contains("agent") ? rec["agent"] : json::value(agent_snapshot(nullptr));
  bool archived = rec.contains("archived_at") && !rec["archived_at"].is_null();
  o["archived_at"] = archived ? rec["archived_at"] : nullptr;
  o["budget"] = rec.contains("budget") ? rec["budget"] : nullptr;
  o["created_at"] = rec["created_at"];
  o["deployment_id"] = nullptr;
  o["environment_id"] = rec.contains("environment_id") ? rec["environment_id"] : json::value("");
  o["metadata"] = rec.contains("metadata") ? rec["metadata"] : json::value(json::object());
  o["outcome_evaluations"] = json::array();
  o["resources"] = rec.contains("resources") ? rec["resources"] : json::value(json::array());
  int64_t created = s.created_ms();
  int64_t now = now_unix_millis();
  o["stats"] = json::object{{"active_seconds", 0},
                            {"duration_seconds", (now - created) / 1000}};
  o["status"] = archived ? std::string("terminated") : sum.status;
  o["title"] = rec.contains("title") ? rec["title"] : nullptr;
  std::string updated = rec.contains("updated_at") && rec["updated_at"].is_string()
                            ? std::string(rec["updated_at"].as_string())
                            : "";
  int64_t updated_ms = parse_rfc3339(updated).value_or(0);
  if (sum.last_event_ms > updated_ms) updated = format_rfc3339_millis(sum.last_event_ms);
  o["updated_at"] = updated;
  o["usage"] = json::object{
      {"input_tokens", sum.input_tokens},
      {"output_tokens", sum.output_tokens},
      {"cache_read_input_tokens", sum.cache_read_input_tokens},
      {"cache_creation",
       json::object{{"ephemeral_1h_input_tokens", 0},
                    {"ephemeral_5m_input_tokens", sum.cache_creation_input_tokens}}},
      {"active_seconds", 0}};
  o["vault_ids"] = rec.contains("vault_ids") ? rec["vault_ids"] : json::value(json::array());
  o["event_count"] = tail;
  o["next_offset"] = format_offset(tail);
  o["closed"] = closed;
  return json::serialize(o);
}

// Characters (Unicode code points) of valid UTF-8: every byte that does not continue one.
size_t utf8_chars(std::string_view s) {
  return static_cast<size_t>(std::count_if(s.begin(), s.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

// The wire contract's limits (§1.2): at most 16 pairs, keys up to 64 and values up to 512
// characters.
constexpr size_t kMaxMetadataPairs = 16;

// Validates metadata: an object of string values (null allowed when `patch`).
std::string check_metadata(const json::value& v, bool patch) {
  if (!v.is_object()) return "metadata must be an object of strings";
  if (!patch && v.as_object().size() > kMaxMetadataPairs) {
    return "metadata holds at most 16 key-value pairs";
  }
  for (const auto& [k, val] : v.as_object()) {
    if (utf8_chars(k) > 64) return "metadata keys must be at most 64 characters";
    if (val.is_null() && patch) continue;
    if (!val.is_string()) return "metadata values must be strings";
    if (utf8_chars(val.as_string()) > 512) return "metadata values must be at most 512 characters";
  }
  return "";
}

asio::awaitable<std::optional<json::object>> parse_object_body(const HttpRequest& req,
                                                               Responder& res) {
  if (req.body.empty()) co_return json::object();
  boost::system::error_code ec;
  json::value v = json::parse(req.body, ec);
  if (ec || !v.is_object()) {
    // Computed before the co_await: GCC 12 destroys a ?: temporary inside a co_await
    // expression twice (ASan: double free).
    const std::string message = ec ? "request body is not valid JSON: " + ec.message()
                                   : std::string("request body must be a JSON object");
    co_await reply_error(req, res, 400, message);
    co_return std::nullopt;
  }
  co_return std::move(v.as_object());
}

// ---- appends ------------------------------------------------------------------------------

struct AppendOutcome {
  AppendResult result;
  std::vector<std::string> stored;  // with offsets filled in
};

asio::awaitable<AppendOutcome> append_events(std::shared_ptr<Stream> stream,
                                             std::vector<std::string> events, bool close,
                                             std::optional<ProducerStamp> producer,
                                             std::optional<std::string> stream_seq) {
  AppendOutcome out;
  AppendRequest ar;
  ar.offset_placeholder_at = kOffsetDigitsAt;
  ar.close = close;
  ar.producer = std::move(producer);
  ar.stream_seq = std::move(stream_seq);
  out.stored = events;
  ar.messages = std::move(events);
  out.result = co_await await_callback<AppendResult>(
      [&](auto done) { stream->append(std::move(ar), std::move(done)); });
  if (out.result.outcome == AppendResult::Outcome::kAppended) {
    for (size_t i = 0; i < out.stored.size(); ++i) {
      out.stored[i].replace(kOffsetDigitsAt, kOffsetWidth,
                            format_offset(out.result.first_position + i));
    }
  } else {
    out.stored.clear();
  }
  co_return out;
}

std::string join_array(const std::vector<std::string>& items) {
  std::string s = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) s += ',';
    s += items[i];
  }
  s += ']';
  return s;
}

// Appends "[a,b,…]" to *out, sized once (no allocation per item).
void append_array(const std::vector<std::string_view>& items, std::string* out) {
  size_t n = 2 + items.size();
  for (auto i : items) n += i.size();
  out->reserve(out->size() + n);
  out->push_back('[');
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out->push_back(',');
    out->append(items[i]);
  }
  out->push_back(']');
}

// ---- event queries ------------------------------------------------------------------------

struct EventFilter {
  std::set<std::string, std::less<>> types;
  std::optional<int64_t> gt, gte, lt, lte;  // processed_at bounds (ms)
  bool empty() const { return types.empty() && !gt && !gte && !lt && !lte; }
  bool matches(std::string_view ev) const {
    if (!types.empty()) {
      // The stored spelling is JSON-escaped; compare the type itself (a type with a '"' or a
      // control character is written escaped in the log, and asked for unescaped).
      std::string_view t = stored_event_type(ev);
      if (t.find('\\') != std::string_view::npos) {
        std::string decoded;
        if (!json_unquote(t, &decoded) || !types.count(decoded)) return false;
      } else if (!types.count(t)) {
        return false;
      }
    }
    if (gt || gte || lt || lte) {
      auto t = parse_rfc3339(stored_event_processed_at(ev));
      if (!t) return false;
      if (gt && !(*t > *gt)) return false;
      if (gte && !(*t >= *gte)) return false;
      if (lt && !(*t < *lt)) return false;
      if (lte && !(*t <= *lte)) return false;
    }
    return true;
  }
};

std::string parse_filter(const QueryParams& q, EventFilter* f) {
  for (auto& t : requested_event_types(q)) f->types.insert(std::move(t));
  struct B {
    const char* key;
    std::optional<int64_t>* to;
  } bounds[] = {{"created_at[gt]", &f->gt},
                {"created_at[gte]", &f->gte},
                {"created_at[lt]", &f->lt},
                {"created_at[lte]", &f->lte}};
  for (auto& b : bounds) {
    if (const std::string* v = q.get(b.key); v && !v->empty()) {
      auto t = parse_rfc3339(*v);
      if (!t) return std::string(b.key) + " must be an RFC 3339 timestamp";
      *b.to = t;
    }
  }
  return "";
}

struct QueryResult {
  std::vector<std::string_view> events;  // views into `batches`
  std::vector<MessageBatch> batches;
  uint64_t next = 0;       // resume position (asc) / exclusive upper bound (desc)
  uint64_t tail = 0;
  bool closed = false;
  bool more = false;       // next_page should be offered
};

Status query_asc(Stream& stream, uint64_t from, size_t limit, const EventFilter& f,
                 QueryResult* out, size_t max_scan = kMaxScanBytes) {
  out->events.clear();
  out->batches.clear();
  size_t scanned = 0;
  uint64_t pos = from;
  for (;;) {
    BatchReadResult rr;
    if (Status s = stream.read(pos, kReadChunk, &rr); !s) return s;
    out->tail = rr.tail;
    out->closed = rr.closed;
    size_t i = 0;
    bool all = f.empty();
    for (; i < rr.messages.size() && out->events.size() < limit; ++i) {
      std::string_view m = rr.messages[i];
      scanned += m.size();
      if (all || f.matches(m)) out->events.push_back(m);
    }
    size_t got = rr.messages.size();
    if (got > 0) out->batches.push_back(std::move(rr.messages));
    pos += i;
    if (out->events.size() >= limit || got == 0 || pos >= rr.tail || scanned >= max_scan) {
      out->closed = rr.closed && pos >= rr.tail;
      break;
    }
  }
  out->next = pos;
  out->more = pos < out->tail;
  return Status::ok();
}

Status query_desc(Stream& stream, uint64_t end, size_t limit, const EventFilter& f,
                  QueryResult* out) {
  out->events.clear();
  out->batches.clear();
  out->tail = stream.tail();
  out->closed = stream.closed();
  uint64_t hi = std::min(end, out->tail);
  size_t scanned = 0;
  while (hi > 0 && out->events.size() < limit && scanned < kMaxScanBytes) {
    uint64_t lo = hi > 256 ? hi - 256 : 0;
    MessageBatch chunk;
    if (Status s = stream.read_range(lo, hi, SIZE_MAX, &chunk); !s) return s;
    if (chunk.size() != hi - lo) return Status::io_error("short read");
    uint64_t p = hi;
    for (size_t i = chunk.size(); i > 0 && out->events.size() < limit; --i) {
      --p;
      std::string_view m = chunk[i - 1];
      scanned += m.size();
      if (f.matches(m)) out->events.push_back(m);
    }
    out->batches.push_back(std::move(chunk));
    hi = p;
  }
  out->next = hi;
  out->more = hi > 0;
  return Status::ok();
}

std::string page_body(const std::vector<std::string_view>& events, const std::optional<std::string>& next) {
  std::string body;
  size_t n = 40 + (next ? next->size() : 0) + events.size();
  for (auto e : events) n += e.size();
  body.reserve(n);
  body += "{\"data\":";
  append_array(events, &body);
  body += ",\"next_page\":";
  body += next ? json_quote(*next) : "null";
  body += '}';
  return body;
}

// The session.deleted event live readers get when the session is deleted under them; it takes the
// position after the last event.
std::string deleted_event(uint64_t position) {
  std::string e = make_stored_event("session.deleted", "", now_unix_millis());
  e.replace(kOffsetDigitsAt, kOffsetWidth, format_offset(position));
  return e;
}

// ---- events endpoint handlers -------------------------------------------------------------

// --durability s3 (ctx.tier set): waits until the session's events below `next` — and with
// `record`, its record as of now (session.json) — are in the bucket. True when they are (or
// without the S3 mode); otherwise it has answered 503 with Retry-After and returns false. What
// was done is stored locally either way and reaches the bucket later.
asio::awaitable<bool> in_bucket_or_503(ApiContext& ctx, const std::shared_ptr<Session>& session,
                                       uint64_t next, bool record, const char* what,
                                       HttpRequest& req, Responder& res) {
  if (!ctx.tier) co_return true;
  Status up = co_await await_callback<Status>([&](auto done) {
    ctx.tier->when_uploaded(session->stream(), next, std::move(done), record);
  });
  if (up) co_return true;
  HttpResponse u = error_response(
      503, "overloaded_error",
      std::string(what) + " stored locally but not yet in the S3 bucket (" + up.message() +
          "); retry later",
      req.request_id);
  u.set("Retry-After", "1");
  co_await reply(req, res, std::move(u));
  co_return false;
}

asio::awaitable<void> post_events(ApiContext& ctx, const std::string& tenant,
                                  const std::string& id, HttpRequest& req, Responder& res) {
  std::shared_ptr<Session> session;
  Status gs = ctx.sessions->get(tenant, id, &session);
  AppendHeaders h;
  if (std::string err = parse_append_headers(req, &h); !err.empty()) {
    co_return co_await reply_error(req, res, 400, err);
  }
  bool close = h.close;
  std::optional<ProducerStamp> producer = h.producer;
  std::optional<std::string> stream_seq = h.stream_seq;
  int64_t now = now_unix_millis();
  ParsedEvents parsed;
  if (!req.body.empty() || !close) {
    if (Status s = parse_event_body(req.body, ctx.options.max_events_per_request, now, &parsed); !s) {
      co_return co_await reply_status(req, res, s);
    }
  }
  if (!gs) {
    if (gs.code() != Status::Code::kNotFound) co_return co_await reply_status(req, res, gs);
    // Implicit creation on first append.
    if (!valid_session_id(id)) co_return co_await reply_error(req, res, 400, kInvalidSessionId);
    if (ctx.sessions->count(tenant) >= ctx.options.max_sessions_per_tenant) {
      co_return co_await reply_error(req, res, 429, "tenant holds the maximum number of sessions (--max-sessions-per-tenant)");
    }
    json::object rec{{"agent", agent_snapshot(nullptr)}, {"metadata", json::object()}, {"title", nullptr}};
    SessionCreated created = co_await await_callback<SessionCreated>([&](auto done) {
      ctx.sessions->create(tenant, id, std::move(rec), std::move(done));
    });
    Status cs = created.status;
    session = std::move(created.session);
    if (cs.code() == Status::Code::kConflict) cs = ctx.sessions->get(tenant, id, &session);
    if (!cs) co_return co_await reply_status(req, res, cs);
  }
  AppendOutcome out = co_await append_events(session->stream(), std::move(parsed.events), close,
                                             producer, stream_seq);
  const AppendResult& r = out.result;
  using O = AppendResult::Outcome;
  if (auto rejection = writer_state_rejection(r, req.request_id)) {
    co_return co_await reply(req, res, std::move(*rejection));
  }
  if (r.outcome == O::kError) co_return co_await reply_status(req, res, r.status);
  HttpResponse resp(204);
  if (r.outcome == O::kClosed) {
    std::string message = "session " + id + " is closed";
    resp = error_response(409, "conflict_error", message, req.request_id);
    resp.set("x-should-retry", "false");
  }
  if (resp.status == 204 && (r.outcome == O::kAppended || r.outcome == O::kDuplicate ||
                                r.outcome == O::kAlreadyClosed)) {
    // --durability s3: acknowledge only once the events are in the bucket (uploads are grouped).
    if (!co_await in_bucket_or_503(ctx, session, r.next_position, false, "events are", req, res)) {
      co_return;
    }
  }
  if (resp.status == 204 && wants_json(req)) {
    resp.status = 200;
    resp.set("Content-Type", "application/json");
    resp.body = "{\"data\":" + join_array(out.stored) + "}";
  }
  resp.set("Stream-Next-Offset", format_offset(r.next_position));
  if (r.closed) resp.set("Stream-Closed", "true");
  if (producer && r.outcome != O::kClosed) set_producer_headers(r, &resp);
  co_await reply(req, res, std::move(resp));
}

void set_read_headers(HttpResponse& r, uint64_t next, uint64_t tail, bool closed) {
  r.set("Stream-Next-Offset", format_offset(next));
  if (next >= tail) r.set("Stream-Up-To-Date", "true");
  if (closed && next >= tail) r.set("Stream-Closed", "true");
}

// The Durable Streams control event of the session SSE endpoint. `cursor` is ignored when closed.
void append_session_control(uint64_t pos, std::string_view cursor, bool up_to_date, bool closed,
                            std::string* out) {
  out->append("event: control\ndata:{\"streamNextOffset\":\"");
  out->append(format_offset(pos));
  out->push_back('"');
  if (!closed) {
    out->append(",\"streamCursor\":\"");
    out->append(cursor);
    out->push_back('"');
  }
  if (up_to_date) out->append(",\"upToDate\":true");
  if (closed) out->append(",\"streamClosed\":true");
  out->append("}\n\n");
}

// For an unfiltered SSE reader at `pos`: reads like query_asc and, when the events found reach the
// tail, returns them encoded in *frame, shared with the other readers at the same position (one
// read and one encoding per append, however many readers). With a non-empty `cursor` (the value
// every reader without a client cursor sends now) the frame also holds the control event and is
// written as is; otherwise it holds only the `event: data` block. A reader that is behind gets no
// frame: q->events holds its events. On a shared hit q->events stays empty and q's positions
// describe the frame.
Status sse_shared_frame(Stream& stream, uint64_t pos, std::string_view cursor, QueryResult* q,
                        std::shared_ptr<const LiveFrameCache::Frame>* frame) {
  char variant_buf[64];
  std::string_view variant = "session-sse";
  if (!cursor.empty()) {
    int n = std::snprintf(variant_buf, sizeof variant_buf, "session-sse+control/%.*s",
                          static_cast<int>(cursor.size()), cursor.data());
    variant = std::string_view(variant_buf, static_cast<size_t>(std::max(0, n)));
  }
  frame->reset();
  uint64_t tail = 0;
  bool closed = false;
  if (Status s = stream.durable_state(&tail, &closed); !s) return s;
  if (pos < tail) {
    if (auto f = stream.live_frames().find(pos, tail, closed, variant)) {
      q->events.clear();
      q->batches.clear();
      q->next = tail;  // shared frames always reach the tail they were read at
      q->tail = tail;
      q->closed = closed;
      q->more = false;
      *frame = std::move(f);
      return Status::ok();
    }
  }
  if (Status s = query_asc(stream, pos, kMaxLimit, EventFilter{}, q, kMaxLiveScanBytes); !s) {
    return s;
  }
  if (q->events.empty() || q->next < q->tail) return Status::ok();
  auto f = std::make_shared<LiveFrameCache::Frame>();
  f->bytes = "event: data\ndata:";
  append_array(q->events, &f->bytes);
  f->bytes += "\n\n";
  if (!cursor.empty()) append_session_control(q->next, cursor, true, q->closed, &f->bytes);
  f->next_position = q->next;
  f->count = q->events.size();
  stream.live_frames().put(pos, q->tail, q->closed, variant, f);
  *frame = std::move(f);
  return Status::ok();
}

asio::awaitable<void> events_sse(ApiContext& ctx, const HttpRequest& req, Responder& res,
                                 std::shared_ptr<Stream> stream, uint64_t from,
                                 const EventFilter& filter, const std::string* cursor) {
  HttpResponse head(200);
  head.set("Content-Type", "text/event-stream");
  head.set("Cache-Control", "no-cache");
  add_common_headers(req, &head);
  if (!co_await res.start_stream(std::move(head))) co_return;
  GaugeGuard open_sse(Metrics::get().open_sse);
  LiveWait live_wait(co_await asio::this_coro::executor);
  res.watch_peer_close([&live_wait] { live_wait.interrupt(); });
  auto recycle_at = steady_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(ctx.options.sse_max_duration * 1000));
  auto heartbeat = std::chrono::milliseconds(static_cast<int64_t>(ctx.options.sse_heartbeat * 1000));
  uint64_t pos = from;
  bool first = true;
  std::string out;
  QueryResult q;
  std::shared_ptr<const LiveFrameCache::Frame> frame;
  std::string shared_cursor;
  const CursorSequence cursors(cursor);
  for (;;) {
    frame.reset();
    Status s;
    bool frame_has_control = false;
    if (filter.empty()) {
      // Without a client cursor every reader sends the same cursor now, so the whole frame
      // (data and control) can be shared.
      shared_cursor.clear();
      if (cursor == nullptr) shared_cursor = next_cursor(nullptr);
      s = sse_shared_frame(*stream, pos, shared_cursor, &q, &frame);
      frame_has_control = !shared_cursor.empty();
    } else {
      s = query_asc(*stream, pos, kMaxLimit, filter, &q, kMaxLiveScanBytes);
    }
    out.clear();
    if (!s) {
      // Deleted: tell the reader, then end.
      out = "event: data\ndata:[" + deleted_event(pos) + "]\n\n";
      // Every data event is followed by a control event (§5.8); closed, so that a Durable
      // Streams client stops instead of reconnecting to a 404.
      append_session_control(pos, std::string(), true, true, &out);
      co_await res.write(out);
      break;
    }
    bool advanced = q.next != pos;
    pos = q.next;
    bool up_to_date = pos >= q.tail;
    bool written = true;
    if (frame && frame_has_control) {
      first = false;
      written = co_await res.write(frame->bytes);
    } else {
      bool has_data = frame || !q.events.empty();
      if (frame) {
        out += frame->bytes;
      } else if (!q.events.empty()) {
        out += "event: data\ndata:";
        append_array(q.events, &out);
        out += "\n\n";
      }
      if (has_data || first || q.closed || advanced) {
        std::string next;
        if (!q.closed) next = cursors.next();
        append_session_control(pos, next, up_to_date, q.closed, &out);
        first = false;
        written = co_await res.write(out);
      }
    }
    frame.reset();
    q.batches.clear();
    if (!written) break;
    if (q.closed) break;
    if (!up_to_date) continue;
    auto now = steady_clock::now();
    if (now >= recycle_at || res.shutting_down()) break;
    bool woke = co_await live_wait.wait(stream, pos, std::min(now + heartbeat, recycle_at));
    if (res.shutting_down()) break;
    if (!woke && steady_clock::now() < recycle_at && !co_await res.write(": keep-alive\n\n")) break;
  }
  co_await res.finish();
}

asio::awaitable<void> get_events(ApiContext& ctx, const std::string& tenant, const std::string& id,
                                 HttpRequest& req, Responder& res) {
  auto q = QueryParams::parse(req.query);
  if (!q) co_return co_await reply_error(req, res, 400, "malformed query string");
  if (q->get("q")) co_return co_await handle_session_search(ctx, tenant, id, req, res);
  std::shared_ptr<Session> session;
  if (Status s = ctx.sessions->get(tenant, id, &session); !s) co_return co_await reply_status(req, res, s);
  auto stream = session->stream();
  EventFilter filter;
  if (std::string err = parse_filter(*q, &filter); !err.empty()) co_return co_await reply_error(req, res, 400, err);
  size_t limit = kDefaultLimit;
  if (const std::string* l = q->get("limit"); l && !l->empty()) {
    auto v = parse_offset(*l);
    if (!v || l->find('_') != std::string::npos || *v == 0) co_return co_await reply_error(req, res, 400, "limit must be a positive integer");
    limit = std::min<uint64_t>(*v, kMaxLimit);
  }
  bool desc = false;
  if (const std::string* o = q->get("order"); o && !o->empty()) {
    if (*o == "desc") desc = true;
    else if (*o != "asc") co_return co_await reply_error(req, res, 400, "order must be asc or desc");
  }
  const std::string* live = q->get("live");
  if (live && *live != "long-poll" && *live != "sse") co_return co_await reply_error(req, res, 400, "live must be long-poll or sse");
  if (q->count("offset") > 1) co_return co_await reply_error(req, res, 400, "offset given more than once");
  uint64_t tail = stream->tail();
  std::optional<uint64_t> from;
  bool now = false;
  if (const std::string* page = q->get("page"); page && !page->empty()) {
    std::string p = *page;
    bool is_desc = !p.empty() && p[0] == 'd';
    if (is_desc) p = p.substr(1);
    from = parse_offset(p);
    if (!from || is_desc != desc) co_return co_await reply_error(req, res, 400, "invalid page cursor");
  } else if (const std::string* o = q->get("offset"); o) {
    // -1 is "from the start": position 0 ascending; descending, the start is the newest event.
    if (*o == "-1") from = desc ? std::nullopt : std::optional<uint64_t>(0);
    else if (*o == "now") { from = tail; now = true; }
    else if (!(from = parse_offset(*o))) co_return co_await reply_error(req, res, 400, "malformed offset");
  }
  if (!desc && from.value_or(0) > tail) co_return co_await reply_error(req, res, 400, "offset is beyond the end of the session");
  if (desc && live) co_return co_await reply_error(req, res, 400, "live reads are in ascending order: drop order=desc");
  // `offset` is an inclusive start in both orders (SPEC 3.4); a descending page cursor is the
  // exclusive end of what was already returned.
  const bool desc_from_offset = desc && from && !q->get("page") && *from < UINT64_MAX;
  stream->touch();
  if (live && *live == "sse") co_return co_await events_sse(ctx, req, res, stream, from.value_or(0), filter, q->get("cursor"));

  QueryResult r;
  if (desc) {
    uint64_t end = desc_from_offset ? *from + 1 : from.value_or(UINT64_MAX);
    if (Status s = query_desc(*stream, end, limit, filter, &r); !s) co_return co_await reply_status(req, res, s);
    HttpResponse resp(200);
    resp.set("Content-Type", "application/json");
    resp.body = page_body(r.events, r.more ? std::optional<std::string>("d" + format_offset(r.next)) : std::nullopt);
    set_read_headers(resp, r.tail, r.tail, r.closed);
    co_return co_await reply(req, res, std::move(resp));
  }
  uint64_t start = from.value_or(0);
  if (Status s = query_asc(*stream, start, limit, filter, &r); !s) co_return co_await reply_status(req, res, s);
  if (live) {
    // Long-poll: wait for matching events at or after the resume position.
    auto deadline = steady_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(ctx.options.long_poll_timeout * 1000));
    GaugeGuard waiting(Metrics::get().waiting_long_polls);
    LiveWait live_wait(co_await asio::this_coro::executor);
    res.watch_peer_close([&live_wait] { live_wait.interrupt(); });
    while (r.events.empty() && !r.closed) {
      if (r.more) {  // skipped past non-matching events; keep scanning
        if (Status s = query_asc(*stream, r.next, limit, filter, &r); !s) co_return co_await reply_status(req, res, s);
        continue;
      }
      bool woke = co_await live_wait.wait(stream, r.next, deadline);
      if (stream->deleted()) {
        // SPEC §3.2: live readers get a session.deleted event, then their stream ends.
        HttpResponse resp(200);
        resp.set("Content-Type", "application/json");
        resp.body = page_body({deleted_event(r.next)}, std::nullopt);
        set_read_headers(resp, r.next, r.next, true);
        co_return co_await reply(req, res, std::move(resp));
      }
      if (res.shutting_down()) break;
      if (Status s = query_asc(*stream, r.next, limit, filter, &r); !s) co_return co_await reply_status(req, res, s);
      if (!woke) break;
    }
    if (r.events.empty()) {
      HttpResponse resp(204);
      set_read_headers(resp, r.next, r.tail, r.closed);
      resp.set("Stream-Up-To-Date", "true");
      if (!r.closed) resp.set("Stream-Cursor", next_cursor(q->get("cursor")));
      co_return co_await reply(req, res, std::move(resp));
    }
  }
  HttpResponse resp(200);
  resp.set("Content-Type", "application/json");
  std::string etag = "\"s" + std::to_string(stream->record().id) + ":" + format_offset(start) + ":" +
                     format_offset(r.next) + (r.closed ? ":c" : "") + (r.more ? ":m" : "") + ":" +
                     std::to_string(std::hash<std::string>{}(req.query)) + "\"";  // :m = next_page
  resp.set("ETag", etag);
  if (const std::string* inm = req.header("if-none-match"); inm && if_none_match_matches(*inm, etag) && !now) {
    resp.status = 304;
  } else {
    resp.body = page_body(r.events, r.more ? std::optional<std::string>(format_offset(r.next)) : std::nullopt);
  }
  set_read_headers(resp, r.next, r.tail, r.closed);
  if (live) resp.set("Stream-Cursor", next_cursor(q->get("cursor")));
  co_await reply(req, res, std::move(resp));
}

// Anthropic-style live stream: one SSE message per event, `event: <type>`.
asio::awaitable<void> stream_events(ApiContext& ctx, const std::string& tenant,
                                    const std::string& id, HttpRequest& req, Responder& res) {
  auto q = QueryParams::parse(req.query);
  if (!q) co_return co_await reply_error(req, res, 400, "malformed query string");
  std::shared_ptr<Session> session;
  if (Status s = ctx.sessions->get(tenant, id, &session); !s) co_return co_await reply_status(req, res, s);
  auto stream = session->stream();
  EventFilter filter;
  if (std::string err = parse_filter(*q, &filter); !err.empty()) co_return co_await reply_error(req, res, 400, err);
  uint64_t pos = stream->tail();
  if (const std::string* o = q->get("offset"); o && *o != "now") {
    auto v = *o == "-1" ? std::optional<uint64_t>(0) : parse_offset(*o);
    if (!v) co_return co_await reply_error(req, res, 400, "malformed offset");
    pos = *v;
  }
  if (pos > stream->tail()) co_return co_await reply_error(req, res, 400, "offset is beyond the end of the session");
  HttpResponse head(200);
  head.set("Content-Type", "text/event-stream");
  head.set("Cache-Control", "no-cache");
  add_common_headers(req, &head);
  if (!co_await res.start_stream(std::move(head))) co_return;
  GaugeGuard open_sse(Metrics::get().open_sse);
  LiveWait live_wait(co_await asio::this_coro::executor);
  res.watch_peer_close([&live_wait] { live_wait.interrupt(); });
  auto heartbeat = std::chrono::milliseconds(static_cast<int64_t>(ctx.options.sse_heartbeat * 1000));
  auto next_key_check = steady_clock::now() + std::chrono::seconds(1);
  std::string out;
  for (;;) {
    // This stream is never recycled (the SDKs read it as one), so its key is checked again
    // every second, busy or quiet: a revoked one stops receiving within about a second (or a
    // heartbeat, on a quiet stream).
    if (auto now = steady_clock::now(); now >= next_key_check) {
      if (!still_authorized(ctx, req, tenant)) break;
      next_key_check = now + std::chrono::seconds(1);
    }
    QueryResult r;
    if (Status s = query_asc(*stream, pos, kMaxLimit, filter, &r, kMaxLiveScanBytes); !s) {
      std::string e = deleted_event(pos);
      co_await res.write("event: session.deleted\ndata: " + e + "\n\n");
      break;
    }
    pos = r.next;
    out.clear();
    bool ended = false;
    for (const auto& e : r.events) {
      std::string_view type = stored_event_type(e);
      out += "event: ";
      // The SDKs give two event names a meaning of their own: `error` ends the stream with an
      // exception and `ping` is dropped. A stored event of such a type is named `message`
      // instead (its data, with its type, is unchanged), so it cannot end or skip anything.
      out += type == "error" || type == "ping" ? std::string_view("message") : type;
      out += "\ndata: ";
      out += e;
      out += "\n\n";
      if (type == "session.deleted") ended = true;
    }
    if (!out.empty() && !co_await res.write(out)) break;
    if (ended || (r.closed && pos >= r.tail)) break;
    if (r.more) continue;
    if (res.shutting_down()) break;
    bool woke = co_await live_wait.wait(stream, pos, steady_clock::now() + heartbeat);
    if (res.shutting_down()) break;
    if (!woke && !co_await res.write("event: ping\ndata: {\"type\":\"ping\"}\n\n")) break;
  }
  co_await res.finish();
}

// ---- session handlers ---------------------------------------------------------------------

asio::awaitable<void> create_session(ApiContext& ctx, const std::string& tenant,
                                     std::optional<std::string> chosen_id, HttpRequest& req,
                                     Responder& res) {
  auto body = co_await parse_object_body(req, res);
  if (!body) co_return;
  json::object& b = *body;
  if (std::string err = check_session_fields(b); !err.empty()) co_return co_await reply_error(req, res, 400, err);
  json::object rec;
  rec["agent"] = agent_snapshot(b.if_contains("agent"));
  if (auto* v = b.if_contains("environment_id")) {
    if (!v->is_string()) co_return co_await reply_error(req, res, 400, "environment_id must be a string");
    rec["environment_id"] = *v;
  }
  if (auto* v = b.if_contains("title")) {
    if (!v->is_string() && !v->is_null()) co_return co_await reply_error(req, res, 400, "title must be a string or null");
    rec["title"] = *v;
  } else {
    rec["title"] = nullptr;
  }
  rec["metadata"] = json::object();
  if (auto* v = b.if_contains("metadata")) {
    if (std::string err = check_metadata(*v, false); !err.empty()) co_return co_await reply_error(req, res, 400, err);
    rec["metadata"] = *v;
  }
  for (const char* k : {"resources", "vault_ids"}) {
    if (auto* v = b.if_contains(k)) {
      if (!v->is_array()) co_return co_await reply_error(req, res, 400, std::string(k) + " must be an array");
      json::value copy = *v;
      if (std::string(k) == "resources") {
        std::string now = format_rfc3339_millis(now_unix_millis());
        for (auto& r : copy.as_array()) {
          r.as_object().erase("authorization_token");  // never echoed
          complete_resource(r.as_object(), now);
        }
      }
      rec[k] = copy;
    }
  }
  if (auto* v = b.if_contains("budget")) rec["budget"] = *v;
  if (auto* v = b.if_contains("ttl_seconds")) {
    if (!v->is_int64() || v->as_int64() < 0) co_return co_await reply_error(req, res, 400, "ttl_seconds must be a non-negative integer");
    rec["ttl_seconds"] = *v;
  }
  std::vector<std::string> initial;
  if (auto* v = b.if_contains("initial_events")) {
    if (!v->is_array()) co_return co_await reply_error(req, res, 400, "initial_events must be an array");
    if (!v->as_array().empty()) {
      ParsedEvents pe;
      if (Status s = parse_event_body(json::serialize(*v), ctx.options.max_events_per_request, now_unix_millis(), &pe); !s) {
        co_return co_await reply_status(req, res, s);
      }
      initial = std::move(pe.events);
    }
  }
  std::string id = chosen_id ? *chosen_id : "sesn_" + new_ulid();
  std::shared_ptr<Session> session;
  if (ctx.sessions->count(tenant) >= ctx.options.max_sessions_per_tenant &&
      !(chosen_id && ctx.sessions->get(tenant, id, &session))) {
    co_return co_await reply_error(req, res, 429, "tenant holds the maximum number of sessions (--max-sessions-per-tenant)");
  }
  SessionCreated created = co_await await_callback<SessionCreated>(
      [&](auto done) { ctx.sessions->create(tenant, id, rec, std::move(done)); });
  Status cs = created.status;
  session = std::move(created.session);
  if (cs.code() == Status::Code::kConflict && chosen_id) {
    // PUT: ensure. Identical title/metadata -> 200, otherwise 409.
    if (Status gs = ctx.sessions->get(tenant, id, &session); !gs) co_return co_await reply_status(req, res, gs);
    json::object existing = session->record();
    bool same = true;
    if (b.contains("title")) same = same && existing["title"] == rec["title"];
    if (b.contains("metadata")) same = same && existing["metadata"] == rec["metadata"];
    if (b.contains("ttl_seconds")) {
      same = same && existing.contains("ttl_seconds") && existing["ttl_seconds"] == rec["ttl_seconds"];
    }
    if (!same) co_return co_await reply_error(req, res, 409, "session " + id + " exists with a different title, metadata or ttl_seconds");
    // Also when repeated: the first answer may have been a 503 while the upload lagged.
    const uint64_t tail = session->stream()->tail();
    if (!co_await in_bucket_or_503(ctx, session, tail, true, "the session is", req, res)) co_return;
    co_return co_await reply_json(req, res, 200, render_session(*session));
  }
  if (!cs) co_return co_await reply_status(req, res, cs);
  if (!initial.empty()) {
    AppendOutcome out = co_await append_events(session->stream(), std::move(initial), false, std::nullopt, std::nullopt);
    if (out.result.outcome != AppendResult::Outcome::kAppended) co_return co_await reply_status(req, res, out.result.status);
  }
  const uint64_t tail = session->stream()->tail();
  if (!co_await in_bucket_or_503(ctx, session, tail, true, "the session is", req, res)) co_return;
  co_await reply_json(req, res, chosen_id ? 201 : 200, render_session(*session));
}

asio::awaitable<void> update_session(ApiContext& ctx, std::shared_ptr<Session> session,
                                     HttpRequest& req, Responder& res) {
  auto body = co_await parse_object_body(req, res);
  if (!body) co_return;
  json::object& b = *body;
  if (std::string err = check_session_fields(b); !err.empty()) co_return co_await reply_error(req, res, 400, err);
  json::object rec = session->record();
  json::object changed;
  if (auto* v = b.if_contains("title")) {
    if (!v->is_string() && !v->is_null()) co_return co_await reply_error(req, res, 400, "title must be a string or null");
    if (rec["title"] != *v) {
      rec["title"] = *v;
      changed["title"] = *v;
    }
  }
  if (auto* v = b.if_contains("metadata"); v && !v->is_null()) {
    if (std::string err = check_metadata(*v, true); !err.empty()) co_return co_await reply_error(req, res, 400, err);
    json::object md = rec.contains("metadata") && rec["metadata"].is_object() ? rec["metadata"].as_object() : json::object();
    json::object before = md;
    for (const auto& [k, val] : v->as_object()) {
      if (val.is_null()) md.erase(k);
      else md[k] = val;
    }
    if (md.size() > kMaxMetadataPairs && md.size() > before.size()) {
      co_return co_await reply_error(req, res, 400, "metadata holds at most 16 key-value pairs");
    }
    if (md != before) {
      rec["metadata"] = md;
      changed["metadata"] = md;
    }
  }
  if (auto* v = b.if_contains("budget")) {
    if (rec["budget"] != *v) {
      rec["budget"] = *v;
      changed["budget"] = *v;
    }
  }
  if (b.contains("vault_ids")) co_return co_await reply_error(req, res, 400, "updating vault_ids is not supported");
  if (auto* v = b.if_contains("agent"); v && v->is_object()) {
    json::object agent = rec.contains("agent") && rec["agent"].is_object() ? rec["agent"].as_object() : agent_snapshot(nullptr);
    for (const char* k : {"tools", "mcp_servers"}) {
      if (auto* x = v->as_object().if_contains(k)) agent[k] = *x;
    }
    rec["agent"] = agent;
    changed["agent"] = agent;
  }
  if (!changed.empty()) {
    if (Status s = ctx.sessions->save(session, rec); !s) co_return co_await reply_status(req, res, s);
    std::string fields = json::serialize(changed);
    fields = fields.substr(1, fields.size() - 2);
    std::vector<std::string> ev{make_stored_event("session.updated", fields, now_unix_millis())};
    AppendOutcome out =
        co_await append_events(session->stream(), std::move(ev), false, std::nullopt, std::nullopt);
    const uint64_t next = out.result.next_position;
    if (!co_await in_bucket_or_503(ctx, session, next, true, "the update is", req, res)) co_return;
  } else {
    // Nothing changed — perhaps because this retries an update answered 503: wait for the
    // bucket all the same.
    const uint64_t tail = session->stream()->tail();
    if (!co_await in_bucket_or_503(ctx, session, tail, true, "the update is", req, res)) co_return;
  }
  co_await reply_json(req, res, 200, render_session(*session));
}

asio::awaitable<void> list_sessions(ApiContext& ctx, const std::string& tenant, HttpRequest& req,
                                    Responder& res) {
  auto q = QueryParams::parse(req.query);
  if (!q) co_return co_await reply_error(req, res, 400, "malformed query string");
  size_t limit = 20;
  if (const std::string* l = q->get("limit"); l && !l->empty()) {
    auto v = parse_offset(*l);
    if (!v || *v == 0 || l->find('_') != std::string::npos) co_return co_await reply_error(req, res, 400, "limit must be a positive integer");
    limit = std::min<uint64_t>(*v, 1000);
  }
  bool asc = false;
  if (const std::string* o = q->get("order"); o && !o->empty()) {
    if (*o == "asc") asc = true;
    else if (*o != "desc") co_return co_await reply_error(req, res, 400, "order must be asc or desc");
  }
  bool include_archived = false;
  if (const std::string* v = q->get("include_archived")) {
    if (*v != "true" && *v != "false") {
      co_return co_await reply_error(req, res, 400, "include_archived must be true or false");
    }
    include_archived = *v == "true";
  }
  std::set<std::string> statuses;
  for (const char* k : {"statuses", "statuses[]"}) {
    for (const auto& v : q->all(k)) {
      size_t start = 0;
      while (start <= v.size()) {
        size_t c = v.find(',', start);
        std::string s = v.substr(start, c == std::string::npos ? std::string::npos : c - start);
        if (!s.empty()) {
          if (s != "running" && s != "idle" && s != "rescheduling" && s != "terminated") {
            const std::string message = "statuses: unknown status " + s.substr(0, 64) +
                                        " (running, idle, rescheduling, terminated)";
            co_return co_await reply_error(req, res, 400, message);
          }
          statuses.insert(s);
        }
        if (c == std::string::npos) break;
        start = c + 1;
      }
    }
  }
  const std::string* agent_id = q->get("agent_id");
  std::vector<std::pair<std::string, std::string>> meta;
  for (const auto& [k, v] : q->items()) {
    if (k.rfind("metadata", 0) != 0) continue;
    if (k.rfind("metadata[", 0) != 0 || k.back() != ']' || k.size() < 11) {
      co_return co_await reply_error(req, res, 400, "metadata filters are metadata[KEY]=VALUE");
    }
    meta.emplace_back(k.substr(9, k.size() - 10), v);
  }
  EventFilter created;  // reuse bound parsing for created_at[…]
  if (std::string err = parse_filter(*q, &created); !err.empty()) co_return co_await reply_error(req, res, 400, err);

  struct Item {
    int64_t created;
    std::string id;
    std::shared_ptr<Session> s;
  };
  std::vector<Item> items;
  for (auto& s : ctx.sessions->list(tenant)) {
    json::object rec = s->record();
    bool archived = rec.contains("archived_at") && !rec["archived_at"].is_null();
    if (archived && !include_archived) continue;
    if (agent_id) {
      auto* a = rec.if_contains("agent");
      if (!a || !a->is_object() || !a->as_object().contains("id") || a->as_object().at("id") != json::value(*agent_id)) continue;
    }
    bool ok = true;
    for (const auto& [k, v] : meta) {
      auto* md = rec.if_contains("metadata");
      if (!md || !md->is_object()) { ok = false; break; }
      auto* val = md->as_object().if_contains(k);
      if (!val || !val->is_string() || val->as_string() != v) { ok = false; break; }
    }
    if (!ok) continue;
    int64_t c = s->created_ms();
    if ((created.gt && !(c > *created.gt)) || (created.gte && !(c >= *created.gte)) ||
        (created.lt && !(c < *created.lt)) || (created.lte && !(c <= *created.lte))) continue;
    if (!statuses.empty()) {
      std::string st = archived ? "terminated" : s->summary().status;
      if (!archived) s->stream()->ensure_loaded();  // derived status comes from the log
      st = archived ? "terminated" : s->summary().status;
      if (!statuses.count(st)) continue;
    }
    items.push_back(Item{c, s->id(), s});
  }
  auto less = [](const Item& a, const Item& b) { return a.created != b.created ? a.created < b.created : a.id < b.id; };
  std::sort(items.begin(), items.end(), [&](const Item& a, const Item& b) { return asc ? less(a, b) : less(b, a); });
  size_t start = 0;
  if (const std::string* page = q->get("page"); page && !page->empty()) {
    // Cursor "<created_ms>:<id>": continue after that item (in the requested order); a cursor
    // starting with '<' pages backwards (prev_page).
    std::string p = *page;
    bool back = p[0] == '<';
    if (back) p = p.substr(1);
    size_t colon = p.find(':');
    if (colon == std::string::npos) co_return co_await reply_error(req, res, 400, "invalid page cursor");
    auto created = parse_canonical_uint(std::string_view(p).substr(0, colon));
    if (!created) co_return co_await reply_error(req, res, 400, "invalid page cursor");
    Item pivot{static_cast<int64_t>(*created), p.substr(colon + 1), nullptr};
    auto before = [&](const Item& a, const Item& b) { return asc ? less(a, b) : less(b, a); };
    size_t idx = std::partition_point(items.begin(), items.end(), [&](const Item& it) { return !before(pivot, it); }) - items.begin();
    if (back) {
      size_t first = std::partition_point(items.begin(), items.end(), [&](const Item& it) { return before(it, pivot); }) - items.begin();
      start = first > limit ? first - limit : 0;
    } else {
      start = idx;
    }
  }
  std::vector<std::string> data;
  size_t end = std::min(items.size(), start + limit);
  for (size_t i = start; i < end; ++i) data.push_back(render_session(*items[i].s));
  auto cursor = [](const Item& it) { return std::to_string(it.created) + ":" + it.id; };
  std::string body = "{\"data\":" + join_array(data) + ",\"next_page\":";
  body += end < items.size() ? json_quote(cursor(items[end - 1])) : "null";
  body += ",\"prev_page\":";
  body += start > 0 && start < items.size() + 1 && end > start ? json_quote("<" + cursor(items[start])) : "null";
  body += "}";
  co_await reply_json(req, res, 200, std::move(body));
}

}  // namespace

bool valid_session_id(std::string_view id) {
  if (id.empty() || id.size() > 128 || id == "." || id == "..") return false;
  for (char c : id) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '~' || c == '-';
    if (!ok) return false;
  }
  return true;
}

asio::awaitable<void> handle_sessions(ApiContext& ctx, const std::string& tenant,
                                      const std::string& rest, HttpRequest& req, Responder& res) {
  const std::string& m = req.method;
  if (rest.empty() || rest == "/") {
    if (m == "POST") co_return co_await create_session(ctx, tenant, std::nullopt, req, res);
    if (m == "GET") co_return co_await list_sessions(ctx, tenant, req, res);
    co_return co_await reply_error(req, res, 405, "method not allowed on /v1/sessions");
  }
  // rest = "/{id}[/sub]"
  std::string path = rest.substr(1);
  size_t slash = path.find('/');
  auto decoded = percent_decode(path.substr(0, slash), false);
  if (!decoded) co_return co_await reply_error(req, res, 400, "malformed session id");
  std::string id = *decoded;
  std::string sub = slash == std::string::npos ? "" : path.substr(slash);
  if (!valid_session_id(id)) {
    // (Message built first: GCC 12 mishandles temporaries of a conditional inside co_await.)
    co_return co_await reply_error(req, res, 400, kInvalidSessionId);
  }
  if (sub.empty() && m == "PUT") co_return co_await create_session(ctx, tenant, id, req, res);
  if (sub == "/events" && m == "POST") co_return co_await post_events(ctx, tenant, id, req, res);
  if (sub == "/events" && m == "GET") co_return co_await get_events(ctx, tenant, id, req, res);
  if ((sub == "/events/stream" || sub == "/stream") && m == "GET") co_return co_await stream_events(ctx, tenant, id, req, res);

  std::shared_ptr<Session> session;
  if (Status s = ctx.sessions->get(tenant, id, &session); !s) {
    if (m == "HEAD") co_return co_await reply(req, res, HttpResponse(404));
    co_return co_await reply_status(req, res, s);
  }
  if (sub == "/events" && m == "HEAD") {
    HttpResponse r(200);
    r.set("Content-Type", "application/json");
    uint64_t tail = session->stream()->tail();
    r.set("Stream-Next-Offset", format_offset(tail));
    if (session->stream()->closed()) r.set("Stream-Closed", "true");
    r.set("Cache-Control", "no-store");
    co_return co_await reply(req, res, std::move(r));
  }
  if (sub.empty() && m == "GET") co_return co_await reply_json(req, res, 200, render_session(*session));
  if (sub.empty() && m == "POST") co_return co_await update_session(ctx, session, req, res);
  if (sub.empty() && m == "DELETE") {
    if (Status s = ctx.sessions->remove(session); !s) co_return co_await reply_status(req, res, s);
    if (ctx.indexer) ctx.indexer->session_removed(tenant, id, session->catalog_id());
    co_return co_await reply_json(req, res, 200, "{\"id\":" + json_quote(id) + ",\"type\":\"session_deleted\"}");
  }
  if (sub == "/archive" && m == "POST") {
    json::object rec = session->record();
    if (!rec.contains("archived_at") || rec["archived_at"].is_null()) {
      rec["archived_at"] = format_rfc3339_millis(now_unix_millis());
      if (Status s = ctx.sessions->save(session, rec); !s) co_return co_await reply_status(req, res, s);
    }
    co_return co_await reply_json(req, res, 200, render_session(*session));
  }
  if (sub == "/export" && m == "GET") {
    // NDJSON of every event, streamed.
    HttpResponse head(200);
    head.set("Content-Type", "application/x-ndjson");
    head.set("Content-Disposition", "attachment; filename=\"" + id + ".jsonl\"");
    add_common_headers(req, &head);
    if (!co_await res.start_stream(std::move(head))) co_return;
    auto stream = session->stream();
    uint64_t tail = stream->tail();
    for (uint64_t pos = 0; pos < tail;) {
      std::vector<std::string> chunk;
      if (!stream->read_range(pos, tail, kReadChunk, &chunk) || chunk.empty()) {
        res.abort();  // never let a failed read look like a complete export
        co_return;
      }
      std::string out;
      for (auto& e : chunk) {
        out += e;
        out += '\n';
      }
      pos += chunk.size();
      if (!co_await res.write(out)) break;
    }
    co_return co_await res.finish();
  }
  co_await reply_error(req, res, 404, "no such endpoint: " + m + " /v1/sessions" + rest);
}

}  // namespace ds
