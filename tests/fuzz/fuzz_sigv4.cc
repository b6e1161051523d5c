// fuzz_sigv4: SigV4 canonicalisation and signing (store/s3/sigv4.h) on requests built from the
// input.
//
// Checked beyond "no crash":
//   uri_encode:         output is only unreserved characters and upper-case %XX ('/' kept unless
//                       encode_slash), and decodes back to the input
//   canonical_request:  independent of the order of query parameters, of the order of headers
//                       with distinct names and of header-name case; SignedHeaders is sorted,
//                       lower-case, ';'-separated and lists each header once
//   authorization:      deterministic, and depends on the secret only through the signature
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "store/s3/sigv4.h"

namespace {

[[noreturn]] void fail(const char* what, const std::string& detail = "") {
  std::fprintf(stderr, "fuzz_sigv4: INVARIANT VIOLATED: %s %.300s\n", what, detail.c_str());
  abort();
}

int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void check_uri_encode(const std::string& s, bool encode_slash) {
  std::string e = ds::s3::uri_encode(s, encode_slash);
  std::string back;
  for (size_t i = 0; i < e.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(e[i]);
    if (c == '%') {
      if (i + 2 >= e.size()) fail("truncated escape", e);
      int h = hexval(e[i + 1]), l = hexval(e[i + 2]);
      if (h < 0 || l < 0) fail("escape not upper-case hex", e);
      back += static_cast<char>(h * 16 + l);
      i += 2;
    } else if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
               (c == '/' && !encode_slash)) {
      back += static_cast<char>(c);
    } else {
      fail("reserved character left unencoded", e);
    }
  }
  if (back != s) fail("uri_encode does not decode back", s);
}

std::string flip_case(std::string s, uint64_t mask) {
  for (size_t i = 0; i < s.size(); ++i) {
    if ((mask >> (i % 64)) & 1) {
      unsigned char c = static_cast<unsigned char>(s[i]);
      s[i] = static_cast<char>(std::isupper(c) ? std::tolower(c) : std::toupper(c));
    }
  }
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider p(data, size);
  ds::s3::SigV4Request req;
  req.method = p.ConsumeRandomLengthString(8);
  req.canonical_uri = "/" + ds::s3::uri_encode(p.ConsumeRandomLengthString(64), false);
  size_t nq = p.ConsumeIntegralInRange<size_t>(0, 6);
  for (size_t i = 0; i < nq; ++i) {
    std::string k = p.ConsumeRandomLengthString(16);
    req.query.emplace_back(k, p.ConsumeRandomLengthString(32));
  }
  req.headers.emplace_back("Host", p.ConsumeRandomLengthString(32));
  req.headers.emplace_back("X-Amz-Date", p.ConsumeRandomLengthString(20));
  size_t nh = p.ConsumeIntegralInRange<size_t>(0, 6);
  for (size_t i = 0; i < nh; ++i) {
    // Header names are HTTP tokens (the S3 client only signs names it chose); values are free.
    std::string k;
    for (char c : p.ConsumeRandomLengthString(16)) {
      if (std::isalnum(static_cast<unsigned char>(c)) || std::strchr("!#$%&'*+-.^_`|~", c)) k += c;
    }
    if (k.empty()) k = "x-amz-meta-k";
    req.headers.emplace_back(k, p.ConsumeRandomLengthString(48));
  }
  req.payload_hash = p.ConsumeBool() ? std::string(ds::s3::kEmptySha256) : "UNSIGNED-PAYLOAD";
  ds::s3::SigV4Credentials creds{p.ConsumeRandomLengthString(20), p.ConsumeRandomLengthString(40),
                                 ""};
  std::string region = p.ConsumeRandomLengthString(16);
  uint64_t case_mask = p.ConsumeIntegral<uint64_t>();
  uint32_t seed = p.ConsumeIntegral<uint32_t>();

  for (const auto& [k, v] : req.query) {
    check_uri_encode(k, true);
    check_uri_encode(v, false);
  }

  std::string signed_headers;
  std::string creq = ds::s3::canonical_request(req, &signed_headers);

  // SignedHeaders: sorted, lower-case, unique.
  std::vector<std::string> names;
  size_t start = 0;
  for (;;) {
    size_t semi = signed_headers.find(';', start);
    names.push_back(signed_headers.substr(start, semi - start));
    if (semi == std::string::npos) break;
    start = semi + 1;
  }
  for (size_t i = 0; i < names.size(); ++i) {
    for (char c : names[i]) {
      if (std::isupper(static_cast<unsigned char>(c))) fail("upper case in SignedHeaders", signed_headers);
    }
    if (i > 0 && !(names[i - 1] < names[i])) fail("SignedHeaders not sorted/unique", signed_headers);
  }

  // Order and case independence (headers with distinct lower-case names only: repeated headers
  // are joined in order, by the spec).
  std::set<std::string> lowered;
  bool distinct = true;
  for (const auto& [k, v] : req.headers) {
    std::string l = k;
    for (char& c : l) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    distinct &= lowered.insert(l).second;
  }
  ds::s3::SigV4Request shuffled = req;
  std::reverse(shuffled.query.begin(), shuffled.query.end());
  if (!shuffled.query.empty()) {
    std::rotate(shuffled.query.begin(), shuffled.query.begin() + seed % shuffled.query.size(),
                shuffled.query.end());
  }
  if (distinct) {
    std::reverse(shuffled.headers.begin(), shuffled.headers.end());
    for (auto& [k, v] : shuffled.headers) k = flip_case(k, case_mask);
  }
  std::string sh2;
  if (ds::s3::canonical_request(shuffled, &sh2) != creq || sh2 != signed_headers) {
    fail("canonical request depends on parameter/header order or case", creq);
  }

  std::string a1 = ds::s3::authorization(creds, region, "s3", req);
  std::string a2 = ds::s3::authorization(creds, region, "s3", req);
  if (a1 != a2) fail("authorization is not deterministic", a1);
  ds::s3::SigV4Credentials other = creds;
  other.secret_access_key += "x";
  std::string a3 = ds::s3::authorization(other, region, "s3", req);
  size_t sig = a1.rfind("Signature=");
  if (sig == std::string::npos || a3.rfind("Signature=") != sig ||
      a1.compare(0, sig, a3, 0, sig) != 0) {
    fail("the secret leaks outside the signature", a1);
  }
  if (a1.size() != sig + 10 + 64) fail("signature is not 64 hex digits", a1);
  return 0;
}
