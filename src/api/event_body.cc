#include "api/event_body.h"

#include <simdjson.h>

#include "api/http_util.h"
#include "core/clock.h"
#include "core/ulid.h"

namespace ds {

namespace {
std::string head(std::string_view type_json) {
  std::string s = "{\"id\":\"evt_" + new_ulid() + "\",\"offset\":\"0000000000000000\",\"type\":";
  s += type_json;
  return s;
}

std::string tail(int64_t ms) {
  std::string t = format_rfc3339_millis(ms);
  return ",\"created_at\":\"" + t + "\",\"processed_at\":\"" + t + "\"}";
}

bool is_server_field(std::string_view k) {
  return k == "id" || k == "offset" || k == "type" || k == "created_at" || k == "processed_at";
}
}  // namespace

std::string make_stored_event(std::string_view type, std::string_view fields, int64_t unix_millis) {
  std::string s = head(json_quote(type));
  if (!fields.empty()) {
    s += ',';
    s += fields;
  }
  s += tail(unix_millis);
  return s;
}

namespace {

// Scanning of already-validated, minified JSON text: returns the index just past the value that
// starts at `i`.
size_t skip_value(std::string_view t, size_t i) {
  if (t[i] == '"') {
    for (++i; t[i] != '"'; ++i) {
      if (t[i] == '\\') ++i;
    }
    return i + 1;
  }
  if (t[i] == '{' || t[i] == '[') {
    int depth = 0;
    for (; i < t.size(); ++i) {
      char c = t[i];
      if (c == '"') {
        i = skip_value(t, i) - 1;
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if (c == '}' || c == ']') {
        if (--depth == 0) return i + 1;
      }
    }
    return i;
  }
  while (i < t.size() && t[i] != ',' && t[i] != '}' && t[i] != ']') ++i;
  return i;
}

// Calls fn(key_text_with_quotes, value_text) for each member of the object starting at `i`.
template <typename Fn>
void for_each_member(std::string_view t, size_t i, Fn&& fn) {
  ++i;  // '{'
  while (t[i] != '}') {
    size_t key_end = skip_value(t, i);
    std::string_view key = t.substr(i, key_end - i);
    size_t v = key_end + 1;  // ':'
    size_t v_end = skip_value(t, v);
    fn(key, t.substr(v, v_end - v));
    i = v_end;
    if (t[i] == ',') ++i;
  }
}

// Calls fn(element_text) for each element of the array starting at `i`.
template <typename Fn>
void for_each_element(std::string_view t, size_t i, Fn&& fn) {
  ++i;  // '['
  while (t[i] != ']') {
    size_t e = skip_value(t, i);
    fn(t.substr(i, e - i));
    i = e;
    if (t[i] == ',') ++i;
  }
}

}  // namespace

Status parse_event_body(std::string_view body, size_t max_events, int64_t unix_millis,
                        ParsedEvents* out) {
  // Validate with the DOM parser (precise errors), then copy each member's text from the minified
  // body so that values are stored exactly as sent (numbers keep their spelling).
  thread_local simdjson::dom::parser parser;
  simdjson::padded_string padded(body);
  simdjson::dom::element root;
  if (auto err = parser.parse(padded).get(root)) {
    return Status::invalid(std::string("request body is not valid JSON: ") +
                           simdjson::error_message(err));
  }
  std::string minified(body.size(), '\0');
  size_t mlen = 0;
  if (simdjson::minify(body.data(), body.size(), minified.data(), mlen)) {
    return Status::invalid("request body is not valid JSON");
  }
  minified.resize(mlen);
  std::string_view text(minified);

  // Find the event list: a bare array, {"events":[…]}, or one event object.
  std::vector<std::string_view> event_texts;
  std::vector<simdjson::dom::element> event_elems;
  if (root.is_array()) {
    for (auto e : root.get_array()) event_elems.push_back(e);
    for_each_element(text, 0, [&](std::string_view e) { event_texts.push_back(e); });
  } else if (root.is_object()) {
    simdjson::dom::element ev;
    if (!root["events"].get(ev) && ev.is_array()) {
      for (auto e : ev.get_array()) event_elems.push_back(e);
      for_each_member(text, 0, [&](std::string_view key, std::string_view value) {
        if (key == "\"events\"" && value.front() == '[') {
          event_texts.clear();
          for_each_element(value, 0, [&](std::string_view e) { event_texts.push_back(e); });
        }
      });
    } else {
      event_elems.push_back(root);
      event_texts.push_back(text);
    }
    if (event_elems.empty()) return Status::invalid("events must not be empty");
  } else {
    return Status::invalid("body must be {\"events\":[…]}, an array of events, or one event object");
  }
  if (event_elems.empty()) return Status::invalid("events must not be empty");
  if (event_elems.size() > max_events) {
    return Status::invalid("too many events in one request: " + std::to_string(event_elems.size()) +
                           " (limit " + std::to_string(max_events) + ")");
  }
  if (event_texts.size() != event_elems.size()) return Status::invalid("could not read events");
  std::string tl = tail(unix_millis);
  out->events.reserve(event_elems.size());
  for (size_t i = 0; i < event_elems.size(); ++i) {
    std::string where = "events[" + std::to_string(i) + "]";
    simdjson::dom::element e = event_elems[i];
    if (!e.is_object()) return Status::invalid(where + " must be a JSON object");
    std::string_view type;
    simdjson::dom::element t;
    if (e.get_object()["type"].get(t) || t.get(type) || type.empty()) {
      return Status::invalid(where + ".type must be a non-empty string");
    }
    std::string s = head(json_quote(type));
    for_each_member(event_texts[i], 0, [&](std::string_view key, std::string_view value) {
      std::string_view k = key.substr(1, key.size() - 2);
      if (is_server_field(k)) return;
      s += ',';
      s += key;
      s += ':';
      s += value;
    });
    s += tl;
    out->events.push_back(std::move(s));
    out->types.emplace_back(type);
  }
  return Status::ok();
}

std::string_view stored_event_type(std::string_view event) {
  constexpr std::string_view kKey = "\"type\":\"";
  size_t at = event.find(kKey, kOffsetDigitsAt);
  if (at == std::string_view::npos) return {};
  at += kKey.size();
  size_t end = at;
  while (end < event.size() && event[end] != '"') {
    if (event[end] == '\\') ++end;
    ++end;
  }
  return event.substr(at, end - at);
}

std::string_view stored_event_processed_at(std::string_view event) {
  // The stored form ends with "processed_at":"<24 chars>"}
  if (event.size() < 26) return {};
  return event.substr(event.size() - 26, 24);
}

}  // namespace ds
