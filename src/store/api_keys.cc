#include "store/api_keys.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <sqlite3.h>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "core/clock.h"

namespace ds {

namespace json = boost::json;

namespace {
std::string sha256(const std::string& s) {
  unsigned char out[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), out);
  return std::string(reinterpret_cast<char*>(out), sizeof out);
}

std::string hex(const std::string& raw) {
  static const char* h = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out += h[c >> 4];
    out += h[c & 15];
  }
  return out;
}

constexpr size_t kPrefixLen = 12;  // "dsk_" + 8 characters
}  // namespace

ApiKeys::ApiKeys(Catalog* catalog) : catalog_(catalog) { ensure_schema(catalog); }

Status ApiKeys::ensure_schema(Catalog* catalog) {
  return catalog->exec(
      "CREATE TABLE IF NOT EXISTS api_keys ("
      "  hash TEXT PRIMARY KEY, prefix TEXT NOT NULL, tenant TEXT NOT NULL,"
      "  created_ms INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0);");
}

Status ApiKeys::create(const std::string& tenant, std::string* key) {
  if (tenant.empty() || tenant.size() > 128) return Status::invalid("tenant must be 1-128 bytes");
  unsigned char rnd[24];
  if (RAND_bytes(rnd, sizeof rnd) != 1) return Status::io_error("no randomness available");
  static const char* b62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::string k = "dsk_";
  for (unsigned char c : rnd) {
    k += b62[c % 62];
    k += b62[(c / 62 + c * 7) % 62];
  }
  std::lock_guard clk(catalog_->mutex());
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(catalog_->db(),
                     "INSERT INTO api_keys (hash, prefix, tenant, created_ms) VALUES (?,?,?,?)",
                     -1, &st, nullptr);
  std::string h = hex(sha256(k));
  std::string prefix = k.substr(0, kPrefixLen);
  sqlite3_bind_text(st, 1, h.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 2, prefix.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 3, tenant.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 4, now_unix_millis());
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return Status::io_error(sqlite3_errmsg(catalog_->db()));
  *key = k;
  std::lock_guard lk(mu_);
  loaded_ = false;
  fresh_until_ns_.store(0, std::memory_order_release);
  return Status::ok();
}

Status ApiKeys::list(std::vector<ApiKeyInfo>* out) {
  std::lock_guard clk(catalog_->mutex());
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(catalog_->db(),
                     "SELECT prefix, tenant, created_ms, revoked FROM api_keys ORDER BY created_ms",
                     -1, &st, nullptr);
  while (sqlite3_step(st) == SQLITE_ROW) {
    ApiKeyInfo i;
    i.prefix = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    i.tenant = reinterpret_cast<const char*>(sqlite3_column_text(st, 1));
    i.created_ms = sqlite3_column_int64(st, 2);
    i.revoked = sqlite3_column_int(st, 3) != 0;
    out->push_back(std::move(i));
  }
  sqlite3_finalize(st);
  return Status::ok();
}

Status ApiKeys::revoke(const std::string& key_or_prefix) {
  std::lock_guard clk(catalog_->mutex());
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(catalog_->db(),
                     "UPDATE api_keys SET revoked=1 WHERE (hash=? OR prefix=?) AND revoked=0", -1,
                     &st, nullptr);
  std::string h = hex(sha256(key_or_prefix));
  sqlite3_bind_text(st, 1, h.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 2, key_or_prefix.c_str(), -1, SQLITE_TRANSIENT);
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return Status::io_error(sqlite3_errmsg(catalog_->db()));
  if (sqlite3_changes(catalog_->db()) == 0) return Status::not_found("no active key matches");
  std::lock_guard lk(mu_);
  loaded_ = false;
  fresh_until_ns_.store(0, std::memory_order_release);
  return Status::ok();
}

Status ApiKeys::dump(std::string* out) {
  json::array keys;
  std::lock_guard clk(catalog_->mutex());
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(catalog_->db(),
                         "SELECT hash, prefix, tenant, created_ms, revoked FROM api_keys "
                         "ORDER BY hash",
                         -1, &st, nullptr) != SQLITE_OK) {
    return Status::io_error(sqlite3_errmsg(catalog_->db()));
  }
  while (sqlite3_step(st) == SQLITE_ROW) {
    json::object k;
    k["hash"] = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    k["prefix"] = reinterpret_cast<const char*>(sqlite3_column_text(st, 1));
    k["tenant"] = reinterpret_cast<const char*>(sqlite3_column_text(st, 2));
    k["created_ms"] = sqlite3_column_int64(st, 3);
    k["revoked"] = sqlite3_column_int(st, 4) != 0;
    keys.push_back(std::move(k));
  }
  sqlite3_finalize(st);
  json::object o;
  o["keys"] = std::move(keys);
  *out = json::serialize(o);
  return Status::ok();
}

Status ApiKeys::restore(Catalog* catalog, std::string_view dump) {
  boost::system::error_code ec;
  json::value v = json::parse(dump, ec);
  const json::object* o = ec ? nullptr : v.if_object();
  const json::value* keys = o ? o->if_contains("keys") : nullptr;
  if (!keys || !keys->is_array()) return Status::corruption("api keys: not a key list");
  if (Status s = ensure_schema(catalog); !s) return s;
  return catalog->transaction([&]() -> Status {
    for (const json::value& kv : keys->as_array()) {
      const json::object* k = kv.if_object();
      auto text = [k](const char* name) -> const json::string* {
        const json::value* f = k ? k->if_contains(name) : nullptr;
        return f ? f->if_string() : nullptr;
      };
      const json::string *hash = text("hash"), *prefix = text("prefix"), *tenant = text("tenant");
      const json::value* created = k ? k->if_contains("created_ms") : nullptr;
      const json::value* revoked = k ? k->if_contains("revoked") : nullptr;
      if (!hash || hash->size() != 64 || !prefix || !tenant || !created || !created->is_int64() ||
          !revoked || !revoked->is_bool()) {
        return Status::corruption("api keys: malformed entry");
      }
      sqlite3_stmt* st = nullptr;
      sqlite3_prepare_v2(catalog->db(),
                         "INSERT OR IGNORE INTO api_keys (hash, prefix, tenant, created_ms, revoked)"
                         " VALUES (?,?,?,?,?)",
                         -1, &st, nullptr);
      sqlite3_bind_text(st, 1, hash->c_str(), static_cast<int>(hash->size()), SQLITE_TRANSIENT);
      sqlite3_bind_text(st, 2, prefix->c_str(), static_cast<int>(prefix->size()), SQLITE_TRANSIENT);
      sqlite3_bind_text(st, 3, tenant->c_str(), static_cast<int>(tenant->size()), SQLITE_TRANSIENT);
      sqlite3_bind_int64(st, 4, created->as_int64());
      sqlite3_bind_int(st, 5, revoked->as_bool() ? 1 : 0);
      int rc = sqlite3_step(st);
      sqlite3_finalize(st);
      if (rc != SQLITE_DONE) return Status::io_error(sqlite3_errmsg(catalog->db()));
    }
    return Status::ok();
  });
}

Status ApiKeys::reload_locked() {
  std::unordered_map<std::string, std::string> fresh;
  int rc = SQLITE_OK;
  {
    std::lock_guard clk(catalog_->mutex());
    sqlite3_stmt* st = nullptr;
    rc = sqlite3_prepare_v2(catalog_->db(), "SELECT hash, tenant FROM api_keys WHERE revoked=0",
                            -1, &st, nullptr);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
      std::string h = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
      std::string raw;
      for (size_t i = 0; i + 1 < h.size(); i += 2) {
        raw.push_back(static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16)));
      }
      fresh.emplace(std::move(raw), reinterpret_cast<const char*>(sqlite3_column_text(st, 1)));
      rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
  }
  last_reload_ = std::chrono::steady_clock::now();
  if (rc != SQLITE_DONE) {
    // Fail closed: an unreadable key table must not look like "no keys" (the server would run
    // open). The previous list stays; before any list was read, every key is refused.
    failed_ = true;
    return Status::io_error("api keys: cannot read the key table");
  }
  failed_ = false;
  active_ = std::move(fresh);
  loaded_ = true;
  return Status::ok();
}

bool ApiKeys::any_active() {
  // Asked several times by every request: without the mutex while the answer is fresh.
  const int64_t now_ns = std::chrono::steady_clock::now().time_since_epoch().count();
  if (now_ns < fresh_until_ns_.load(std::memory_order_acquire)) {
    return any_active_.load(std::memory_order_relaxed);
  }
  std::lock_guard lk(mu_);
  auto now = std::chrono::steady_clock::now();
  if (!loaded_ || now - last_reload_ >= std::chrono::seconds(1)) reload_locked();
  const bool any = !active_.empty() || (failed_ && !loaded_);
  any_active_.store(any, std::memory_order_relaxed);
  if (loaded_ && !failed_) {
    fresh_until_ns_.store((last_reload_ + std::chrono::seconds(1)).time_since_epoch().count(),
                          std::memory_order_release);
  }
  return any;
}

std::optional<std::string> ApiKeys::tenant_for(const std::string& key) {
  std::string h = sha256(key);
  std::lock_guard lk(mu_);
  // Re-read at most once a second so that keys created or revoked by `durable-sessions keys`
  // while the server runs take effect within a second.
  if (std::chrono::steady_clock::now() - last_reload_ >= std::chrono::seconds(1)) loaded_ = false;
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!loaded_) reload_locked();
    if (auto it = active_.find(h);
        it != active_.end() && it->first.size() == h.size() &&
        CRYPTO_memcmp(it->first.data(), h.data(), h.size()) == 0) {
      return it->second;
    }
    // Unknown key: maybe created since the last load. Re-read at most once a second.
    if (std::chrono::steady_clock::now() - last_reload_ < std::chrono::seconds(1)) break;
    loaded_ = false;
  }
  return std::nullopt;
}

}  // namespace ds
