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

Status parse_event_body(std::string_view body, size_t max_events, int64_t unix_millis,
                        ParsedEvents* out) {
  thread_local simdjson::dom::parser parser;
  simdjson::padded_string padded(body);
  simdjson::dom::element root;
  if (auto err = parser.parse(padded).get(root)) {
    return Status::invalid(std::string("request body is not valid JSON: ") +
                           simdjson::error_message(err));
  }
  simdjson::dom::array list;
  bool single = false;
  if (root.is_array()) {
    list = root.get_array();
  } else if (root.is_object()) {
    simdjson::dom::element ev;
    if (!root["events"].get(ev) && ev.is_array()) {
      list = ev.get_array();
    } else {
      single = true;
    }
  } else {
    return Status::invalid("body must be {\"events\":[…]}, an array of events, or one event object");
  }
  std::string tl = tail(unix_millis);
  auto add = [&](simdjson::dom::element e, size_t index) -> Status {
    std::string where = "events[" + std::to_string(index) + "]";
    if (!e.is_object()) return Status::invalid(where + " must be a JSON object");
    simdjson::dom::object obj = e.get_object();
    std::string_view type;
    simdjson::dom::element t;
    if (obj["type"].get(t) || t.get(type) || type.empty()) {
      return Status::invalid(where + ".type must be a non-empty string");
    }
    std::string s = head(json_quote(type));
    for (auto field : obj) {
      if (is_server_field(field.key)) continue;
      s += ',';
      s += json_quote(field.key);
      s += ':';
      s += simdjson::minify(field.value);
    }
    s += tl;
    out->events.push_back(std::move(s));
    out->types.emplace_back(type);
    return Status::ok();
  };
  if (single) {
    if (Status s = add(root, 0); !s) return s;
  } else {
    size_t n = list.size();
    if (n == 0) return Status::invalid("events must not be empty");
    if (n > max_events) {
      return Status::invalid("too many events in one request: " + std::to_string(n) +
                             " (limit " + std::to_string(max_events) + ")");
    }
    out->events.reserve(n);
    size_t i = 0;
    for (auto e : list) {
      if (Status s = add(e, i++); !s) return s;
    }
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
