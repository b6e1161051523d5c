// fuzz_event_body: session event bodies (ds::parse_event_body) and Durable Streams JSON bodies
// (ds::split_json_messages) on arbitrary bytes.
//
// Input: byte 0 = max_events (1..256), bytes 1..6 = a timestamp in years 1970-9999, rest = body.
// Checked beyond "no crash": an accepted event body yields 1..max_events events, each valid JSON
// in the documented stored form (offset placeholder at kOffsetDigitsAt, the client's `type`,
// server fields last, processed_at == created_at == the request time); split_json_messages
// yields messages that are each valid, minified JSON.
#include <boost/json.hpp>
#include <simdjson.h>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "api/event_body.h"
#include "api/http_util.h"
#include "api/json_body.h"
#include "core/clock.h"
#include "core/json_dom.h"

namespace {

[[noreturn]] void fail(const std::string& what, std::string_view detail) {
  std::fprintf(stderr, "fuzz_event_body: INVARIANT VIOLATED: %s: %.*s\n", what.c_str(),
               static_cast<int>(std::min<size_t>(detail.size(), 400)), detail.data());
  abort();
}

constexpr int64_t kMaxMillis = 253402300799999;  // 9999-12-31T23:59:59.999Z

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 7) return -1;
  size_t max_events = 1 + data[0];
  uint64_t t = 0;
  for (int i = 1; i <= 6; ++i) t = (t << 8) | data[i];
  int64_t ms = static_cast<int64_t>(t % (kMaxMillis + 1));
  std::string_view body(reinterpret_cast<const char*>(data) + 7, size - 7);

  // boost::json, the independent parser the checks below use, refuses numbers whose exponent
  // overflows its counter (7e-77777000009): RFC 8259's grammar allows them and simdjson, the
  // product's parser, reads them (as 0 or infinity). The product still runs on such bodies;
  // only the checks that need the independent parser are skipped.
  bool checkable = true;
  {
    boost::system::error_code ec;
    boost::json::parse(body, ec);
    checkable = ec != boost::json::error::exponent_overflow;
  }

  ds::ParsedEvents parsed;
  ds::Status s = ds::parse_event_body(body, max_events, ms, &parsed);
  if (s && checkable) {
    if (parsed.events.empty()) fail("accepted body with no events", body);
    if (parsed.events.size() != parsed.types.size()) fail("events/types size mismatch", body);
    if (parsed.events.size() > max_events) fail("more events than max_events", body);
    std::string when = ds::format_rfc3339_millis(ms);
    for (size_t i = 0; i < parsed.events.size(); ++i) {
      const std::string& ev = parsed.events[i];
      if (parsed.types[i].empty()) fail("empty type accepted", body);
      if (ev.compare(ds::kOffsetDigitsAt, 16, "0000000000000000") != 0 ||
          ev.compare(ds::kOffsetDigitsAt - 12, 12, "\",\"offset\":\"") != 0) {
        fail("offset placeholder not at kOffsetDigitsAt", ev);
      }
      if ("\"" + std::string(ds::stored_event_type(ev)) + "\"" != ds::json_quote(parsed.types[i])) {
        fail("stored_event_type disagrees with the parsed type", ev);
      }
      if (ds::stored_event_processed_at(ev) != when) fail("processed_at is not the request time", ev);
      boost::system::error_code ec;
      boost::json::value v = boost::json::parse(ev, ec);
      if (ec || !v.is_object()) fail("stored event is not a JSON object", ev);
      const boost::json::object& o = v.as_object();
      const boost::json::value* type = o.if_contains("type");
      if (!type || !type->is_string() || type->as_string() != parsed.types[i]) {
        fail("stored event's type field is not the client's type", ev);
      }
      // Server fields appear exactly once (client copies are dropped); boost::json keeps only
      // the last of duplicate keys, so count on simdjson's view, which keeps them all.
      thread_local simdjson::dom::parser sp;
      simdjson::dom::element se;
      simdjson::dom::object so;
      if (ds::parse_json_dom(sp, ev, &se) || se.get(so)) fail("stored event does not re-parse", ev);
      for (std::string_view key : {"id", "offset", "type", "created_at", "processed_at"}) {
        size_t n = 0;
        for (auto field : so) n += field.key == key;
        if (n != 1) fail("server field " + std::string(key) + " not present exactly once", ev);
      }
      if (auto p = ds::parse_rfc3339(ds::stored_event_processed_at(ev)); !p || *p != ms) {
        fail("processed_at does not parse back to the request time", ev);
      }
    }
  } else if (!s && s.message().empty()) {
    fail("rejection without a message", body);
  }

  std::vector<std::string> messages;
  if (ds::Status js = ds::split_json_messages(body, &messages); js && checkable) {
    for (const std::string& m : messages) {
      boost::system::error_code ec;
      boost::json::value v = boost::json::parse(m, ec);
      if (ec) fail("split message is not JSON", m);
      std::vector<std::string> again;
      if (!ds::split_json_messages(m, &again)) fail("split message does not re-parse", m);
      if (!v.is_array() && (again.size() != 1 || again[0] != m)) {
        fail("split message is not minified/stable", m);
      }
    }
    // Nothing lost or changed: the messages, put back together, are the minified body (one
    // message), or its array with every element in order (as many as an independent parser
    // counts).
    std::string joined;
    for (size_t i = 0; i < messages.size(); ++i) joined += (i ? "," : "") + messages[i];
    simdjson::padded_string padded(body);
    std::string min(body.size(), '\0');
    size_t n = 0;
    if (simdjson::minify(padded.data(), body.size(), min.data(), n) != simdjson::SUCCESS) {
      fail("accepted body does not minify", body);
    }
    min.resize(n);
    boost::system::error_code ec;
    boost::json::value whole = boost::json::parse(body, ec);
    bool is_array = !min.empty() && min.front() == '[';
    if (is_array ? "[" + joined + "]" != min : messages.size() != 1 || joined != min) {
      fail("split messages differ from the body", body);
    }
    if (!ec && is_array && whole.as_array().size() != messages.size()) {
      fail("split message count differs from the array's", body);
    }
  }
  return 0;
}
