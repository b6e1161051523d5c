// Tier: copies every session's and stream's durable events to the operator's S3 bucket, in a
// documented layout that ordinary tools read (docs/s3.md), and rebuilds a data dir from it.
//
// Bucket layout ({p} = --s3-prefix followed by '/', or nothing):
//   {p}tenants/{tenant}/sessions/{id}/session.json
//   {p}tenants/{tenant}/sessions/{id}/events/{first}-{last}.jsonl.zst   (offsets: 16 digits)
//   {p}tenants/{tenant}/streams/{url-encoded path}/stream.json
//   {p}tenants/{tenant}/streams/{url-encoded path}/events/{first}-{last}.jsonl.zst
//   {p}tenants/{tenant}/subscriptions/{url-encoded id}.json              (mirrored, see below)
//   {p}control/api-keys.json                                             (mirrored, see below)
// Session event objects hold the stored events as JSON Lines, byte for byte; stream event objects
// hold one {"offset","data"|"text"|"base64"} line per message. Objects are zstd frames.
//
// Guarantees:
// - Only durable events are uploaded, in offset order, each position in exactly one object's
//   range; an object is written whole (one PUT) before the uploaded position moves past it, and
//   the uploaded position is committed to the catalog (table tier_uploads) after the PUT, so a
//   crash between the two re-uploads the same range, never skips one. Objects of one stream never
//   disagree on an event's bytes (restore checks).
// - S3 failures never affect appends: the backlog is retried every flush interval until it drains.
// - when_uploaded() calls back once the given position is in the bucket, or with kUnavailable when
//   the upload failed; concurrent waiters of one stream share one PUT (the appends that arrive
//   while a stream's PUT is in flight share the next one), and up to upload_threads streams are
//   uploaded in parallel. One stream is never uploaded by two threads at once.
// - The uploaded position is committed to the catalog in batches (every flush interval and at
//   stop), not before the waiters are answered: losing it in a crash only re-uploads a range.
// - Streams that disappear from the catalog (deleted, expired) have their objects deleted; a
//   deletion that fails is retried (table tier_deletions) before anything new is written under
//   the same prefix.
// - Mirrors: the server's control state (API keys, subscriptions) is mirrored to the bucket as
//   small JSON objects, so that a restore brings back who may read what and where consumers
//   stood. Each pass uploads the objects of a source whose content changed since its last upload
//   and deletes the ones it no longer lists (table tier_mirror remembers what is in the bucket,
//   by content hash, so a crash only repeats a PUT or a DELETE). when_mirrored() calls back once
//   a source's current content is there, for callers that must not answer before the bucket has
//   the change.
// Thread-safe. One thread for the periodic passes, upload_threads for waiting appends.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <boost/json/object.hpp>

#include "core/session_store.h"
#include "core/stream_store.h"
#include "store/catalog.h"
#include "store/s3/s3_client.h"
#include "store/segment_cache.h"
#include "store/status.h"

namespace ds {

struct TierOptions {
  std::string prefix;                                // --s3-prefix (no trailing '/')
  std::chrono::milliseconds flush_interval{1000};    // --s3-flush-interval
  int upload_threads = 4;  // streams uploaded in parallel for waiting appends (--durability s3)
  size_t max_object_bytes = 8u << 20;                // uncompressed bytes per events object
  int zstd_level = 3;
  // Local cache of the bucket (--cache-size): when set, every full pass evicts uploaded sealed
  // segments beyond its budget, and the tier fetches evicted segments back for it.
  SegmentCache* cache = nullptr;
  Fs* fs = nullptr;             // the stores' Fs (restore writes writer state into logs)
  uint64_t segment_bytes = 0;   // their segment size (0 = StreamLog's default)
};

// A source of control objects mirrored to the bucket (see the header comment).
struct MirrorSource {
  std::string name;  // unique; names the source's rows in tier_mirror
  // Changes whenever the source's content may have changed; a pass skips a source whose
  // version is the one it last uploaded completely. nullptr: look at every pass.
  std::function<uint64_t()> version;
  // The committed content: key (below {p}) -> object body.
  std::function<Status(std::map<std::string, std::string>*)> snapshot;
};

struct TierStats {
  uint64_t objects_uploaded = 0;
  uint64_t bytes_uploaded = 0;       // compressed bytes PUT
  uint64_t events_uploaded = 0;
  uint64_t errors = 0;               // failed uploads/deletions (after the client's retries)
  uint64_t backlog_events = 0;       // durable events not yet in the bucket (as of the last pass)
  uint64_t backlog_bytes = 0;        // their size (uncompressed)
  double lag_seconds = 0;            // age of the oldest event not yet in the bucket
  uint64_t pending_deletions = 0;
  uint64_t passes = 0;               // full passes completed (uploads, deletions, mirrors)
};

class Tier {
 public:
  Tier(TierOptions options, s3::S3Client* s3, Catalog* catalog, StreamStore* streams,
       SessionStore* sessions);
  ~Tier();

  // Creates the tier tables; call before start().
  Status open();
  void start();
  // Stops the uploader after its current object; pending waiters get kUnavailable.
  void stop();

  // `done` runs (on the uploader thread, or inline) once positions < `next` of `stream` are in the
  // bucket, or with kUnavailable if uploading them failed.
  // With `meta`, also once the metadata object (session record, closure) as of this call is
  // there. A closed stream's closure is always waited for.
  void when_uploaded(const std::shared_ptr<Stream>& stream, uint64_t next,
                     std::function<void(Status)> done, bool meta = false);

  TierStats stats();

  // Adds a mirrored source (any time; the next pass mirrors it). What it refers to must outlive
  // the tier's thread (stop()).
  void add_mirror(MirrorSource source);
  // Mirrors source `name` on the tier's mirror thread: `done` runs there (or inline when
  // stopping) once the bucket holds the source's content as of this call, or with the failure.
  void when_mirrored(const std::string& name, std::function<void(Status)> done);

  // Key prefixes (with trailing '/').
  std::string session_prefix(const std::string& tenant, const std::string& id) const;
  std::string stream_prefix(const std::string& tenant, const std::string& path) const;
  static std::string events_name(uint64_t first, uint64_t last);  // "{first}-{last}.jsonl.zst"
  // Keys of mirrored objects, relative to {p} (a MirrorSource's snapshot keys).
  static std::string subscription_key(const std::string& tenant, const std::string& id);
  static constexpr const char* kApiKeysKey = "control/api-keys.json";
  // Names of the mirrored sources serve.cc adds.
  static constexpr const char* kApiKeysMirror = "api-keys";
  static constexpr const char* kSubscriptionsMirror = "subscriptions";

  // ---- restore (a fresh data dir from the bucket) ----
  struct RestoreItem {
    std::string tenant;
    bool session = false;
    std::string name;  // session id or stream path
    std::string meta;  // session.json / stream.json text
    std::vector<std::string> event_keys;  // in key (= offset) order
  };
  struct RestoredSubscription {
    std::string tenant, id, record;  // record: Subscription::record_json() as mirrored
  };
  struct RestorePlan {
    std::vector<RestoreItem> items;
    std::vector<RestoredSubscription> subscriptions;  // for Subscriptions::restore()
  };
  // Phase 1, before the stores open: reads the bucket's listing and metadata and writes the
  // session records and the API keys into the catalog.
  Status restore_catalog(RestorePlan* plan);
  // Phase 2, after the stores opened: re-creates streams and appends every event from the bucket,
  // byte for byte at its original offset; marks them as uploaded.
  Status restore_logs(const RestorePlan& plan);

 private:
  struct Waiter {
    uint64_t next;
    std::function<void(Status)> done;
    bool meta = false;   // also needs the metadata object as of now (record, closure)
    uint64_t round = 0;  // rounds_[id] when it arrived: a meta waiter needs a later round
  };
  struct Urgent {
    std::shared_ptr<Stream> stream;
    std::string prefix;
    bool meta = false;  // upload the metadata object too
  };
  struct State {
    std::string tenant, path;
    int64_t created_ms = 0;
    uint64_t uploaded_next = 0;
    std::string meta_hash;
    std::string writer;  // writer state last put in the metadata object (JSON, "" = none)
    bool in_catalog = false;        // a tier_uploads row exists (so a crash cannot forget it)
    bool closed_in_bucket = false;  // the metadata object in the bucket says closed
  };

  void run();
  void work();
  // Exclusive right to write under a key prefix (uploads of the stream that has it, deletion of
  // an older stream's objects there); false when stopping.
  bool acquire(const std::string& prefix);
  void release(const std::string& prefix);
  // Starts an upload round of stream `id` (mu_ held): its number, for resolve_waiters.
  uint64_t begin_round_locked(int64_t id) { return ++rounds_[id]; }
  // state_ with ids_by_name_ kept in step (mu_ held).
  void put_state_locked(int64_t id, const State& st);
  void erase_state_locked(int64_t id);
  // Forgets the uploads of stream `id` (gone from the catalog) and queues the deletion of its
  // objects under `prefix` (table tier_deletions).
  Status retire(int64_t id, const std::string& prefix);
  // Before uploading stream `r` under `prefix` (held): an earlier stream of the same name still
  // known, or a deletion queued there, is dealt with first, so that the deletion of old objects
  // can never take new ones with it.
  Status settle_prefix(const StreamRecord& r, const std::string& prefix);
  // Deletes every object under `prefix` (held) and the queued deletion.
  Status delete_prefix(const std::string& prefix);
  // Writes the uploaded positions changed since the last call to the catalog (one transaction).
  Status persist_states();
  void pass();
  Status upload_stream(const std::shared_ptr<Stream>& stream, bool with_meta, uint64_t* backlog,
                       uint64_t* backlog_bytes);
  Status process_deletions();
  std::string prefix_for(const StreamRecord& r) const;
  Status meta_for(const std::shared_ptr<Stream>& stream, const std::string& writer,
                  std::string* out);
  Status save_state(int64_t id, const State& st);
  Status save_state_locked(int64_t id, const State& st);  // catalog mutex held
  // After upload round `round` of stream `id`: waiters whose position (and, for meta waiters,
  // metadata as of before the round) is in the bucket succeed; after a failure the rest fail.
  void resolve_waiters(int64_t id, const Status& failure, uint64_t round);
  // The messages [summary.first_position, summary.end_position()) from the bucket objects.
  Status fetch_messages(const SegmentSummary& summary, std::vector<std::string>* out);
  void enforce_cache(const std::vector<StreamRecord>& records);
  Status restore_writer(const std::shared_ptr<Stream>& stream, const boost::json::object& meta,
                        uint64_t restored_next);
  Status mirror(size_t index);  // mirror_mu_ held
  // Mirrors source `name` now, on this thread: ok once the bucket holds its current content.
  Status mirror_now(const std::string& name);
  Status append_sync(const std::shared_ptr<Stream>& s, std::vector<std::string> msgs, bool close);

  TierOptions options_;
  s3::S3Client* s3_;
  Catalog* catalog_;
  StreamStore* streams_;
  SessionStore* sessions_;

  std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  bool stop_ = false;
  std::map<int64_t, State> state_;  // by catalog stream id
  std::map<int64_t, std::vector<Waiter>> waiters_;
  std::map<int64_t, Urgent> urgent_;
  std::deque<int64_t> urgent_order_;  // ids of urgent_, in the order they became urgent
  std::map<int64_t, int64_t> pending_since_ms_;  // stream id -> when a backlog was first seen
  std::set<std::string> deleting_;               // prefixes with a deletion not yet done
  TierStats stats_;
  std::map<std::string, std::set<int64_t>> ids_by_name_;  // tenant '\0' path -> ids in state_
  std::map<int64_t, uint64_t> rounds_;                    // upload rounds started, by stream id
  std::set<std::string> busy_;  // key prefixes being written (acquire)
  std::set<int64_t> dirty_;  // state_ entries not yet in the catalog
  std::thread thread_;
  std::vector<std::thread> workers_;

  // Mirrors: sources_ is fixed once started. mirror_mu_ serialises mirror passes.
  struct Mirror {
    MirrorSource source;
    std::optional<uint64_t> uploaded_version;  // content of this version is in the bucket
    std::map<std::string, std::string> in_bucket;  // key -> content hash (= tier_mirror rows)
  };
  std::mutex mirror_mu_;
  std::vector<Mirror> mirrors_;
  // when_mirrored() requests (guarded by mu_), served by mirror_thread_.
  std::deque<std::pair<std::string, std::function<void(Status)>>> mirror_requests_;
  std::thread mirror_thread_;
  void run_mirror_requests();
};

}  // namespace ds
