#include "api/streams_api.h"

#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <strings.h>

#include "api/append_headers.h"
#include "api/await.h"
#include "api/http_util.h"
#include "api/json_body.h"
#include "api/live.h"
#include "api/sse_writer.h"
#include "api/subscriptions_api.h"
#include "core/subscriptions.h"
#include "core/content_type.h"
#include "core/clock.h"
#include "core/metrics.h"
#include "store/offset.h"
#include "store/tier.h"

namespace ds {

namespace asio = boost::asio;
using std::chrono::steady_clock;

namespace {

constexpr size_t kMaxReadChunk = 1u << 20;  // bytes of messages per live (SSE, long-poll) response
// Bytes of messages per plain catch-up response ("a server-defined maximum chunk size", §5.6):
// bigger pages halve the per-request cost of catching up; still bounded per concurrent reader.
constexpr size_t kMaxCatchUpChunk = 4u << 20;
constexpr std::string_view kStreamPrefix = "/v1/stream/";

bool header_is_true(const HttpRequest& req, std::string_view name) {
  const std::string* v = req.header(name);
  return v && strcasecmp(v->c_str(), "true") == 0;
}

asio::awaitable<void> reply(const HttpRequest& req, Responder& res, HttpResponse r) {
  add_common_headers(req, &r);
  co_await res.send(std::move(r));
}

asio::awaitable<void> reply_error(const HttpRequest& req, Responder& res, int status,
                                  std::string_view message) {
  co_await reply(req, res, error_response(status, error_type_for_status(status), message,
                                          req.request_id));
}

asio::awaitable<void> reply_status(const HttpRequest& req, Responder& res, const Status& s) {
  co_await reply(req, res, error_response(s, req.request_id));
}

std::string join_body(const std::string& content_type, const MessageBatch& msgs) {
  std::string body;
  if (is_json_type(content_type)) {
    msgs.append_json_array(&body);
  } else {
    msgs.append_concatenated(&body);
  }
  return body;
}

std::string etag_for(const Stream& s, uint64_t from, uint64_t next, bool closed) {
  std::string e = "\"" + std::to_string(s.record().id) + ":" + format_offset(from) + ":" +
                  format_offset(next);
  if (closed) e += ":c";
  return e + "\"";
}

// Strips "/v1/stream/" from a Stream-Forked-From value.
std::string fork_source_name(const std::string& v) {
  std::string_view name = v;
  if (name.starts_with(kStreamPrefix)) {
    name.remove_prefix(kStreamPrefix.size());
  } else if (name.starts_with('/')) {
    name.remove_prefix(1);
  }
  return canonical_stream_name(name);
}

void set_stream_headers(HttpResponse& r, uint64_t next, bool closed) {
  r.set("Stream-Next-Offset", format_offset(next));
  if (closed) r.set("Stream-Closed", "true");
}

// ---- PUT ----------------------------------------------------------------------------------

asio::awaitable<void> handle_put(ApiContext& ctx, const std::string& tenant,
                                 const std::string& name, HttpRequest& req, Responder& res) {
  CreateSpec spec;
  spec.tenant = tenant;
  spec.path = name;
  const std::string* ttl = req.header("stream-ttl");
  const std::string* exp = req.header("stream-expires-at");
  if (ttl) {
    auto v = parse_canonical_uint(*ttl, 100ull * 365 * 86400);
    if (!v) co_return co_await reply_error(req, res, 400, "Stream-TTL must be a non-negative integer number of seconds");
    spec.ttl_seconds = *v;
  }
  if (exp) {
    if (!parse_rfc3339(*exp)) co_return co_await reply_error(req, res, 400, "Stream-Expires-At must be an RFC 3339 timestamp");
    spec.expires_at = *exp;
  }
  if (ttl && exp) co_return co_await reply_error(req, res, 400, "send Stream-TTL or Stream-Expires-At, not both");
  spec.closed = header_is_true(req, "stream-closed");

  const std::string* forked = req.header("stream-forked-from");
  const std::string* fork_off = req.header("stream-fork-offset");
  const std::string* fork_sub = req.header("stream-fork-sub-offset");
  if (!forked && (fork_off || fork_sub)) {
    co_return co_await reply_error(req, res, 400, "Stream-Fork-Offset and Stream-Fork-Sub-Offset need Stream-Forked-From");
  }
  std::string content_type;
  if (const std::string* ct = req.header("content-type"); ct && !ct->empty()) {
    content_type = *ct;
    for (auto& c : content_type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (forked) {
    spec.forked_from = fork_source_name(*forked);
    if (fork_off && *fork_off != "-1") {
      auto v = parse_offset(*fork_off);
      if (!v) co_return co_await reply_error(req, res, 400, "Stream-Fork-Offset is not a valid offset");
      spec.fork_offset = *v;
    } else if (fork_off) {
      spec.fork_offset = 0;
    }
    if (fork_sub) {
      auto v = parse_canonical_uint(*fork_sub);
      if (!v) co_return co_await reply_error(req, res, 400, "Stream-Fork-Sub-Offset must be a non-negative integer");
      spec.fork_sub_offset = *v;
    }
    if (content_type.empty()) {
      // Inherit the source's type. A source that is gone is create()'s to answer for: an
      // existing fork re-confirmed with the same headers is still a 200.
      std::shared_ptr<Stream> src;
      if (ctx.streams->find(tenant, *spec.forked_from, &src) && src) {
        content_type = src->record().content_type;
      }
    }
  } else if (content_type.empty()) {
    content_type = "application/octet-stream";
  }
  spec.content_type = content_type;
  spec.json_mode = is_json_type(content_type);
  if (!req.body.empty()) {
    if (spec.json_mode) {
      if (Status s = split_json_messages(req.body, &spec.messages); !s) {
        co_return co_await reply_status(req, res, s);
      }
      if (spec.messages.size() > ctx.options.max_events_per_request) {
        co_return co_await reply_error(req, res, 400, "too many messages in one request (limit --max-events-per-request)");
      }
    } else {
      spec.messages.push_back(std::move(req.body));
    }
  }
  CreateOutcome out = co_await await_callback<CreateOutcome>(
      [&](auto done) { ctx.streams->create(std::move(spec), std::move(done)); });
  if (!out.status) co_return co_await reply_status(req, res, out.status);
  if (out.created && ctx.subscriptions) {  // durable here; the S3 wait below may still fail
    ctx.subscriptions->note_append(tenant, name, out.stream->record().id,
                                   out.stream->record().fork_offset);
  }
  if (ctx.tier) {
    // Also when repeated (200): the first answer may have been a 503 while the upload lagged.
    // --durability s3: a create, like an append, is acknowledged once in the bucket — its
    // stream.json (an empty stream too: a restore needs it) and its initial data.
    Status up = co_await await_callback<Status>([&](auto done) {
      ctx.tier->when_uploaded(out.stream, out.next_position, std::move(done), true);
    });
    if (!up) {
      std::string message = "the stream is created and its data stored locally but not yet in "
                            "the S3 bucket (" + up.message() + "); retry later";
      HttpResponse u = error_response(503, "overloaded_error", message, req.request_id);
      u.set("Retry-After", "1");
      co_return co_await reply(req, res, std::move(u));
    }
  }
  HttpResponse r(out.created ? 201 : 200);
  r.set("Content-Type", out.stream->record().content_type);
  set_stream_headers(r, out.next_position, out.closed);
  if (out.created) {
    r.set("Location", absolute_location(req.header("host"), req.path));
  }
  co_await reply(req, res, std::move(r));
}

// ---- POST ---------------------------------------------------------------------------------

asio::awaitable<void> handle_post(ApiContext& ctx, const std::string& tenant,
                                  const std::string& name, HttpRequest& req, Responder& res) {
  std::shared_ptr<Stream> stream;
  if (Status s = ctx.streams->find(tenant, name, &stream); !s) co_return co_await reply_status(req, res, s);
  AppendHeaders h;
  if (std::string err = parse_append_headers(req, &h); !err.empty()) {
    co_return co_await reply_error(req, res, 400, err);
  }
  AppendRequest ar;
  ar.close = h.close;
  ar.producer = std::move(h.producer);
  ar.stream_seq = std::move(h.stream_seq);
  if (req.body.empty()) {
    if (!ar.close) co_return co_await reply_error(req, res, 400, "empty body (send Stream-Closed: true to close)");
  } else {
    const std::string* ct = req.header("content-type");
    if (!ct || ct->empty()) co_return co_await reply_error(req, res, 400, "Content-Type is required");
    const std::string& stream_ct = stream->record().content_type;
    if (!same_media_type(*ct, stream_ct)) {
      if (stream->closed()) {
        HttpResponse r(409);
        set_stream_headers(r, stream->tail(), true);
        co_return co_await reply(req, res, std::move(r));
      }
      co_return co_await reply_error(req, res, 409, "Content-Type does not match the stream's (" + stream_ct + ")");
    }
    if (is_json_type(stream_ct)) {
      if (Status s = split_json_messages(req.body, &ar.messages); !s) co_return co_await reply_status(req, res, s);
      if (ar.messages.empty()) co_return co_await reply_error(req, res, 400, "empty JSON array: nothing to append");
      if (ar.messages.size() > ctx.options.max_events_per_request) {
        co_return co_await reply_error(req, res, 400, "too many messages in one request (limit --max-events-per-request)");
      }
    } else {
      ar.messages.push_back(std::move(req.body));
    }
  }
  bool has_data = !ar.messages.empty();
  bool has_producer = ar.producer.has_value();
  AppendResult r = co_await await_callback<AppendResult>(
      [&](auto done) { stream->append(std::move(ar), std::move(done)); });
  using O = AppendResult::Outcome;
  if (auto rejection = writer_state_rejection(r, req.request_id)) {
    co_return co_await reply(req, res, std::move(*rejection));
  }
  if (r.outcome == O::kError) co_return co_await reply_status(req, res, r.status);
  if (ctx.subscriptions && r.outcome == O::kAppended && has_data) {  // durable (locally) here
    ctx.subscriptions->note_append(tenant, name, stream->record().id, r.first_position);
  }
  // New data from a producer is 200; plain appends, duplicates and closes are 204.
  HttpResponse out(r.outcome == O::kClosed ? 409
                   : r.outcome == O::kAppended && has_producer && has_data ? 200
                                                                           : 204);
  if (ctx.tier && out.status < 300 &&
      (r.outcome == O::kAppended || r.outcome == O::kDuplicate ||
       r.outcome == O::kAlreadyClosed)) {
    // --durability s3: acknowledge only once the data is in the bucket (uploads are grouped);
    // a close (also a repeated one: the first answer may have been a 503) once the bucket's
    // stream.json says closed.
    Status up = co_await await_callback<Status>([&](auto done) {
      ctx.tier->when_uploaded(stream, r.next_position, std::move(done));
    });
    if (!up) {
      std::string message = "data is stored locally but not yet in the S3 bucket (" + up.message() +
                            "); retry later";
      HttpResponse u = error_response(503, "overloaded_error", message, req.request_id);
      u.set("Retry-After", "1");
      co_return co_await reply(req, res, std::move(u));
    }
  }
  set_stream_headers(out, r.next_position, r.closed);
  if (has_producer && r.outcome != O::kClosed) set_producer_headers(r, &out);
  co_await reply(req, res, std::move(out));
}

// ---- GET ----------------------------------------------------------------------------------

HttpResponse read_response(const HttpRequest& req, Stream& s, uint64_t from, const BatchReadResult& rr,
                           bool live, const std::string* cursor) {
  const std::string& ct = s.record().content_type;
  std::string etag = etag_for(s, from, rr.next_position, rr.closed);
  const std::string* inm = req.header("if-none-match");
  HttpResponse r(200);
  if (inm && if_none_match_matches(*inm, etag)) {
    r.status = 304;
  } else {
    r.body = join_body(ct, rr.messages);
  }
  r.set("Content-Type", ct);
  r.set("ETag", etag);
  set_stream_headers(r, rr.next_position, rr.closed);
  if (rr.up_to_date) r.set("Stream-Up-To-Date", "true");
  if (live && !rr.closed) r.set("Stream-Cursor", next_cursor(cursor));
  r.set("Cache-Control", rr.messages.empty() ? "no-store" : "private, max-age=60, stale-while-revalidate=300");
  return r;
}

// The next SSE `event: data` block for a reader at `pos`, with the resume state. Readers at the
// tail share one encoding per append (LiveFrameCache); a reader that is behind reads on its own.
struct SseData {
  std::shared_ptr<const LiveFrameCache::Frame> frame;  // null: no messages at pos
  uint64_t next_position = 0;
  bool up_to_date = false;
  bool closed = false;
};

Status read_sse_data(Stream& stream, uint64_t pos, SseEncoding enc, SseData* out) {
  std::string_view variant = enc == SseEncoding::kJson   ? "ds-sse-json"
                             : enc == SseEncoding::kText ? "ds-sse-text"
                                                         : "ds-sse-base64";
  uint64_t tail = 0;
  bool closed = false;
  if (Status s = stream.durable_state(&tail, &closed); !s) return s;
  if (pos < tail) {
    if (auto f = stream.live_frames().find(pos, tail, closed, variant)) {
      out->frame = std::move(f);
      out->next_position = tail;  // shared frames always reach the tail they were read at
      out->up_to_date = true;
      out->closed = closed;
      return Status::ok();
    }
  }
  BatchReadResult rr;
  if (Status s = stream.read(pos, kMaxReadChunk, &rr); !s) return s;
  out->next_position = rr.next_position;
  out->up_to_date = rr.up_to_date;
  out->closed = rr.closed;
  out->frame.reset();
  if (!rr.messages.empty()) {
    auto f = std::make_shared<LiveFrameCache::Frame>();
    append_sse_data(enc, rr.messages, &f->bytes);
    f->next_position = rr.next_position;
    f->count = rr.messages.size();
    if (rr.up_to_date) stream.live_frames().put(pos, rr.tail, rr.closed, variant, f);
    out->frame = std::move(f);
  }
  return Status::ok();
}

asio::awaitable<void> serve_sse(ApiContext& ctx, const HttpRequest& req, Responder& res,
                                std::shared_ptr<Stream> stream, uint64_t from,
                                const std::string* cursor) {
  const std::string& ct = stream->record().content_type;
  SseEncoding enc = is_json_type(ct) ? SseEncoding::kJson
                    : is_text_type(ct) ? SseEncoding::kText
                                       : SseEncoding::kBase64;
  HttpResponse head(200);
  head.set("Content-Type", "text/event-stream");
  head.set("Cache-Control", "no-cache");
  if (enc == SseEncoding::kBase64) head.set("Stream-SSE-Data-Encoding", "base64");
  add_common_headers(req, &head);
  if (!co_await res.start_stream(std::move(head))) co_return;
  GaugeGuard open_sse(Metrics::get().open_sse);
  LiveWait live_wait(co_await asio::this_coro::executor);
  res.watch_peer_close([&live_wait] { live_wait.interrupt(); });

  auto started = steady_clock::now();
  auto recycle_at = started + std::chrono::milliseconds(static_cast<int64_t>(ctx.options.sse_max_duration * 1000));
  auto heartbeat = std::chrono::milliseconds(static_cast<int64_t>(ctx.options.sse_heartbeat * 1000));
  uint64_t pos = from;
  bool sent_control = false;
  std::string out;
  const CursorSequence cursors(cursor);
  for (;;) {
    SseData rr;
    if (Status s = read_sse_data(*stream, pos, enc, &rr); !s) break;  // deleted: end the stream
    out.clear();
    if (rr.frame) {
      out += rr.frame->bytes;
      append_sse_control(format_offset(rr.next_position), cursors.next(), rr.up_to_date,
                         rr.closed, &out);
      pos = rr.next_position;
      sent_control = true;
      if (!co_await res.write(out) || rr.closed) break;
      continue;
    }
    if (rr.closed) {
      append_sse_control(format_offset(rr.next_position), std::nullopt, true, true, &out);
      co_await res.write(out);
      break;
    }
    if (!sent_control) {
      append_sse_control(format_offset(rr.next_position), cursors.next(), true, false, &out);
      sent_control = true;
      if (!co_await res.write(out)) break;
    }
    auto now = steady_clock::now();
    if (now >= recycle_at || res.shutting_down()) break;
    bool woke = co_await live_wait.wait(stream, pos, std::min(now + heartbeat, recycle_at));
    if (res.shutting_down() || stream->deleted() || stream->soft_deleted) break;
    if (!woke && steady_clock::now() < recycle_at) {
      if (!co_await res.write(": keep-alive\n\n")) break;
    }
  }
  co_await res.finish();
}

asio::awaitable<void> handle_get(ApiContext& ctx, const std::string& tenant,
                                 const std::string& name, HttpRequest& req, Responder& res) {
  auto params = QueryParams::parse(req.query);
  if (!params) co_return co_await reply_error(req, res, 400, "malformed query string");
  if (params->count("offset") > 1) co_return co_await reply_error(req, res, 400, "offset given more than once");
  const std::string* offset = params->get("offset");
  const std::string* live = params->get("live");
  const std::string* cursor = params->get("cursor");
  if (live && *live != "long-poll" && *live != "sse") {
    co_return co_await reply_error(req, res, 400, "live must be long-poll or sse");
  }
  if (live && !offset) co_return co_await reply_error(req, res, 400, "live reads need an offset");
  std::optional<uint64_t> from;
  bool now = false;
  if (offset) {
    if (*offset == "-1") {
      from = 0;
    } else if (*offset == "now") {
      now = true;
    } else {
      from = parse_offset(*offset);
      if (!from) co_return co_await reply_error(req, res, 400, "malformed offset");
    }
  } else {
    from = 0;
  }
  std::shared_ptr<Stream> stream;
  if (Status s = ctx.streams->find(tenant, name, &stream); !s) co_return co_await reply_status(req, res, s);
  stream->touch();
  uint64_t tail = stream->tail();
  if (now) from = tail;
  if (*from > tail) co_return co_await reply_error(req, res, 400, "offset is beyond the end of the stream");

  if (live && *live == "sse") co_return co_await serve_sse(ctx, req, res, stream, *from, cursor);

  BatchReadResult rr;
  size_t chunk = live ? kMaxReadChunk : kMaxCatchUpChunk;
  if (Status s = stream->read(*from, chunk, &rr); !s) co_return co_await reply_status(req, res, s);
  if (!live) {
    HttpResponse r = read_response(req, *stream, *from, rr, false, cursor);
    if (now) {
      r.set("Cache-Control", "no-store");
      if (const std::string* et = r.get("ETag")) (void)et;
    }
    co_return co_await reply(req, res, std::move(r));
  }
  // Long-poll.
  auto deadline = steady_clock::now() +
                  std::chrono::milliseconds(static_cast<int64_t>(ctx.options.long_poll_timeout * 1000));
  GaugeGuard waiting(Metrics::get().waiting_long_polls);
  LiveWait live_wait(co_await asio::this_coro::executor);
  res.watch_peer_close([&live_wait] { live_wait.interrupt(); });
  while (rr.messages.empty() && !rr.closed) {
    bool woke = co_await live_wait.wait(stream, *from, deadline);
    if (res.shutting_down()) break;
    if (stream->soft_deleted || stream->deleted()) {
      // Deleted while waiting: the answer a new read of the path gets (410 for a stream kept
      // for its forks, 404 otherwise), not "keep polling".
      Status gone = stream->soft_deleted ? Status::gone("stream was deleted")
                                         : Status::not_found("stream not found");
      co_return co_await reply_status(req, res, gone);
    }
    if (Status s = stream->read(*from, kMaxReadChunk, &rr); !s) co_return co_await reply_status(req, res, s);
    if (!woke) break;
  }
  if (rr.messages.empty()) {
    HttpResponse r(204);
    set_stream_headers(r, rr.next_position, rr.closed);
    r.set("Stream-Up-To-Date", "true");
    if (!rr.closed) r.set("Stream-Cursor", next_cursor(cursor));
    r.set("Cache-Control", "no-store");
    co_return co_await reply(req, res, std::move(r));
  }
  co_await reply(req, res, read_response(req, *stream, *from, rr, true, cursor));
}

// ---- HEAD / DELETE ------------------------------------------------------------------------

asio::awaitable<void> handle_head(ApiContext& ctx, const std::string& tenant,
                                  const std::string& name, HttpRequest& req, Responder& res) {
  std::shared_ptr<Stream> stream;
  if (Status s = ctx.streams->find(tenant, name, &stream); !s) {
    auto [status, type] = http_status_for(s);
    co_return co_await reply(req, res, HttpResponse(status));
  }
  HttpResponse r(200);
  const StreamRecord& rec = stream->record();
  r.set("Content-Type", rec.content_type);
  set_stream_headers(r, stream->tail(), stream->closed());
  if (rec.ttl_seconds) r.set("Stream-TTL", std::to_string(*rec.ttl_seconds));
  if (rec.expires_at) r.set("Stream-Expires-At", *rec.expires_at);
  r.set("Cache-Control", "no-store");
  co_await reply(req, res, std::move(r));
}

asio::awaitable<void> handle_delete(ApiContext& ctx, const std::string& tenant,
                                    const std::string& name, HttpRequest& req, Responder& res) {
  if (Status s = ctx.streams->remove(tenant, name); !s) co_return co_await reply_status(req, res, s);
  co_await reply(req, res, HttpResponse(204));
}

}  // namespace

std::string canonical_stream_name(std::string_view raw) { return normalize_percent_escapes(raw); }

std::string validate_stream_name(const std::string& name) {
  if (name.empty()) return "stream path is empty";
  if (name.size() > 1024) return "stream path is longer than 1024 bytes";
  auto decoded = percent_decode(name, false);
  if (!decoded) return "stream path has a malformed percent-escape";
  if (decoded->find('\0') != std::string::npos) return "stream path contains NUL";
  size_t start = 0;
  while (start <= decoded->size()) {
    size_t slash = decoded->find('/', start);
    std::string_view seg(decoded->data() + start,
                         (slash == std::string::npos ? decoded->size() : slash) - start);
    if (seg == "..") return "stream path contains a '..' segment";
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return "";
}

asio::awaitable<void> handle_stream(ApiContext& ctx, const std::string& tenant,
                                    const std::string& raw_name, HttpRequest& req,
                                    Responder& res) {
  const std::string name = canonical_stream_name(raw_name);
  if (std::string err = validate_stream_name(name); !err.empty()) {
    co_return co_await reply_error(req, res, 400, err);
  }
  // The protocol reserves paths whose first segment is __ds (subscriptions).
  if (name == "__ds" || name.starts_with("__ds/")) {
    co_return co_await handle_reserved(ctx, tenant, name, req, res);
  }
  const std::string& m = req.method;
  if (m == "PUT") co_return co_await handle_put(ctx, tenant, name, req, res);
  if (m == "POST") co_return co_await handle_post(ctx, tenant, name, req, res);
  if (m == "GET") co_return co_await handle_get(ctx, tenant, name, req, res);
  if (m == "HEAD") co_return co_await handle_head(ctx, tenant, name, req, res);
  if (m == "DELETE") co_return co_await handle_delete(ctx, tenant, name, req, res);
  HttpResponse r = error_response(405, "invalid_request_error", "method not allowed", req.request_id);
  r.set("Allow", "GET, HEAD, POST, PUT, DELETE, OPTIONS");
  co_await reply(req, res, std::move(r));
}

}  // namespace ds
