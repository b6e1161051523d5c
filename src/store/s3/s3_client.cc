#include "store/s3/s3_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <random>
#include <thread>

namespace ds::s3 {

namespace {

std::once_flag g_curl_once;

size_t write_body(char* p, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(p, size * n);
  return size * n;
}

size_t write_header(char* p, size_t size, size_t n, void* user) {
  auto* headers = static_cast<std::vector<std::pair<std::string, std::string>>*>(user);
  std::string_view line(p, size * n);
  size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    std::string name(line.substr(0, colon));
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string_view v = line.substr(colon + 1);
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ')) v.remove_suffix(1);
    headers->emplace_back(std::move(name), std::string(v));
  } else if (line.starts_with("HTTP/")) {
    headers->clear();  // a new response (after 100 Continue or a redirect)
  }
  return size * n;
}

// Text of the first <tag>…</tag> in `xml` at or after `from`; npos-safe.
std::string xml_field(std::string_view xml, std::string_view tag, size_t from = 0) {
  std::string open = "<" + std::string(tag) + ">";
  std::string close = "</" + std::string(tag) + ">";
  size_t a = xml.find(open, from);
  if (a == std::string_view::npos) return "";
  a += open.size();
  size_t b = xml.find(close, a);
  if (b == std::string_view::npos) return "";
  return xml_unescape(xml.substr(a, b - a));
}

std::string s3_error_code(const std::string& body) { return xml_field(body, "Code"); }

thread_local std::mt19937_64 t_rng{std::random_device{}()};

}  // namespace

std::string xml_unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    size_t semi = s.find(';', i);
    if (semi == std::string_view::npos) {
      out += s[i];
      continue;
    }
    std::string_view ent = s.substr(i + 1, semi - i - 1);
    if (ent == "amp") out += '&';
    else if (ent == "lt") out += '<';
    else if (ent == "gt") out += '>';
    else if (ent == "quot") out += '"';
    else if (ent == "apos") out += '\'';
    else if (!ent.empty() && ent[0] == '#') {
      unsigned long cp = ent.size() > 1 && (ent[1] == 'x' || ent[1] == 'X')
                             ? std::stoul(std::string(ent.substr(2)), nullptr, 16)
                             : std::stoul(std::string(ent.substr(1)), nullptr, 10);
      if (cp < 0x80) {
        out += static_cast<char>(cp);
      } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      }
    } else {
      out += s.substr(i, semi - i + 1);
    }
    i = semi;
  }
  return out;
}

std::string S3Client::Response::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return "";
}

S3Client::S3Client(S3Options options) : options_(std::move(options)) {
  std::call_once(g_curl_once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  std::string ep = options_.endpoint;
  size_t sep = ep.find("://");
  scheme_ = sep == std::string::npos ? "https" : ep.substr(0, sep);
  std::string rest = sep == std::string::npos ? ep : ep.substr(sep + 3);
  size_t slash = rest.find('/');
  host_ = rest.substr(0, slash);
  if (slash != std::string::npos) base_path_ = rest.substr(slash);
  while (!base_path_.empty() && base_path_.back() == '/') base_path_.pop_back();
}

S3Client::~S3Client() {
  for (void* h : idle_) curl_easy_cleanup(static_cast<CURL*>(h));
}

void* S3Client::take_handle() {
  {
    std::lock_guard lk(mu_);
    if (!idle_.empty()) {
      void* h = idle_.back();
      idle_.pop_back();
      return h;
    }
  }
  return curl_easy_init();
}

void S3Client::give_handle(void* h) {
  std::lock_guard lk(mu_);
  idle_.push_back(h);
}

namespace {
// curl's progress callback (about once a second, and on every transfer step): non-zero aborts.
int abort_if_cancelled(void* flag, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<std::atomic<bool>*>(flag)->load() ? 1 : 0;
}
}  // namespace

Status S3Client::attempt(void* handle, const std::string& method, const std::string& key,
                         const std::vector<std::pair<std::string, std::string>>& query,
                         const std::vector<std::pair<std::string, std::string>>& headers,
                         std::string_view body, const std::string& payload_hash, Response* out,
                         bool* retryable) {
  CURL* curl = static_cast<CURL*>(handle);
  curl_easy_reset(curl);  // keeps the connection cache
  *retryable = false;
  out->status = 0;
  out->body.clear();
  out->headers.clear();

  std::string host = options_.virtual_host ? options_.bucket + "." + host_ : host_;
  std::string path = base_path_;
  if (!options_.virtual_host) path += "/" + uri_encode(options_.bucket, true);
  // A bucket-level request is "/bucket" path-style (no trailing slash), "/" virtual-host style.
  if (!key.empty() || options_.virtual_host) path += "/" + uri_encode(key, false);
  SigV4Request sr;
  sr.method = method;
  sr.canonical_uri = path;
  sr.query = query;
  sr.payload_hash = payload_hash;
  sr.headers = headers;
  sr.headers.emplace_back("host", host);
  sr.headers.emplace_back("x-amz-date",
                          amz_date(std::chrono::duration_cast<std::chrono::seconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count()));
  sr.headers.emplace_back("x-amz-content-sha256", payload_hash);
  if (!options_.credentials.session_token.empty()) {
    sr.headers.emplace_back("x-amz-security-token", options_.credentials.session_token);
  }
  std::string auth = authorization(options_.credentials, options_.region, "s3", sr);

  std::string url = scheme_ + "://" + host + path;
  std::string qs;
  for (const auto& [k, v] : query) {
    qs += qs.empty() ? '?' : '&';
    qs += uri_encode(k, true);
    qs += "=" + uri_encode(v, true);
  }
  url += qs;

  curl_slist* list = nullptr;
  for (const auto& [k, v] : sr.headers) list = curl_slist_append(list, (k + ": " + v).c_str());
  list = curl_slist_append(list, ("Authorization: " + auth).c_str());
  list = curl_slist_append(list, "Expect:");
  bool has_ct = std::any_of(headers.begin(), headers.end(), [](const auto& p) {
    return p.first == "content-type" || p.first == "Content-Type";
  });
  if (!has_ct) list = curl_slist_append(list, "Content-Type:");

  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, options_.connect_timeout_ms);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, options_.request_timeout_ms);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, write_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &out->body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, write_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &out->headers);
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, abort_if_cancelled);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &cancelled_);
  if (method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (method == "GET") {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
    if (method != "DELETE" || !body.empty()) {
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
      curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    }
  }
  requests_++;
  CURLcode rc = curl_easy_perform(curl);
  curl_slist_free_all(list);
  if (rc != CURLE_OK) {
    *retryable = true;
    return Status::unavailable(std::string("S3 ") + method + " " + key + ": " +
                               curl_easy_strerror(rc));
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out->status);
  if (out->status >= 200 && out->status < 300) return Status::ok();
  std::string what = "S3 " + method + " " + key + ": HTTP " + std::to_string(out->status);
  std::string code = s3_error_code(out->body);
  if (!code.empty()) what += " " + code;
  if (out->status >= 500 || out->status == 429 || code == "SlowDown" ||
      code == "RequestTimeout" || code == "InternalError") {
    *retryable = true;
    return Status::unavailable(what);
  }
  if (out->status == 404) return Status::not_found(what);
  if (out->status == 412) return Status::conflict(what);
  return Status::io_error(what);
}

Status S3Client::request(const std::string& method, const std::string& key,
                         std::vector<std::pair<std::string, std::string>> query,
                         std::vector<std::pair<std::string, std::string>> headers,
                         std::string_view body, Response* out) {
  std::string payload_hash = sha256_hex(body);
  Status last;
  for (int attempt_no = 0; attempt_no < std::max(1, options_.max_attempts); ++attempt_no) {
    if (cancelled_) return Status::unavailable("S3 " + method + " " + key + ": cancelled (stopping)");
    if (attempt_no > 0) {
      retries_++;
      long cap = std::min(options_.backoff_max_ms, options_.backoff_base_ms << attempt_no);
      std::uniform_int_distribution<long> jitter(0, std::max(1L, cap));
      std::this_thread::sleep_for(std::chrono::milliseconds(jitter(t_rng)));
    }
    void* h = take_handle();
    if (!h) return Status::io_error("curl_easy_init failed");
    bool retryable = false;
    last = attempt(h, method, key, query, headers, body, payload_hash, out, &retryable);
    if (retryable) {
      curl_easy_cleanup(static_cast<CURL*>(h));  // drop a connection that misbehaved
    } else {
      give_handle(h);
    }
    if (last || !retryable) break;
  }
  if (!last && last.code() != Status::Code::kNotFound) failures_++;
  return last;
}

Status S3Client::put_object(const std::string& key, std::string_view body, const PutOptions& opts) {
  if (body.size() > options_.multipart_part_bytes * 2 && !opts.if_none_match) {
    return put_object_multipart(key, body, opts);
  }
  std::vector<std::pair<std::string, std::string>> headers{{"content-type", opts.content_type}};
  if (opts.if_none_match) headers.emplace_back("if-none-match", "*");
  Response r;
  return request("PUT", key, {}, std::move(headers), body, &r);
}

Status S3Client::get_object(const std::string& key, std::string* out,
                            std::optional<std::pair<uint64_t, uint64_t>> range) {
  std::vector<std::pair<std::string, std::string>> headers;
  if (range) {
    headers.emplace_back("range", "bytes=" + std::to_string(range->first) + "-" +
                                      std::to_string(range->second));
  }
  Response r;
  Status s = request("GET", key, {}, std::move(headers), "", &r);
  if (!s) return s;
  *out = std::move(r.body);
  return Status::ok();
}

Status S3Client::head_object(const std::string& key, ObjectInfo* out) {
  Response r;
  Status s = request("HEAD", key, {}, {}, "", &r);
  if (!s) return s;
  out->key = key;
  std::string len = r.header("content-length");
  out->size = len.empty() ? 0 : std::stoull(len);
  out->etag = r.header("etag");
  return Status::ok();
}

Status S3Client::delete_object(const std::string& key) {
  Response r;
  Status s = request("DELETE", key, {}, {}, "", &r);
  if (s.code() == Status::Code::kNotFound) return Status::ok();
  return s;
}

Status S3Client::list_page(const std::string& prefix, const std::string& token, int max_keys,
                           std::vector<ObjectInfo>* out, std::string* next_token) {
  std::vector<std::pair<std::string, std::string>> q{
      {"list-type", "2"}, {"prefix", prefix}, {"max-keys", std::to_string(max_keys)}};
  if (!token.empty()) q.emplace_back("continuation-token", token);
  Response r;
  Status s = request("GET", "", std::move(q), {}, "", &r);
  if (!s) return s;
  const std::string& xml = r.body;
  for (size_t at = xml.find("<Contents>"); at != std::string::npos;
       at = xml.find("<Contents>", at + 1)) {
    size_t end = xml.find("</Contents>", at);
    if (end == std::string::npos) return Status::io_error("S3 list: truncated XML");
    std::string_view item(xml.data() + at, end - at);
    ObjectInfo info;
    info.key = xml_field(item, "Key");
    std::string size = xml_field(item, "Size");
    info.size = size.empty() ? 0 : std::stoull(size);
    info.etag = xml_field(item, "ETag");
    out->push_back(std::move(info));
  }
  next_token->clear();
  if (xml_field(xml, "IsTruncated") == "true") {
    *next_token = xml_field(xml, "NextContinuationToken");
    if (next_token->empty()) return Status::io_error("S3 list: truncated without a token");
  }
  return Status::ok();
}

Status S3Client::list_objects(const std::string& prefix, std::vector<ObjectInfo>* out) {
  std::string token;
  do {
    std::string next;
    if (Status s = list_page(prefix, token, 1000, out, &next); !s) return s;
    token = std::move(next);
  } while (!token.empty());
  return Status::ok();
}

Status S3Client::put_object_multipart(const std::string& key, std::string_view body,
                                      const PutOptions& opts) {
  Response r;
  Status s = request("POST", key, {{"uploads", ""}}, {{"content-type", opts.content_type}}, "", &r);
  if (!s) return s;
  std::string upload_id = xml_field(r.body, "UploadId");
  if (upload_id.empty()) return Status::io_error("S3 multipart: no UploadId in answer");
  std::string complete = "<CompleteMultipartUpload>";
  uint64_t part_bytes = std::max<uint64_t>(options_.multipart_part_bytes, 5ull << 20);
  int part = 1;
  for (uint64_t off = 0; off < body.size() || off == 0; off += part_bytes, ++part) {
    std::string_view chunk = body.substr(off, part_bytes);
    Response pr;
    s = request("PUT", key, {{"partNumber", std::to_string(part)}, {"uploadId", upload_id}}, {},
                chunk, &pr);
    if (!s) break;
    complete += "<Part><PartNumber>" + std::to_string(part) + "</PartNumber><ETag>" +
                pr.header("etag") + "</ETag></Part>";
    if (body.empty()) break;
  }
  if (s) {
    complete += "</CompleteMultipartUpload>";
    Response cr;
    s = request("POST", key, {{"uploadId", upload_id}}, {{"content-type", "application/xml"}},
                complete, &cr);
    // S3 may answer 200 with an <Error> body when completion fails late.
    if (s && cr.body.find("<Error>") != std::string::npos) {
      s = Status::unavailable("S3 multipart complete: " + s3_error_code(cr.body));
    }
  }
  if (!s) {
    Response ar;
    request("DELETE", key, {{"uploadId", upload_id}}, {}, "", &ar);
  }
  return s;
}

}  // namespace ds::s3
