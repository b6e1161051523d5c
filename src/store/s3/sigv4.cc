#include "store/s3/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <ctime>

namespace ds::s3 {

std::string hex(std::string_view bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

std::string sha256_hex(std::string_view data) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), md);
  return hex(std::string_view(reinterpret_cast<const char*>(md), sizeof md));
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len);
  return std::string(reinterpret_cast<const char*>(md), len);
}

std::string uri_encode(std::string_view s, bool encode_slash) {
  static const char* kDigits = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_' || c == '.' || c == '~';
    if (unreserved || (c == '/' && !encode_slash)) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kDigits[c >> 4];
      out += kDigits[c & 15];
    }
  }
  return out;
}

std::string amz_date(int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

namespace {
std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Trims and collapses runs of spaces, as the canonical header value requires.
std::string canonical_value(std::string_view v) {
  std::string out;
  bool space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t') {
      space = true;
      continue;
    }
    if (space && !out.empty()) out += ' ';
    space = false;
    out += c;
  }
  return out;
}
}  // namespace

std::string canonical_request(const SigV4Request& req, std::string* signed_headers) {
  std::vector<std::pair<std::string, std::string>> q;
  q.reserve(req.query.size());
  for (const auto& [k, v] : req.query) q.emplace_back(uri_encode(k, true), uri_encode(v, true));
  std::sort(q.begin(), q.end());
  std::string query;
  for (const auto& [k, v] : q) {
    if (!query.empty()) query += '&';
    query += k + '=' + v;
  }

  std::vector<std::pair<std::string, std::string>> h;
  for (const auto& [k, v] : req.headers) {
    std::string name = lower(k);
    std::string value = canonical_value(v);
    auto it = std::find_if(h.begin(), h.end(), [&](const auto& p) { return p.first == name; });
    if (it != h.end()) {
      it->second += ',' + value;  // repeated header: values joined with commas
    } else {
      h.emplace_back(std::move(name), std::move(value));
    }
  }
  std::sort(h.begin(), h.end());
  std::string headers, names;
  for (const auto& [k, v] : h) {
    headers += k + ':' + v + '\n';
    if (!names.empty()) names += ';';
    names += k;
  }
  if (signed_headers) *signed_headers = names;
  return req.method + '\n' + req.canonical_uri + '\n' + query + '\n' + headers + '\n' + names +
         '\n' + req.payload_hash;
}

std::string string_to_sign(std::string_view amz_date, std::string_view scope,
                           std::string_view canonical_request) {
  std::string s = "AWS4-HMAC-SHA256\n";
  s += amz_date;
  s += '\n';
  s += scope;
  s += '\n';
  s += sha256_hex(canonical_request);
  return s;
}

std::string signing_key(std::string_view secret, std::string_view date, std::string_view region,
                        std::string_view service) {
  std::string k = hmac_sha256("AWS4" + std::string(secret), date);
  k = hmac_sha256(k, region);
  k = hmac_sha256(k, service);
  return hmac_sha256(k, "aws4_request");
}

std::string authorization(const SigV4Credentials& creds, std::string_view region,
                          std::string_view service, const SigV4Request& req) {
  std::string date_time;
  for (const auto& [k, v] : req.headers) {
    if (lower(k) == "x-amz-date") date_time = v;
  }
  std::string date = date_time.substr(0, 8);
  std::string scope = date + '/' + std::string(region) + '/' + std::string(service) + "/aws4_request";
  std::string signed_headers;
  std::string creq = canonical_request(req, &signed_headers);
  std::string sts = string_to_sign(date_time, scope, creq);
  std::string sig = hex(hmac_sha256(signing_key(creds.secret_access_key, date, region, service), sts));
  return "AWS4-HMAC-SHA256 Credential=" + creds.access_key_id + '/' + scope +
         ", SignedHeaders=" + signed_headers + ", Signature=" + sig;
}

}  // namespace ds::s3
