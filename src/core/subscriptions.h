// Subscriptions: durable cursors over sets of streams that wake workers when those streams
// have unprocessed data (Durable Streams protocol §6–7), by webhook or by pull-wake.
//
// Guarantees:
// - Durable: a create, a membership change, an ack, a claim and a release are acknowledged only
//   once the subscription's record is committed to the catalog (synchronous SQLite), so after a
//   crash no acknowledged ack is lost and no acked position goes back. Wake state is persisted
//   too: generations only grow, and a lease or retry schedule survives a restart.
// - Fencing: callback, ack and release carry a token (HMAC under the server's key, see
//   signing_keys.h) naming the tenant, subscription, generation and wake. A token that does not
//   verify (or is of the other kind) is refused with 401 UNAUTHORIZED; one that is not for the
//   current wake, or whose lease has run out, with 409 FENCED — and so is a request whose
//   generation or wake_id is not the current one. A stale worker can never move a cursor.
// - At most one wake is in flight per subscription: pending work starts a new wake (generation
//   + 1) only when no wake is in flight and no lease is held; a lease that runs out is dropped
//   and, if work is pending, a new wake follows. Webhook failures are retried with exponential
//   backoff from 1 s to 60 s with 20 % jitter; the schedule is persisted.
// - Discovery: note_append() is called by the stream API once a create or append is durable; a
//   stream matching a pattern that is not linked yet is linked from before that append (so the
//   append is pending). Streams that exist when a subscription is created (or an explicit
//   stream is added) are linked at their tail. After a restart, pattern matches not yet linked
//   (an append noticed just before a crash) are linked from their start, and a pull-wake wake
//   nobody had claimed is issued again (its events may not have reached the wake stream).
// - Cursors never go back: acks take the maximum, notes never lower a link, and a link
//   restarts at its stream's start only when the path names a new stream (another catalog id).
// - note_append() never blocks on I/O: it updates memory and wakes the delivery thread, which
//   writes records, issues wakes and appends wake events. Webhook POSTs run on their own threads.
// Thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <optional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/signing_keys.h"
#include "core/stream_store.h"
#include "core/subscription.h"
#include "store/catalog.h"

namespace boost::asio {
class thread_pool;
}

namespace ds {

class Subscriptions {
 public:
  struct Options {
    // Where webhooks may go, asked at each delivery (API keys can appear while running).
    std::function<WebhookTargets()> webhook_targets = [] {
      return WebhookTargets::kPublicAndLocal;
    };
    int64_t webhook_timeout_ms = 10000;
    // Webhook POSTs in flight at once (they mostly wait on the network; a dead receiver holds
    // one for up to the timeout).
    int delivery_threads = 8;
  };
  // Result of a request handler: status (kNotFound, kInvalid, kConflict = a different
  // configuration or ALREADY_CLAIMED, kForbidden = FENCED or a bad token, I/O errors), the HTTP
  // status, the protocol's error code, and a JSON body.
  struct Reply {
    Status status;
    std::string code;      // protocol error code when !status
    int http = 200;
    std::string body;      // JSON (success or error details)
  };

  Subscriptions(Options options, Catalog* catalog, StreamStore* streams, const SigningKeys* keys);
  ~Subscriptions();  // stop()

  // Loads the stored subscriptions and starts the delivery thread.
  Status open();
  void stop();

  // ---- requests (block on the catalog: call off the I/O threads) ----
  // Create (http 201) or re-confirm (200); 409 on a different configuration.
  Reply put(const std::string& tenant, const std::string& id, const SubscriptionConfig& config,
            const std::string& base_url);
  Reply get(const std::string& tenant, const std::string& id);
  Reply remove(const std::string& tenant, const std::string& id);
  Reply add_streams(const std::string& tenant, const std::string& id,
                    const std::vector<std::string>& paths);
  Reply remove_stream(const std::string& tenant, const std::string& id, const std::string& path);
  Reply claim(const std::string& tenant, const std::string& id, const std::string& worker);
  // `body`: {"wake_id","generation","acks":[{"stream","offset"}],"done"}; `webhook` selects
  // the callback (true) or the pull-wake ack endpoint (false). release: ack without acks.
  Reply ack(const std::string& token, const std::string& id, std::string_view body, bool webhook);
  Reply release(const std::string& token, const std::string& id, std::string_view body);
  // The tenant a wake token was issued for, if it is one of ours (signature checked).
  std::optional<std::string> token_tenant(const std::string& token);

  // ---- the bucket mirror and restore (store/tier.h) ----
  struct Committed {
    std::string tenant, id, record;  // record: Subscription::record_json()
  };
  // Moves on with every committed change (create, membership, wake, claim, ack, removal).
  uint64_t version() const { return version_.load(); }
  // Every subscription as committed: the catalog's records, never unsaved in-memory state.
  Status committed(std::vector<Committed>* out);
  // Before open(), on a data dir just restored from the bucket: stores mirrored records. Links
  // are re-pointed, by path, at the restored streams (which have new catalog ids), with their
  // acked positions kept but never past a stream's restored tail (the bucket may hold fewer
  // events than were acked); a link whose stream was not restored starts over when it appears.
  // Wake state is dropped, since tokens signed with the old server's key do not verify here:
  // pending work gets a new wake (next generation).
  Status restore(const std::vector<Committed>& records);

  // ---- notifications (any thread, never blocks on I/O) ----
  // `path` of `tenant` (catalog id `stream_id`) made an append (or a create) durable; positions
  // from `before` on are new.
  void note_append(const std::string& tenant, const std::string& path, int64_t stream_id,
                   uint64_t before);
  bool any() const { return count_.load(std::memory_order_relaxed) > 0; }
  WebhookTargets webhook_targets() const { return options_.webhook_targets(); }

 private:
  struct Entry;  // a Subscription plus in-memory flags
  struct Note {  // an acknowledged append, not yet matched against the subscriptions
    std::string tenant, path;
    int64_t stream_id = 0;
    uint64_t before = 0;
  };
  static std::string key(const std::string& tenant, const std::string& id) {
    return tenant + '\0' + id;
  }
  // With mu_ held.
  void drain_inbox_locked(bool on_thread);
  void sync_tenant_locked(const std::string& tenant);  // inbox_tenants_ from by_tenant_
  struct StreamNow {
    uint64_t tail = 0;
    int64_t id = 0;      // catalog id
    uint64_t start = 0;  // first position of its own (a fork's fork point)
  };
  bool stream_now(const std::string& tenant, const std::string& path, StreamNow* out);
  // The tail of a linked stream (nullopt: it does not exist), restarting the link at the
  // stream's start when the path now names another stream than the one acked.
  std::optional<uint64_t> link_tail_locked(Entry& e, const std::string& path, StreamLink& link);
  // An explicit link to `path`: at its tail, or at 0 (no stream yet) until the stream appears.
  StreamLink explicit_link(const std::string& tenant, const std::string& path);
  std::vector<WakeStream> wake_streams_locked(Entry& e);
  // True when a linked stream has unprocessed data. When false, *gone (if given) lists the glob
  // links whose streams no longer exist.
  bool pending_locked(Entry& e, std::vector<std::string>* gone);
  void prune_links_locked(Entry& e, const std::vector<std::string>& gone);
  // Starts a new wake (next generation) and returns its streams, as snapshot_locked().
  std::vector<WakeStream> start_wake_locked(Entry& e);
  // The wake's streams as of now, recorded as its snapshot (what `done` acks).
  std::vector<WakeStream> snapshot_locked(Entry& e);
  void schedule_retry_locked(Entry& e, int64_t now);
  void evaluate_locked(Entry& e, int64_t now, std::vector<std::function<void()>>* after);
  void write_wake_events(Entry& e, std::vector<std::function<void()>>* after);
  std::string make_token(const Subscription& s, char kind) const;
  Status save(const Subscription& s);  // one catalog transaction
  Status erase(const std::string& tenant, const std::string& id);

  void kick();  // makes the delivery thread look at dirty_ again
  void run();
  void deliver_webhook(std::string k, uint64_t generation, std::string wake_id, std::string body);

  Options options_;
  Catalog* catalog_;
  StreamStore* streams_;
  const SigningKeys* keys_;

  // State. Request handlers and the delivery thread hold mu_ while they write a record (a
  // catalog commit); note_append() never takes it.
  std::mutex mu_;
  std::unordered_map<std::string, std::unique_ptr<Entry>> subs_;
  std::unordered_map<std::string, std::set<std::string>> by_tenant_;  // tenant -> ids
  std::set<std::string> dirty_;  // keys to evaluate
  std::atomic<int64_t> count_{0};
  std::atomic<uint64_t> version_{0};

  // What wakes the delivery thread.
  std::mutex inbox_mu_;
  std::condition_variable inbox_cv_;
  // Appends to note, one per (tenant, path) with the lowest `before`: bounded by the number of
  // streams however fast they are appended to.
  std::unordered_map<std::string, Note> inbox_;
  std::unordered_map<std::string, int> inbox_tenants_;  // tenants with subscriptions -> count
  struct WakeWritten {  // the outcome of appending a pull-wake wake to its wake stream
    std::string key;
    uint64_t generation = 0;
    std::string wake_id;
    bool ok = false;
    std::string why;
  };
  std::vector<WakeWritten> written_;
  bool kick_ = false;
  bool stop_ = false;

  std::thread thread_;
  std::unique_ptr<boost::asio::thread_pool> pool_;  // webhook POSTs
};

}  // namespace ds
