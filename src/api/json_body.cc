#include "api/json_body.h"

#include <simdjson.h>

#include "core/json_dom.h"

namespace ds {

Status split_json_messages(std::string_view body, std::vector<std::string>* out) {
  thread_local simdjson::dom::parser parser;
  simdjson::padded_string padded(body);
  simdjson::dom::element root;
  auto err = parse_json_dom(parser, body, &root);
  if (err) return Status::invalid(std::string("invalid JSON: ") + simdjson::error_message(err));
  // The body is valid JSON: strip the whitespace outside strings with the byte-level minifier,
  // which keeps every number and escape exactly as sent (re-serialising the parsed document
  // would rewrite them, and cost several allocations per message).
  thread_local std::string min;
  min.resize(body.size());
  size_t n = 0;
  if (simdjson::minify(padded.data(), body.size(), min.data(), n) != simdjson::SUCCESS) {
    return Status::invalid("invalid JSON");
  }
  std::string_view m(min.data(), n);
  if (!root.is_array()) {
    out->emplace_back(m);
    return Status::ok();
  }
  // One level of a top-level array is flattened: split the minified text at the commas of depth
  // zero, outside strings.
  size_t start = 1;
  int depth = 0;
  for (size_t i = 1; i < m.size(); ++i) {
    switch (m[i]) {
      case '"':
        for (++i; i < m.size() && m[i] != '"'; ++i) {
          if (m[i] == '\\') ++i;  // skip the escaped character
        }
        break;
      case '[':
      case '{':
        ++depth;
        break;
      case ']':
      case '}':
        if (depth == 0) {  // the end of the top-level array
          if (i > start) out->emplace_back(m.substr(start, i - start));
          return Status::ok();
        }
        --depth;
        break;
      case ',':
        if (depth == 0) {
          out->emplace_back(m.substr(start, i - start));
          start = i + 1;
        }
        break;
      default:
        break;
    }
  }
  return Status::invalid("invalid JSON: unterminated array");  // unreachable after a valid parse
}

}  // namespace ds
