// Content types: streams compare content types by media type only (case-insensitive, parameters
// ignored), and JSON mode applies when the media type is application/json.
#pragma once

#include <string>
#include <string_view>

namespace ds {

// "Application/JSON; charset=utf-8" -> "application/json"
std::string media_type(std::string_view content_type);
inline bool same_media_type(std::string_view a, std::string_view b) {
  return media_type(a) == media_type(b);
}
inline bool is_json_type(std::string_view ct) { return media_type(ct) == "application/json"; }
// SSE carries text natively for text/* and application/json; everything else is base64.
inline bool is_text_type(std::string_view ct) {
  std::string m = media_type(ct);
  return m.rfind("text/", 0) == 0 || m == "application/json";
}

}  // namespace ds
