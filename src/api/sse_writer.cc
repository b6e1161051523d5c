#include "api/sse_writer.h"

#include <string_view>

namespace ds {

std::string base64_encode(std::string_view in) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8) |
                 static_cast<uint8_t>(in[i + 2]);
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += t[(v >> 6) & 63];
    out += t[v & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = static_cast<uint8_t>(in[i]) << 16;
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8);
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += t[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

namespace {
// Emits `text` as data: lines, splitting on CRLF, CR and LF so that no payload can inject
// SSE fields or events. SSE parsers drop one space after "data:", so a line that starts with a
// space gets one more, and arrives whole.
void append_lines(std::string_view text, std::string* out) {
  size_t start = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == '\n' || text[i] == '\r') {
      *out += "data:";
      if (i > start && text[start] == ' ') *out += ' ';
      out->append(text.substr(start, i - start));
      *out += '\n';
      if (i < text.size() && text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      start = i + 1;
    }
  }
}
}  // namespace

template <typename Messages>
void append_sse_data_of(SseEncoding enc, const Messages& messages, std::string* out) {
  *out += "event: data\n";
  switch (enc) {
    case SseEncoding::kJson: {
      std::string arr;
      size_t n = 2 + messages.size();
      for (size_t i = 0; i < messages.size(); ++i) n += messages[i].size();
      arr.reserve(n);
      arr += '[';
      for (size_t i = 0; i < messages.size(); ++i) {
        if (i) arr += ',';
        arr += messages[i];
      }
      arr += ']';
      append_lines(arr, out);
      break;
    }
    case SseEncoding::kText: {
      std::string all;
      for (size_t i = 0; i < messages.size(); ++i) all += messages[i];
      append_lines(all, out);
      break;
    }
    case SseEncoding::kBase64: {
      std::string all;
      for (size_t i = 0; i < messages.size(); ++i) all += messages[i];
      std::string b64 = base64_encode(all);
      // Lines of at most 76 characters (a multiple of 4, so each line is whole base64 groups).
      for (size_t i = 0; i < b64.size() || i == 0; i += 76) {
        *out += "data:";
        out->append(b64, i, 76);
        *out += '\n';
        if (b64.empty()) break;
      }
      break;
    }
  }
  *out += '\n';
}

void append_sse_data(SseEncoding enc, const std::vector<std::string>& messages, std::string* out) {
  append_sse_data_of(enc, messages, out);
}

void append_sse_data(SseEncoding enc, const MessageBatch& messages, std::string* out) {
  append_sse_data_of(enc, messages, out);
}

void append_sse_control(const std::string& next_offset, const std::optional<std::string>& cursor,
                        bool up_to_date, bool closed, std::string* out) {
  *out += "event: control\ndata:{\"streamNextOffset\":\"";
  *out += next_offset;
  *out += '"';
  if (cursor && !closed) {
    *out += ",\"streamCursor\":\"";
    *out += *cursor;
    *out += '"';
  }
  if (up_to_date || closed) *out += ",\"upToDate\":true";
  if (closed) *out += ",\"streamClosed\":true";
  *out += "}\n\n";
}

}  // namespace ds
