#include "search/event_text.h"

#include <simdjson.h>

#include "core/json_dom.h"

namespace ds {

namespace {

bool is_blob_char(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/' || c == '=' || c == '-' || c == '_';
}

class Extractor {
 public:
  explicit Extractor(std::string* out) : out_(out) {}

  void add(std::string_view s) {
    if (full_ || s.empty() || is_opaque_string(s)) return;
    if (!out_->empty()) out_->push_back('\n');
    size_t room = kMaxIndexedTextBytes > out_->size() ? kMaxIndexedTextBytes - out_->size() : 0;
    if (s.size() > room) {
      size_t cut = room;
      // Back up to a UTF-8 lead byte so the text stays valid.
      while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
      s = s.substr(0, cut);
      full_ = true;
    }
    out_->append(s);
  }

  void walk(simdjson::dom::element e, bool in_source) {
    if (full_) return;
    switch (e.type()) {
      case simdjson::dom::element_type::STRING:
        add(std::string_view(e.get_string().value_unsafe()));
        break;
      case simdjson::dom::element_type::ARRAY: {
        simdjson::dom::array a = e.get_array().value_unsafe();
        for (simdjson::dom::element c : a) walk(c, false);
        break;
      }
      case simdjson::dom::element_type::OBJECT: {
        simdjson::dom::object o = e.get_object().value_unsafe();
        bool base64 = false;
        for (auto field : o) {
          if (field.key == "type" && field.value.is_string() &&
              field.value.get_string().value_unsafe() == "base64") {
            base64 = true;
          }
        }
        for (auto field : o) {
          if (field.key == "type") continue;
          if (field.key == "data" && (base64 || in_source)) continue;
          walk(field.value, field.key == "source");
        }
        break;
      }
      default:
        break;
    }
  }

 private:
  std::string* out_;
  bool full_ = false;
};

}  // namespace

bool is_opaque_string(std::string_view s) {
  if (s.size() < kOpaqueMinLength) return false;
  size_t blob = 0;
  for (unsigned char c : s) {
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r') return false;
    if (is_blob_char(c)) ++blob;
  }
  return blob * 10 >= s.size() * 9;
}

std::string extract_event_text(std::string_view stored_event, std::string* type_out) {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element root;
  std::string out;
  if (type_out) type_out->clear();
  if (parse_json_dom(parser, stored_event, &root) || !root.is_object()) return out;
  Extractor x(&out);
  simdjson::dom::object o = root.get_object().value_unsafe();
  std::string_view type;
  if (!o["type"].get_string().get(type)) {
    x.add(type);
    if (type_out) *type_out = std::string(type);
  }
  for (auto field : o) {
    std::string_view k = field.key;
    if (k == "id" || k == "offset" || k == "type" || k == "created_at" || k == "processed_at") {
      continue;
    }
    x.walk(field.value, k == "source");
  }
  return out;
}

}  // namespace ds
