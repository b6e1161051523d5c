// Content types: streams compare content types by media type only (case-insensitive, parameters
// ignored), and JSON mode applies when the media type is application/json. The comparisons
// below work on views and never allocate (they run on every append).
#pragma once

#include <string_view>

namespace ds {

// "  Application/JSON ; charset=utf-8" -> "Application/JSON" (a view into the argument).
std::string_view media_type_view(std::string_view content_type);
bool iequals_ascii(std::string_view a, std::string_view b);

inline bool same_media_type(std::string_view a, std::string_view b) {
  return iequals_ascii(media_type_view(a), media_type_view(b));
}
inline bool is_json_type(std::string_view ct) {
  return iequals_ascii(media_type_view(ct), "application/json");
}
// SSE carries text natively for text/* and application/json; everything else is base64.
inline bool is_text_type(std::string_view ct) {
  std::string_view m = media_type_view(ct);
  return (m.size() >= 5 && iequals_ascii(m.substr(0, 5), "text/")) ||
         iequals_ascii(m, "application/json");
}

}  // namespace ds
