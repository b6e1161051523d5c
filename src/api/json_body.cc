#include "api/json_body.h"

#include <simdjson.h>

namespace ds {

Status split_json_messages(std::string_view body, std::vector<std::string>* out) {
  thread_local simdjson::dom::parser parser;
  simdjson::padded_string padded(body);
  simdjson::dom::element root;
  auto err = parser.parse(padded).get(root);
  if (err) return Status::invalid(std::string("invalid JSON: ") + simdjson::error_message(err));
  if (root.is_array()) {
    for (simdjson::dom::element e : root.get_array()) out->push_back(simdjson::minify(e));
  } else {
    out->push_back(simdjson::minify(root));
  }
  return Status::ok();
}

}  // namespace ds
