#include "core/content_type.h"

namespace ds {

std::string media_type(std::string_view ct) {
  size_t semi = ct.find(';');
  std::string_view m = ct.substr(0, semi);
  while (!m.empty() && (m.front() == ' ' || m.front() == '\t')) m.remove_prefix(1);
  while (!m.empty() && (m.back() == ' ' || m.back() == '\t')) m.remove_suffix(1);
  std::string out(m);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace ds
