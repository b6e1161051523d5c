// Journal::replay — crash recovery of the shared journal (see journal.h).
#include <algorithm>
#include <map>
#include <optional>

#include "store/journal.h"
#include "store/journal_format.h"

namespace ds {

namespace {

Status read_all(File* f, std::string* out) {
  uint64_t size = 0;
  if (Status s = f->size(&size); !s) return s;
  out->resize(size);
  size_t got = 0;
  if (Status s = f->pread(out->data(), out->size(), 0, &got); !s) return s;
  out->resize(got);
  return Status::ok();
}

// The end of `buf` without its trailing zeros, but at least `from`.
size_t nonzero_end(std::string_view buf, size_t from) {
  size_t last = buf.find_last_not_of('\0');
  return last == std::string_view::npos || last < from ? from : last + 1;
}

}  // namespace

Status Journal::replay(Fs* fs, const std::string& dir, const std::string& root,
                       ReplayStats* stats) {
  ReplayStats local;
  if (stats == nullptr) stats = &local;
  std::vector<std::string> names;
  if (Status s = fs->list(dir, &names); !s) return s;
  std::vector<std::pair<uint64_t, std::string>> files;
  for (const auto& n : names) {
    if (n.size() != 24 || !n.ends_with(".wal")) continue;
    if (!std::all_of(n.begin(), n.begin() + 20, [](char c) { return c >= '0' && c <= '9'; })) {
      continue;
    }
    files.emplace_back(std::stoull(n.substr(0, 20)), dir + "/" + n);
  }
  std::sort(files.begin(), files.end());

  // Segment files touched so far; null when the file does not exist (its stream was deleted).
  std::map<std::string, std::unique_ptr<File>> segments;
  std::string buf, existing;
  for (const auto& [gen, path] : files) {
    stats->files++;
    stats->last_generation = std::max(stats->last_generation, gen);
    std::unique_ptr<File> jf;
    if (Status s = fs->open(path, &jf); !s) return s;
    if (Status s = read_all(jf.get(), &buf); !s) return s;
    uint64_t header_gen = 0;
    if (!journal::decode_header(buf, &header_gen)) {
      // The header of a new file was never synced. (A spare claimed just before the crash is
      // all zeros: nothing torn.)
      stats->torn_bytes += nonzero_end(buf, 0);
      continue;
    }
    size_t pos = journal::kHeaderSize;
    std::optional<uint64_t> expected_seq;
    while (pos < buf.size()) {
      journal::Record r;
      if (journal::decode_record(std::string_view(buf).substr(pos), &r) != journal::DecodeResult::kOk) {
        break;
      }
      if (expected_seq && r.seq != *expected_seq) break;
      expected_seq = r.seq + 1;
      stats->records++;
      pos += r.total_size;
      std::string target = r.path.starts_with('/') ? std::string(r.path)
                                                    : root + "/" + std::string(r.path);
      auto it = segments.find(target);
      if (it == segments.end()) {
        std::unique_ptr<File> seg;
        if (fs->exists(target)) {
          if (Status s = fs->open(target, &seg); !s) return s;
        }
        it = segments.emplace(target, std::move(seg)).first;
      }
      if (!it->second) {
        stats->skipped++;
        continue;
      }
      existing.resize(r.bytes.size());
      size_t got = 0;
      if (Status s = it->second->pread(existing.data(), existing.size(), r.offset, &got); !s) {
        return s;
      }
      if (got == r.bytes.size() && std::string_view(existing) == r.bytes) continue;
      if (Status s = it->second->pwrite(r.bytes.data(), r.bytes.size(), r.offset); !s) return s;
      stats->rewritten++;
    }
    // Zeros after the last record (a direct-I/O file's block padding, a preallocated file's
    // unused part) are no torn write.
    stats->torn_bytes += nonzero_end(buf, pos) - pos;
  }
  // Sync every segment file the journal covers, not only those replay wrote to: bytes that
  // survived a process crash in the page cache are not on disk until synced, and the journal
  // that vouches for them is about to go.
  for (const auto& [target, file] : segments) {
    if (file) {
      if (Status s = file->datasync(); !s) return s;
    }
  }
  // Only now, with every replayed byte durable in its segment file, may the journal go.
  for (const auto& [gen, path] : files) {
    if (Status s = fs->remove_all(path); !s) return s;
  }
  if (!files.empty()) {
    if (Status s = fs->sync_dir(dir); !s) return s;
  }
  return Status::ok();
}

}  // namespace ds
