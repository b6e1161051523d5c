#include "search/text_segment.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "search/text_tokenizer.h"

// Sanitizer builds read segments into the heap instead of mapping them (see TextSegment::open).
#if defined(__SANITIZE_ADDRESS__)
#define DS_TEXT_SEGMENT_IN_HEAP 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DS_TEXT_SEGMENT_IN_HEAP 1
#endif
#endif
#ifndef DS_TEXT_SEGMENT_IN_HEAP
#define DS_TEXT_SEGMENT_IN_HEAP 0
#endif

namespace ds {
namespace {

constexpr char kMagic[8] = {'D', 'S', 'T', 'X', 'T', 'S', 'E', 'G'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = 64;
constexpr size_t kFooterBytes = 8;
constexpr uint32_t kRestartInterval = 16;
constexpr size_t kRestartBytes = 24;
constexpr size_t kMaxTermBytes = 255;
constexpr uint32_t kDense = 0, kSparse = 1;
constexpr size_t kClearDictionaryTerms = 1 << 20;

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}
template <typename T>
void store(std::string* out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out->append(b, sizeof(T));
}

void put_varint(std::string* s, uint64_t v) {
  char b[10];
  size_t n = 0;
  while (v >= 0x80) {
    b[n++] = char(v | 0x80);
    v >>= 7;
  }
  b[n++] = char(v);
  s->append(b, n);
}

// Reads a varint at p (never past end); false if it runs past end or over 64 bits.
inline bool get_varint(const uint8_t*& p, const uint8_t* end, uint64_t* v) {
  uint64_t r = 0;
  for (int shift = 0; shift < 64 && p < end; shift += 7) {
    uint8_t c = *p++;
    if (shift == 63 && c > 1) return false;
    r |= uint64_t(c & 0x7f) << shift;
    if (!(c & 0x80)) {
      *v = r;
      return true;
    }
  }
  return false;
}

// Skips n varints at p (never past end); false if they run past end.
inline bool skip_varints(const uint8_t*& p, const uint8_t* end, uint64_t n) {
  while (n) {
    if (p >= end) return false;
    if (!(*p++ & 0x80)) --n;
  }
  return true;
}

Status errno_status(const std::string& what, int err) {
  std::string m = what + ": " + std::strerror(err);
  if (err == ENOSPC || err == EDQUOT) return Status::no_space(m);
  if (err == ENOENT) return Status::not_found(m);
  if (err == EEXIST) return Status::conflict(m);
  return Status::io_error(m);
}

Status write_all(int fd, const std::string& path, const std::string& data) {
  const char* d = data.data();
  size_t left = data.size();
  while (left) {
    ssize_t r = ::write(fd, d, left);
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno_status("write " + path, errno);
    }
    d += r;
    left -= size_t(r);
  }
  return Status::ok();
}

// Renames `from` to `to` unless `to` exists (kConflict then).
Status rename_no_replace(const std::string& from, const std::string& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0)
    return Status::ok();
  int err = errno;
  if (err != EINVAL && err != ENOSYS) return errno_status("rename " + from + " to " + to, err);
  // A filesystem without RENAME_NOREPLACE: link (fails if `to` exists), then unlink.
  if (::link(from.c_str(), to.c_str()) != 0) return errno_status("link " + to, errno);
  ::unlink(from.c_str());
  return Status::ok();
}

Status sync_dir(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno_status("open " + dir, errno);
  int r = ::fsync(fd);
  int err = errno;
  ::close(fd);
  return r == 0 ? Status::ok() : errno_status("fsync " + dir, err);
}

// Assembles one segment file: documents first (ascending), then terms in sorted order, each as
// begin_term, posting/positions..., end_term; then write().
class SegmentEncoder {
 public:
  void doc(uint32_t did, uint32_t len) { docs_.push_back({did, len}); }
  void reserve(size_t docs, size_t dict, size_t pst, size_t pos) {
    docs_.reserve(docs);
    dict_.reserve(dict);
    pst_.reserve(pst);
    pos_.reserve(pos);
  }
  void begin_term(std::string_view term) {
    cur_.assign(term);
    df_ = 0;
    pst0_ = pst_.size();
    pos0_ = pos_.size();
    last_ = docs_.empty() ? 0 : docs_.front().first - 1;
  }
  void posting(uint32_t did, uint32_t wdf) {
    uint64_t gap = did - last_;
    last_ = did;
    put_varint(&pst_, (gap << 1) | (wdf == 1 ? 1 : 0));
    if (wdf != 1) put_varint(&pst_, wdf - 2);
    ++df_;
  }
  void positions(const void* data, size_t n) { pos_.append(static_cast<const char*>(data), n); }
  void end_term() {
    if (df_ == 0) {  // every posting was dropped
      pst_.resize(pst0_);
      pos_.resize(pos0_);
      return;
    }
    size_t shared = 0;
    if (terms_ % kRestartInterval == 0) {
      store<uint64_t>(&restarts_, dict_.size());
      store<uint64_t>(&restarts_, pst0_);
      store<uint64_t>(&restarts_, pos0_);
    } else {
      size_t m = std::min(prev_.size(), cur_.size());
      while (shared < m && prev_[shared] == cur_[shared]) ++shared;
    }
    put_varint(&dict_, shared);
    put_varint(&dict_, cur_.size() - shared);
    dict_.append(cur_, shared, std::string::npos);
    put_varint(&dict_, df_);
    put_varint(&dict_, pst_.size() - pst0_);
    put_varint(&dict_, pos_.size() - pos0_);
    prev_.swap(cur_);
    ++terms_;
  }

  Status write(const std::string& path, bool sync) {
    std::string head, table;
    uint32_t first = docs_.empty() ? 0 : docs_.front().first;
    uint32_t last = docs_.empty() ? 0 : docs_.back().first;
    uint64_t range = docs_.empty() ? 0 : uint64_t(last) - first + 1;
    uint32_t kind = range <= 2 * uint64_t(docs_.size()) + 1024 ? kDense : kSparse;
    if (kind == kDense) {
      std::vector<uint32_t> slots(range, 0);
      for (auto [did, len] : docs_) slots[did - first] = std::min(len, 0xfffffffeu) + 1;
      table.assign(reinterpret_cast<const char*>(slots.data()), slots.size() * 4);
    } else {
      table.reserve(docs_.size() * 8);
      for (auto [did, len] : docs_) {
        store<uint32_t>(&table, did);
        store<uint32_t>(&table, len);
      }
    }
    head.append(kMagic, 8);
    store<uint32_t>(&head, kVersion);
    store<uint32_t>(&head, kind);
    store<uint32_t>(&head, first);
    store<uint32_t>(&head, last);
    store<uint32_t>(&head, uint32_t(docs_.size()));
    store<uint32_t>(&head, terms_);
    store<uint64_t>(&head, table.size());
    store<uint64_t>(&head, dict_.size());
    store<uint64_t>(&head, pst_.size());
    store<uint64_t>(&head, pos_.size());
    const std::string* parts[] = {&head, &table, &restarts_, &dict_, &pst_, &pos_};
    XXH3_state_t* st = XXH3_createState();
    if (st == nullptr) return Status::io_error("out of memory");
    XXH3_64bits_reset(st);
    for (const std::string* s : parts) XXH3_64bits_update(st, s->data(), s->size());
    std::string foot;
    store<uint64_t>(&foot, XXH3_64bits_digest(st));
    XXH3_freeState(st);

    struct stat sb;
    if (::stat(path.c_str(), &sb) == 0) return Status::conflict(path + " exists");
    std::string tmp = path + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return errno_status("open " + tmp, errno);
    Status s;
    for (const std::string* part : parts)
      if (s = write_all(fd, tmp, *part); !s) break;
    if (s) s = write_all(fd, tmp, foot);
    if (s && sync && ::fdatasync(fd) != 0) s = errno_status("fdatasync " + tmp, errno);
    if (::close(fd) != 0 && s) s = errno_status("close " + tmp, errno);
    if (s) s = rename_no_replace(tmp, path);
    if (!s) {
      ::unlink(tmp.c_str());
      return s;
    }
    if (sync) return sync_dir(path);
    return Status::ok();
  }

 private:
  std::vector<std::pair<uint32_t, uint32_t>> docs_;
  std::string dict_, pst_, pos_, restarts_;
  std::string cur_, prev_;
  uint32_t terms_ = 0, df_ = 0, last_ = 0;
  size_t pst0_ = 0, pos0_ = 0;
};

}  // namespace

// ---- TextSegment ------------------------------------------------------------------------------

struct TextSegment::Entry {
  uint32_t df = 0;
  uint64_t pst_off = 0, pst_len = 0, pos_off = 0, pos_len = 0;
};

// Decodes dictionary entries in order from a restart point; every read is bounds-checked.
class TextSegment::DictCursor {
 public:
  explicit DictCursor(const TextSegment& s) : s_(s) {}
  // Positions before the first entry of restart block r (< restart_count_).
  void seek(uint64_t r) {
    const uint8_t* ix = s_.restarts_ + r * kRestartBytes;
    uint64_t off = load<uint64_t>(ix);
    p_ = off <= s_.dict_bytes_ ? s_.dict_ + off : s_.dict_ + s_.dict_bytes_;
    pst_ = load<uint64_t>(ix + 8);
    pos_ = load<uint64_t>(ix + 16);
    index_ = r * kRestartInterval;
    len_ = 0;
  }
  // Decodes the next entry; false at the end of the dictionary or on an error (error() then).
  bool next() {
    if (index_ >= s_.terms_ || error_) return false;
    const uint8_t* end = s_.dict_ + s_.dict_bytes_;
    uint64_t shared, suffix, df, pl, ql;
    if (!get_varint(p_, end, &shared) || !get_varint(p_, end, &suffix) || shared > len_ ||
        (index_ % kRestartInterval == 0 && shared != 0) || suffix > kMaxTermBytes - shared ||
        shared + suffix == 0 || suffix > uint64_t(end - p_))
      return fail();
    std::memcpy(key_ + shared, p_, suffix);
    p_ += suffix;
    len_ = size_t(shared + suffix);
    if (!get_varint(p_, end, &df) || !get_varint(p_, end, &pl) || !get_varint(p_, end, &ql) ||
        df == 0 || df > s_.docs_ || pl < df || pl > s_.pst_bytes_ - std::min(pst_, s_.pst_bytes_) ||
        ql > s_.pos_bytes_ - std::min(pos_, s_.pos_bytes_) || (key_[0] == 'Z') != (ql == 0) ||
        (ql != 0 && ql < df))
      return fail();
    e_.df = uint32_t(df);
    e_.pst_off = pst_;
    e_.pst_len = pl;
    e_.pos_off = pos_;
    e_.pos_len = ql;
    pst_ += pl;
    pos_ += ql;
    ++index_;
    return true;
  }
  std::string_view key() const { return std::string_view(key_, len_); }
  const Entry& entry() const { return e_; }
  bool error() const { return error_; }
  const uint8_t* at() const { return p_; }
  uint64_t pst_end() const { return pst_; }
  uint64_t pos_end() const { return pos_; }

 private:
  bool fail() {
    error_ = true;
    return false;
  }
  const TextSegment& s_;
  const uint8_t* p_ = nullptr;
  uint64_t pst_ = 0, pos_ = 0, index_ = 0;
  char key_[kMaxTermBytes];
  size_t len_ = 0;
  Entry e_;
  bool error_ = false;
};

TextSegment::~TextSegment() {
#if DS_TEXT_SEGMENT_IN_HEAP
  delete[] base_;
#else
  if (base_ != nullptr) ::munmap(const_cast<uint8_t*>(base_), size_);
#endif
}

Status TextSegment::open(const std::string& path, std::shared_ptr<const TextSegment>* out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno_status("open " + path, errno);
  struct stat sb;
  if (::fstat(fd, &sb) != 0) {
    int err = errno;
    ::close(fd);
    return errno_status("stat " + path, err);
  }
  size_t size = size_t(sb.st_size);
  if (size < kHeaderBytes + kFooterBytes) {
    ::close(fd);
    return Status::corruption(path + ": too short for a text segment (" + std::to_string(size) +
                              " bytes)");
  }
  std::shared_ptr<TextSegment> seg(new TextSegment());
#if DS_TEXT_SEGMENT_IN_HEAP
  // A heap copy of exactly the file's bytes, so that ASan reports any read past them (a mapping
  // has no red zone: a read past the end within the last page would go unnoticed).
  std::unique_ptr<uint8_t[]> buf(new uint8_t[size]);
  size_t got = 0;
  while (got < size) {
    ssize_t r = ::pread(fd, buf.get() + got, size - got, off_t(got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      int err = r < 0 ? errno : EIO;
      ::close(fd);
      return errno_status("read " + path, err);
    }
    got += size_t(r);
  }
  ::close(fd);
  seg->base_ = buf.release();
#else
  void* m = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  int err = errno;
  ::close(fd);
  if (m == MAP_FAILED) return errno_status("mmap " + path, err);
  seg->base_ = static_cast<const uint8_t*>(m);
#endif
  seg->size_ = size;
  if (Status s = seg->parse(); !s) return Status::corruption(path + ": " + s.message());
  *out = std::move(seg);
  return Status::ok();
}

Status TextSegment::parse() {
  const uint8_t* b = base_;
  if (std::memcmp(b, kMagic, 8) != 0) return Status::corruption("not a text segment (magic)");
  if (XXH3_64bits(b, size_ - kFooterBytes) != load<uint64_t>(b + size_ - kFooterBytes))
    return Status::corruption("checksum mismatch");
  uint32_t version = load<uint32_t>(b + 8);
  if (version != kVersion)
    return Status::corruption("unsupported text segment version " + std::to_string(version));
  kind_ = load<uint32_t>(b + 12);
  first_doc_ = load<uint32_t>(b + 16);
  last_doc_ = load<uint32_t>(b + 20);
  docs_ = load<uint32_t>(b + 24);
  terms_ = load<uint32_t>(b + 28);
  doc_table_bytes_ = load<uint64_t>(b + 32);
  dict_bytes_ = load<uint64_t>(b + 40);
  pst_bytes_ = load<uint64_t>(b + 48);
  pos_bytes_ = load<uint64_t>(b + 56);
  if (kind_ != kDense && kind_ != kSparse) return Status::corruption("bad document table kind");
  if (docs_ == 0 ? (first_doc_ != 0 || last_doc_ != 0 || terms_ != 0)
                 : (first_doc_ == 0 || last_doc_ < first_doc_ ||
                    uint64_t(last_doc_) - first_doc_ + 1 < docs_))
    return Status::corruption("bad document range");
  uint64_t want_table =
      docs_ == 0 ? 0 : kind_ == kDense ? (uint64_t(last_doc_) - first_doc_ + 1) * 4 : uint64_t(docs_) * 8;
  if (doc_table_bytes_ != want_table) return Status::corruption("bad document table size");
  restart_count_ = (uint64_t(terms_) + kRestartInterval - 1) / kRestartInterval;
  uint64_t body = size_ - kHeaderBytes - kFooterBytes;
  uint64_t sizes[] = {doc_table_bytes_, restart_count_ * kRestartBytes, dict_bytes_, pst_bytes_,
                      pos_bytes_};
  uint64_t sum = 0;
  for (uint64_t s : sizes) {
    if (s > body - sum) return Status::corruption("section sizes exceed the file");
    sum += s;
  }
  if (sum != body) return Status::corruption("section sizes do not add up to the file size");
  doc_table_ = b + kHeaderBytes;
  restarts_ = doc_table_ + doc_table_bytes_;
  dict_ = restarts_ + restart_count_ * kRestartBytes;
  pst_ = dict_ + dict_bytes_;
  pos_ = pst_ + pst_bytes_;

  // Document table.
  if (docs_ != 0) {
    if (kind_ == kDense) {
      uint64_t n = 0, range = uint64_t(last_doc_) - first_doc_ + 1;
      for (uint64_t i = 0; i < range; ++i) n += load<uint32_t>(doc_table_ + 4 * i) != 0;
      if (n != docs_ || load<uint32_t>(doc_table_) == 0 ||
          load<uint32_t>(doc_table_ + 4 * (range - 1)) == 0)
        return Status::corruption("bad dense document table");
    } else {
      uint32_t prev = 0;
      for (uint64_t i = 0; i < docs_; ++i) {
        uint32_t did = load<uint32_t>(doc_table_ + 8 * i);
        if (did <= prev) return Status::corruption("document ids not ascending");
        prev = did;
      }
      if (load<uint32_t>(doc_table_) != first_doc_ || prev != last_doc_)
        return Status::corruption("bad sparse document table");
    }
  }

  // Dictionary: restart points, order, sizes.
  DictCursor c(*this);
  std::string prev;
  for (uint64_t r = 0; r < restart_count_; ++r) {
    const uint8_t* ix = restarts_ + r * kRestartBytes;
    if (r > 0 && load<uint64_t>(ix) != uint64_t(c.at() - dict_))
      return Status::corruption("restart index does not match the dictionary");
    if (r > 0 && (load<uint64_t>(ix + 8) != c.pst_end() || load<uint64_t>(ix + 16) != c.pos_end()))
      return Status::corruption("restart index does not match the postings");
    if (r == 0 && (load<uint64_t>(ix) != 0 || load<uint64_t>(ix + 8) != 0 ||
                   load<uint64_t>(ix + 16) != 0))
      return Status::corruption("bad first restart point");
    c.seek(r);
    for (uint32_t k = 0; k < kRestartInterval && c.next(); ++k) {
      if (!prev.empty() && !(std::string_view(prev) < c.key()))
        return Status::corruption("dictionary not sorted");
      prev.assign(c.key());
    }
    if (c.error()) return Status::corruption("bad dictionary entry");
  }
  if (terms_ != 0 && uint64_t(c.at() - dict_) != dict_bytes_)
    return Status::corruption("dictionary size mismatch");
  if (terms_ == 0 && dict_bytes_ != 0) return Status::corruption("dictionary size mismatch");
  if (terms_ != 0 && (c.pst_end() != pst_bytes_ || c.pos_end() != pos_bytes_))
    return Status::corruption("postings or positions size mismatch");
  if (terms_ == 0 && (pst_bytes_ != 0 || pos_bytes_ != 0))
    return Status::corruption("postings without terms");
  return Status::ok();
}

bool TextSegment::has_doc(uint32_t did) const {
  if (docs_ == 0 || did < first_doc_ || did > last_doc_) return false;
  if (kind_ == kDense) return load<uint32_t>(doc_table_ + 4 * uint64_t(did - first_doc_)) != 0;
  uint64_t lo = 0, hi = docs_;
  while (lo < hi) {
    uint64_t mid = (lo + hi) / 2;
    uint32_t d = load<uint32_t>(doc_table_ + 8 * mid);
    if (d == did) return true;
    if (d < did)
      lo = mid + 1;
    else
      hi = mid;
  }
  return false;
}

uint32_t TextSegment::doc_length(uint32_t did) const {
  if (docs_ == 0 || did < first_doc_ || did > last_doc_) return 0;
  if (kind_ == kDense) {
    uint32_t v = load<uint32_t>(doc_table_ + 4 * uint64_t(did - first_doc_));
    return v == 0 ? 0 : v - 1;
  }
  uint64_t lo = 0, hi = docs_;
  while (lo < hi) {
    uint64_t mid = (lo + hi) / 2;
    uint32_t d = load<uint32_t>(doc_table_ + 8 * mid);
    if (d == did) return load<uint32_t>(doc_table_ + 8 * mid + 4);
    if (d < did)
      lo = mid + 1;
    else
      hi = mid;
  }
  return 0;
}

template <typename F>
void TextSegment::for_each_doc(F&& f) const {
  if (docs_ == 0) return;
  if (kind_ == kDense) {
    uint64_t range = uint64_t(last_doc_) - first_doc_ + 1;
    for (uint64_t i = 0; i < range; ++i) {
      uint32_t v = load<uint32_t>(doc_table_ + 4 * i);
      if (v != 0) f(uint32_t(first_doc_ + i), v - 1);
    }
  } else {
    for (uint64_t i = 0; i < docs_; ++i)
      f(load<uint32_t>(doc_table_ + 8 * i), load<uint32_t>(doc_table_ + 8 * i + 4));
  }
}

void TextSegment::make_postings(const Entry& e, Postings* out) const {
  *out = Postings();
  out->p_ = pst_ + e.pst_off;
  out->end_ = out->p_ + e.pst_len;
  if (e.pos_len != 0) {
    out->q_ = pos_ + e.pos_off;
    out->qend_ = out->q_ + e.pos_len;
  }
  out->doc_ = first_doc_ - 1;
  out->df_ = out->left_ = e.df;
  out->last_doc_ = last_doc_;
}

bool TextSegment::postings(std::string_view term, Postings* out) const {
  if (restart_count_ == 0 || term.empty() || term.size() > kMaxTermBytes) return false;
  // The last restart block whose first key is <= term.
  auto restart_key = [&](uint64_t r) -> std::string_view {
    const uint8_t* p = dict_ + load<uint64_t>(restarts_ + r * kRestartBytes);
    const uint8_t* end = dict_ + dict_bytes_;
    uint64_t shared, n;
    if (p > end || !get_varint(p, end, &shared) || !get_varint(p, end, &n) ||
        n > uint64_t(end - p))
      return {};
    return std::string_view(reinterpret_cast<const char*>(p), n);
  };
  uint64_t lo = 0, hi = restart_count_;  // invariant: key(lo - 1) <= term < key(hi)
  while (lo < hi) {
    uint64_t mid = (lo + hi) / 2;
    if (restart_key(mid) <= term)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == 0) return false;
  DictCursor c(*this);
  c.seek(lo - 1);
  for (uint32_t k = 0; k < kRestartInterval && c.next(); ++k) {
    int cmp = c.key().compare(term);
    if (cmp == 0) {
      make_postings(c.entry(), out);
      return true;
    }
    if (cmp > 0) return false;
  }
  return false;
}

void TextSegment::for_each_term(const std::function<void(std::string_view term)>& f) const {
  if (restart_count_ == 0) return;
  DictCursor c(*this);
  c.seek(0);
  while (c.next()) f(c.key());
}

bool TextSegment::Postings::varint(uint64_t* v) { return get_varint(p_, end_, v); }

bool TextSegment::Postings::finish() {
  if (!error_ && p_ != end_) return fail();  // bytes left over: df does not match the postings
  wdf_ = 0;
  return false;
}

bool TextSegment::Postings::position_bytes(const uint8_t** begin, const uint8_t** end) {
  *begin = *end = q_;
  if (q_ == nullptr || pos_read_ || error_) return !error_;
  pos_read_ = true;
  if (!skip_varints(q_, qend_, pending_)) return fail();
  pending_ = 0;
  *begin = q_;
  if (!skip_varints(q_, qend_, wdf_)) return fail();
  *end = q_;
  return true;
}

void TextSegment::Postings::positions(std::vector<uint32_t>* out) {
  if (q_ == nullptr || pos_read_ || error_) return;
  pos_read_ = true;
  if (!skip_varints(q_, qend_, pending_)) {
    fail();
    return;
  }
  pending_ = 0;
  uint64_t pos = 0;
  for (uint32_t i = 0; i < wdf_; ++i) {
    uint64_t gap;
    if (q_ < qend_ && *q_ < 0x80) {
      gap = *q_++;
    } else if (!get_varint(q_, qend_, &gap)) {
      fail();
      return;
    }
    pos += gap;
    if (gap == 0 || pos > 0xffffffffu) {
      fail();
      return;
    }
    out->push_back(uint32_t(pos));
  }
}

// ---- merge ------------------------------------------------------------------------------------

namespace {
// The documents of one merge input that keep() accepted: a bitmap over its docid range, or a
// sorted list when the range is much larger than the number of documents.
struct KeptDocs {
  uint32_t first = 0;
  bool dense = true;
  std::vector<bool> bits;
  std::vector<uint32_t> ids;
  bool has(uint32_t did) const {
    return dense ? bits[did - first] : std::binary_search(ids.begin(), ids.end(), did);
  }
};
}  // namespace

Status merge_segments(const std::vector<std::shared_ptr<const TextSegment>>& in,
                      const std::function<bool(uint32_t did)>& keep, const std::string& path,
                      bool sync) {
  std::vector<const TextSegment*> segs;
  uint32_t last = 0;
  for (const auto& s : in) {
    if (!s) return Status::invalid("merge_segments: null segment");
    if (s->docs() == 0) continue;
    if (s->first_doc() <= last)
      return Status::invalid("merge_segments: document ranges not ascending and disjoint");
    last = s->last_doc();
    segs.push_back(s.get());
  }
  SegmentEncoder enc;
  std::vector<KeptDocs> kept(segs.size());
  for (size_t k = 0; k < segs.size(); ++k) {
    const TextSegment& s = *segs[k];
    KeptDocs& kd = kept[k];
    kd.first = s.first_doc();
    uint64_t range = uint64_t(s.last_doc()) - s.first_doc() + 1;
    kd.dense = range <= 8 * uint64_t(s.docs()) + 4096;
    if (kd.dense) kd.bits.assign(range, false);
    s.for_each_doc([&](uint32_t did, uint32_t len) {
      if (!keep(did)) return;
      if (kd.dense)
        kd.bits[did - kd.first] = true;
      else
        kd.ids.push_back(did);
      enc.doc(did, len);
    });
  }
  std::vector<std::unique_ptr<TextSegment::DictCursor>> cur;
  std::vector<bool> live;
  for (const TextSegment* s : segs) {
    cur.push_back(std::make_unique<TextSegment::DictCursor>(*s));
    bool ok = s->restart_count_ > 0;
    if (ok) {
      cur.back()->seek(0);
      ok = cur.back()->next();
    }
    live.push_back(ok);
  }
  std::string term;
  TextSegment::Postings p;
  for (;;) {
    bool any = false;
    std::string_view min;
    for (size_t k = 0; k < segs.size(); ++k) {
      if (live[k] && (!any || cur[k]->key() < min)) {
        min = cur[k]->key();
        any = true;
      }
    }
    if (!any) break;
    term.assign(min);
    enc.begin_term(term);
    for (size_t k = 0; k < segs.size(); ++k) {
      if (!live[k] || cur[k]->key() != term) continue;
      segs[k]->make_postings(cur[k]->entry(), &p);
      while (p.next()) {
        if (!kept[k].has(p.doc())) continue;
        enc.posting(p.doc(), p.wdf());
        const uint8_t *b, *e;
        if (!p.position_bytes(&b, &e)) break;
        if (e != b) enc.positions(b, size_t(e - b));
      }
      if (p.error())
        return Status::corruption("merge_segments: bad postings of a term in an input segment");
      live[k] = cur[k]->next();
      if (cur[k]->error())
        return Status::corruption("merge_segments: bad dictionary in an input segment");
    }
    enc.end_term();
  }
  return enc.write(path, sync);
}

// ---- SegmentBuilder ---------------------------------------------------------------------------

struct SegmentBuilder::Impl {
  struct Post {
    std::vector<uint32_t> dw;  // docid, wdf, docid, wdf, …
    std::string pos;           // per document: wdf position gaps, the first from 0
    uint32_t last_pos = 0;
  };
  TextTokenizer tok;
  std::vector<TextTokenizer::Word> words;
  std::vector<int32_t> slot_of;  // term id -> index into posts, -1 if not in this segment
  std::vector<Post> posts;
  std::vector<uint32_t> post_term;                    // posts index -> term id
  std::vector<std::pair<uint32_t, uint32_t>> docs;    // docid, length
  size_t bytes = 0;                                   // postings and positions added

  Post& get(uint32_t term) {
    int32_t& s = slot_of[term];
    if (s < 0) {
      s = int32_t(posts.size());
      posts.emplace_back();
      post_term.push_back(term);
      bytes += sizeof(Post) + 8;
    }
    return posts[size_t(s)];
  }
};

SegmentBuilder::SegmentBuilder() : impl_(std::make_unique<Impl>()) {}
SegmentBuilder::~SegmentBuilder() = default;

uint32_t SegmentBuilder::add(uint32_t did, std::string_view text) {
  Impl& m = *impl_;
  if (did == 0 || (!m.docs.empty() && did <= m.docs.back().first)) return 0;
  m.words.clear();
  m.tok.words(text, &m.words);
  if (m.slot_of.size() < m.tok.terms()) m.slot_of.resize(m.tok.terms() + m.tok.terms() / 2, -1);
  uint32_t len = 0;
  uint32_t pos = 0;
  for (const TextTokenizer::Word& w : m.words) {
    ++pos;
    Impl::Post& p = m.get(w.exact);
    if (p.dw.empty() || p.dw[p.dw.size() - 2] != did) {
      p.dw.push_back(did);
      p.dw.push_back(0);
      p.last_pos = 0;
      m.bytes += 8;
    }
    ++p.dw.back();
    size_t before = p.pos.size();
    put_varint(&p.pos, pos - p.last_pos);
    m.bytes += p.pos.size() - before;
    p.last_pos = pos;
    ++len;
    if (w.stem != TextTokenizer::kNoStem) {
      Impl::Post& q = m.get(w.stem);
      if (q.dw.empty() || q.dw[q.dw.size() - 2] != did) {
        q.dw.push_back(did);
        q.dw.push_back(0);
        m.bytes += 8;
      }
      ++q.dw.back();
      ++len;
    }
  }
  m.docs.push_back({did, len});
  return len;
}

size_t SegmentBuilder::docs() const { return impl_->docs.size(); }
bool SegmentBuilder::empty() const { return impl_->docs.empty(); }

size_t SegmentBuilder::memory() const {
  const Impl& m = *impl_;
  return m.bytes + m.tok.memory() + m.slot_of.capacity() * sizeof(int32_t) +
         m.posts.capacity() * sizeof(Impl::Post) + m.post_term.capacity() * sizeof(uint32_t) +
         m.docs.capacity() * 8 + m.words.capacity() * sizeof(TextTokenizer::Word);
}

Status SegmentBuilder::write(const std::string& path, bool sync) {
  Impl& m = *impl_;
  // Sorted by term: the first 8 bytes as a big-endian integer decide most comparisons.
  struct Key {
    uint64_t head;
    std::string_view term;
    uint32_t post;
  };
  std::vector<Key> order(m.posts.size());
  for (uint32_t i = 0; i < order.size(); ++i) {
    std::string_view t = m.tok.term(m.post_term[i]);
    uint64_t head = 0;
    std::memcpy(&head, t.data(), std::min<size_t>(8, t.size()));
    order[i] = {__builtin_bswap64(head), t, i};
  }
  std::sort(order.begin(), order.end(), [](const Key& a, const Key& b) {
    if (a.head != b.head) return a.head < b.head;
    return a.term < b.term;
  });
  SegmentEncoder enc;
  size_t postings = 0, positions = 0;
  for (const Impl::Post& p : m.posts) {
    postings += p.dw.size() / 2;
    positions += p.pos.size();
  }
  enc.reserve(m.docs.size(), m.posts.size() * 12, postings * 2 + 64, positions);
  for (auto [did, len] : m.docs) enc.doc(did, len);
  for (const Key& k : order) {
    uint32_t o = k.post;
    std::string_view t = k.term;
    if (t.size() > kMaxTermBytes) return Status::invalid("term over 255 bytes");
    const Impl::Post& p = m.posts[o];
    enc.begin_term(t);
    for (size_t k = 0; k < p.dw.size(); k += 2) enc.posting(p.dw[k], p.dw[k + 1]);
    enc.positions(p.pos.data(), p.pos.size());
    enc.end_term();
  }
  if (Status s = enc.write(path, sync); !s) return s;
  clear();
  return Status::ok();
}

void SegmentBuilder::clear() {
  Impl& m = *impl_;
  for (uint32_t t : m.post_term) m.slot_of[t] = -1;
  std::vector<Impl::Post>().swap(m.posts);
  std::vector<uint32_t>().swap(m.post_term);
  m.docs.clear();
  m.bytes = 0;
  if (m.tok.terms() > kClearDictionaryTerms) {
    m.tok.clear();
    std::vector<int32_t>().swap(m.slot_of);
  }
}

}  // namespace ds
