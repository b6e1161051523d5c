// ApiKeys: tenants' API keys, stored hashed (SHA-256) in the catalog's `api_keys` table.
//
// A key is shown once, when created; only its hash and a short display prefix are kept. Lookups
// go by the key's SHA-256 digest (a hash map), and the digest found is compared again in constant
// time. The server caches the table and re-reads it at most once a
// second, so keys created or revoked by `durable-sessions keys` while the server runs take effect
// within a second, without a restart. Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <string_view>
#include <vector>

#include "store/catalog.h"

namespace ds {

struct ApiKeyInfo {
  std::string prefix;  // first characters of the key, for display
  std::string tenant;
  int64_t created_ms = 0;
  bool revoked = false;
};

class ApiKeys {
 public:
  explicit ApiKeys(Catalog* catalog);

  // Creates a key for `tenant` and returns it (the only time it is available in clear).
  Status create(const std::string& tenant, std::string* key);
  Status list(std::vector<ApiKeyInfo>* out);
  // Revokes the key given in full or by its display prefix; kNotFound when nothing matches.
  Status revoke(const std::string& key_or_prefix);

  // The table as JSON for the bucket mirror (tier.h), in hash order:
  // {"keys":[{"hash","prefix","tenant","created_ms","revoked"}]}. It holds SHA-256 hashes of the
  // keys, never the keys: a key has 24 random bytes, so its hash does not give it away.
  Status dump(std::string* out);
  // Adds the keys of a dump() that the catalog does not have (a restore into a fresh data dir);
  // a revocation in the dump is kept. kCorruption when `dump` is not one.
  static Status restore(Catalog* catalog, std::string_view dump);

  // True when at least one active key exists (otherwise the server runs open), or the table
  // has never been read (fail closed).
  bool any_active();
  // The tenant of an active key, or nullopt.
  std::optional<std::string> tenant_for(const std::string& key);

 private:
  Status reload_locked();
  static Status ensure_schema(Catalog* catalog);

  Catalog* catalog_;
  std::mutex mu_;
  // Active keys: raw 32-byte SHA-256 digest -> tenant. Looked up by digest, so a lookup costs
  // the same with ten keys or a hundred thousand; its timing depends on the digest only, which
  // an attacker cannot steer towards a stored one.
  std::unordered_map<std::string, std::string> active_;
  bool loaded_ = false;
  bool failed_ = false;  // the last reload could not read the table (the old list stays)
  std::chrono::steady_clock::time_point last_reload_{};
  // any_active()'s lock-free answer, valid until fresh_until_ns_ (steady clock).
  std::atomic<bool> any_active_{false};
  std::atomic<int64_t> fresh_until_ns_{0};
};

}  // namespace ds
