// Stream: one append-only stream (a Durable Streams stream or a session's event log) — its
// configuration, its log, its writer state (closure, producers, Stream-Seq) and its live waiters.
//
// Guarantees:
// - Readers only ever see durable data: read() and the waiters follow the durable position, which
//   moves only after the group commit's fdatasync of the frame succeeded.
// - Appends are serialised per stream (one mutex): validation of producer/Stream-Seq/closure and
//   the write of the frame happen atomically, in arrival order.
// - If a sync fails, every append not yet acknowledged fails, the log is cut back to the last
//   durable frame and the writer state is rebuilt from the log, so acknowledged state and stored
//   state never disagree.
// - Forks read positions before fork_offset from their source (recursively), never its later data.
// Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/live_frames.h"
#include "core/live_waiters.h"
#include "store/catalog.h"
#include "store/frame.h"
#include "store/fs.h"
#include "store/committer.h"
#include "store/message_batch.h"
#include "store/status.h"
#include "store/stream_log.h"

namespace ds {

// Longest Stream-Seq or Producer-Id a stream accepts (they are stored in every frame).
inline constexpr size_t kMaxTokenBytes = 1024;

struct AppendRequest {
  std::vector<std::string> messages;  // empty = close-only (requires close)
  // When set, each message holds a 16-digit placeholder at this byte index that the stream
  // overwrites with the message's position before writing (session events carry their offset).
  std::optional<size_t> offset_placeholder_at;
  bool close = false;
  std::optional<ProducerStamp> producer;
  std::optional<std::string> stream_seq;
};

struct AppendResult {
  enum class Outcome {
    kAppended,         // new data (or a close) stored durably
    kDuplicate,        // producer retry of data already stored (idempotent success)
    kAlreadyClosed,    // close-only request on a closed stream (idempotent success)
    kClosed,           // stream is closed; nothing stored
    kStaleEpoch,       // producer epoch older than the stored one (fenced)
    kEpochSeqInvalid,  // a new epoch must start at seq 0
    kSeqGap,           // producer seq skipped ahead
    kStreamSeqRegression,
    kError,            // see status
  };
  Outcome outcome = Outcome::kError;
  Status status;
  uint64_t first_position = 0;  // position of the first appended message
  uint64_t next_position = 0;   // tail after the append
  bool closed = false;
  uint64_t producer_epoch = 0;
  uint64_t producer_seq = 0;    // highest accepted seq for (producer, epoch)
  uint64_t expected_seq = 0;
  uint64_t received_seq = 0;
  int64_t unix_millis = 0;      // acceptance time stamped into the frame
};

struct ReadResult {
  std::vector<std::string> messages;
  uint64_t next_position = 0;
  uint64_t tail = 0;
  bool up_to_date = false;  // next_position reached the tail
  bool closed = false;      // closed and next_position is the final position
};

// ReadResult with the messages in one contiguous batch (no allocation per message).
struct BatchReadResult {
  MessageBatch messages;
  uint64_t next_position = 0;
  uint64_t tail = 0;
  bool up_to_date = false;  // next_position reached the tail
  bool closed = false;      // closed and next_position is the final position
};

// The writer state of a stream (what deduplicates and orders appends), for the S3 tier.
struct WriterSnapshot {
  std::map<std::string, std::pair<uint64_t, uint64_t>> producers;  // id -> (epoch, last seq)
  std::optional<std::string> stream_seq;
  std::optional<ProducerStamp> closed_by;
  uint64_t written_next = 0;  // the state is exactly that of position `durable_next` only when
  uint64_t durable_next = 0;  // no append is in flight (written_next == durable_next)
};

class Stream : public std::enable_shared_from_this<Stream> {
 public:
  Stream(StreamRecord record, std::shared_ptr<Stream> source, Fs* fs, std::string dir,
         StreamLog::Options log_options, Committer* commit);
  ~Stream();

  const StreamRecord& record() const { return record_; }
  const std::shared_ptr<Stream>& source() const { return source_; }
  const std::string& dir() const { return dir_; }

  // Opens the log (replaying it) if not open yet.
  Status ensure_loaded();

  // Validates and writes; `done` runs (on the commit thread or inline) once the outcome is final
  // and, for stored data, durable.
  void append(AppendRequest req, std::function<void(AppendResult)> done);

  // Reads durable messages from `from` (at most max_bytes, at least one message if any).
  Status read(uint64_t from, size_t max_bytes, ReadResult* out);
  // Messages in [from, to) (no budget beyond max_bytes), crossing into the source for forks.
  Status read_range(uint64_t from, uint64_t to, size_t max_bytes, std::vector<std::string>* out);
  // The same reads into a batch (appended to *out; `out->load()` is done). The stream's lock is
  // held only to plan the read (copy the message locations); the file reads run without it, so
  // readers of one stream, and its appender, do not wait for each other's I/O.
  Status read(uint64_t from, size_t max_bytes, BatchReadResult* out);
  Status read_range(uint64_t from, uint64_t to, size_t max_bytes, MessageBatch* out);

  // The durable tail and closed flag, read together (kNotFound once deleted).
  Status durable_state(uint64_t* tail, bool* closed);
  // Encoded live data shared by the live readers of this stream (see live_frames.h).
  LiveFrameCache& live_frames() { return live_frames_; }

  uint64_t tail();          // durable next position
  bool closed();            // durably closed
  int64_t last_append_millis();

  // Live waiting: registers `wake` unless data past `from` exists, the stream is closed or gone;
  // returns false (and does not register) in that case. `wake` runs at most once, on any thread.
  bool add_waiter(uint64_t from, uint64_t* id, std::function<void()> wake);
  void remove_waiter(uint64_t id);
  // The same for a LiveWaiter (no allocation per registration): live waiters are woken in chunks
  // (see live_waiters.h) after the function waiters. remove_live_waiter() returns false when the
  // registration was already claimed by a wake-up (which then calls wake() exactly once).
  bool add_live_waiter(uint64_t from, std::shared_ptr<LiveWaiter> w);
  bool remove_live_waiter(LiveWaiter* w);

  // Lifecycle flags (guarded by the StreamStore's registry lock for writes).
  void mark_deleted();   // wakes all waiters; further operations see kNotFound
  void wake_all();       // wakes all waiters (soft delete, shutdown)
  bool deleted();
  int fork_refs = 0;
  bool soft_deleted = false;

  // Open-log budget: a loaded stream holds its segment files open. try_unload() closes them when
  // no append is in flight (the next access reopens and replays the log; live waiters stay); the
  // StreamStore calls it on the least recently used streams when too many logs are open.
  bool try_unload();
  bool loaded();
  int64_t last_access_millis();
  static int64_t open_logs();  // streams currently loaded, process-wide

  // Sliding TTL bookkeeping.
  void touch();
  void set_last_access(int64_t unix_ms);  // restoring a persisted value (StreamStore)
  bool expired(int64_t now_ms);
  // No read, write or waiting live reader for the last `ms` milliseconds (session TTLs).
  bool idle_for(int64_t now_ms, int64_t ms);
  // When idle_for(now_ms, ms): marks the stream deleted, in the same critical section as the
  // check, so an append or read either counted as an access first or finds the stream gone
  // (never acknowledged and then expired). True when it did.
  bool retire_if_idle(int64_t now_ms, int64_t ms);
  std::optional<int64_t> expires_at_ms;  // parsed record().expires_at

  WriterSnapshot writer_snapshot();

  // Size of the message at `position` of this stream's own log (binary sub-offset forks).
  Status message_at(uint64_t position, std::string* out);

  // Observes every durable message in log order: once for each stored message when the log is
  // loaded, then for each appended message once it is durable. Set before the first load. Used to
  // keep derived state (session status, usage) current. Runs on the loading or commit thread.
  using MessageHook = std::function<void(uint64_t position, std::string_view message)>;
  void set_message_hook(MessageHook hook);

 private:
  struct ProducerState {
    uint64_t epoch = 0;
    uint64_t last_seq = 0;
  };
  Status load_locked();
  void apply_meta_locked(const FrameMeta& meta);
  void on_synced(const Status& s, uint64_t end, bool closes, StreamLog::Mark mark_after,
                 AppendResult result, const std::function<void(AppendResult)>& done,
                 const std::vector<std::string>& messages);
  struct Wakeups {
    std::vector<std::function<void()>> functions;
    std::vector<std::shared_ptr<LiveWaiter>> live;
    void run();
  };
  Wakeups take_waiters_locked();
  Wakeups delete_locked();                          // mark_deleted() with mu_ held
  bool idle_locked(int64_t now_ms, int64_t ms);     // idle_for() with mu_ held

  StreamRecord record_;
  std::shared_ptr<Stream> source_;
  Fs* fs_;
  std::string dir_;
  StreamLog::Options log_options_;
  Committer* commit_;

  std::mutex mu_;
  std::unique_ptr<StreamLog> log_;
  uint64_t written_next_ = 0;
  uint64_t durable_next_ = 0;
  bool closed_written_ = false;
  bool closed_durable_ = false;
  std::optional<ProducerStamp> closed_by_;
  std::map<std::string, ProducerState> producers_;
  std::optional<std::string> last_stream_seq_;
  int64_t last_append_ms_ = 0;
  int inflight_ = 0;
  bool broken_ = false;
  StreamLog::Mark durable_mark_{};
  bool deleted_ = false;
  int64_t last_access_ms_ = 0;
  uint64_t next_waiter_id_ = 1;
  std::map<uint64_t, std::function<void()>> waiters_;
  LiveWaiterList live_waiters_;
  MessageHook hook_;
  LiveFrameCache live_frames_;
};

}  // namespace ds
