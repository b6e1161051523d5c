// ServeOptions: every flag of `durable-sessions serve`, with its documented default. Each flag can
// also be given as an environment variable DURABLE_SESSIONS_<FLAG> (upper case, '-' -> '_').
#pragma once

#include <cstdint>
#include <string>

namespace ds {

struct ServeOptions {
  std::string listen = "127.0.0.1:4437";
  std::string data_dir = "./data";
  double long_poll_timeout = 30;     // seconds
  uint64_t max_body = 8ull << 20;    // bytes
  uint64_t max_events_per_request = 10000;
  uint64_t max_connections = 10000;
  uint64_t max_header = 16u << 10;
  int idle_timeout = 120;            // seconds
  double sse_heartbeat = 15;         // seconds
  double sse_max_duration = 60;      // seconds
  int threads = 0;                   // 0 = one per core
  std::string log_level = "info";
  bool allow_unauthenticated = false;
  double rate_limit = 0;             // requests/s per tenant (0 = unlimited)
  double rate_burst = 0;             // token-bucket size (0 = same as rate)
  int64_t max_live_per_tenant = 10000;  // open SSE + long-poll reads per tenant
  uint64_t max_url = 8192;           // bytes of request target (414 beyond)
  uint64_t max_sessions_per_tenant = 1000000;
  bool access_log = true;
  std::string cors_origin = "*";     // allowed browser origins: * or a comma-separated list            // one JSON line per request on stdout
  std::string index_dir;             // search index root ("" = <data-dir>/index)
  double bm25_k1 = 1.2;              // BM25 term-frequency saturation
  double bm25_b = 0.75;              // BM25 length normalisation
  double search_wait = 2;            // seconds a search waits for the indexer (read-your-writes)
  int search_threads = 2;            // threads that run searches, off the I/O threads
  uint64_t search_cache_bytes = 256ull << 20;  // decoded posting lists of frequent terms, all tenants
  bool index_fsync = false;          // fsync index commits (off: rebuilt after a machine crash)
  bool webhook_allow_private = false;  // subscription webhooks may target private networks
  // S3 tier (docs/s3.md). Off unless --s3-bucket is set; credentials from AWS_ACCESS_KEY_ID /
  // AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN).
  std::string s3_endpoint = "https://s3.amazonaws.com";
  std::string s3_bucket;
  std::string s3_region = "us-east-1";
  std::string s3_prefix;
  bool s3_virtual_host = false;      // bucket.host addressing instead of host/bucket
  double s3_flush_interval = 1;      // seconds between upload passes
  std::string durability = "local";  // local: ack on fsync; s3: ack once in the bucket
  int s3_upload_concurrency = 4;     // streams uploaded in parallel for --durability s3 waiters
  uint64_t cache_size = 0;           // bytes of local segments kept once in the bucket (0 = all)
  uint64_t segment_bytes = 64ull << 20;  // a stream log rolls to a new segment file past this
  bool journal = true;               // shared write-ahead journal (false: fsync each stream file)
  uint64_t journal_file_bytes = 64ull << 20;  // start a new journal file (checkpoint) past this
  double journal_checkpoint_interval = 30;    // seconds: checkpoint a journal file at least this often
  int journal_syncs = 1;                      // journal fdatasyncs in flight at once
  bool journal_direct_io = true;              // O_DIRECT | O_DSYNC journal writes where possible
  bool journal_preallocate = true;            // start journal files from a zero-filled spare
};

}  // namespace ds
