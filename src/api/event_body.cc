#include "api/event_body.h"

#include <simdjson.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "api/http_util.h"
#include "core/clock.h"
#include "core/json_dom.h"
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
// starts at `i` (bounded by the text's end whatever it holds).
size_t skip_value(std::string_view t, size_t i) {
  if (i >= t.size()) return t.size();
  if (t[i] == '"') {
    for (++i; i < t.size() && t[i] != '"'; ++i) {
      if (t[i] == '\\') ++i;
    }
    return std::min(i + 1, t.size());
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
    return t.size();
  }
  while (i < t.size() && t[i] != ',' && t[i] != '}' && t[i] != ']') ++i;
  return i;
}

// The texts of the members of the object `t` (minified): (key with its quotes and escapes as
// sent, value), in order — the order simdjson's DOM iterates them in.
std::vector<std::pair<std::string_view, std::string_view>> member_texts(std::string_view t) {
  std::vector<std::pair<std::string_view, std::string_view>> out;
  size_t i = 1;  // past '{'
  while (i < t.size() && t[i] != '}') {
    size_t key_end = skip_value(t, i);
    size_t v = key_end + 1;  // past ':'
    size_t v_end = skip_value(t, v);
    if (v >= t.size()) break;
    out.emplace_back(t.substr(i, key_end - i), t.substr(v, v_end - v));
    i = v_end;
    if (i < t.size() && t[i] == ',') ++i;
  }
  return out;
}

// The texts of the elements of the array `t` (minified), in order.
std::vector<std::string_view> element_texts(std::string_view t) {
  std::vector<std::string_view> out;
  size_t i = 1;  // past '['
  while (i < t.size() && t[i] != ']') {
    size_t e = skip_value(t, i);
    out.push_back(t.substr(i, e - i));
    i = e;
    if (i < t.size() && t[i] == ',') ++i;
  }
  return out;
}

}  // namespace

Status parse_event_body(std::string_view body, size_t max_events, int64_t unix_millis,
                        ParsedEvents* out) {
  // Validate with the DOM parser (precise errors), then copy each member's text from the minified
  // body so that values are stored exactly as sent (numbers keep their spelling). The DOM decides
  // (keys compared unescaped, duplicates in order); the text is only read at the same positions.
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (auto err = parse_json_dom(parser, body, &root)) {
    return Status::invalid(std::string("request body is not valid JSON: ") +
                           simdjson::error_message(err));
  }
  std::string minified(body.size(), '\0');
  size_t mlen = 0;
  if (simdjson::minify(body.data(), body.size(), minified.data(), mlen)) {
    return Status::invalid("request body is not valid JSON");
  }
  minified.resize(mlen);
  const std::string_view text(minified);
  const Status unreadable = Status::invalid("could not read events");

  // Find the event list: a bare array, {"events":[…]} (the first "events" member, as simdjson's
  // lookup gives it), or one event object.
  std::vector<std::string_view> event_texts;
  std::vector<simdjson::dom::element> event_elems;
  auto take_array = [&](simdjson::dom::array a, std::string_view a_text) {
    for (auto e : a) event_elems.push_back(e);
    event_texts = element_texts(a_text);
  };
  if (root.is_array()) {
    take_array(root.get_array(), text);
  } else if (root.is_object()) {
    simdjson::dom::object obj = root.get_object();
    auto members = member_texts(text);
    if (members.size() != obj.size()) return unreadable;
    size_t at = 0;
    bool listed = false;
    for (auto field : obj) {
      if (field.key == "events" && field.value.is_array()) {
        take_array(field.value.get_array(), members[at].second);
        listed = true;
        break;
      }
      if (field.key == "events") break;  // the first "events" is not an array: one event
      ++at;
    }
    if (!listed) {
      event_elems.push_back(root);
      event_texts.push_back(text);
    }
  } else {
    return Status::invalid("body must be {\"events\":[…]}, an array of events, or one event object");
  }
  if (event_elems.empty()) return Status::invalid("events must not be empty");
  if (event_elems.size() > max_events) {
    return Status::invalid("too many events in one request: " + std::to_string(event_elems.size()) +
                           " (limit " + std::to_string(max_events) + ")");
  }
  if (event_texts.size() != event_elems.size()) return unreadable;
  std::string tl = tail(unix_millis);
  out->events.reserve(event_elems.size());
  for (size_t i = 0; i < event_elems.size(); ++i) {
    std::string where = "events[" + std::to_string(i) + "]";
    simdjson::dom::element e = event_elems[i];
    if (!e.is_object()) return Status::invalid(where + " must be a JSON object");
    simdjson::dom::object o = e.get_object();
    std::string_view type;
    simdjson::dom::element t;
    if (o["type"].get(t) || t.get(type) || type.empty()) {
      return Status::invalid(where + ".type must be a non-empty string");
    }
    if (type.size() > kMaxEventTypeBytes) {
      return Status::invalid(where + ".type is longer than " + std::to_string(kMaxEventTypeBytes) +
                             " bytes");
    }
    auto members = member_texts(event_texts[i]);
    if (members.size() != o.size()) return unreadable;
    std::string s = head(json_quote(type));
    size_t at = 0;
    for (auto field : o) {
      const auto& [key, value] = members[at++];
      // The unescaped key decides: "\u0069d" is "id", and the server's own id stays the only one.
      if (is_server_field(field.key)) continue;
      s += ',';
      s += key;
      s += ':';
      s += value;
    }
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
