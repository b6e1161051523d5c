// S3Client: a small client for the S3 REST API on libcurl, signing every request with SigV4.
//
// Guarantees:
// - Every request is signed (x-amz-content-sha256 = SHA-256 of the body) and sent to any
//   S3-compatible endpoint (AWS, MinIO, R2, Ceph, s3rver), path-style or virtual-host style.
// - Transient failures (connection errors, timeouts, truncated bodies, 5xx, 429) are retried up to
//   Options::max_attempts times with exponential backoff and full jitter; other answers are final.
// - A returned ok means S3 answered 2xx (for GET, with the whole body as long as Content-Length).
// - Status codes: kNotFound (404 / NoSuchKey), kConflict (412 precondition failed, e.g.
//   If-None-Match: * on an existing key), kUnavailable (retries exhausted), kIoError (other).
// - Connections are reused: idle curl handles (each with its connection cache) are pooled.
// Thread-safe: any number of threads may call concurrently.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "store/s3/sigv4.h"
#include "store/status.h"

namespace ds::s3 {

struct S3Options {
  std::string endpoint;              // "http://127.0.0.1:4568" or "https://s3.eu-west-1.amazonaws.com"
  std::string bucket;
  std::string region = "us-east-1";
  bool virtual_host = false;         // bucket.host/key instead of host/bucket/key
  SigV4Credentials credentials;
  long connect_timeout_ms = 3000;
  long request_timeout_ms = 30000;   // whole request, per attempt
  int max_attempts = 4;
  long backoff_base_ms = 50;         // attempt n waits rand(0, min(max, base * 2^n))
  long backoff_max_ms = 2000;
  uint64_t multipart_part_bytes = 8ull << 20;  // >= 5 MiB (S3's minimum part size)
};

struct ObjectInfo {
  std::string key;
  uint64_t size = 0;
  std::string etag;
};

struct PutOptions {
  std::string content_type = "application/octet-stream";
  bool if_none_match = false;  // create-only: kConflict if the key exists
};

class S3Client {
 public:
  explicit S3Client(S3Options options);
  ~S3Client();
  S3Client(const S3Client&) = delete;
  S3Client& operator=(const S3Client&) = delete;

  const S3Options& options() const { return options_; }

  Status put_object(const std::string& key, std::string_view body, const PutOptions& opts = {});
  // Whole object, or bytes [first, last] (inclusive, as HTTP Range) when `range` is set.
  Status get_object(const std::string& key, std::string* out,
                    std::optional<std::pair<uint64_t, uint64_t>> range = std::nullopt);
  Status head_object(const std::string& key, ObjectInfo* out);
  // Deleting a missing key is ok (S3 semantics).
  Status delete_object(const std::string& key);
  // Every object under `prefix`, in key order, following continuation tokens.
  Status list_objects(const std::string& prefix, std::vector<ObjectInfo>* out);
  // One ListObjectsV2 page; *next_token is empty on the last page.
  Status list_page(const std::string& prefix, const std::string& token, int max_keys,
                   std::vector<ObjectInfo>* out, std::string* next_token);
  // Multipart upload of `body` in parts of options().multipart_part_bytes; aborted on failure.
  Status put_object_multipart(const std::string& key, std::string_view body,
                              const PutOptions& opts = {});

  // Makes every request in progress and every later one fail at once with kUnavailable (curl
  // aborts the transfer; no retries): for shutdown, which must not wait out S3 timeouts.
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_.load(); }

  // Counters (monotonic).
  uint64_t requests() const { return requests_.load(); }
  uint64_t retries() const { return retries_.load(); }
  uint64_t failures() const { return failures_.load(); }

  struct Response {
    long status = 0;
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
    std::string header(std::string_view name) const;
  };
  // One signed request with retries. `key` is the object key ("" = the bucket itself).
  Status request(const std::string& method, const std::string& key,
                 std::vector<std::pair<std::string, std::string>> query,
                 std::vector<std::pair<std::string, std::string>> headers, std::string_view body,
                 Response* out);

 private:
  void* take_handle();
  void give_handle(void* h);
  Status attempt(void* curl, const std::string& method, const std::string& key,
                 const std::vector<std::pair<std::string, std::string>>& query,
                 const std::vector<std::pair<std::string, std::string>>& headers,
                 std::string_view body, const std::string& payload_hash, Response* out,
                 bool* retryable);

  S3Options options_;
  std::string scheme_;  // "http" / "https"
  std::string host_;    // host[:port] of the endpoint
  std::string base_path_;
  std::mutex mu_;
  std::vector<void*> idle_;
  std::atomic<uint64_t> requests_{0}, retries_{0}, failures_{0};
  std::atomic<bool> cancelled_{false};
};

// Unescapes the five XML entities and numeric references.
std::string xml_unescape(std::string_view s);

}  // namespace ds::s3
