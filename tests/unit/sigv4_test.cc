// SigV4 signer against AWS's published vectors: the aws-sig-v4-test-suite (credentials
// AKIDEXAMPLE, 2015-08-30T12:36:00Z, us-east-1, service "service") and the S3 examples of the
// "Signature Calculations for the Authorization Header" page of the S3 API reference.
#include "store/s3/sigv4.h"

#include <gtest/gtest.h>

namespace ds::s3 {
namespace {

const SigV4Credentials kSuiteCreds{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
const SigV4Credentials kS3DocCreds{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                                   ""};
constexpr const char* kSuitePrefix =
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=";

SigV4Request suite_request(std::string method, std::string path,
                           std::vector<std::pair<std::string, std::string>> query = {}) {
  SigV4Request r;
  r.method = std::move(method);
  r.canonical_uri = std::move(path);
  r.query = std::move(query);
  r.headers = {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}};
  r.payload_hash = std::string(kEmptySha256);
  return r;
}

TEST(SigV4, GetVanillaCanonicalRequestMatchesSuite) {
  std::string signed_headers;
  std::string creq = canonical_request(suite_request("GET", "/"), &signed_headers);
  EXPECT_EQ(creq,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(signed_headers, "host;x-amz-date");
  EXPECT_EQ(string_to_sign("20150830T123600Z", "20150830/us-east-1/service/aws4_request", creq),
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
}

TEST(SigV4, DerivedSigningKeyMatchesSuite) {
  EXPECT_EQ(hex(signing_key(kSuiteCreds.secret_access_key, "20150830", "us-east-1", "service")),
            "938127b5336810ddb6a5d6af445fcac9e371f9ed418ed386b022aed82901be75");
}

TEST(SigV4, GetVanilla) {
  EXPECT_EQ(authorization(kSuiteCreds, "us-east-1", "service", suite_request("GET", "/")),
            std::string(kSuitePrefix) +
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

TEST(SigV4, GetVanillaQueryWithNoParametersSignsLikeGetVanilla) {
  EXPECT_EQ(authorization(kSuiteCreds, "us-east-1", "service", suite_request("GET", "/", {})),
            std::string(kSuitePrefix) +
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

TEST(SigV4, GetVanillaQueryOrderKeyCaseSortsParameters) {
  auto r = suite_request("GET", "/", {{"Param2", "value2"}, {"Param1", "value1"}});
  EXPECT_EQ(authorization(kSuiteCreds, "us-east-1", "service", r),
            std::string(kSuitePrefix) +
                "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
}

TEST(SigV4, GetUtf8EncodesPathBytes) {
  auto r = suite_request("GET", uri_encode("/\xE1\x88\xB4", false));
  EXPECT_EQ(r.canonical_uri, "/%E1%88%B4");
  EXPECT_EQ(authorization(kSuiteCreds, "us-east-1", "service", r),
            std::string(kSuitePrefix) +
                "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85");
}

TEST(SigV4, PostVanilla) {
  EXPECT_EQ(authorization(kSuiteCreds, "us-east-1", "service", suite_request("POST", "/")),
            std::string(kSuitePrefix) +
                "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
}

SigV4Request s3_doc_request(std::string method, std::string path,
                            std::vector<std::pair<std::string, std::string>> query = {}) {
  SigV4Request r;
  r.method = std::move(method);
  r.canonical_uri = std::move(path);
  r.query = std::move(query);
  r.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
               {"x-amz-date", "20130524T000000Z"},
               {"x-amz-content-sha256", std::string(kEmptySha256)}};
  r.payload_hash = std::string(kEmptySha256);
  return r;
}

TEST(SigV4, S3GetObjectWithRangeMatchesAwsDocs) {
  auto r = s3_doc_request("GET", "/test.txt");
  r.headers.emplace_back("Range", "bytes=0-9");
  EXPECT_EQ(authorization(kS3DocCreds, "us-east-1", "s3", r),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST(SigV4, S3ListObjectsMatchesAwsDocs) {
  auto r = s3_doc_request("GET", "/", {{"max-keys", "2"}, {"prefix", "J"}});
  std::string auth = authorization(kS3DocCreds, "us-east-1", "s3", r);
  EXPECT_EQ(auth.substr(auth.find("Signature=")),
            "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST(SigV4, UriEncodeKeepsUnreservedAndOptionallySlash) {
  EXPECT_EQ(uri_encode("a b/c~d_e.f-g$", false), "a%20b/c~d_e.f-g%24");
  EXPECT_EQ(uri_encode("a/b", true), "a%2Fb");
}

TEST(SigV4, AmzDateFormatsUtc) { EXPECT_EQ(amz_date(1440938160), "20150830T123600Z"); }

}  // namespace
}  // namespace ds::s3
