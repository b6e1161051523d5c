// Committer: turns bytes written to a segment file into durable bytes before an append is
// acknowledged. Two implementations:
// - GroupCommit (group_commit.h): fdatasyncs the segment file itself, batching concurrent
//   requests per file;
// - Journal (journal.h): copies the written bytes into one shared write-ahead journal and
//   fdatasyncs that, so concurrent appends to many streams share one sync.
//
// Guarantees every implementation gives:
// - `done` runs once `w.bytes` and every byte submitted earlier for `w.file` are durable (or with
//   the error that prevented it), never inline in commit(): callers may hold their own locks.
// - For one file, callbacks run in submission order.
// - `w.bytes` may be empty: a barrier that waits for everything submitted before it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

#include "store/fs.h"
#include "store/status.h"

namespace ds {

class Committer {
 public:
  using Callback = std::function<void(const Status&)>;

  struct Write {
    std::shared_ptr<File> file;  // the segment file the bytes were written to
    std::string_view path;       // its path (the journal records it for replay)
    uint64_t offset = 0;         // where in the file the bytes start
    std::string_view bytes;      // what was written; empty for a barrier
  };

  virtual ~Committer() = default;
  // Callers that need the order of their writes preserved call this in that order (e.g. under
  // their own mutex): the bytes are copied before it returns.
  virtual void commit(const Write& w, Callback done) = 0;
};

}  // namespace ds
