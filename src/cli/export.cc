#include "cli/export.h"

#include <curl/curl.h>

#include <cstdio>
#include <string>

#include "store/s3/sigv4.h"

namespace ds {

namespace {
struct Sink {
  FILE* f = nullptr;
  long status = 0;
  CURL* curl = nullptr;
  std::string error_body;  // kept when the answer is not 200
  bool write_failed = false;
};

size_t on_body(char* p, size_t size, size_t n, void* user) {
  auto* s = static_cast<Sink*>(user);
  if (s->status == 0) curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &s->status);
  if (s->status != 200) {
    s->error_body.append(p, size * n);
    return size * n;
  }
  if (std::fwrite(p, 1, size * n, s->f) != size * n) {
    s->write_failed = true;
    return 0;
  }
  return size * n;
}
}  // namespace

int run_export(const ExportOptions& o) {
  std::string base = o.url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  std::string url = base + "/v1/sessions/" + s3::uri_encode(o.session_id, true) + "/export";
  bool to_stdout = o.output.empty() || o.output == "-";
  std::string tmp = to_stdout ? "" : o.output + ".part";
  Sink sink;
  sink.f = to_stdout ? stdout : std::fopen(tmp.c_str(), "wb");
  if (!sink.f) {
    std::fprintf(stderr, "error: cannot write %s\n", tmp.c_str());
    return 1;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  CURL* curl = curl_easy_init();
  sink.curl = curl;
  curl_slist* headers = nullptr;
  if (!o.key.empty()) headers = curl_slist_append(headers, ("Authorization: Bearer " + o.key).c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  CURLcode rc = curl_easy_perform(curl);
  if (sink.status == 0) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &sink.status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  bool ok = rc == CURLE_OK && sink.status == 200 && !sink.write_failed;
  if (!to_stdout) {
    ok = (std::fflush(sink.f) == 0) && ok;
    std::fclose(sink.f);
    if (ok && std::rename(tmp.c_str(), o.output.c_str()) != 0) ok = false;
    if (!ok) std::remove(tmp.c_str());
  } else {
    std::fflush(stdout);
  }
  if (!ok) {
    if (rc != CURLE_OK) {
      std::fprintf(stderr, "error: %s: %s\n", url.c_str(), curl_easy_strerror(rc));
    } else if (sink.status != 200) {
      std::fprintf(stderr, "error: %s answered HTTP %ld: %s\n", url.c_str(), sink.status,
                   sink.error_body.c_str());
    } else {
      std::fprintf(stderr, "error: writing %s failed\n", o.output.c_str());
    }
    return 1;
  }
  return 0;
}

}  // namespace ds
