// Little-endian fixed-width encoding shared by the store's on-disk formats (frames, segment
// summaries, journal records). Hosts are little endian (x86-64, aarch64): values are memcpy'd.
//
// Guarantees: Reader never reads past the end of its input; a failed get/bytes/str leaves the
// position unchanged and returns false.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace ds::codec {

template <typename T>
void put(std::string* out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out->append(b, sizeof(T));
}

// u32 length, then the bytes.
inline void put_str(std::string* out, std::string_view s) {
  put<uint32_t>(out, static_cast<uint32_t>(s.size()));
  out->append(s);
}

template <typename T>
T get(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}
  template <typename T>
  bool get(T* v) {
    if (pos_ + sizeof(T) > s_.size()) return false;
    std::memcpy(v, s_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool bytes(size_t n, std::string_view* v) {
    if (pos_ + n > s_.size()) return false;
    *v = s_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  // A put_str() value.
  bool str(std::string* v) {
    size_t at = pos_;
    uint32_t n;
    if (!get(&n) || pos_ + n > s_.size()) {
      pos_ = at;
      return false;
    }
    v->assign(s_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  size_t pos() const { return pos_; }
  bool done() const { return pos_ == s_.size(); }

 private:
  std::string_view s_;
  size_t pos_ = 0;
};

}  // namespace ds::codec
