#include "api/search_api.h"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <chrono>
#include <map>
#include <set>

#include "api/blocking.h"
#include "api/http_util.h"
#include "api/live.h"
#include "search/event_text.h"
#include "search/indexer.h"
#include "search/query.h"
#include "store/offset.h"

namespace ds {

namespace asio = boost::asio;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr size_t kDefaultLimit = 20;
constexpr size_t kMaxLimit = 1000;
constexpr size_t kMaxPageOffset = 100000;
constexpr auto kPollInterval = std::chrono::milliseconds(2);

asio::awaitable<void> reply(const HttpRequest& req, Responder& res, HttpResponse r) {
  add_common_headers(req, &r);
  co_await res.send(std::move(r));
}

asio::awaitable<void> reply_error(const HttpRequest& req, Responder& res, int status,
                                  std::string_view message) {
  co_await reply(req, res,
                 error_response(status, error_type_for_status(status), message, req.request_id));
}

// Common query parameters of both endpoints.
struct SearchParams {
  ParsedQuery query;
  std::vector<std::string> types;
  size_t limit = kDefaultLimit;
  size_t offset = 0;
};

// Empty string, or the message of a 400.
std::string parse_common(const QueryParams& q, SearchParams* p) {
  const std::string* text = q.get("q");
  if (!text) return "q is required";
  if (q.count("q") > 1) return "q given more than once";
  if (Status s = parse_search_query(*text, &p->query); !s) return "invalid q: " + s.message();
  p->types = requested_event_types(q);
  if (const std::string* l = q.get("limit"); l && !l->empty()) {
    char* end = nullptr;
    unsigned long long v = std::strtoull(l->c_str(), &end, 10);
    if (*end != '\0' || (*l)[0] < '0' || (*l)[0] > '9' || v == 0) {
      return "limit must be a positive integer";
    }
    p->limit = std::min<unsigned long long>(v, kMaxLimit);
  }
  if (const std::string* pg = q.get("page"); pg && !pg->empty()) {
    // "r<offset>", the offset in canonical decimal (no sign, spaces or leading zeros).
    auto v = (*pg)[0] == 'r' ? parse_canonical_uint(std::string_view(*pg).substr(1), kMaxPageOffset)
                             : std::nullopt;
    if (!v) return "invalid page cursor";
    p->offset = *v;
  }
  return "";
}

// A page stops adding hits once its body is this large (it always holds at least one): events
// can be megabytes each, and limit=1000 of them must not become a gigabyte response. The rest
// follows through next_page.
constexpr size_t kMaxPageBytes = 16u << 20;

// `used`: how many of r.hits the page went through (fewer than all when it hit kMaxPageBytes).
std::optional<std::string> next_page(const SearchParams& p, const SearchResults& r, size_t used) {
  size_t end = p.offset + used;
  if (end > kMaxPageOffset) return std::nullopt;
  if (used < r.hits.size()) return "r" + std::to_string(end);  // cut by size
  if (r.hits.size() < p.limit || end >= r.total_hits) return std::nullopt;
  return "r" + std::to_string(end);
}

// Closes a page body: "],next_page,total_hits,indexed_events}".
void end_page(const SearchParams& p, const SearchResults& r, size_t used, std::string* body) {
  auto np = next_page(p, r, used);
  *body += "],\"next_page\":" + (np ? json_quote(*np) : std::string("null"));
  *body += ",\"total_hits\":" + std::to_string(r.total_hits);
  *body += ",\"indexed_events\":" + std::to_string(r.indexed_events) + "}";
}

struct IndexWait {
  double waited_ms = 0;
  bool fresh = false;  // every target was reached
};

// Waits until the indexer has every target up to its tail, at most --search-wait.
asio::awaitable<IndexWait> wait_for_index(ApiContext& ctx, const std::string& tenant,
                                          const std::vector<Indexer::Target>& targets) {
  auto start = Clock::now();
  auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                              std::chrono::duration<double>(ctx.options.search_wait));
  IndexWait w;
  for (;;) {
    w.fresh = ctx.indexer->reached(tenant, targets);
    if (w.fresh) break;
    auto now = Clock::now();
    if (now >= deadline || ctx.shutting_down) break;
    co_await sleep_until(std::min(deadline, now + kPollInterval));
  }
  w.waited_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  co_return w;
}

std::string format_score(double score) { return fmt::format("{:.6g}", score); }

// The stored event at `position` of the session, or "" when it cannot be read.
std::string read_event(Session& s, uint64_t position) {
  std::vector<std::string> out;
  if (!s.stream()->read_range(position, position + 1, SIZE_MAX, &out) || out.size() != 1) return "";
  return std::move(out[0]);
}

void set_search_headers(HttpResponse& r, double waited_ms, bool fresh) {
  r.set("Content-Type", "application/json");
  r.set("Cache-Control", "no-store");
  r.set("X-Index-Wait-Ms", fmt::format("{:.1f}", waited_ms));
  if (!fresh) r.set("X-Index-Stale", "true");
}

}  // namespace

asio::awaitable<void> handle_session_search(ApiContext& ctx, const std::string& tenant,
                                            const std::string& session_id, HttpRequest& req,
                                            Responder& res) {
  if (!ctx.indexer || !ctx.search_index) {
    co_return co_await reply_error(req, res, 503, "search is not enabled on this server");
  }
  auto q = QueryParams::parse(req.query);
  if (!q) co_return co_await reply_error(req, res, 400, "malformed query string");
  for (const char* k : {"live", "offset", "order", "created_at[gt]", "created_at[gte]",
                        "created_at[lt]", "created_at[lte]"}) {
    if (q->get(k)) {
      co_return co_await reply_error(
          req, res, 400,
          fmt::format("{} cannot be combined with q (search results are ordered by score)", k));
    }
  }
  SearchParams p;
  if (std::string err = parse_common(*q, &p); !err.empty()) {
    co_return co_await reply_error(req, res, 400, err);
  }
  std::shared_ptr<Session> session;
  if (Status s = ctx.sessions->get(tenant, session_id, &session); !s) {
    co_return co_await reply(req, res, error_response(s, req.request_id));
  }
  std::vector<Indexer::Target> targets{{session, session->stream()->tail()}};
  IndexWait wait = co_await wait_for_index(ctx, tenant, targets);

  SearchRequest sr;
  sr.query = p.query;
  sr.session_ids = {session_id};
  sr.types = p.types;
  sr.offset = p.offset;
  sr.limit = p.limit;
  Status searched;
  std::string body;
  co_await run_blocking(ctx.search_pool, [&] {
    SearchResults r;
    if (searched = ctx.search_index->search(tenant, sr, &r); !searched) return;
    body = "{\"data\":[";
    bool first = true;
    size_t used = 0;
    for (const auto& h : r.hits) {
      if (!first && body.size() >= kMaxPageBytes) break;
      ++used;
      std::string ev = read_event(*session, h.position);
      if (ev.size() < 2 || ev.back() != '}') continue;
      std::string snippet = r.snippet(extract_event_text(ev));
      ev.pop_back();
      if (!first) body += ',';
      first = false;
      body += ev;
      body += ",\"score\":" + format_score(h.score) + ",\"snippet\":" + json_quote(snippet) + "}";
    }
    end_page(p, r, used, &body);
  });
  if (!searched) {
    co_return co_await reply_error(req, res, 500, "search failed: " + searched.message());
  }
  HttpResponse resp(200);
  set_search_headers(resp, wait.waited_ms, wait.fresh);
  resp.body = std::move(body);
  co_await reply(req, res, std::move(resp));
}

asio::awaitable<void> handle_search(ApiContext& ctx, const std::string& tenant, HttpRequest& req,
                                    Responder& res) {
  if (req.method != "GET" && req.method != "HEAD") {
    co_return co_await reply_error(req, res, 405, "method not allowed on /v1/search (use GET)");
  }
  if (!ctx.indexer || !ctx.search_index) {
    co_return co_await reply_error(req, res, 503, "search is not enabled on this server");
  }
  auto q = QueryParams::parse(req.query);
  if (!q) co_return co_await reply_error(req, res, 400, "malformed query string");
  SearchParams p;
  if (std::string err = parse_common(*q, &p); !err.empty()) {
    co_return co_await reply_error(req, res, 400, err);
  }
  std::set<std::string> wanted_ids;
  for (const char* k : {"session_id", "session_id[]", "session_ids[]"}) {
    for (const auto& v : q->all(k)) {
      if (!v.empty()) wanted_ids.insert(v);
    }
  }
  std::vector<std::pair<std::string, std::string>> meta;  // metadata[KEY]=VALUE
  for (const auto& [k, v] : q->items()) {
    if (k.rfind("metadata[", 0) == 0) {
      if (k.size() < 11 || k.back() != ']') {
        co_return co_await reply_error(req, res, 400, "metadata filters look like metadata[KEY]=VALUE");
      }
      meta.emplace_back(k.substr(9, k.size() - 10), v);
    }
  }
  bool restrict = !wanted_ids.empty() || !meta.empty();
  // Restricted: the sessions searched, by id. Otherwise every session of the tenant is searched
  // and hits are resolved with SessionStore::get (a map of thousands of sessions built per
  // request was a third of a cross-session search's own CPU time).
  std::map<std::string, std::shared_ptr<Session>> by_id;
  std::vector<Indexer::Target> targets;
  for (auto& s : ctx.sessions->list(tenant)) {
    if (!wanted_ids.empty() && !wanted_ids.count(s->id())) continue;
    if (!meta.empty()) {
      json::object rec = s->record();
      const json::value* md = rec.if_contains("metadata");
      bool ok = md && md->is_object();
      for (const auto& [k, v] : meta) {
        if (!ok) break;
        const json::value* mv = md->as_object().if_contains(k);
        ok = mv && mv->is_string() && mv->as_string() == v;
      }
      if (!ok) continue;
    }
    targets.push_back({s, s->stream()->tail()});
    if (restrict) by_id.emplace(s->id(), s);
  }
  IndexWait wait = co_await wait_for_index(ctx, tenant, targets);

  SearchRequest sr;
  sr.query = p.query;
  if (restrict) {
    sr.restrict_sessions = true;
    for (const auto& [id, s] : by_id) sr.session_ids.push_back(id);
  }
  sr.types = p.types;
  sr.offset = p.offset;
  sr.limit = p.limit;
  Status searched;
  std::string body;
  co_await run_blocking(ctx.search_pool, [&] {
    SearchResults r;
    if (searched = ctx.search_index->search(tenant, sr, &r); !searched) return;
    body = "{\"data\":[";
    bool first = true;
    size_t used = 0;
    for (const auto& h : r.hits) {
      if (!first && body.size() >= kMaxPageBytes) break;
      ++used;
      std::shared_ptr<Session> s;
      if (restrict) {
        auto it = by_id.find(h.session_id);
        if (it == by_id.end()) continue;
        s = it->second;
      } else if (!ctx.sessions->get(tenant, h.session_id, &s)) {
        continue;  // deleted since it was indexed
      }
      std::string ev = read_event(*s, h.position);
      if (ev.empty()) continue;
      std::string snippet = r.snippet(extract_event_text(ev));
      if (!first) body += ',';
      first = false;
      body += "{\"session_id\":" + json_quote(h.session_id) + ",\"event\":" + ev +
              ",\"score\":" + format_score(h.score) + ",\"snippet\":" + json_quote(snippet) + "}";
    }
    end_page(p, r, used, &body);
  });
  if (!searched) {
    co_return co_await reply_error(req, res, 500, "search failed: " + searched.message());
  }
  HttpResponse resp(200);
  set_search_headers(resp, wait.waited_ms, wait.fresh);
  if (req.method == "GET") resp.body = std::move(body);
  co_await reply(req, res, std::move(resp));
}

}  // namespace ds
