#include "cli/cli.h"

#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/export.h"
#include "cli/serve.h"
#include "cli/serve_options.h"
#include "store/api_keys.h"
#include "store/catalog.h"
#include "store/fs.h"

namespace ds {

int run_cli(int argc, char** argv) {
  CLI::App app{"durable-sessions: a durable, searchable session store for AI agents"};
  app.require_subcommand(1);

  ServeOptions o;
  auto* serve = app.add_subcommand("serve", "Run the HTTP server on the embedded store");
  auto env = [](const char* name) { return std::string("DURABLE_SESSIONS_") + name; };
  serve->add_option("--listen", o.listen, "HOST:PORT to listen on")
      ->envname(env("LISTEN"))->capture_default_str();
  serve->add_option("--data-dir", o.data_dir, "Directory holding the logs and the catalog")
      ->envname(env("DATA_DIR"))->capture_default_str();
  serve->add_option("--long-poll-timeout", o.long_poll_timeout,
                    "Seconds a long-poll read waits for new data before answering 204")
      ->envname(env("LONG_POLL_TIMEOUT"))->capture_default_str();
  serve->add_option("--max-body", o.max_body, "Largest request body in bytes (else 413)")
      ->envname(env("MAX_BODY"))->capture_default_str();
  serve->add_option("--max-events-per-request", o.max_events_per_request,
                    "Most events one append may carry (else 400)")
      ->envname(env("MAX_EVENTS_PER_REQUEST"))->capture_default_str();
  serve->add_option("--max-connections", o.max_connections,
                    "Most simultaneously open connections (extra ones get 503)")
      ->envname(env("MAX_CONNECTIONS"))->capture_default_str();
  serve->add_option("--max-header", o.max_header, "Largest request header block in bytes (431)")
      ->envname(env("MAX_HEADER"))->capture_default_str();
  serve->add_option("--idle-timeout", o.idle_timeout,
                    "Seconds before an idle or too-slow connection is closed")
      ->envname(env("IDLE_TIMEOUT"))->capture_default_str();
  serve->add_option("--sse-heartbeat", o.sse_heartbeat, "Seconds between SSE keep-alive comments")
      ->envname(env("SSE_HEARTBEAT"))->capture_default_str();
  serve->add_option("--sse-max-duration", o.sse_max_duration,
                    "Seconds after which an SSE connection is recycled (clients resume by offset)")
      ->envname(env("SSE_MAX_DURATION"))->capture_default_str();
  serve->add_option("--threads", o.threads, "I/O threads (0 = one per core)")
      ->envname(env("THREADS"))->capture_default_str();
  serve->add_option("--log-level", o.log_level, "trace|debug|info|warn|error|off")
      ->envname(env("LOG_LEVEL"))->capture_default_str();
  serve->add_option("--rate-limit", o.rate_limit,
                    "Requests per second per tenant (token bucket; 0 = unlimited; 429 beyond)")
      ->envname(env("RATE_LIMIT"))->capture_default_str();
  serve->add_option("--rate-burst", o.rate_burst, "Token-bucket size for --rate-limit (0 = rate)")
      ->envname(env("RATE_BURST"))->capture_default_str();
  serve->add_option("--max-live-per-tenant", o.max_live_per_tenant,
                    "Open SSE and long-poll reads per tenant (429 beyond)")
      ->envname(env("MAX_LIVE_PER_TENANT"))->capture_default_str();
  serve->add_option("--max-url", o.max_url, "Longest request target in bytes (414 beyond)")
      ->envname(env("MAX_URL"))->capture_default_str();
  serve->add_option("--max-sessions-per-tenant", o.max_sessions_per_tenant,
                    "Most sessions one tenant may hold (429 beyond)")
      ->envname(env("MAX_SESSIONS_PER_TENANT"))->capture_default_str();
  serve->add_option("--cors-origin", o.cors_origin,
                    "Browser origins allowed by CORS: * or a comma-separated list")
      ->envname(env("CORS_ORIGIN"))->capture_default_str();
  serve->add_option("--access-log", o.access_log, "Log one JSON line per request (true/false)")
      ->envname(env("ACCESS_LOG"))->capture_default_str();
  serve->add_option("--index-dir", o.index_dir, "Search index directory (default <data-dir>/index)")
      ->envname(env("INDEX_DIR"));
  serve->add_option("--bm25-k1", o.bm25_k1, "BM25 k1 (term-frequency saturation)")
      ->envname(env("BM25_K1"))->capture_default_str();
  serve->add_option("--bm25-b", o.bm25_b, "BM25 b (document-length normalisation, 0..1)")
      ->envname(env("BM25_B"))->capture_default_str();
  serve->add_option("--search-wait", o.search_wait,
                    "Seconds a search waits for the index to reach the sessions' tails")
      ->envname(env("SEARCH_WAIT"))->capture_default_str();
  serve->add_option("--search-threads", o.search_threads,
                    "Threads that run searches (off the I/O threads, which keep serving appends)")
      ->envname(env("SEARCH_THREADS"))->check(CLI::Range(1, 64))->capture_default_str();
  serve->add_option("--search-cache-bytes", o.search_cache_bytes,
                    "Memory for the decoded posting lists of frequent search terms, all tenants "
                    "together (makes searches for common words faster; 0 = off)")
      ->envname(env("SEARCH_CACHE_BYTES"))->capture_default_str();
  serve->add_option("--index-fsync", o.index_fsync, "fsync search index commits (true/false)")
      ->envname(env("INDEX_FSYNC"))->capture_default_str();
  serve->add_option("--webhook-allow-private", o.webhook_allow_private,
                    "Let subscription webhooks target private, loopback and link-local addresses "
                    "and plain http:// (for webhooks on your own network; true/false)")
      ->envname(env("WEBHOOK_ALLOW_PRIVATE"))->capture_default_str();
  serve->add_option("--s3-endpoint", o.s3_endpoint, "S3-compatible endpoint URL")
      ->envname(env("S3_ENDPOINT"))->capture_default_str();
  serve->add_option("--s3-bucket", o.s3_bucket, "Bucket to tier sessions and streams to (enables S3)")
      ->envname(env("S3_BUCKET"));
  serve->add_option("--s3-region", o.s3_region, "Bucket region (SigV4 scope)")
      ->envname(env("S3_REGION"))->capture_default_str();
  serve->add_option("--s3-prefix", o.s3_prefix, "Key prefix inside the bucket")
      ->envname(env("S3_PREFIX"));
  serve->add_flag("--s3-virtual-host", o.s3_virtual_host,
                  "Virtual-host addressing (bucket.host) instead of path-style")
      ->envname(env("S3_VIRTUAL_HOST"));
  serve->add_option("--s3-flush-interval", o.s3_flush_interval, "Seconds between upload passes")
      ->envname(env("S3_FLUSH_INTERVAL"))->capture_default_str();
  serve->add_option("--durability", o.durability,
                    "local: acknowledge appends on local fsync; s3: once they are in the bucket")
      ->envname(env("DURABILITY"))->check(CLI::IsMember({"local", "s3"}))->capture_default_str();
  serve->add_option("--journal", o.journal,
                    "Make appends durable through one shared write-ahead journal (true) or by "
                    "fsyncing each stream's own file (false)")
      ->envname(env("JOURNAL"))->capture_default_str();
  serve->add_option("--journal-file-bytes", o.journal_file_bytes,
                    "Journal file size that triggers a checkpoint (sync the stream files it "
                    "covers, then delete it)")
      ->envname(env("JOURNAL_FILE_BYTES"))->capture_default_str()->check(CLI::Range(uint64_t{4096}, uint64_t{1} << 40));
  serve->add_option("--journal-checkpoint-interval", o.journal_checkpoint_interval,
                    "Seconds after which a journal file with records is checkpointed even if "
                    "not full (bounds replay work after a crash)")
      ->envname(env("JOURNAL_CHECKPOINT_INTERVAL"))->capture_default_str()->check(CLI::Range(0.01, 1e7));
  serve->add_option("--journal-syncs", o.journal_syncs,
                    "Journal fdatasyncs in flight at once. 1: the journal writer syncs each "
                    "batch itself (group commit, no thread hand-offs); more overlaps syncs on "
                    "sync threads, which can help disks whose flushes are slow but parallel")
      ->envname(env("JOURNAL_SYNCS"))->capture_default_str()->check(CLI::Range(1, 16));
  serve->add_option("--journal-direct-io", o.journal_direct_io,
                    "Write journal files with O_DIRECT | O_DSYNC, one durable write per batch "
                    "and no fdatasync (true); falls back to the page cache + fdatasync where "
                    "the filesystem has no direct I/O. false: always the page cache")
      ->envname(env("JOURNAL_DIRECT_IO"))->capture_default_str();
  serve->add_option("--journal-preallocate", o.journal_preallocate,
                    "Start each journal file from a zero-filled spare (true), so that durable "
                    "writes overwrite existing blocks instead of also growing the file; costs "
                    "one more --journal-file-bytes file on disk and a zero write per journal byte")
      ->envname(env("JOURNAL_PREALLOCATE"))->capture_default_str();
  serve->add_option("--s3-upload-concurrency", o.s3_upload_concurrency,
                    "Streams uploaded in parallel for appends waiting on the bucket (durability s3)")
      ->envname(env("S3_UPLOAD_CONCURRENCY"))->check(CLI::Range(1, 64))->capture_default_str();
  serve->add_option("--cache-size", o.cache_size,
                    "With S3: bytes of local segment data to keep; older sealed segments already in "
                    "the bucket are evicted and fetched back on demand (0 = keep everything)")
      ->envname(env("CACHE_SIZE"))->capture_default_str();
  serve->add_option("--segment-bytes", o.segment_bytes,
                    "Size past which a stream log starts a new segment file")
      ->envname(env("SEGMENT_BYTES"))->check(CLI::Range(uint64_t{1024}, uint64_t{1} << 32))
      ->capture_default_str();
  serve->add_flag("--allow-unauthenticated", o.allow_unauthenticated,
                  "Allow open mode (no API keys) on a non-loopback address")
      ->envname(env("ALLOW_UNAUTHENTICATED"));

  auto* keys = app.add_subcommand("keys", "Manage API keys (stored hashed in the catalog)");
  keys->require_subcommand(1);
  std::string keys_dir = "./data", tenant, revoke_key;
  auto* kcreate = keys->add_subcommand("create", "Create a key for a tenant; prints it once, as the last line");
  kcreate->add_option("--data-dir", keys_dir, "Data directory")->envname(env("DATA_DIR"))->capture_default_str();
  kcreate->add_option("--tenant", tenant, "Tenant the key acts for")->required();
  auto* klist = keys->add_subcommand("list", "List keys (prefix, tenant, state)");
  klist->add_option("--data-dir", keys_dir, "Data directory")->envname(env("DATA_DIR"))->capture_default_str();
  auto* krevoke = keys->add_subcommand("revoke", "Revoke a key, given in full or by its prefix");
  krevoke->add_option("--data-dir", keys_dir, "Data directory")->envname(env("DATA_DIR"))->capture_default_str();
  krevoke->add_option("key", revoke_key, "The key or its prefix")->required();

  ExportOptions xo;
  auto* xport = app.add_subcommand("export", "Download a session as NDJSON (one event per line)");
  xport->add_option("--url", xo.url, "Server base URL")->envname(env("URL"))->capture_default_str();
  xport->add_option("--key", xo.key, "API key")->envname(env("KEY"));
  xport->add_option("-o,--output", xo.output, "Output file (default stdout)");
  xport->add_option("session_id", xo.session_id, "Session id")->required();

  CLI11_PARSE(app, argc, argv);
  if (serve->parsed()) return run_serve(o);
  if (xport->parsed()) return run_export(xo);
  if (keys->parsed()) {
    if (Status s = Fs::posix()->create_dirs(keys_dir); !s) {
      std::fprintf(stderr, "error: %s\n", s.message().c_str());
      return 1;
    }
    std::unique_ptr<Catalog> catalog;
    if (Status s = Catalog::open(keys_dir + "/catalog.db", &catalog); !s) {
      std::fprintf(stderr, "error: %s\n", s.message().c_str());
      return 1;
    }
    ApiKeys k(catalog.get());
    if (kcreate->parsed()) {
      std::string key;
      if (Status s = k.create(tenant, &key); !s) {
        std::fprintf(stderr, "error: %s\n", s.message().c_str());
        return 1;
      }
      std::printf("created a key for tenant '%s' (shown once; store it now):\n%s\n", tenant.c_str(),
                  key.c_str());
      return 0;
    }
    if (klist->parsed()) {
      std::vector<ApiKeyInfo> all;
      k.list(&all);
      std::printf("%-14s %-24s %s\n", "PREFIX", "TENANT", "STATE");
      for (const auto& i : all) {
        std::printf("%-14s %-24s %s\n", i.prefix.c_str(), i.tenant.c_str(),
                    i.revoked ? "revoked" : "active");
      }
      return 0;
    }
    if (krevoke->parsed()) {
      if (Status s = k.revoke(revoke_key); !s) {
        std::fprintf(stderr, "error: %s\n", s.message().c_str());
        return 1;
      }
      std::printf("revoked\n");
      return 0;
    }
  }
  return 0;
}

}  // namespace ds
