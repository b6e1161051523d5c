#include "cli/serve.h"

#include <sys/resource.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <chrono>
#include <cstdlib>
#include <thread>

#include <spdlog/async.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "core/metrics.h"

#include "api/context.h"
#include "api/http_util.h"
#include "api/router.h"
#include "core/session_store.h"
#include "core/signing_keys.h"
#include "core/subscriptions.h"
#include "core/stream_store.h"
#include "store/api_keys.h"
#include "http/server.h"
#include "search/index.h"
#include "search/indexer.h"
#include "store/catalog.h"
#include "store/fs.h"
#include "store/group_commit.h"
#include "store/journal.h"
#include "store/s3/s3_client.h"
#include "store/segment_cache.h"
#include "store/tier.h"

namespace ds {

namespace {
void raise_fd_limit() {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

bool is_loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "::1" || host == "localhost" || host.rfind("127.", 0) == 0;
}
}  // namespace

int run_serve(const ServeOptions& o) {
  spdlog::set_level(spdlog::level::from_str(o.log_level));
  raise_fd_limit();

  ServerOptions so;
  size_t colon = o.listen.rfind(':');
  if (colon == std::string::npos) {
    spdlog::error("--listen must be HOST:PORT, got '{}'", o.listen);
    return 2;
  }
  so.host = o.listen.substr(0, colon);
  if (so.host.size() > 2 && so.host.front() == '[') so.host = so.host.substr(1, so.host.size() - 2);
  so.port = static_cast<uint16_t>(std::stoi(o.listen.substr(colon + 1)));
  so.max_body = o.max_body;
  so.max_header = o.max_header;
  so.max_connections = o.max_connections;
  so.idle_timeout = std::chrono::seconds(o.idle_timeout);
  so.threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  auto started = std::chrono::steady_clock::now();
  Fs* fs = Fs::posix();
  if (Status s = fs->create_dirs(o.data_dir + "/streams"); !s) {
    spdlog::error("cannot create data dir: {}", s.message());
    return 1;
  }
  // A restore from the bucket runs only into an empty data dir and is marked by RESTORING until
  // it has finished. A data dir holding the marker is what a failed restore left behind (nothing
  // of its own), so it is emptied and the restore starts over — rather than come up with part of
  // the bucket, or nothing, and write that over the bucket.
  const std::string restoring = o.data_dir + "/RESTORING";
  if (fs->exists(restoring)) {
    if (o.s3_bucket.empty()) {
      spdlog::error("{} holds an unfinished restore from a bucket: start with the bucket's flags "
                    "to finish it, or empty the directory", o.data_dir);
      return 1;
    }
    spdlog::warn("{}: an earlier restore did not finish; emptying the data dir and restoring again",
                 o.data_dir);
    std::vector<std::string> names;
    if (Status s = fs->list(o.data_dir, &names); !s) {
      spdlog::error("cannot list data dir: {}", s.message());
      return 1;
    }
    for (const auto& name : names) {
      if (name == "RESTORING") continue;
      if (Status s = fs->remove_all(o.data_dir + "/" + name); !s) {
        spdlog::error("cannot empty the data dir: {}", s.message());
        return 1;
      }
    }
    if (Status s = fs->create_dirs(o.data_dir + "/streams"); !s) {
      spdlog::error("cannot create data dir: {}", s.message());
      return 1;
    }
  }
  bool fresh_data_dir = !fs->exists(o.data_dir + "/catalog.db");
  if (fresh_data_dir && !o.s3_bucket.empty() && !fs->exists(restoring)) {
    std::unique_ptr<File> marker;
    Status s = fs->open(restoring, &marker);
    if (s) s = marker->datasync();
    if (s) s = fs->sync_dir(o.data_dir);
    if (!s) {
      spdlog::error("cannot write {}: {}", restoring, s.message());
      return 1;
    }
  }
  std::unique_ptr<Catalog> catalog;
  if (Status s = Catalog::open(o.data_dir + "/catalog.db", &catalog); !s) {
    spdlog::error("cannot open catalog: {}", s.message());
    return 1;
  }
  // Appends become durable through the shared journal (one fdatasync for many streams), or,
  // with --journal=false, by syncing each stream's own segment file.
  std::unique_ptr<Committer> commit_owner;
  GroupCommit* group_commit = nullptr;
  Journal* journal = nullptr;
  if (o.journal) {
    const std::string journal_dir = o.data_dir + "/journal";
    Journal::ReplayStats rs;
    if (Status s = Journal::replay(fs, journal_dir, o.data_dir, &rs); !s) {
      spdlog::error("cannot replay the journal: {}", s.message());
      return 1;
    }
    if (rs.files > 0) {
      spdlog::info("journal replay: {} files, {} records, {} rewritten, {} of deleted streams, {} "
                   "torn bytes dropped", rs.files, rs.records, rs.rewritten, rs.skipped,
                   rs.torn_bytes);
    }
    std::unique_ptr<Journal> j;
    Journal::Options jo;
    jo.rotate_bytes = o.journal_file_bytes;
    jo.rotate_interval = std::chrono::milliseconds(
        static_cast<int64_t>(o.journal_checkpoint_interval * 1000));
    jo.max_syncs_in_flight = o.journal_syncs;
    jo.direct_io = o.journal_direct_io;
    jo.preallocate = o.journal_preallocate;
    if (Status s = Journal::open(fs, journal_dir, o.data_dir, jo, rs.last_generation, &j); !s) {
      spdlog::error("cannot open the journal: {}", s.message());
      return 1;
    }
    journal = j.get();
    commit_owner = std::move(j);
  } else {
    // Recover a journal left by an earlier run with the journal on before syncing per file.
    Journal::ReplayStats rs;
    if (Status s = Journal::replay(fs, o.data_dir + "/journal", o.data_dir, &rs); !s) {
      spdlog::error("cannot replay the journal: {}", s.message());
      return 1;
    }
    if (Status s = Journal::discard_spares(fs, o.data_dir + "/journal"); !s) {
      spdlog::warn("cannot delete the journal's spare files: {}", s.message());
    }
    auto g = std::make_unique<GroupCommit>();
    group_commit = g.get();
    commit_owner = std::move(g);
  }
  Committer& commit = *commit_owner;
  // With the S3 tier the local logs are a cache of the bucket (--cache-size): evicted segments are
  // fetched back through this Fs.
  std::unique_ptr<SegmentCache> cache;
  if (!o.s3_bucket.empty()) cache = std::make_unique<SegmentCache>(fs, o.cache_size);
  StreamStore::Options sto;
  sto.data_dir = o.data_dir;
  sto.fs = cache ? static_cast<Fs*>(cache.get()) : fs;
  sto.log.segment_bytes = o.segment_bytes;
  {
    // Keep a quarter of the descriptor budget for connections, the index and the catalog.
    struct rlimit rl;
    int64_t fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? static_cast<int64_t>(rl.rlim_cur) : 4096;
    sto.max_open_logs = std::max<int64_t>(256, fds / 4);
  }
  StreamStore streams(sto, catalog.get(), &commit);
  if (Status s = streams.open(); !s) {
    spdlog::error("cannot open stream store: {}", s.message());
    return 1;
  }

  SessionStore sessions(catalog.get(), &streams);

  // S3 tier: restores an empty data dir from the bucket, then uploads in the background.
  std::unique_ptr<s3::S3Client> s3_client;
  std::unique_ptr<Tier> tier;
  Tier::RestorePlan restore_plan;
  if (!o.s3_bucket.empty()) {
    s3::S3Options s3o;
    s3o.endpoint = o.s3_endpoint;
    s3o.bucket = o.s3_bucket;
    s3o.region = o.s3_region;
    s3o.virtual_host = o.s3_virtual_host;
    const char* ak = std::getenv("AWS_ACCESS_KEY_ID");
    const char* sk = std::getenv("AWS_SECRET_ACCESS_KEY");
    const char* tok = std::getenv("AWS_SESSION_TOKEN");
    s3o.credentials.access_key_id = ak ? ak : "";
    s3o.credentials.secret_access_key = sk ? sk : "";
    s3o.credentials.session_token = tok ? tok : "";
    if (o.durability == "s3") s3o.request_timeout_ms = 10000;
    s3_client = std::make_unique<s3::S3Client>(s3o);
    TierOptions to;
    to.prefix = o.s3_prefix;
    while (!to.prefix.empty() && to.prefix.back() == '/') to.prefix.pop_back();
    to.flush_interval = std::chrono::milliseconds(static_cast<int64_t>(o.s3_flush_interval * 1000));
    to.cache = cache.get();
    to.fs = cache.get();
    to.segment_bytes = o.segment_bytes;
    to.upload_threads = o.s3_upload_concurrency;
    tier = std::make_unique<Tier>(to, s3_client.get(), catalog.get(), &streams, &sessions);
    if (Status s = tier->open(); !s) {
      spdlog::error("cannot open the S3 tier: {}", s.message());
      return 1;
    }
    if (fresh_data_dir) {
      if (Status s = tier->restore_catalog(&restore_plan); !s) {
        spdlog::error("restore from s3://{}/{} failed: {}", o.s3_bucket, o.s3_prefix, s.message());
        return 1;
      }
    }
  } else if (o.durability == "s3") {
    spdlog::error("--durability s3 needs --s3-bucket");
    return 2;
  }

  if (Status s = sessions.open(); !s) {
    spdlog::error("cannot open session store: {}", s.message());
    return 1;
  }
  if (tier) {
    if (!restore_plan.items.empty()) {
      if (Status s = tier->restore_logs(restore_plan); !s) {
        spdlog::error("restore from s3://{}/{} failed: {}", o.s3_bucket, o.s3_prefix, s.message());
        return 1;
      }
      spdlog::info("restored {} sessions and streams from s3://{}/{}", restore_plan.items.size(),
                   o.s3_bucket, o.s3_prefix);
    }
    tier->start();
    Metrics::get().add_collector([t = tier.get(), c = s3_client.get(),
                                  k = cache.get()](std::string* out) {
      TierStats st = t->stats();
      auto line = [out](const char* name, const char* type, const char* help, std::string v) {
        Metrics::write(out, name, type, help, v);
      };
      line("ds_s3_upload_lag_seconds", "gauge", "Age of the oldest durable event not yet in the bucket.",
           std::to_string(st.lag_seconds));
      line("ds_s3_backlog_events", "gauge", "Durable events not yet in the bucket.",
           std::to_string(st.backlog_events));
      line("ds_s3_backlog_bytes", "gauge", "Bytes of durable events not yet in the bucket.",
           std::to_string(st.backlog_bytes));
      line("ds_s3_objects_uploaded_total", "counter", "Event objects written to the bucket.",
           std::to_string(st.objects_uploaded));
      line("ds_s3_uploaded_bytes_total", "counter", "Compressed bytes written to the bucket.",
           std::to_string(st.bytes_uploaded));
      line("ds_s3_errors_total", "counter", "S3 uploads or deletions that failed after retries.",
           std::to_string(st.errors));
      line("ds_s3_passes_total", "counter",
           "Uploader passes completed (every --s3-flush-interval while it keeps up).",
           std::to_string(st.passes));
      line("ds_s3_pending_deletions", "gauge", "Key prefixes whose objects are still to delete.",
           std::to_string(st.pending_deletions));
      line("ds_s3_requests_total", "counter", "S3 requests sent (attempts).",
           std::to_string(c->requests()));
      line("ds_s3_retries_total", "counter", "S3 requests retried.", std::to_string(c->retries()));
      SegmentCache::Stats cs = k->stats();
      line("ds_cache_bytes", "gauge", "Bytes of segment files on local disk (S3 tier cache).",
           std::to_string(cs.resident_bytes));
      line("ds_cache_budget_bytes", "gauge", "--cache-size (0 = no eviction).",
           std::to_string(k->budget()));
      line("ds_cache_evictions_total", "counter", "Sealed segments evicted to the bucket.",
           std::to_string(cs.evictions));
      line("ds_cache_fetches_total", "counter", "Evicted segments fetched back from the bucket.",
           std::to_string(cs.fetches));
      line("ds_cache_fetch_errors_total", "counter", "Reads of evicted segments that failed (503).",
           std::to_string(cs.fetch_errors));
      line("ds_cache_fetched_bytes_total", "counter", "Segment bytes rebuilt from the bucket.",
           std::to_string(cs.fetched_bytes));
    });
  }
  // Background expiry only now: the restore above creates streams that may have expired.
  streams.start_expiry();

  ApiKeys keys(catalog.get());
  // Whether the server may run open (no keys): only on loopback or when told to.
  const bool open_allowed = is_loopback(so.host) || o.allow_unauthenticated;

  // Subscriptions (Durable Streams §6-7): their records are in the catalog, the webhook signing
  // and wake-token keys in the data dir.
  std::unique_ptr<SigningKeys> signing_keys;
  if (Status s = SigningKeys::open(o.data_dir + "/subscription-keys", &signing_keys); !s) {
    spdlog::error("subscription keys: {}", s.message());
    return 1;
  }
  Subscriptions::Options subscription_options;
  // The development exception (webhooks to this machine) holds only while the server runs open:
  // with API keys, tenants must not reach its loopback services.
  subscription_options.webhook_targets = [&o, &keys, open_allowed] {
    return o.webhook_allow_private                 ? WebhookTargets::kAny
           : keys.any_active() || !open_allowed    ? WebhookTargets::kPublic
                                                   : WebhookTargets::kPublicAndLocal;
  };
  Subscriptions subscriptions(subscription_options, catalog.get(), &streams, signing_keys.get());
  if (!restore_plan.subscriptions.empty()) {
    std::vector<Subscriptions::Committed> restored;
    for (auto& r : restore_plan.subscriptions) restored.push_back({r.tenant, r.id, r.record});
    if (Status s = subscriptions.restore(restored); !s) {
      spdlog::error("restore of subscriptions failed: {}", s.message());
      return 1;
    }
    spdlog::info("restored {} subscriptions", restored.size());
  }
  if (fresh_data_dir && tier) {
    // The restore is complete (catalog, logs, subscriptions): the data dir is ours from now on.
    Status s = fs->remove_all(restoring);
    if (s) s = fs->sync_dir(o.data_dir);
    if (!s) {
      spdlog::error("cannot remove {}: {}", restoring, s.message());
      return 1;
    }
  }
  if (Status s = subscriptions.open(); !s) {
    spdlog::error("subscriptions: {}", s.message());
    return 1;
  }
  // Control state goes to the bucket beside the events, so that a restore brings back who may
  // read what (API key hashes) and where consumers stood (subscriptions).
  if (tier) {
    tier->add_mirror({Tier::kApiKeysMirror, nullptr, [&keys](std::map<std::string, std::string>* out) {
                        return keys.dump(&(*out)[Tier::kApiKeysKey]);
                      }});
    tier->add_mirror(
        {Tier::kSubscriptionsMirror, [&subscriptions] { return subscriptions.version(); },
         [&subscriptions](std::map<std::string, std::string>* out) {
           std::vector<Subscriptions::Committed> all;
           if (Status s = subscriptions.committed(&all); !s) return s;
           for (const auto& c : all) {
             (*out)[Tier::subscription_key(c.tenant, c.id)] =
                 "{\"tenant\":" + json_quote(c.tenant) + ",\"id\":" + json_quote(c.id) +
                 ",\"record\":" + c.record + "}";
           }
           return Status::ok();
         }});
  }
  // The tier's thread uses `keys` and `subscriptions`: stop it before they go, on every path.
  struct StopTier {
    Tier* tier;
    ~StopTier() {
      if (tier) tier->stop();
    }
  } stop_tier{tier.get()};

  // Search: derived from the logs; the indexer opens (or rebuilds) it in the background.
  IndexOptions index_options;
  index_options.root = o.index_dir.empty() ? o.data_dir + "/index" : o.index_dir;
  if (fresh_data_dir && !o.index_dir.empty()) {
    // The index is derived from this data dir's logs, and names sessions by catalog ids. One
    // left in --index-dir by another data dir (an earlier one, or the lost server before a
    // restore) would match other sessions here: its databases go (only directories that are
    // Xapian databases, and the marker), and the indexer rebuilds.
    std::vector<std::string> names;
    if (fs->list(index_options.root, &names)) {
      for (const auto& n : names) {
        const std::string p = index_options.root + "/" + n;
        if (n == "UNCLEAN" || fs->exists(p + "/iamglass")) {
          spdlog::warn("index {}: left by another data dir; rebuilt from this one", p);
          fs->remove_all(p);
        }
      }
    }
  }
  index_options.bm25_k1 = o.bm25_k1;
  index_options.bm25_b = o.bm25_b;
  index_options.fsync = o.index_fsync;
  index_options.posting_cache_bytes = static_cast<size_t>(o.search_cache_bytes);
  SearchIndex search_index(index_options);
  Indexer indexer(&sessions, &search_index);
  indexer.start();
  // Sessions with ttl_seconds are deleted once idle that long; their search documents go too.
  sessions.start_expiry([&indexer](const std::shared_ptr<Session>& s) {
    indexer.session_removed(s->tenant(), s->id(), s->catalog_id());
  });
  Metrics::get().add_collector([&indexer](std::string* out) {
    auto st = indexer.stats();
    Metrics::write(out, "ds_index_lag_events", "gauge", "Session events not yet searchable.",
                   std::to_string(st.lag_events));
    Metrics::write(out, "ds_indexed_events_total", "counter",
                   "Events added to the search index since start.",
                   std::to_string(st.indexed_events));
  });

  TenantLimits limits(o.rate_limit, o.rate_burst, o.max_live_per_tenant);
  set_cors_origins(o.cors_origin);
  Metrics::get().add_collector([group_commit, journal](std::string* out) {
    uint64_t syncs = 0, batches = 0, requests = 0;
    if (group_commit != nullptr) {
      auto st = group_commit->stats();
      syncs = st.syncs, batches = st.batches, requests = st.requests;
    }
    if (journal != nullptr) {
      auto st = journal->stats();
      syncs = batches = st.syncs;
      requests = st.records;
      Metrics::write(out, "ds_journal_bytes_total", "counter",
                     "Bytes written to the write-ahead journal.", std::to_string(st.record_bytes));
      Metrics::write(out, "ds_journal_failed_batches_total", "counter",
                     "Journal writes or syncs that failed.", std::to_string(st.failed_batches));
      Metrics::write(out, "ds_journal_checkpoints_total", "counter",
                     "Journal files retired after syncing the segment files they cover.",
                     std::to_string(st.checkpoints));
      Metrics::write(out, "ds_journal_checkpoint_failures_total", "counter",
                     "Checkpoints that failed (retried).", std::to_string(st.checkpoint_failures));
    }
    Metrics::write(out, "ds_fsync_total", "counter",
                   "fdatasync calls made to acknowledge appends (journal or segment files).",
                   std::to_string(syncs));
    Metrics::write(out, "ds_group_commit_batches_total", "counter", "Group-commit batches.",
                   std::to_string(batches));
    Metrics::write(out, "ds_group_commit_requests_total", "counter",
                   "Appends made durable by the group commit.", std::to_string(requests));
  });

  ApiContext ctx;
  ctx.limits = &limits;
  std::unique_ptr<AccessLog> access_log;
  if (o.access_log && spdlog::get_level() <= spdlog::level::info) {
    access_log = std::make_unique<AccessLog>();
    ctx.access_log = access_log.get();
  }
  ctx.streams = &streams;
  ctx.sessions = &sessions;
  ctx.keys = &keys;
  ctx.catalog = catalog.get();
  ctx.options = o;
  ctx.search_index = &search_index;
  ctx.indexer = &indexer;
  boost::asio::thread_pool search_pool(static_cast<size_t>(o.search_threads));
  ctx.search_pool = &search_pool;
  boost::asio::thread_pool control_pool(2);
  ctx.control_pool = &control_pool;
  ctx.subscriptions = &subscriptions;
  ctx.signing_keys = signing_keys.get();
  ctx.tier = o.durability == "s3" ? tier.get() : nullptr;
  ctx.open_allowed = open_allowed;
  ctx.open_loopback_only = is_loopback(so.host);
  // Unauthenticated requests are refused from their head: their bodies are never buffered.
  so.credentials_ok = [&ctx](HttpRequest& head) { return credentials_ok(ctx, head); };
  if (!keys.any_active()) {
    if (!is_loopback(so.host) && !o.allow_unauthenticated) {
      spdlog::error("no API keys exist: refusing to run open on non-loopback address {}. Create a "
                    "key with `durable-sessions keys create --data-dir {} --tenant NAME`, or pass "
                    "--allow-unauthenticated",
                    so.host, o.data_dir);
      return 2;
    }
    spdlog::warn("NO API KEYS: running OPEN — every request acts as tenant 'default'. Create a key "
                 "with `durable-sessions keys create --data-dir {} --tenant NAME`",
                 o.data_dir);
  }

  HttpServer server(so, [&ctx](HttpRequest& req, Responder& res) { return route(ctx, req, res); });
  server.set_on_shutdown([&] {
    ctx.shutting_down = true;
    streams.wake_all();
  });
  if (Status s = server.listen(); !s) {
    spdlog::error("{}", s.message());
    return 1;
  }
  ctx.ready = true;
  Metrics::get().recovery_millis = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started).count();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  started).count();
  spdlog::info("durable-sessions listening on {}:{} (data dir {}, {} streams, ready in {} ms)",
               so.host, server.port(), o.data_dir, streams.size(), ms);

  boost::asio::signal_set signals(server.io(), SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("signal {}: shutting down gracefully", sig);
    server.stop();
  });
  server.run();
  // Requests still waiting on the bucket were abandoned with the drain; S3 calls still running
  // (uploads, subscription mirrors, segment fetches) end now instead of after their timeouts.
  if (s3_client) s3_client->cancel();
  // Tear down in dependency order while the (stopped) io_context still exists: background
  // threads first, then drain the committer, whose callbacks post to connection executors.
  search_pool.join();  // searches still running finish; their connections are gone
  sessions.stop_expiry();  // its callback uses the indexer
  control_pool.join();
  subscriptions.stop();  // before the committer drains: its wake-event appends finish there
  indexer.stop();
  if (tier) tier->stop();
  commit_owner.reset();
  streams.stop();  // creates the committer just finished complete (their connections are gone)
  spdlog::info("stopped");
  return 0;
}

}  // namespace ds
