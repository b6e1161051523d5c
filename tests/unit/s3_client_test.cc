// S3Client against a real S3 API. These tests need a server: tests/system/s3_test.py runs them
// against @20minutes/s3rver (which verifies SigV4 signatures) by setting DS_S3_TEST_ENDPOINT and
// DS_S3_TEST_BUCKET; without them they are skipped.
#include "store/s3/s3_client.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace ds::s3 {
namespace {

std::unique_ptr<S3Client> live_client(bool virtual_host = false) {
  const char* ep = std::getenv("DS_S3_TEST_ENDPOINT");
  const char* bucket = std::getenv("DS_S3_TEST_BUCKET");
  if (!ep || !bucket) return nullptr;
  S3Options o;
  o.endpoint = ep;
  o.bucket = bucket;
  o.virtual_host = virtual_host;
  o.credentials.access_key_id = "S3RVER";
  o.credentials.secret_access_key = "S3RVER";
  o.multipart_part_bytes = 5ull << 20;
  return std::make_unique<S3Client>(o);
}

#define REQUIRE_LIVE(c) \
  if (!(c)) GTEST_SKIP() << "set DS_S3_TEST_ENDPOINT and DS_S3_TEST_BUCKET to run"

TEST(S3ClientLive, PutThenGetReturnsSameBytes) {
  auto c = live_client();
  REQUIRE_LIVE(c);
  std::string body("binary\0bytes \xff and a key with spaces", 36);
  ASSERT_TRUE(c->put_object("t/put get/a b+c.bin", body));
  std::string got;
  ASSERT_TRUE(c->get_object("t/put get/a b+c.bin", &got));
  EXPECT_EQ(got, body);
}

TEST(S3ClientLive, GetWithRangeReturnsThoseBytes) {
  auto c = live_client();
  REQUIRE_LIVE(c);
  ASSERT_TRUE(c->put_object("t/range", "0123456789"));
  std::string got;
  ASSERT_TRUE(c->get_object("t/range", &got, std::make_pair(2, 5)));
  EXPECT_EQ(got, "2345");
}

TEST(S3ClientLive, HeadReportsSizeAndMissingKeyIsNotFound) {
  auto c = live_client();
  REQUIRE_LIVE(c);
  ASSERT_TRUE(c->put_object("t/head", "abcde"));
  ObjectInfo info;
  ASSERT_TRUE(c->head_object("t/head", &info));
  EXPECT_EQ(info.size, 5u);
  EXPECT_EQ(c->head_object("t/missing", &info).code(), Status::Code::kNotFound);
  std::string got;
  EXPECT_EQ(c->get_object("t/missing", &got).code(), Status::Code::kNotFound);
}

TEST(S3ClientLive, DeleteRemovesAndDeletingMissingIsOk) {
  auto c = live_client();
  REQUIRE_LIVE(c);
  ASSERT_TRUE(c->put_object("t/del", "x"));
  ASSERT_TRUE(c->delete_object("t/del"));
  ObjectInfo info;
  EXPECT_EQ(c->head_object("t/del", &info).code(), Status::Code::kNotFound);
  EXPECT_TRUE(c->delete_object("t/del"));
}

TEST(S3ClientLive, ListFollowsContinuationTokens) {
  auto c = live_client();
  REQUIRE_LIVE(c);
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(c->put_object("t/list/k" + std::to_string(i), "v"));
  std::vector<ObjectInfo> page;
  std::string token;
  Status ls = c->list_page("t/list/", "", 3, &page, &token);
  ASSERT_TRUE(ls) << ls.message();
  EXPECT_EQ(page.size(), 3u);
  EXPECT_FALSE(token.empty());
  std::vector<ObjectInfo> all;
  ASSERT_TRUE(c->list_objects("t/list/", &all));
  ASSERT_EQ(all.size(), 7u);
  EXPECT_EQ(all.front().key, "t/list/k0");
  EXPECT_EQ(all.back().key, "t/list/k6");
}

TEST(S3ClientLive, MultipartUploadAssemblesParts) {
  auto c = live_client();
  REQUIRE_LIVE(c);
  std::string body;
  for (int i = 0; body.size() < (11u << 20); ++i) body += "line " + std::to_string(i) + "\n";
  ASSERT_TRUE(c->put_object_multipart("t/multi", body));
  std::string got;
  ASSERT_TRUE(c->get_object("t/multi", &got));
  EXPECT_EQ(got.size(), body.size());
  EXPECT_TRUE(got == body);
}

TEST(S3ClientLive, WrongSecretIsRejectedWithoutRetry) {
  const char* ep = std::getenv("DS_S3_TEST_ENDPOINT");
  const char* bucket = std::getenv("DS_S3_TEST_BUCKET");
  REQUIRE_LIVE(ep && bucket);
  S3Options o;
  o.endpoint = ep;
  o.bucket = bucket;
  o.credentials.access_key_id = "S3RVER";
  o.credentials.secret_access_key = "wrong";
  S3Client c(o);
  Status s = c.put_object("t/forbidden", "x");
  EXPECT_EQ(s.code(), Status::Code::kIoError) << s.message();
  EXPECT_NE(s.message().find("SignatureDoesNotMatch"), std::string::npos) << s.message();
  EXPECT_EQ(c.retries(), 0u);
}

TEST(S3Client, UnreachableEndpointIsUnavailableAfterRetries) {
  S3Options o;
  o.endpoint = "http://127.0.0.1:1";
  o.bucket = "b";
  o.max_attempts = 3;
  o.backoff_base_ms = 1;
  o.backoff_max_ms = 2;
  S3Client c(o);
  Status s = c.put_object("k", "x");
  EXPECT_EQ(s.code(), Status::Code::kUnavailable);
  EXPECT_EQ(c.retries(), 2u);
}

TEST(S3Client, XmlUnescapeHandlesEntities) {
  EXPECT_EQ(xml_unescape("a&amp;b&lt;c&gt;&quot;&apos;&#38;&#x41;&#233;"), "a&b<c>\"'&A\xC3\xA9");
}

}  // namespace
}  // namespace ds::s3
