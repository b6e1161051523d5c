#include "core/subscription.h"

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "core/clock.h"
#include "http/webhook_client.h"
#include "store/offset.h"

namespace ds {

namespace json = boost::json;

namespace {

bool fail(std::string* code, std::string* why, const char* c, std::string message) {
  *code = c;
  *why = std::move(message);
  return false;
}

// A stream path from a JSON value: a string naming a valid stream (not reserved).
bool stream_path(const json::value& v, PathCanonicaliser canonical_path, const char* field,
                 std::string* out, std::string* why) {
  if (!v.is_string()) {
    *why = std::string(field) + " must be a string";
    return false;
  }
  std::string err;
  std::string name = canonical_path(std::string_view(v.as_string()), &err);
  if (name.empty()) {
    *why = std::string(field) + ": " + err;
    return false;
  }
  *out = std::move(name);
  return true;
}

bool parse_streams_array(const json::value& v, PathCanonicaliser canonical_path,
                         std::vector<std::string>* out, std::string* why) {
  if (!v.is_array()) {
    *why = "streams must be an array of stream paths";
    return false;
  }
  if (v.as_array().size() > kMaxSubscriptionStreams) {
    *why = "streams has more than " + std::to_string(kMaxSubscriptionStreams) + " entries";
    return false;
  }
  out->clear();
  for (const json::value& e : v.as_array()) {
    std::string name;
    if (!stream_path(e, canonical_path, "streams[]", &name, why)) return false;
    out->push_back(std::move(name));
  }
  std::sort(out->begin(), out->end());
  out->erase(std::unique(out->begin(), out->end()), out->end());
  return true;
}

// One segment: '*' is any run of characters (greedy with backtracking to the last star:
// O(|pattern| x |segment|) at worst).
bool match_segment(std::string_view pat, std::string_view str) {
  size_t i = 0, j = 0, star = std::string_view::npos, mark = 0;
  while (j < str.size()) {
    if (i < pat.size() && pat[i] == '*') {
      star = i++;
      mark = j;
    } else if (i < pat.size() && pat[i] == str[j]) {
      ++i;
      ++j;
    } else if (star != std::string_view::npos) {
      i = star + 1;
      j = ++mark;
    } else {
      return false;
    }
  }
  while (i < pat.size() && pat[i] == '*') ++i;
  return i == pat.size();
}

// Dynamic programming over (pattern segment, path segment): linear in their product, however
// many `**` there are (a backtracking matcher is exponential in them).
bool match_segments(const std::vector<std::string_view>& p, const std::vector<std::string_view>& s) {
  const size_t P = p.size(), S = s.size();
  // next[j]: p[i+1..] matches s[j..]; cur[j]: p[i..] matches s[j..].
  std::vector<char> next(S + 1, 0), cur(S + 1, 0);
  next[S] = 1;
  for (size_t i = P; i-- > 0;) {
    if (p[i] == "**") {
      cur[S] = next[S];
      for (size_t j = S; j-- > 0;) cur[j] = next[j] || cur[j + 1];
    } else {
      cur[S] = 0;
      for (size_t j = 0; j < S; ++j) cur[j] = next[j + 1] && match_segment(p[i], s[j]);
    }
    std::swap(cur, next);
  }
  return next[0] != 0;
}

std::vector<std::string_view> split_segments(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t slash = s.find('/', start);
    out.push_back(s.substr(start, slash == std::string_view::npos ? std::string_view::npos
                                                                     : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return out;
}

json::value optional_string(const std::optional<std::string>& s) {
  return s ? json::value(*s) : json::value(nullptr);
}

}  // namespace

bool glob_match(std::string_view pattern, std::string_view path) {
  return match_segments(split_segments(pattern), split_segments(path));
}

bool valid_subscription_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxSubscriptionIdBytes) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.' || c == ':' || c == '~';
  });
}

bool parse_subscription_config(std::string_view body, PathCanonicaliser canonical_path,
                               WebhookTargets webhook_targets, SubscriptionConfig* out,
                               std::string* code, std::string* why) {
  const char* kInvalid = "INVALID_REQUEST";
  std::error_code ec;
  json::value doc = json::parse(body, ec);
  if (ec) return fail(code, why, kInvalid, "body is not valid JSON: " + ec.message());
  if (!doc.is_object()) return fail(code, why, kInvalid, "body must be a JSON object");
  const json::object& o = doc.as_object();
  static const char* kKnown[] = {"type",         "pattern",     "streams", "webhook",
                                 "wake_stream",  "lease_ttl_ms", "description"};
  for (const auto& kv : o) {
    if (std::find_if(std::begin(kKnown), std::end(kKnown), [&](const char* k) {
          return kv.key() == k;
        }) == std::end(kKnown)) {
      return fail(code, why, kInvalid, "unknown field " + std::string(kv.key()));
    }
  }
  SubscriptionConfig c;
  const json::value* type = o.if_contains("type");
  if (type == nullptr || !type->is_string()) {
    return fail(code, why, kInvalid, "type is required: \"webhook\" or \"pull-wake\"");
  }
  if (type->as_string() == "webhook") {
    c.webhook = true;
  } else if (type->as_string() != "pull-wake") {
    return fail(code, why, kInvalid, "type must be \"webhook\" or \"pull-wake\"");
  }
  if (const json::value* p = o.if_contains("pattern"); p && !p->is_null()) {
    if (!p->is_string() || p->as_string().empty()) {
      return fail(code, why, kInvalid, "pattern must be a non-empty string");
    }
    std::string_view raw(p->as_string());
    if (raw.size() > kMaxSubscriptionTextBytes) {
      return fail(code, why, kInvalid, "pattern is longer than 1024 bytes");
    }
    if (raw.front() == '/') {
      return fail(code, why, kInvalid, "pattern is relative to the stream root: no leading '/'");
    }
    // Canonicalise like a stream path ('*' is a valid path character).
    std::string err;
    std::string name = canonical_path(raw, &err);
    if (name.empty()) return fail(code, why, kInvalid, "pattern: " + err);
    c.pattern = std::move(name);
  }
  if (const json::value* s = o.if_contains("streams"); s && !s->is_null()) {
    if (!parse_streams_array(*s, canonical_path, &c.streams, why)) {
      return fail(code, why, kInvalid, *why);
    }
  }
  if (!c.pattern && c.streams.empty()) {
    return fail(code, why, kInvalid, "pattern or a non-empty streams[] is required");
  }
  const json::value* webhook = o.if_contains("webhook");
  const json::value* wake = o.if_contains("wake_stream");
  if (c.webhook) {
    if (wake && !wake->is_null()) {
      return fail(code, why, kInvalid, "wake_stream is for pull-wake subscriptions");
    }
    const json::value* url = webhook && webhook->is_object() ? webhook->as_object().if_contains("url")
                                                              : nullptr;
    if (url == nullptr || !url->is_string()) {
      return fail(code, why, kInvalid, "webhook.url is required for type \"webhook\"");
    }
    if (webhook->as_object().size() != 1) {
      return fail(code, why, kInvalid, "webhook takes only url (signing is the server's)");
    }
    c.webhook_url = std::string(url->as_string());
    if (std::string bad = check_webhook_url(c.webhook_url, webhook_targets); !bad.empty()) {
      return fail(code, why, "WEBHOOK_URL_REJECTED", bad);
    }
  } else {
    if (webhook && !webhook->is_null()) {
      return fail(code, why, kInvalid, "webhook is for webhook subscriptions");
    }
    if (wake == nullptr || wake->is_null()) {
      return fail(code, why, kInvalid, "wake_stream is required for type \"pull-wake\"");
    }
    if (!stream_path(*wake, canonical_path, "wake_stream", &c.wake_stream, why)) {
      return fail(code, why, kInvalid, *why);
    }
  }
  if (const json::value* l = o.if_contains("lease_ttl_ms"); l && !l->is_null()) {
    int64_t v = 0;
    if (l->is_int64()) {
      v = l->as_int64();
    } else if (l->is_uint64()) {
      v = kMaxLeaseTtlMs + 1;
    } else if (l->is_double() && l->as_double() == static_cast<double>(static_cast<int64_t>(l->as_double()))) {
      v = static_cast<int64_t>(l->as_double());
    } else {
      return fail(code, why, kInvalid, "lease_ttl_ms must be an integer");
    }
    if (v < kMinLeaseTtlMs || v > kMaxLeaseTtlMs) {
      return fail(code, why, kInvalid, "lease_ttl_ms must be between 1000 and 600000");
    }
    c.lease_ttl_ms = v;
  }
  if (const json::value* d = o.if_contains("description"); d && !d->is_null()) {
    if (!d->is_string()) return fail(code, why, kInvalid, "description must be a string");
    if (d->as_string().size() > kMaxSubscriptionTextBytes) {
      return fail(code, why, kInvalid, "description is longer than 1024 bytes");
    }
    c.description = std::string(d->as_string());
  }
  *out = std::move(c);
  return true;
}

bool parse_stream_list(std::string_view body, PathCanonicaliser canonical_path,
                       std::vector<std::string>* out, std::string* why) {
  std::error_code ec;
  json::value doc = json::parse(body, ec);
  if (ec || !doc.is_object() || !doc.as_object().if_contains("streams")) {
    *why = "body must be {\"streams\": [stream paths]}";
    return false;
  }
  return parse_streams_array(doc.as_object().at("streams"), canonical_path, out, why);
}

bool parse_worker(std::string_view body, std::string* out) {
  std::error_code ec;
  json::value doc = json::parse(body, ec);
  if (ec || !doc.is_object()) return false;
  const json::value* w = doc.as_object().if_contains("worker");
  if (w == nullptr || !w->is_string() || w->as_string().empty() ||
      w->as_string().size() > kMaxSubscriptionIdBytes) {
    return false;
  }
  *out = std::string(w->as_string());
  return true;
}

std::string SubscriptionConfig::canonical_config() const {
  json::array s;
  for (const auto& p : streams) s.emplace_back(p);
  json::object o;
  o["type"] = webhook ? "webhook" : "pull-wake";
  o["pattern"] = optional_string(pattern);
  o["streams"] = std::move(s);
  o["webhook_url"] = webhook_url;
  o["wake_stream"] = wake_stream;
  o["lease_ttl_ms"] = lease_ttl_ms;
  o["description"] = optional_string(description);
  return json::serialize(o);  // boost::json keeps insertion order: stable
}

std::string Subscription::record_json() const {
  json::array links_json;
  for (const auto& [path, l] : links) {
    links_json.push_back(json::object{{"path", path},
                                      {"glob", l.glob},
                                      {"explicit", l.explicit_},
                                      {"acked", l.acked},
                                      {"stream_id", l.stream_id}});
  }
  json::array snap;
  for (const auto& [path, tail] : snapshot) snap.push_back(json::object{{"path", path}, {"tail", tail}});
  json::object o;
  o["config"] = json::parse(config.canonical_config());
  o["created_ms"] = created_ms;
  o["base_url"] = base_url;
  o["links"] = std::move(links_json);
  o["generation"] = generation;
  o["wake_id"] = wake_id;
  o["holder"] = holder;
  o["lease_until_ms"] = lease_until_ms;
  o["snapshot"] = std::move(snap);
  o["failed"] = failed;
  o["attempts"] = attempts;
  o["next_attempt_ms"] = next_attempt_ms;
  return json::serialize(o);
}

Status Subscription::from_record(std::string tenant, std::string id, std::string_view text,
                                 Subscription* out) {
  try {
    json::value doc = json::parse(text);
    const json::object& o = doc.as_object();
    Subscription s;
    s.tenant = std::move(tenant);
    s.id = std::move(id);
    const json::object& c = o.at("config").as_object();
    s.config.webhook = c.at("type").as_string() == "webhook";
    if (!c.at("pattern").is_null()) s.config.pattern = std::string(c.at("pattern").as_string());
    for (const auto& p : c.at("streams").as_array()) s.config.streams.emplace_back(p.as_string());
    s.config.webhook_url = std::string(c.at("webhook_url").as_string());
    s.config.wake_stream = std::string(c.at("wake_stream").as_string());
    s.config.lease_ttl_ms = c.at("lease_ttl_ms").to_number<int64_t>();
    if (!c.at("description").is_null()) {
      s.config.description = std::string(c.at("description").as_string());
    }
    s.created_ms = o.at("created_ms").to_number<int64_t>();
    s.base_url = std::string(o.at("base_url").as_string());
    for (const auto& l : o.at("links").as_array()) {
      const json::object& lo = l.as_object();
      StreamLink link;
      link.glob = lo.at("glob").as_bool();
      link.explicit_ = lo.at("explicit").as_bool();
      link.acked = lo.at("acked").to_number<uint64_t>();
      link.stream_id = lo.at("stream_id").to_number<int64_t>();
      s.links[std::string(lo.at("path").as_string())] = link;
    }
    s.generation = o.at("generation").to_number<uint64_t>();
    s.wake_id = std::string(o.at("wake_id").as_string());
    s.holder = std::string(o.at("holder").as_string());
    s.lease_until_ms = o.at("lease_until_ms").to_number<int64_t>();
    for (const auto& e : o.at("snapshot").as_array()) {
      s.snapshot[std::string(e.at("path").as_string())] = e.at("tail").to_number<uint64_t>();
    }
    s.failed = o.at("failed").as_bool();
    s.attempts = static_cast<int>(o.at("attempts").to_number<int64_t>());
    s.next_attempt_ms = o.at("next_attempt_ms").to_number<int64_t>();
    *out = std::move(s);
    return Status::ok();
  } catch (const std::exception& e) {
    return Status::corruption("subscription record is damaged: " + std::string(e.what()));
  }
}

std::string subscription_json(const Subscription& s, const std::string& kid) {
  json::array streams;
  for (const auto& [path, l] : s.links) {
    streams.push_back(json::object{{"path", path},
                                   {"link_type", l.explicit_ ? "explicit" : "glob"},
                                   {"acked_offset", format_offset(l.acked)}});
  }
  json::object o;
  o["id"] = s.id;
  o["subscription_id"] = s.id;
  o["type"] = s.config.webhook ? "webhook" : "pull-wake";
  o["pattern"] = optional_string(s.config.pattern);
  o["streams"] = std::move(streams);
  if (s.config.webhook) {
    o["webhook"] = json::object{
        {"url", s.config.webhook_url},
        {"signing", json::object{{"alg", "ed25519"},
                                 {"kid", kid},
                                 {"jwks_url", s.base_url + "/v1/stream/__ds/jwks.json"}}}};
    o["wake_stream"] = nullptr;
  } else {
    o["webhook"] = nullptr;
    o["wake_stream"] = s.config.wake_stream;
  }
  o["lease_ttl_ms"] = s.config.lease_ttl_ms;
  o["created_at"] = format_rfc3339_millis(s.created_ms);
  o["status"] = s.failed ? "failed" : "active";
  o["description"] = optional_string(s.config.description);
  o["generation"] = s.generation;
  return json::serialize(o);
}

json::array wake_streams_json(const std::vector<WakeStream>& streams) {
  json::array a;
  for (const WakeStream& w : streams) {
    a.push_back(json::object{{"path", w.path},
                             {"link_type", w.link->explicit_ ? "explicit" : "glob"},
                             {"acked_offset", format_offset(w.link->acked)},
                             {"tail_offset", format_offset(w.tail)},
                             {"has_pending", w.tail > w.link->acked}});
  }
  return a;
}

}  // namespace ds
