// SigV4: AWS Signature Version 4 request signing (header form), on OpenSSL.
//
// The signer is a pure function of its inputs: the same request, credentials, scope and time give
// the same Authorization header, so it is checked against AWS's published test vectors. It does no
// path normalisation: `canonical_uri` is used exactly as given, already URI-encoded once, which is
// what S3 expects (other AWS services want dot-segment normalisation, which S3 does not).
// Thread-safe (no state).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ds::s3 {

struct SigV4Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // optional (temporary credentials); sent as x-amz-security-token
};

struct SigV4Request {
  std::string method;         // "GET", "PUT", …
  std::string canonical_uri;  // URI-encoded absolute path, e.g. "/bucket/a%20b/c"
  // Query parameters, NOT encoded (the signer encodes and sorts them). Empty value = "name=".
  std::vector<std::pair<std::string, std::string>> query;
  // Headers to sign; must include "host" and "x-amz-date". Names in any case.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string payload_hash;   // hex SHA-256 of the body, or "UNSIGNED-PAYLOAD"
};

inline constexpr std::string_view kEmptySha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// Hex (lower case) SHA-256 of `data`.
std::string sha256_hex(std::string_view data);
// Raw (32-byte) HMAC-SHA256.
std::string hmac_sha256(std::string_view key, std::string_view data);
std::string hex(std::string_view bytes);
// RFC 3986 encoding as SigV4 defines it: unreserved characters kept, everything else %XX (upper
// case); '/' kept unless `encode_slash`.
std::string uri_encode(std::string_view s, bool encode_slash);
// "20150830T123600Z" for a UNIX time in seconds.
std::string amz_date(int64_t unix_seconds);

// The canonical request; *signed_headers receives "host;x-amz-date;…".
std::string canonical_request(const SigV4Request& req, std::string* signed_headers);
// The string to sign for `amz_date` ("YYYYMMDDTHHMMSSZ") and a credential scope
// "YYYYMMDD/region/service/aws4_request".
std::string string_to_sign(std::string_view amz_date, std::string_view scope,
                           std::string_view canonical_request);
// The derived signing key (raw bytes).
std::string signing_key(std::string_view secret, std::string_view date, std::string_view region,
                        std::string_view service);
// The full Authorization header value. The request's x-amz-date header gives the time.
std::string authorization(const SigV4Credentials& creds, std::string_view region,
                          std::string_view service, const SigV4Request& req);

}  // namespace ds::s3
