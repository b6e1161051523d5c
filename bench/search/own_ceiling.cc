// Stand-alone ceiling of a "skeleton" index design: Xapian keeps only each event's document
// (data + the three boolean filter terms), and the text postings live in our own immutable
// inverted-index segments. Answers one question with measurements: could that design index
// >= 20,000 events/s on this machine (issue #4)? It is a benchmark, not the indexer: nothing
// here is used by the server, and the segment format is only what such a writer would have to
// produce (term dictionary, postings, positions, document lengths), not a format anyone reads.
//
// Input: the same extracted texts as xapian_ceiling.cc, one event per line,
// session \t type \t text, with the text's '\n' written as '\x01':
//   python3 bench/search/gen_corpus.py --events 150000 --sessions 2000 --seed 1 > /tmp/ceiling-x/corpus.jsonl
//   python3 - <<'PY'   # bench.py's extract(), the approximation of src/search/event_text.cc
//   import sys, json; sys.path.insert(0, "bench/search"); from bench import extract
//   with open("/tmp/ceiling-x/corpus.jsonl") as f, open("/tmp/ceiling-x/texts.tsv", "w") as o:
//       for line in f:
//           r = json.loads(line); ev = r["event"]
//           t = extract(ev).replace("\t", " ").replace("\n", "\x01")
//           o.write(f'{r["session"]}\t{ev.get("type", "")}\t{t}\n')
//   PY
// Build and run:
//   g++ -O2 -std=c++20 bench/search/own_ceiling.cc -o /tmp/own_ceiling -lxapian
//   /tmp/own_ceiling TEXTS.tsv N MODE OUT_DIR          (FSYNC=1: fdatasync each segment file)
// MODE:
//   check  term identity on the first N documents (the report used N = 2000, and all 150,000):
//          our terms, wdf and positions against Xapian::TermGenerator (english stemmer,
//          STEM_SOME) on the same text; prints the first 20 differing documents' differences and
//          the counts. Exit status 1 if any document differs.
//   tok    stage 1 only: tokenise + lower-case + stem (through the cache) into term ids.
//   index  stages 1+2+3 on one thread: tokenise, invert (batches of 20,000 documents), flush
//          each batch as a segment file under OUT_DIR/seg/.
//   skel   stage 4 only: a glass database (OUT_DIR/xapian, DB_NO_SYNC) receiving the skeleton
//          documents (XS<session>, XT<type>, XKbench, data "<session>\n<i>"), a commit per
//          20,000 documents.
//   all    stages 1+2+3+4 on one thread, in the order a single indexer thread would do them.
//   pipe   1+2+3 on the main thread, 4 on a second thread fed per chunk of 1,000 documents;
//          the skeleton commits a batch only after its segment file was written.
//   merge  after index/all/pipe: compacts all segment files under OUT_DIR/seg into one (k-way
//          merge of the sorted dictionaries, postings re-gapped, positions copied) and removes
//          the inputs — the background cost this design adds; `verify` works on the result. N is
//          ignored (give any).
//   verify after index/all/pipe (or merge) with the same N: decodes every segment file
//          (section sizes, sorted dictionary, docid order, document length = sum of wdf, no
//          positions on Z terms) and compares every document's terms, wdf, positions and length read back
//          from the segments with TermGenerator's; checks the skeleton's document count and
//          every document's data and boolean terms. Exit status 1 on any error.
// Prints one line: documents, wall, process CPU, each stage's thread CPU (the segment flush also
// as wall time, which includes fdatasync), the rates (documents per wall second and per CPU
// second), segment and Xapian bytes on disk, and the load average before and after. Stages are
// timed with the thread's CPU clock around chunks of 1,000
// documents, so the stage times add up to the thread's time without per-document clock calls.
//
// What the tokeniser guarantees (checked by `check`): the same terms as TermGenerator with the
// english stemmer and STEM_SOME for valid UTF-8 text — exact lower-cased word forms with
// positions 1, 2, … and wdf = occurrences; "Z"+stem (only for words starting with a letter)
// without positions, wdf = occurrences of words with that stem; words over 64 bytes dropped
// without using a position. Word splitting follows TermGenerator's rules: word characters are
// letters, marks, decimal digits and connector punctuation ('_'); the infixes ' & · between
// word characters and , . ; between digits join words; up to three trailing '+'/'#' are kept
// unless a word character follows; initials like "U.S.A." become one word. ASCII takes a table
// lookup; other code points ask Xapian::Unicode (is_wordchar, tolower, categories), so the only
// intended differences are: invalid UTF-8 is read byte by byte as Latin-1 (Xapian's iterator has
// its own rules; they agreed on the few invalid sequences tried), and Xapian's CJK n-gram mode
// (off unless XAPIAN_CJK_NGRAM is set) is not implemented. Each distinct word is stemmed once: a
// per-thread open-addressing hash table maps the word to its term id and its Z term's id; the
// same table is the term dictionary. It only grows here (176,335 entries after the 150,000
// benchmark events, mostly unique tool ids); a real writer would bound it.
//
// Segment docids are the skeleton's Xapian docids (both count from 1 in the same order). Not
// measured here: reading the logs and extracting text, queries over the segments, searching the
// not yet flushed batch (freshness), deletions, and merges beyond one level (`merge`).
//
// Result, 2026-11-29, 150,000 events, 2 shared vCPUs, load average 0.8-1.8: single thread,
// stages 1-4 ≈ 60,000-72,000 documents per CPU-second (tokenise ≈ 4 µs, invert ≈ 3 µs, flush
// ≈ 3.4 µs, skeleton add_document ≈ 4.5 µs per document); xapian_ceiling's full scheme on the
// same documents ≈ 5,000. Segments 37.4 MB + skeleton 13.4 MB vs 249 MB for the full scheme.
#include <xapian.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace {

constexpr uint32_t kNone = 0xffffffffu;
constexpr size_t kBatch = 20000;  // documents per segment and per skeleton commit
constexpr size_t kChunk = 1000;   // documents per timed step
constexpr size_t kMaxWord = 64;   // TermGenerator's default max_word_length

double thread_cpu() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}
double proc_cpu() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}
std::string loadavg() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

struct Doc {
  std::string session, type, text;
};

// ---- Stage 1: dictionary + stem cache -------------------------------------------------------

// 64-bit hash of a short string: 8-byte words folded with a multiply and rotate, then a final
// avalanche. Only needs to spread terms over a power-of-two table.
inline uint64_t hash_bytes(std::string_view s) {
  uint64_t h = 0x9e3779b97f4a7c15ull ^ s.size();
  const char* p = s.data();
  size_t n = s.size();
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * 0xff51afd7ed558ccdull;
    h = (h << 29) | (h >> 35);
    p += 8;
    n -= 8;
  }
  uint64_t w = 0;
  std::memcpy(&w, p, n);
  h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 29;
  return h;
}

// Term dictionary and stem cache in one: id -> term text (exact words lower-case, stems as
// "Z"+stem; a lower-cased word never starts with 'Z', so the two kinds share one table) and,
// for a word, the id of its Z term or kNone.
struct Dict {
  struct Info {
    std::string text;
    uint32_t stem = kNone;
  };
  std::vector<Info> info;
  std::vector<uint64_t> slots;  // 0 = empty, else (hash high 32 bits << 32) | (id + 1)
  size_t mask = 0;
  Xapian::Stem stemmer{"english"};
  uint64_t stem_calls = 0;

  Dict() {
    slots.assign(1 << 16, 0);
    mask = slots.size() - 1;
    info.reserve(1 << 15);
  }

  void grow() {
    std::vector<uint64_t> old(slots.size() * 2, 0);
    old.swap(slots);
    mask = slots.size() - 1;
    for (uint64_t s : old) {
      if (!s) continue;
      uint32_t id = uint32_t(s) - 1;
      size_t i = hash_bytes(info[id].text) & mask;
      while (slots[i]) i = (i + 1) & mask;
      slots[i] = s;
    }
  }

  static bool should_stem(std::string_view w) {
    unsigned char c = w[0];
    if (c < 0x80) return c >= 'a' && c <= 'z';  // lower-cased already; digits and '_' are not
    unsigned cp;
    Xapian::Utf8Iterator u(w.data(), w.size());
    cp = *u;
    auto cat = Xapian::Unicode::get_category(cp);
    return cat == Xapian::Unicode::LOWERCASE_LETTER || cat == Xapian::Unicode::TITLECASE_LETTER ||
           cat == Xapian::Unicode::MODIFIER_LETTER || cat == Xapian::Unicode::OTHER_LETTER;
  }

  // Returns the id of `w`, adding it (and, for a word, stemming it once) if new.
  uint32_t id(std::string_view w, bool is_word) {
    uint64_t h = hash_bytes(w);
    uint32_t tag = uint32_t(h >> 32);
    size_t i = h & mask;
    while (uint64_t s = slots[i]) {
      if (uint32_t(s >> 32) == tag) {
        uint32_t id = uint32_t(s) - 1;
        if (info[id].text == w) return id;
      }
      i = (i + 1) & mask;
    }
    uint32_t id = uint32_t(info.size());
    info.push_back({std::string(w), kNone});
    slots[i] = (uint64_t(tag) << 32) | (id + 1);
    if (info.size() * 2 > slots.size()) grow();
    if (is_word && should_stem(w)) {
      ++stem_calls;
      std::string st = stemmer(info[id].text);
      if (!st.empty()) {
        st.insert(st.begin(), 'Z');
        uint32_t z = this->id(st, false);
        info[id].stem = z;
      }
    }
    return id;
  }
};

// ---- Stage 1: tokeniser ---------------------------------------------------------------------

struct Ascii {
  bool word[128];
  constexpr Ascii() : word() {
    for (int c = 0; c < 128; ++c)
      word[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  }
};
constexpr Ascii kAscii;

inline bool cont(unsigned char c) { return (c & 0xc0) == 0x80; }

// Decodes the code point at p[i] (i < n); returns its length in bytes. Invalid sequences are read
// as one Latin-1 byte.
inline size_t decode(const unsigned char* p, size_t n, size_t i, unsigned& cp) {
  unsigned c = p[i];
  if (c < 0x80) {
    cp = c;
    return 1;
  }
  if (c >= 0xc2 && c < 0xe0 && i + 1 < n && cont(p[i + 1])) {
    cp = ((c & 0x1f) << 6) | (p[i + 1] & 0x3f);
    return 2;
  }
  if (c >= 0xe0 && c < 0xf0 && i + 2 < n && cont(p[i + 1]) && cont(p[i + 2])) {
    unsigned v = ((c & 0x0f) << 12) | ((p[i + 1] & 0x3f) << 6) | (p[i + 2] & 0x3f);
    if (v >= 0x800) {
      cp = v;
      return 3;
    }
  }
  if (c >= 0xf0 && c < 0xf5 && i + 3 < n && cont(p[i + 1]) && cont(p[i + 2]) && cont(p[i + 3])) {
    unsigned v = ((c & 0x07) << 18) | ((p[i + 1] & 0x3f) << 12) | ((p[i + 2] & 0x3f) << 6) |
                 (p[i + 3] & 0x3f);
    if (v >= 0x10000 && v <= 0x10ffff) {
      cp = v;
      return 4;
    }
  }
  cp = c;
  return 1;
}

inline bool is_wc(unsigned cp) { return cp < 128 ? kAscii.word[cp] : Xapian::Unicode::is_wordchar(cp); }
inline unsigned lower(unsigned cp) {
  if (cp < 128) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
  return Xapian::Unicode::tolower(cp);
}
inline bool is_digit(unsigned cp) {
  if (cp < 128) return cp >= '0' && cp <= '9';
  return Xapian::Unicode::get_category(cp) == Xapian::Unicode::DECIMAL_DIGIT_NUMBER;
}
inline void put(std::string& s, unsigned cp) {
  if (cp < 128)
    s.push_back(char(cp));
  else
    Xapian::Unicode::append_utf8(s, cp);
}
constexpr unsigned kIgnore = 0xffffffffu;
inline bool invisible(unsigned cp) { return cp >= 0x200b && (cp <= 0x200d || cp == 0x2060 || cp == 0xfeff); }
// Joins two letter runs: apostrophes, '&', middle dots; zero-width characters join and vanish.
inline unsigned join_words(unsigned cp) {
  switch (cp) {
    case '\'': case '&': case 0xb7: case 0x5f4: case 0x2027: return cp;
    case 0x2019: case 0x201b: return '\'';
  }
  return invisible(cp) ? kIgnore : 0;
}
// Joins two digit runs: "1,000", "3.14", and their Unicode cousins.
inline unsigned join_digits(unsigned cp) {
  switch (cp) {
    case ',': case '.': case ';': case 0x37e: case 0x589: case 0x60d: case 0x7f8: case 0x2044:
    case 0xfe10: case 0xfe13: case 0xfe14: return cp;
  }
  return invisible(cp) ? kIgnore : 0;
}

// Splits `text` into words; calls emit(word) for each, in order.
template <typename Emit>
void split_words(std::string_view text, std::string& w, Emit&& emit) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0, len = 0;
  unsigned cp = 0;
  for (;;) {
    // Find the next word character.
    for (;;) {
      if (i >= n) return;
      if (p[i] < 0x80) {
        cp = p[i];
        len = 1;
        if (kAscii.word[cp]) break;
        ++i;
        continue;
      }
      len = decode(p, n, i, cp);
      if (is_wc(cp)) break;
      i += len;
    }
    w.clear();
    if (cp >= 'A' && cp <= 'Z') {  // initials: A.B.C
      size_t j = i;
      unsigned c = cp;
      for (;;) {
        w.push_back(char(c + 32));
        ++j;
        if (j >= n || p[j] != '.') break;
        ++j;
        if (j >= n || !(p[j] >= 'A' && p[j] <= 'Z')) break;
        c = p[j];
      }
      if (w.size() > 1) {
        unsigned after = 0;
        bool word_follows = j < n && (decode(p, n, j, after), is_wc(after));
        if (!word_follows) {
          i = j;
          emit(w);
          continue;
        }
      }
      w.clear();
    }
    unsigned ch = lower(cp);
    bool at_end = false;
    for (;;) {
      unsigned prev;
      for (;;) {  // a run of word characters
        put(w, ch);
        prev = ch;
        i += len;
        if (i >= n) {
          at_end = true;
          break;
        }
        if (p[i] < 0x80) {
          cp = p[i];
          len = 1;
        } else {
          len = decode(p, n, i, cp);
        }
        if (!is_wc(cp)) break;
        ch = lower(cp);
      }
      if (at_end) break;
      size_t nx = i + len;  // a single joining character between two runs?
      if (nx >= n) break;
      unsigned ncp;
      size_t nlen = decode(p, n, nx, ncp);
      if (!is_wc(ncp)) break;
      unsigned j = (is_digit(prev) && is_digit(ncp)) ? join_digits(cp) : join_words(cp);
      if (!j) break;
      if (j != kIgnore) put(w, j);
      ch = lower(ncp);
      i = nx;
      len = nlen;
    }
    if (!at_end) {  // up to three '+' / '#' suffixes (C++, C#), not when a word follows
      size_t keep = w.size();
      unsigned count = 0;
      while (cp == '+' || cp == '#') {
        if (++count > 3) {
          w.resize(keep);
          break;
        }
        w.push_back(char(cp));
        i += len;
        if (i >= n) {
          at_end = true;
          break;
        }
        len = decode(p, n, i, cp);
      }
      if (!at_end && is_wc(cp)) w.resize(keep);
    }
    emit(w);
  }
}

// Stage 1 output for a chunk of documents: per word occurrence (exact term id, Z term id or
// kNone); a document's positions are 1.. in order of its entries.
struct Tokens {
  std::vector<uint32_t> ids;   // pairs
  std::vector<uint32_t> ends;  // per document, end index into ids (in pairs)
  void clear() {
    ids.clear();
    ends.clear();
  }
};

struct Tokeniser {
  Dict dict;
  std::string w;
  void doc(std::string_view text, Tokens& out) {
    split_words(text, w, [&](const std::string& word) {
      if (word.size() > kMaxWord) return;
      uint32_t id = dict.id(word, true);
      out.ids.push_back(id);
      out.ids.push_back(dict.info[id].stem);
    });
    out.ends.push_back(uint32_t(out.ids.size() / 2));
  }
};

// ---- Stage 2: inverter ----------------------------------------------------------------------

void put_varint(std::string& s, uint64_t v) {
  while (v >= 0x80) {
    s.push_back(char(v | 0x80));
    v >>= 7;
  }
  s.push_back(char(v));
}

// Writes one segment file (layout at Inverter::flush) with write(); fdatasync if `sync`.
template <typename Lens>
uint64_t write_segment(const std::string& path, uint64_t base, const Lens& doclen, uint64_t terms,
                       const std::string& dic, const std::string& pst, const std::string& pos,
                       bool sync) {
  std::string head = "OWNSEG1\n";
  put_varint(head, base);
  put_varint(head, doclen.size());
  put_varint(head, terms);
  put_varint(head, dic.size());
  put_varint(head, pst.size());
  put_varint(head, pos.size());
  for (auto l : doclen) put_varint(head, l);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    perror(path.c_str());
    exit(2);
  }
  uint64_t total = 0;
  const std::string& hd = head;
  for (const std::string* s : {&hd, &dic, &pst, &pos}) {
    const char* d = s->data();
    size_t left = s->size();
    while (left) {
      ssize_t r = ::write(fd, d, left);
      if (r < 0) {
        perror("write");
        exit(2);
      }
      d += r;
      left -= size_t(r);
    }
    total += s->size();
  }
  if (sync && ::fdatasync(fd) != 0) {
    perror("fdatasync");
    exit(2);
  }
  ::close(fd);
  return total;
}

struct Inverter {
  struct Post {
    std::vector<uint32_t> dw;  // docid, wdf, docid, wdf, …
    std::string pos;           // per document: wdf position gaps, first from 0 (exact terms only)
    uint32_t last_pos = 0;
  };
  std::vector<int32_t> slot_of;  // term id -> index into posts, -1 if not in this batch
  std::vector<Post> posts;
  std::vector<uint32_t> post_term;  // posts index -> term id
  std::vector<uint32_t> doclen;     // sum of wdf over all terms (Xapian's document length)
  uint32_t base = 1;                // first docid of the batch

  Post& get(uint32_t term) {
    int32_t& s = slot_of[term];
    if (s < 0) {
      s = int32_t(posts.size());
      posts.emplace_back();
      post_term.push_back(term);
    }
    return posts[s];
  }

  void chunk(const Tokens& t, uint32_t first_doc, size_t dict_size) {
    if (slot_of.size() < dict_size) slot_of.resize(dict_size + dict_size / 2, -1);
    size_t b = 0;
    for (size_t d = 0; d < t.ends.size(); ++d) {
      uint32_t docid = first_doc + uint32_t(d);
      size_t e = t.ends[d];
      uint32_t len = 0;
      for (size_t k = b; k < e; ++k) {
        uint32_t pos = uint32_t(k - b + 1);
        Post& p = get(t.ids[2 * k]);
        if (p.dw.empty() || p.dw[p.dw.size() - 2] != docid) {
          p.dw.push_back(docid);
          p.dw.push_back(0);
          p.last_pos = 0;
        }
        ++p.dw.back();
        put_varint(p.pos, pos - p.last_pos);
        p.last_pos = pos;
        ++len;
        uint32_t z = t.ids[2 * k + 1];
        if (z != kNone) {
          Post& q = get(z);
          if (q.dw.empty() || q.dw[q.dw.size() - 2] != docid) {
            q.dw.push_back(docid);
            q.dw.push_back(0);
          }
          ++q.dw.back();
          ++len;
        }
      }
      doclen.push_back(len);
      b = e;
    }
  }

  // ---- Stage 3: segment file ----
  // Layout: "OWNSEG1\n", then varints: base docid, documents, terms, dictionary bytes, postings
  // bytes, positions bytes; document lengths (varint each); dictionary (sorted terms, each:
  // shared prefix length, suffix length, suffix, df, postings bytes, positions bytes); postings
  // (docid gap from the previous posting or base-1, wdf); positions (as collected).
  uint64_t flush(const Dict& dict, const std::string& path, bool sync) {
    std::vector<uint32_t> order(posts.size());
    for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
      return dict.info[post_term[a]].text < dict.info[post_term[b]].text;
    });
    std::string dic, pst, pos;
    dic.reserve(posts.size() * 16);
    pst.reserve(posts.size() * 16);
    const std::string* prev = nullptr;
    for (uint32_t o : order) {
      const std::string& t = dict.info[post_term[o]].text;
      size_t shared = 0;
      if (prev) {
        size_t m = std::min(prev->size(), t.size());
        while (shared < m && (*prev)[shared] == t[shared]) ++shared;
      }
      prev = &t;
      const Post& p = posts[o];
      size_t p0 = pst.size();
      uint32_t last = base - 1;
      for (size_t k = 0; k < p.dw.size(); k += 2) {
        put_varint(pst, p.dw[k] - last);
        put_varint(pst, p.dw[k + 1]);
        last = p.dw[k];
      }
      pos += p.pos;
      put_varint(dic, shared);
      put_varint(dic, t.size() - shared);
      dic.append(t, shared, std::string::npos);
      put_varint(dic, p.dw.size() / 2);
      put_varint(dic, pst.size() - p0);
      put_varint(dic, p.pos.size());
    }
    uint64_t total = write_segment(path, base, doclen, posts.size(), dic, pst, pos, sync);
    for (uint32_t t : post_term) slot_of[t] = -1;
    posts.clear();
    post_term.clear();
    base += uint32_t(doclen.size());
    doclen.clear();
    return total;
  }
};

// ---- Stage 4: skeleton ----------------------------------------------------------------------

struct Skeleton {
  Xapian::WritableDatabase db;
  explicit Skeleton(const std::string& dir)
      : db(dir, Xapian::DB_CREATE_OR_OPEN | Xapian::DB_BACKEND_GLASS | Xapian::DB_NO_SYNC) {
    db.begin_transaction(false);
  }
  void add(const std::vector<Doc>& docs, size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      Xapian::Document d;
      d.add_boolean_term("XS" + docs[i].session);
      d.add_boolean_term("XT" + docs[i].type);
      d.add_boolean_term("XKbench");
      d.set_data(docs[i].session + "\n" + std::to_string(i));
      db.add_document(d);
    }
  }
  void commit(size_t upto) {
    db.set_metadata("p:x", std::to_string(upto));
    db.commit_transaction();
    db.begin_transaction(false);
  }
  void close() {
    db.commit_transaction();
    db.close();
  }
};

uint64_t du(const std::string& dir) {
  uint64_t s = 0;
  if (!std::filesystem::exists(dir)) return 0;
  for (auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file()) s += e.file_size();
  return s;
}

// ---- check ----------------------------------------------------------------------------------

int check(const std::vector<Doc>& docs, size_t n) {
  Xapian::TermGenerator tg;
  tg.set_stemmer(Xapian::Stem("english"));
  tg.set_stemming_strategy(Xapian::TermGenerator::STEM_SOME);
  Tokeniser tk;
  Tokens t;
  size_t bad_docs = 0, bad_terms = 0, terms = 0, printed = 0;
  using Entry = std::pair<uint32_t, std::vector<uint32_t>>;
  for (size_t i = 0; i < n; ++i) {
    Xapian::Document d;
    tg.set_document(d);
    tg.index_text(docs[i].text);
    std::map<std::string, Entry> want, got;
    for (auto it = d.termlist_begin(); it != d.termlist_end(); ++it) {
      Entry& e = want[*it];
      e.first = it.get_wdf();
      for (auto p = it.positionlist_begin(); p != it.positionlist_end(); ++p) e.second.push_back(*p);
    }
    t.clear();
    tk.doc(docs[i].text, t);
    for (uint32_t k = 0; k < t.ends[0]; ++k) {
      Entry& e = got[tk.dict.info[t.ids[2 * k]].text];
      ++e.first;
      e.second.push_back(k + 1);
      if (t.ids[2 * k + 1] != kNone) ++got[tk.dict.info[t.ids[2 * k + 1]].text].first;
    }
    terms += want.size();
    size_t bad = 0;
    std::string why;
    auto note = [&](const std::string& term, const char* what) {
      ++bad;
      if (why.size() < 400) why += " [" + term + "] " + what + ";";
    };
    for (auto& [term, e] : want) {
      auto g = got.find(term);
      if (g == got.end())
        note(term, "only Xapian");
      else if (g->second.first != e.first)
        note(term, "wdf differs");
      else if (g->second.second != e.second)
        note(term, "positions differ");
    }
    for (auto& [term, e] : got)
      if (!want.count(term)) note(term, "only ours");
    if (bad) {
      ++bad_docs;
      bad_terms += bad;
      if (printed++ < 20) printf("doc %zu: %zu differing terms:%s\n", i, bad, why.c_str());
    }
  }
  printf("check: %zu documents, %zu Xapian terms, %zu documents differ, %zu term differences, "
         "%zu words stemmed\n", n, terms, bad_docs, bad_terms, size_t(tk.dict.stem_calls));
  return bad_docs ? 1 : 0;
}

// ---- verify: read the segments (and the skeleton) back ------------------------------------

bool get_varint(const std::string& s, size_t& i, size_t end, uint64_t& v) {
  v = 0;
  for (int shift = 0; i < end && shift < 64; shift += 7) {
    unsigned char c = s[i++];
    v |= uint64_t(c & 0x7f) << shift;
    if (!(c & 0x80)) return true;
  }
  return false;
}

// Decodes every segment under OUT_DIR/seg (structure: sizes add up, docids ascending inside the
// segment, Z terms without positions, positions increasing, df/wdf consistent) and compares every
// document's terms, wdf, positions and length read back with TermGenerator's on the same text;
// checks the skeleton database's document count, and every document's data and boolean terms.
int verify(const std::vector<Doc>& docs, const std::string& out) {
  using Entry = std::pair<uint32_t, std::vector<uint32_t>>;
  Xapian::TermGenerator tg;
  tg.set_stemmer(Xapian::Stem("english"));
  tg.set_stemming_strategy(Xapian::TermGenerator::STEM_SOME);
  std::vector<std::string> files;
  for (auto& e : std::filesystem::directory_iterator(out + "/seg")) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  uint64_t next = 1, postings = 0;
  size_t errors = 0, bad_docs = 0;
  auto fail = [&](const std::string& f, const char* what) {
    if (errors++ < 20) printf("%s: %s\n", f.c_str(), what);
  };
  for (const std::string& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (s.compare(0, 8, "OWNSEG1\n") != 0) { fail(f, "bad magic"); continue; }
    size_t i = 8;
    uint64_t base, nd, nt, dsz, psz, qsz, v;
    if (!(get_varint(s, i, s.size(), base) && get_varint(s, i, s.size(), nd) &&
          get_varint(s, i, s.size(), nt) && get_varint(s, i, s.size(), dsz) &&
          get_varint(s, i, s.size(), psz) && get_varint(s, i, s.size(), qsz))) { fail(f, "bad header"); continue; }
    if (base != next || base + nd - 1 > docs.size()) { fail(f, "documents do not follow the previous segment"); continue; }
    std::vector<uint64_t> dl(nd);
    for (auto& l : dl) if (!get_varint(s, i, s.size(), l)) fail(f, "bad document lengths");
    size_t d = i, dend = i + dsz, p = dend, pend = p + psz, q = pend, qend = q + qsz;
    if (qend != s.size()) { fail(f, "section sizes do not add up to the file size"); continue; }
    std::vector<std::map<std::string, Entry>> got(nd);
    std::vector<uint64_t> sum(nd);
    std::string term, prev;
    for (uint64_t t = 0; t < nt; ++t) {
      uint64_t shared, suf, df, pb, qb;
      if (!(get_varint(s, d, dend, shared) && get_varint(s, d, dend, suf)) || shared > prev.size() ||
          d + suf > dend) { fail(f, "bad dictionary entry"); break; }
      term = prev.substr(0, shared) + s.substr(d, suf);
      d += suf;
      if (!(get_varint(s, d, dend, df) && get_varint(s, d, dend, pb) && get_varint(s, d, dend, qb))) { fail(f, "bad dictionary entry"); break; }
      if (t && !(prev < term)) fail(f, "dictionary not sorted");
      prev = term;
      bool stem = term[0] == 'Z';
      if (stem && qb) fail(f, "positions on a Z term");
      size_t pe = p + pb, qe = q + qb;
      if (pe > pend || qe > qend) { fail(f, "postings or positions past their section"); break; }
      uint64_t doc = base - 1;
      for (uint64_t k = 0; k < df; ++k) {
        uint64_t gap, wdf;
        if (!(get_varint(s, p, pe, gap) && get_varint(s, p, pe, wdf)) || gap == 0 || wdf == 0) { fail(f, "bad posting"); break; }
        doc += gap;
        if (doc >= base + nd) { fail(f, "docid outside the segment"); break; }
        sum[doc - base] += wdf;
        ++postings;
        Entry& e = got[doc - base][term];
        e.first = uint32_t(wdf);
        if (!stem) {
          uint64_t pos = 0;
          for (uint64_t w = 0; w < wdf; ++w) {
            if (!get_varint(s, q, qe, v) || v == 0) { fail(f, "bad position"); break; }
            pos += v;
            e.second.push_back(uint32_t(pos));
          }
        }
      }
      if (p != pe || q != qe) fail(f, "postings or positions length mismatch");
      p = pe;
      q = qe;
    }
    if (d != dend || p != pend || q != qend) fail(f, "sections not fully consumed");
    for (uint64_t k = 0; k < nd; ++k) {  // against TermGenerator on the same text
      if (sum[k] != dl[k]) fail(f, "document length is not the sum of its wdf");
      Xapian::Document doc;
      tg.set_document(doc);
      tg.index_text(docs[base - 1 + k].text);
      std::map<std::string, Entry> want;
      uint64_t len = 0;
      for (auto it = doc.termlist_begin(); it != doc.termlist_end(); ++it) {
        Entry& e = want[*it];
        e.first = it.get_wdf();
        len += e.first;
        for (auto ps = it.positionlist_begin(); ps != it.positionlist_end(); ++ps) e.second.push_back(*ps);
      }
      if (want != got[k] || len != dl[k])
        if (bad_docs++ < 20) printf("doc %llu differs from TermGenerator\n", (unsigned long long)(base - 1 + k));
    }
    next = base + nd;
  }
  if (next - 1 != docs.size()) printf("segments hold %llu documents, expected %zu\n", (unsigned long long)(next - 1), docs.size()), ++errors;
  size_t bad_skel = 0;
  bool skel = std::filesystem::exists(out + "/xapian");
  if (skel) {
    Xapian::Database db(out + "/xapian");
    if (db.get_doccount() != docs.size()) ++bad_skel, printf("skeleton holds %u documents\n", db.get_doccount());
    for (size_t k = 0; k < std::min<size_t>(docs.size(), db.get_doccount()); ++k) {
      Xapian::Document doc = db.get_document(Xapian::docid(k + 1));
      std::vector<std::string> terms(doc.termlist_begin(), doc.termlist_end());
      std::vector<std::string> want = {"XKbench", "XS" + docs[k].session, "XT" + docs[k].type};
      std::sort(want.begin(), want.end());
      if (terms != want || doc.get_data() != docs[k].session + "\n" + std::to_string(k)) ++bad_skel;
    }
  }
  printf("verify: %zu segments, %llu postings, %zu structural errors; %zu documents, %zu differ "
         "from TermGenerator; skeleton %s, %zu documents wrong\n", files.size(),
         (unsigned long long)postings, errors, docs.size(), bad_docs, skel ? "checked" : "absent", bad_skel);
  return errors || bad_docs || bad_skel ? 1 : 0;
}

// ---- merge: compaction of all segments into one --------------------------------------------

struct SegFile {
  struct Term {
    std::string text;
    uint64_t df, po, pl, qo, ql;  // postings and positions: offset and length in `s`
  };
  std::string s;
  uint64_t base = 0;
  std::vector<uint64_t> dl;
  std::vector<Term> terms;
};

bool load_segment(const std::string& path, SegFile& g) {
  std::ifstream in(path, std::ios::binary);
  g.s.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  const std::string& s = g.s;
  if (s.compare(0, 8, "OWNSEG1\n") != 0) return false;
  size_t i = 8;
  uint64_t nd, nt, dsz, psz, qsz;
  if (!(get_varint(s, i, s.size(), g.base) && get_varint(s, i, s.size(), nd) &&
        get_varint(s, i, s.size(), nt) && get_varint(s, i, s.size(), dsz) &&
        get_varint(s, i, s.size(), psz) && get_varint(s, i, s.size(), qsz)))
    return false;
  g.dl.resize(nd);
  for (auto& l : g.dl)
    if (!get_varint(s, i, s.size(), l)) return false;
  size_t d = i, dend = i + dsz, p = dend, q = dend + psz;
  if (q + qsz != s.size()) return false;
  g.terms.resize(nt);
  std::string prev;
  for (auto& t : g.terms) {
    uint64_t shared, suf;
    if (!(get_varint(s, d, dend, shared) && get_varint(s, d, dend, suf)) || shared > prev.size() ||
        d + suf > dend)
      return false;
    t.text.assign(prev, 0, shared);
    t.text.append(s, d, suf);
    d += suf;
    if (!(get_varint(s, d, dend, t.df) && get_varint(s, d, dend, t.pl) && get_varint(s, d, dend, t.ql)))
      return false;
    t.po = p;
    t.qo = q;
    p += t.pl;
    q += t.ql;
    prev = t.text;
  }
  return d == dend;
}

// Merges every segment under OUT_DIR/seg (consecutive document ranges) into one file, then
// removes the inputs: a k-way merge of the sorted dictionaries; postings are decoded and re-encoded
// (only the first gap of each input list changes); positions and document lengths are copied.
int merge(const std::string& out, bool sync) {
  std::vector<std::string> files;
  for (auto& e : std::filesystem::directory_iterator(out + "/seg")) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  auto w0 = std::chrono::steady_clock::now();
  double c0 = proc_cpu();
  std::vector<SegFile> segs(files.size());
  uint64_t in_bytes = 0;
  for (size_t k = 0; k < files.size(); ++k) {
    if (!load_segment(files[k], segs[k])) {
      fprintf(stderr, "%s: not a segment\n", files[k].c_str());
      return 1;
    }
    in_bytes += segs[k].s.size();
  }
  double c_load = proc_cpu() - c0;
  std::vector<uint64_t> dl;
  for (auto& g : segs) dl.insert(dl.end(), g.dl.begin(), g.dl.end());
  std::string dic, pst, pos, prev;
  std::vector<size_t> at(segs.size(), 0);
  uint64_t nterms = 0;
  for (;;) {
    const std::string* best = nullptr;
    for (size_t k = 0; k < segs.size(); ++k)
      if (at[k] < segs[k].terms.size() && (!best || segs[k].terms[at[k]].text < *best))
        best = &segs[k].terms[at[k]].text;
    if (!best) break;
    std::string term = *best;
    uint64_t df = 0, p0 = pst.size(), q0 = pos.size(), last = segs.empty() ? 0 : segs[0].base - 1;
    for (size_t k = 0; k < segs.size(); ++k) {
      if (at[k] >= segs[k].terms.size() || segs[k].terms[at[k]].text != term) continue;
      const SegFile::Term& t = segs[k].terms[at[k]++];
      size_t i = t.po, end = t.po + t.pl;
      uint64_t doc = segs[k].base - 1, gap, wdf;
      while (i < end && get_varint(segs[k].s, i, end, gap) && get_varint(segs[k].s, i, end, wdf)) {
        doc += gap;
        put_varint(pst, doc - last);
        put_varint(pst, wdf);
        last = doc;
      }
      pos.append(segs[k].s, t.qo, t.ql);
      df += t.df;
    }
    size_t shared = 0, m = std::min(prev.size(), term.size());
    while (shared < m && prev[shared] == term[shared]) ++shared;
    put_varint(dic, shared);
    put_varint(dic, term.size() - shared);
    dic.append(term, shared, std::string::npos);
    put_varint(dic, df);
    put_varint(dic, pst.size() - p0);
    put_varint(dic, pos.size() - q0);
    prev.swap(term);
    ++nterms;
  }
  std::string tmp = out + "/seg/merged.tmp";
  uint64_t out_bytes =
      write_segment(tmp, segs.empty() ? 1 : segs[0].base, dl, nterms, dic, pst, pos, sync);
  for (auto& f : files) std::filesystem::remove(f);
  std::filesystem::rename(tmp, out + "/seg/000000");
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
  double cpu = proc_cpu() - c0;
  printf("merge: %zu segments, %zu documents, %llu terms, %.1f MB -> %.1f MB, wall=%.2fs "
         "cpu=%.2fs (reading and parsing %.2fs) => %.0f docs/s wall, %.0f docs/cpu-s | load %s\n",
         files.size(), dl.size(), (unsigned long long)nterms, in_bytes / 1e6, out_bytes / 1e6, wall,
         cpu, c_load, dl.size() / wall, dl.size() / cpu, loadavg().c_str());
  return 0;
}

// ---- pipeline hand-off ----------------------------------------------------------------------

struct Msg {
  enum Kind { kDocs, kCommit, kEnd } kind;
  size_t b, e;
};
struct Queue {
  std::mutex m;
  std::condition_variable cv;
  std::deque<Msg> q;
  void push(Msg x) {
    {
      std::lock_guard<std::mutex> l(m);
      q.push_back(x);
    }
    cv.notify_one();
  }
  Msg pop() {
    std::unique_lock<std::mutex> l(m);
    cv.wait(l, [&] { return !q.empty(); });
    Msg x = q.front();
    q.pop_front();
    return x;
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: %s TEXTS.tsv N check|tok|index|skel|all|pipe|verify|merge OUT_DIR\n", argv[0]);
    return 2;
  }
  std::string file = argv[1];
  size_t n = atol(argv[2]);
  std::string mode = argv[3];
  std::string out = argv[4];
  bool sync = getenv("FSYNC") && atoi(getenv("FSYNC"));

  std::vector<Doc> docs;
  docs.reserve(n);
  {
    std::ifstream f(file);
    std::string line;
    while (docs.size() < n && std::getline(f, line)) {
      size_t a = line.find('\t'), b = line.find('\t', a + 1);
      std::string t = line.substr(b + 1);
      for (char& c : t)
        if (c == '\x01') c = '\n';
      docs.push_back({line.substr(0, a), line.substr(a + 1, b - a - 1), std::move(t)});
    }
  }
  n = docs.size();
  if (mode == "check") return check(docs, n);
  if (mode == "verify") return verify(docs, out);
  if (mode == "merge") return merge(out, sync);

  bool do_text = mode == "tok" || mode == "index" || mode == "all" || mode == "pipe";
  bool do_inv = mode == "index" || mode == "all" || mode == "pipe";
  bool do_skel = mode == "skel" || mode == "all" || mode == "pipe";
  bool piped = mode == "pipe";
  if (!do_text && !do_skel) {
    fprintf(stderr, "unknown mode %s\n", mode.c_str());
    return 2;
  }
  std::filesystem::remove_all(out);
  std::filesystem::create_directories(out + "/seg");
  std::string before = loadavg();

  Tokeniser tk;
  Tokens toks;
  Inverter inv;
  std::unique_ptr<Skeleton> skel;
  if (do_skel) skel = std::make_unique<Skeleton>(out + "/xapian");
  double c_tok = 0, c_inv = 0, c_flush = 0, c_skel = 0, c_commit = 0, w_flush = 0;
  uint64_t seg_bytes = 0, checksum = 0;
  size_t segs = 0;
  Queue q;
  std::thread second;
  std::atomic<double> c_second{0};

  auto w0 = std::chrono::steady_clock::now();
  double p0 = proc_cpu();
  if (piped) {
    second = std::thread([&] {
      double t0 = thread_cpu(), add = 0, com = 0;
      for (;;) {
        Msg m = q.pop();
        double a = thread_cpu();
        if (m.kind == Msg::kDocs) {
          skel->add(docs, m.b, m.e);
          add += thread_cpu() - a;
        } else if (m.kind == Msg::kCommit) {
          skel->commit(m.e);
          com += thread_cpu() - a;
        } else {
          skel->close();
          com += thread_cpu() - a;
          break;
        }
      }
      c_skel = add;
      c_commit = com;
      c_second = thread_cpu() - t0;
    });
  }
  for (size_t b = 0; b < n; b += kChunk) {
    size_t e = std::min(n, b + kChunk);
    if (do_text) {
      double a = thread_cpu();
      toks.clear();
      for (size_t i = b; i < e; ++i) tk.doc(docs[i].text, toks);
      double c = thread_cpu();
      c_tok += c - a;
      if (do_inv) {
        inv.chunk(toks, uint32_t(b + 1), tk.dict.info.size());
        c_inv += thread_cpu() - c;
      } else {
        for (uint32_t x : toks.ids) checksum += x;  // keeps `tok` from being optimised away
      }
    }
    if (piped) {
      q.push({Msg::kDocs, b, e});
    } else if (do_skel) {
      double a = thread_cpu();
      skel->add(docs, b, e);
      c_skel += thread_cpu() - a;
    }
    if (e % kBatch == 0 || e == n) {
      if (do_inv) {
        double a = thread_cpu();
        auto fw = std::chrono::steady_clock::now();
        char name[32];
        snprintf(name, sizeof name, "/seg/%06zu", segs++);
        seg_bytes += inv.flush(tk.dict, out + name, sync);
        c_flush += thread_cpu() - a;
        w_flush += std::chrono::duration<double>(std::chrono::steady_clock::now() - fw).count();
      }
      if (piped) {
        q.push({e == n ? Msg::kEnd : Msg::kCommit, 0, e});
      } else if (do_skel) {
        double a = thread_cpu();
        if (e == n)
          skel->close();
        else
          skel->commit(e);
        c_commit += thread_cpu() - a;
      }
    }
  }
  double c_main_end = 0;
  if (piped) {
    c_main_end = c_tok + c_inv + c_flush;
    second.join();
  }
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
  double cpu = proc_cpu() - p0;
  uint64_t xap = du(out + "/xapian");
  auto rate = [&](double s) { return s > 0 ? n / s : 0.0; };
  printf("mode=%s n=%zu sync=%d wall=%.2fs cpu=%.2fs => %.0f docs/s wall, %.0f docs/cpu-s | "
         "tok %.2fs (%.0f/s) invert %.2fs (%.0f/s) flush %.2fs (%.0f/s; wall %.2fs) skel-add %.2fs "
         "skel-commit %.3fs (skel %.0f/s)",
         mode.c_str(), n, int(sync), wall, cpu, n / wall, n / cpu, c_tok, rate(c_tok), c_inv,
         rate(c_inv), c_flush, rate(c_flush), w_flush, c_skel, c_commit, rate(c_skel + c_commit));
  if (piped) printf(" | thread1 %.2fs thread2 %.2fs", c_main_end, c_second.load());
  printf(" | segments %zu = %.1f MB, xapian %.1f MB | dict %zu terms, %zu stemmed | load %s -> %s%s\n",
         segs, seg_bytes / 1e6, xap / 1e6, tk.dict.info.size(), size_t(tk.dict.stem_calls),
         before.c_str(), loadavg().c_str(), checksum == 1 ? " " : "");
  return 0;
}
