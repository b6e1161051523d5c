// Subscriptions: the model (parsing, globs, records), the keys, the webhook URL rules, and the
// state machine through a real StreamStore, Catalog and GroupCommit in a temp dir.
#include "core/subscription.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <future>
#include <thread>

#include "core/clock.h"
#include "core/signing_keys.h"
#include "core/stream_store.h"
#include "core/subscriptions.h"
#include "fault_fs.h"
#include "http/webhook_client.h"
#include "store/group_commit.h"
#include "store/offset.h"
#include "temp_dir.h"

namespace ds {
namespace {

namespace json = boost::json;

std::string plain_path(std::string_view raw, std::string* why) {
  if (raw.empty() || raw.find("..") != std::string_view::npos) {
    *why = "bad path";
    return "";
  }
  return std::string(raw);
}

bool parse(const std::string& body, SubscriptionConfig* c, std::string* code) {
  std::string why;
  return parse_subscription_config(body, plain_path, WebhookTargets::kPublicAndLocal, c, code,
                                   &why);
}

TEST(SubscriptionGlob, StarIsOneSegmentDoubleStarAnyNumber) {
  EXPECT_TRUE(glob_match("events/*", "events/a"));
  EXPECT_FALSE(glob_match("events/*", "events/a/b"));
  EXPECT_FALSE(glob_match("events/*", "events"));
  EXPECT_FALSE(glob_match("events/*", "other/a"));
  EXPECT_TRUE(glob_match("events/**", "events"));
  EXPECT_TRUE(glob_match("events/**", "events/a/b/c"));
  EXPECT_TRUE(glob_match("**/log", "a/b/log"));
  EXPECT_TRUE(glob_match("**/log", "log"));
  EXPECT_FALSE(glob_match("**/log", "a/log/x"));
  EXPECT_TRUE(glob_match("a/**/z", "a/z"));
  EXPECT_TRUE(glob_match("a/**/z", "a/b/c/z"));
  EXPECT_TRUE(glob_match("run-*/out", "run-42/out"));
  EXPECT_FALSE(glob_match("run-*/out", "run-42/x/out"));
  EXPECT_TRUE(glob_match("*-*", "a-b-c"));
  EXPECT_FALSE(glob_match("exact", "exac"));
  EXPECT_TRUE(glob_match("exact", "exact"));
  // Many `**` against a deep path: linear in their product, not exponential.
  std::string deep;
  for (int i = 0; i < 200; ++i) deep += "s/";
  deep += "end";
  std::string many;
  for (int i = 0; i < 100; ++i) many += "**/";
  EXPECT_FALSE(glob_match(many + "z", deep));
  EXPECT_TRUE(glob_match(many + "end", deep));
  EXPECT_TRUE(glob_match(many + "s/*/**", deep));
}

TEST(SubscriptionConfig, ParsesBothTypesAndComparesCanonically) {
  SubscriptionConfig a, b;
  std::string code;
  ASSERT_TRUE(parse(R"({"type":"webhook","pattern":"events/*","streams":["b","a","a"],
                       "webhook":{"url":"https://hooks.example.com/x"},"lease_ttl_ms":5000})",
                    &a, &code));
  EXPECT_TRUE(a.webhook);
  EXPECT_EQ(a.streams, (std::vector<std::string>{"a", "b"}));  // sorted, unique
  EXPECT_EQ(a.lease_ttl_ms, 5000);
  // Same configuration, other order of keys and streams: identical canonical form.
  ASSERT_TRUE(parse(R"({"lease_ttl_ms":5000,"webhook":{"url":"https://hooks.example.com/x"},
                       "streams":["a","b"],"pattern":"events/*","type":"webhook"})",
                    &b, &code));
  EXPECT_EQ(a.canonical_config(), b.canonical_config());
  ASSERT_TRUE(parse(R"({"type":"webhook","pattern":"events/*","streams":["a","b"],
                       "webhook":{"url":"https://hooks.example.com/x"},"lease_ttl_ms":5001})",
                    &b, &code));
  EXPECT_NE(a.canonical_config(), b.canonical_config());

  SubscriptionConfig p;
  ASSERT_TRUE(parse(R"({"type":"pull-wake","streams":["x"],"wake_stream":"wake/pool"})", &p,
                    &code));
  EXPECT_FALSE(p.webhook);
  EXPECT_EQ(p.wake_stream, "wake/pool");
  EXPECT_EQ(p.lease_ttl_ms, kDefaultLeaseTtlMs);
}

TEST(SubscriptionConfig, RefusesBadInputWithTheProtocolsCodes) {
  struct Case {
    const char* body;
    const char* code;
  } cases[] = {
      {"", "INVALID_REQUEST"},
      {"[]", "INVALID_REQUEST"},
      {R"({"pattern":"a/*","webhook":{"url":"https://h.example.com"}})", "INVALID_REQUEST"},
      {R"({"type":"poll","pattern":"a/*"})", "INVALID_REQUEST"},
      {R"({"type":"webhook","webhook":{"url":"https://h.example.com"}})", "INVALID_REQUEST"},
      {R"({"type":"webhook","pattern":"a/*"})", "INVALID_REQUEST"},
      {R"({"type":"pull-wake","pattern":"a/*"})", "INVALID_REQUEST"},
      {R"({"type":"webhook","pattern":"a/*","webhook":{"url":"https://h.example.com"},"lease_ttl_ms":999})",
       "INVALID_REQUEST"},
      {R"({"type":"webhook","pattern":"a/*","webhook":{"url":"https://h.example.com"},"lease_ttl_ms":600001})",
       "INVALID_REQUEST"},
      {R"({"type":"webhook","pattern":"a/*","webhook":{"url":"https://h.example.com"},"lease_ttl_ms":"1000"})",
       "INVALID_REQUEST"},
      {R"({"type":"webhook","pattern":"a/*","webhook":{"url":"https://h.example.com"},"extra":1})",
       "INVALID_REQUEST"},
      {R"({"type":"pull-wake","streams":["../x"],"wake_stream":"w"})", "INVALID_REQUEST"},
      {R"({"type":"webhook","pattern":"a/*","webhook":{"url":"http://10.0.0.1/hook"}})",
       "WEBHOOK_URL_REJECTED"},
      {R"({"type":"webhook","pattern":"a/*","webhook":{"url":"http://hooks.example.com/"}})",
       "WEBHOOK_URL_REJECTED"},
  };
  for (const Case& c : cases) {
    SubscriptionConfig out;
    std::string code;
    EXPECT_FALSE(parse(c.body, &out, &code)) << c.body;
    EXPECT_EQ(code, c.code) << c.body;
  }
}

TEST(SubscriptionRecord, RoundTripsEveryField) {
  Subscription s;
  s.tenant = "t";
  s.id = "sub-1";
  std::string code;
  ASSERT_TRUE(parse(R"({"type":"pull-wake","pattern":"e/**","streams":["x"],"wake_stream":"w",
                       "description":"d \"quoted\""})",
                    &s.config, &code));
  s.created_ms = 1700000000123;
  s.base_url = "http://h:1";
  s.links["x"] = StreamLink{false, true, 7};
  s.links["e/a"] = StreamLink{true, false, 3};
  s.generation = 12;
  s.wake_id = "w_ab";
  s.holder = "worker";
  s.lease_until_ms = 1700000001000;
  s.snapshot["e/a"] = 9;
  s.failed = true;
  s.attempts = 3;
  s.next_attempt_ms = 1700000002000;
  Subscription back;
  ASSERT_TRUE(Subscription::from_record("t", "sub-1", s.record_json(), &back));
  EXPECT_EQ(back.record_json(), s.record_json());
  EXPECT_EQ(back.config.canonical_config(), s.config.canonical_config());
  EXPECT_EQ(back.links.at("x").acked, 7u);
  EXPECT_TRUE(back.links.at("e/a").glob);
  Subscription damaged;
  EXPECT_FALSE(Subscription::from_record("t", "x", "{\"config\":1}", &damaged));
}

TEST(Base64Url, MatchesRfc4648Vectors) {
  const std::pair<const char*, const char*> vectors[] = {
      {"", ""}, {"f", "Zg"}, {"fo", "Zm8"}, {"foo", "Zm9v"}, {"foob", "Zm9vYg"},
      {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}, {"\xfb\xff", "-_8"}};
  for (auto [raw, enc] : vectors) {
    EXPECT_EQ(base64url_encode(raw), enc);
    std::string back;
    EXPECT_TRUE(base64url_decode(enc, &back));
    EXPECT_EQ(back, raw);
  }
  std::string out;
  EXPECT_FALSE(base64url_decode("Zm9v+", &out));  // not the URL alphabet
  EXPECT_FALSE(base64url_decode("Z", &out));      // impossible length
  EXPECT_FALSE(base64url_decode("Zh", &out));     // non-zero leftover bits
}

TEST(SigningKeys, PersistAndSignVerifiably) {
  test::TempDir tmp;
  std::unique_ptr<SigningKeys> k1, k2;
  ASSERT_TRUE(SigningKeys::open(tmp / "keys", &k1));
  ASSERT_TRUE(SigningKeys::open(tmp / "keys", &k2));
  EXPECT_EQ(k1->kid(), k2->kid());
  EXPECT_EQ(k1->jwks_json(), k2->jwks_json());
  EXPECT_EQ(k1->mac("x"), k2->mac("x"));
  EXPECT_NE(k1->mac("x"), k1->mac("y"));
  EXPECT_EQ(k1->kid().rfind("ds_", 0), 0u);

  // Verify a signature with the public key from the JWKS alone.
  json::value jwks = json::parse(k1->jwks_json());
  const json::object& key = jwks.at("keys").as_array().at(0).as_object();
  EXPECT_EQ(key.at("kty").as_string(), "OKP");
  EXPECT_EQ(key.at("crv").as_string(), "Ed25519");
  EXPECT_FALSE(key.contains("d"));
  std::string pub;
  ASSERT_TRUE(base64url_decode(std::string(key.at("x").as_string()), &pub));
  ASSERT_EQ(pub.size(), 32u);
  std::string header = k1->sign(1700000000, "{\"a\":1}");
  std::string prefix = "t=1700000000,kid=" + k1->kid() + ",ed25519=";
  ASSERT_EQ(header.rfind(prefix, 0), 0u) << header;
  std::string sig;
  ASSERT_TRUE(base64url_decode(header.substr(prefix.size()), &sig));
  EVP_PKEY* pk = EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(pub.data()), pub.size());
  ASSERT_NE(pk, nullptr);
  auto verify = [&](const std::string& msg) {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, pk);
    int rc = EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                              reinterpret_cast<const unsigned char*>(msg.data()), msg.size());
    EVP_MD_CTX_free(ctx);
    return rc == 1;
  };
  EXPECT_TRUE(verify("1700000000.{\"a\":1}"));
  EXPECT_FALSE(verify("1700000000.{\"a\":2}"));
  EXPECT_FALSE(verify("1700000001.{\"a\":1}"));
  EVP_PKEY_free(pk);

  // A damaged file is refused, not replaced.
  FILE* f = std::fopen((tmp / "bad").c_str(), "w");
  std::fputs("garbage", f);
  std::fclose(f);
  std::unique_ptr<SigningKeys> bad;
  EXPECT_FALSE(SigningKeys::open(tmp / "bad", &bad));
}

TEST(WebhookUrl, AllowsPublicHttpsAndLocalDevelopmentOnly) {
  for (const char* ok : {"https://hooks.example.com/x", "https://93.184.216.34/x",
                         "http://127.0.0.1:8080/hook", "http://127.0.0.9/h", "http://localhost:1/x",
                         "https://api.localhost/x", "http://[::1]:9/x", "https://[2606:4700::1]/"}) {
    EXPECT_EQ(check_webhook_url(ok, WebhookTargets::kPublicAndLocal), "") << ok;
  }
  for (const char* bad :
       {"http://hooks.example.com/x", "ftp://hooks.example.com/", "https://10.0.0.1/",
        "https://172.16.5.4/", "https://192.168.1.1/", "https://169.254.169.254/latest/meta-data",
        "https://100.64.0.1/", "https://0.0.0.0/", "https://127.0.1.1/", "https://224.0.0.1/",
        "https://[fe80::1]/", "https://[fd00::1]/", "https://[::ffff:10.0.0.1]/",
        "https://[::ffff:127.0.0.1]/", "https://[::]/", "http://127.0.0.1@10.0.0.1/",
        "https://user:pw@hooks.example.com/", "not a url",
        "http://localhost.example.com/"}) {
    EXPECT_NE(check_webhook_url(bad, WebhookTargets::kPublicAndLocal), "") << bad;
  }
  // With API keys (kPublic) the development exception is gone.
  for (const char* local : {"http://127.0.0.1:8080/hook", "http://localhost:1/x",
                            "https://api.localhost/x", "http://[::1]:9/x"}) {
    EXPECT_NE(check_webhook_url(local, WebhookTargets::kPublic), "") << local;
  }
  EXPECT_EQ(check_webhook_url("https://hooks.example.com/x", WebhookTargets::kPublic), "");
  // --webhook-allow-private (kAny): any http(s) target.
  EXPECT_EQ(check_webhook_url("http://10.0.0.1/hook", WebhookTargets::kAny), "");
  EXPECT_NE(check_webhook_url("ftp://10.0.0.1/", WebhookTargets::kAny), "");
}

TEST(WebhookUrl, ConnectTimeCheckRefusesNamesThatResolvePrivately) {
  // A host name passes check_webhook_url (it cannot be judged from the text), so the addresses
  // it resolves to are checked when connecting. The machine's own name usually resolves to a
  // loopback address (/etc/hosts).
  char name[256] = "";
  ASSERT_EQ(gethostname(name, sizeof name - 1), 0);
  addrinfo* res = nullptr;
  if (std::string_view(name).find("localhost") != std::string_view::npos ||
      getaddrinfo(name, nullptr, nullptr, &res) != 0) {
    GTEST_SKIP() << "the host name " << name << " does not resolve here";
  }
  bool loopback = res->ai_family == AF_INET &&
                  (ntohl(reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr.s_addr) >> 24) == 127;
  freeaddrinfo(res);
  if (!loopback) GTEST_SKIP() << name << " does not resolve to a loopback address";
  std::string url = std::string("https://") + name + ":9/x";
  EXPECT_EQ(check_webhook_url(url, WebhookTargets::kPublicAndLocal), "");
  WebhookResponse r = post_webhook(url, "{}", {}, 2000, WebhookTargets::kPublicAndLocal);
  EXPECT_FALSE(r.sent);
  EXPECT_NE(r.error.find("refused address"), std::string::npos) << r.error;
}

// ---- the state machine -------------------------------------------------------------------

class SubscriptionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs_.create_dirs(tmp_ / "streams"));
    ASSERT_TRUE(SigningKeys::open(tmp_ / "keys", &keys_));
    start();
  }
  void TearDown() override { stop(); }
  void start() {
    ASSERT_TRUE(Catalog::open(tmp_ / "catalog.db", &catalog_));
    commit_ = std::make_unique<GroupCommit>(GroupCommit::Options{1, 1});
    StreamStore::Options o;
    o.data_dir = tmp_.path();
    o.fs = &fs_;
    store_ = std::make_unique<StreamStore>(o, catalog_.get(), commit_.get());
    ASSERT_TRUE(store_->open());
    subs_ = std::make_unique<Subscriptions>(Subscriptions::Options{}, catalog_.get(), store_.get(),
                                            keys_.get());
    ASSERT_TRUE(subs_->open());
  }
  void stop() {
    if (subs_) subs_->stop();
    commit_.reset();  // runs the callbacks of wake appends still in flight (subs_ still exists)
    if (store_) store_->stop();
    subs_.reset();
    store_.reset();
    catalog_.reset();
  }
  void restart() {
    stop();
    start();
  }

  std::shared_ptr<Stream> create(const std::string& tenant, const std::string& path,
                                 std::vector<std::string> messages = {}) {
    CreateSpec spec;
    spec.tenant = tenant;
    spec.path = path;
    spec.content_type = "application/json";
    spec.json_mode = true;
    spec.messages = std::move(messages);
    auto p = std::make_shared<std::promise<CreateOutcome>>();
    auto f = p->get_future();
    store_->create(std::move(spec), [p](CreateOutcome o) { p->set_value(std::move(o)); });
    CreateOutcome out = f.get();
    EXPECT_TRUE(out.status) << out.status.message();
    if (out.created) subs_->note_append(tenant, path, out.stream->record().id, 0);
    return out.stream;
  }
  void append(const std::string& tenant, const std::shared_ptr<Stream>& s, const std::string& path,
              const std::string& message) {
    auto p = std::make_shared<std::promise<AppendResult>>();
    auto f = p->get_future();
    AppendRequest req;
    req.messages = {message};
    s->append(std::move(req), [p](AppendResult r) { p->set_value(std::move(r)); });
    AppendResult r = f.get();
    ASSERT_EQ(r.outcome, AppendResult::Outcome::kAppended);
    subs_->note_append(tenant, path, s->record().id, r.first_position);
  }
  // The wake events in `wake`, once there are at least `n` (bounded wait).
  std::vector<json::value> wait_wakes(const std::string& tenant, const std::string& wake,
                                      size_t n) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (true) {
      std::shared_ptr<Stream> s;
      EXPECT_TRUE(store_->find(tenant, wake, &s));
      ReadResult rr;
      EXPECT_TRUE(s->read(0, 1 << 20, &rr));
      if (rr.messages.size() >= n || std::chrono::steady_clock::now() > deadline) {
        std::vector<json::value> out;
        for (const auto& m : rr.messages) out.push_back(json::parse(m));
        return out;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  json::value body(const Subscriptions::Reply& r) { return json::parse(r.body); }
  SubscriptionConfig pull(const std::string& pattern, const std::string& wake,
                          int64_t lease = 30000) {
    SubscriptionConfig c;
    c.pattern = pattern;
    c.wake_stream = wake;
    c.lease_ttl_ms = lease;
    return c;
  }
  std::string ack_body(const json::value& claim, const std::string& stream, uint64_t offset,
                       bool done) {
    return json::serialize(json::object{
        {"wake_id", claim.at("wake_id")},
        {"generation", claim.at("generation")},
        {"acks", json::array{json::object{{"stream", stream}, {"offset", format_offset(offset)}}}},
        {"done", done}});
  }

  test::TempDir tmp_;
  test::FaultFs fs_;
  std::unique_ptr<SigningKeys> keys_;
  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<Committer> commit_;
  std::unique_ptr<StreamStore> store_;
  std::unique_ptr<Subscriptions> subs_;
};

TEST_F(SubscriptionsTest, PullWakeClaimAckAndFencing) {
  auto existing = create("t", "events/old", {"{\"a\":1}"});
  create("t", "wake");
  auto put = subs_->put("t", "s1", pull("events/*", "wake"), "http://h");
  ASSERT_EQ(put.http, 201) << put.body;
  // An existing stream is linked at its tail: nothing pending, no wake.
  EXPECT_EQ(body(put).at("streams").at(0).at("acked_offset").as_string(), format_offset(1));
  EXPECT_EQ(subs_->put("t", "s1", pull("events/*", "wake"), "http://h").http, 200);
  EXPECT_EQ(subs_->put("t", "s1", pull("events/**", "wake"), "http://h").http, 409);

  create("t", "events/new", {"{\"b\":1}", "{\"b\":2}"});
  auto wakes = wait_wakes("t", "wake", 1);
  ASSERT_EQ(wakes.size(), 1u);
  EXPECT_EQ(wakes[0].at("stream").as_string(), "events/new");
  EXPECT_EQ(wakes[0].at("generation").as_int64(), 1);

  auto claim = subs_->claim("t", "s1", "w1");
  ASSERT_EQ(claim.http, 200) << claim.body;
  json::value c = body(claim);
  EXPECT_EQ(c.at("generation").as_int64(), 1);
  auto busy = subs_->claim("t", "s1", "w2");
  EXPECT_EQ(busy.http, 409);
  EXPECT_EQ(body(busy).at("error").at("current_holder").as_string(), "w1");
  std::string token(c.at("token").as_string());

  // Wrong generation or wake id, or a forged token: refused, nothing moves.
  json::value wrong = c;
  wrong.as_object()["generation"] = 2;
  EXPECT_EQ(subs_->ack(token, "s1", ack_body(wrong, "events/new", 2, true), false).http, 409);
  EXPECT_EQ(subs_->ack(token + "x", "s1", ack_body(c, "events/new", 2, true), false).http, 401);
  EXPECT_EQ(subs_->ack(token, "s1", ack_body(c, "events/new", 3, true), false).http, 400);  // past tail
  EXPECT_EQ(subs_->ack(token, "s1", ack_body(c, "events/new", 2, true), true).http, 401);  // kind

  auto ok = subs_->ack(token, "s1", ack_body(c, "events/new", 2, true), false);
  ASSERT_EQ(ok.http, 200) << ok.body;
  EXPECT_FALSE(body(ok).at("next_wake").as_bool());
  // The same ack again: that wake is over.
  EXPECT_EQ(subs_->ack(token, "s1", ack_body(c, "events/new", 2, true), false).http, 409);
  json::value got = body(subs_->get("t", "s1"));
  for (const auto& l : got.at("streams").as_array()) {
    if (l.at("path").as_string() == "events/new") {
      EXPECT_EQ(l.at("acked_offset").as_string(), format_offset(2));
    }
  }
  // Another tenant cannot see it.
  EXPECT_EQ(subs_->get("u", "s1").http, 404);
  (void)existing;
}

TEST_F(SubscriptionsTest, AcksGenerationsAndLinksSurviveARestart) {
  create("t", "wake");
  ASSERT_EQ(subs_->put("t", "s1", pull("events/*", "wake"), "http://h").http, 201);
  auto a = create("t", "events/a", {"{\"x\":1}"});
  wait_wakes("t", "wake", 1);
  json::value c = body(subs_->claim("t", "s1", "w1"));
  std::string token(c.at("token").as_string());
  ASSERT_EQ(subs_->ack(token, "s1", ack_body(c, "events/a", 1, false), false).http, 200);

  restart();
  // A stream that matches the pattern but was never noticed before the restart is linked from
  // its start.
  auto b = create("t", "events/b", {"{\"y\":1}"});
  restart();
  json::value got = body(subs_->get("t", "s1"));
  std::map<std::string, std::string> acked;
  for (const auto& l : got.at("streams").as_array()) {
    acked[std::string(l.at("path").as_string())] = std::string(l.at("acked_offset").as_string());
  }
  EXPECT_EQ(acked["events/a"], format_offset(1));  // the ack survived
  EXPECT_EQ(acked["events/b"], format_offset(0));  // pending from its start
  EXPECT_GE(got.at("generation").as_int64(), 1);
  // The claim's lease survived too (30 s): another worker is refused.
  EXPECT_EQ(subs_->claim("t", "s1", "w2").http, 409);
  // The old token still names the current wake and may finish it.
  auto done = subs_->ack(token, "s1", ack_body(c, "events/a", 1, true), false);
  EXPECT_EQ(done.http, 200) << done.body;
  EXPECT_TRUE(body(done).at("next_wake").as_bool());  // events/b is pending
  auto wakes = wait_wakes("t", "wake", 2);
  ASSERT_GE(wakes.size(), 2u);
  EXPECT_GT(wakes.back().at("generation").as_int64(), c.at("generation").as_int64());
  (void)a;
  (void)b;
}

// A restore from the bucket (store/tier.h) gives the streams new catalog ids and may hold fewer
// events than were acked: links are re-pointed by path, acked positions are kept but clamped to
// the restored tails, links of streams not restored start over when they appear, and the wake
// state (lease, holder, tokens of the old keys) is dropped so that pending work wakes again.
TEST_F(SubscriptionsTest, RestoreRepointsLinksClampsAckedAndDropsWakeState) {
  create("t", "wake");
  ASSERT_EQ(subs_->put("t", "s1", pull("events/*", "wake"), "http://h").http, 201);
  auto a = create("t", "events/a", {"{\"x\":1}", "{\"x\":2}", "{\"x\":3}"});
  create("t", "events/b", {"{\"y\":1}"});
  wait_wakes("t", "wake", 1);
  json::value c = body(subs_->claim("t", "s1", "w1"));
  ASSERT_EQ(subs_->ack(std::string(c.at("token").as_string()), "s1",
                       ack_body(c, "events/a", 3, false), false).http, 200);
  std::vector<Subscriptions::Committed> mirrored;
  ASSERT_TRUE(subs_->committed(&mirrored));
  ASSERT_EQ(mirrored.size(), 1u);
  const int64_t old_generation = c.at("generation").as_int64();

  // A fresh data dir where the bucket held only two events of events/a and nothing of events/b.
  stop();
  std::filesystem::remove(tmp_ / "catalog.db");
  std::filesystem::remove_all(tmp_ / "streams");
  ASSERT_TRUE(fs_.create_dirs(tmp_ / "streams"));
  start();
  subs_->stop();
  create("t", "unrelated");  // so that the restored streams get other catalog ids than before
  create("t", "wake");
  a = create("t", "events/a", {"{\"x\":1}", "{\"x\":2}"});
  subs_ = std::make_unique<Subscriptions>(Subscriptions::Options{}, catalog_.get(), store_.get(),
                                          keys_.get());
  ASSERT_TRUE(subs_->restore(mirrored));
  ASSERT_TRUE(subs_->open());

  auto acked_of = [&](const std::string& path) {
    json::value doc = body(subs_->get("t", "s1"));
    for (const auto& l : doc.at("streams").as_array()) {
      if (l.at("path").as_string() == path) return std::string(l.at("acked_offset").as_string());
    }
    return std::string("none");
  };
  EXPECT_EQ(acked_of("events/a"), format_offset(2));  // clamped to the restored tail
  append("t", a, "events/a", "{\"x\":3}");  // the re-pointed link sees its stream's appends
  auto wakes = wait_wakes("t", "wake", 1);
  ASSERT_EQ(wakes.size(), 1u);
  EXPECT_EQ(wakes[0].at("stream").as_string(), "events/a");
  EXPECT_GT(wakes[0].at("generation").as_int64(), old_generation);
  // The old holder's 30 s lease did not come back: another worker claims at once.
  auto c2 = subs_->claim("t", "s1", "w2");
  EXPECT_EQ(c2.http, 200) << c2.body;
  // What is pending is the event after the restored ack, not the whole stream again.
  EXPECT_EQ(acked_of("events/a"), format_offset(2));
  // events/b comes back later: its old acked position does not apply to the new stream.
  create("t", "events/b", {"{\"y\":1}"});
  EXPECT_EQ(acked_of("events/b"), format_offset(0));
}

TEST_F(SubscriptionsTest, AnExpiredLeaseIsFencedAndWakesAgain) {
  create("t", "wake");
  ASSERT_EQ(subs_->put("t", "s1", pull("events/*", "wake", kMinLeaseTtlMs), "http://h").http, 201);
  create("t", "events/a", {"{\"x\":1}"});
  wait_wakes("t", "wake", 1);
  json::value c = body(subs_->claim("t", "s1", "w1"));
  std::string token(c.at("token").as_string());
  auto wakes = wait_wakes("t", "wake", 2);  // the lease runs out after 1 s: a new wake follows
  ASSERT_EQ(wakes.size(), 2u);
  EXPECT_EQ(wakes[1].at("generation").as_int64(), c.at("generation").as_int64() + 1);
  EXPECT_EQ(subs_->ack(token, "s1", ack_body(c, "events/a", 1, true), false).http, 409);
  json::value got = body(subs_->get("t", "s1"));
  EXPECT_EQ(got.at("streams").at(0).at("acked_offset").as_string(), format_offset(0));
}

TEST_F(SubscriptionsTest, ExplicitLinksAndDeletion) {
  create("t", "wake");
  SubscriptionConfig c;
  c.streams = {"m/a"};
  c.wake_stream = "wake";
  ASSERT_EQ(subs_->put("t", "s1", c, "http://h").http, 201);
  EXPECT_EQ(subs_->add_streams("t", "s1", {"m/b", "m/a"}).http, 204);
  EXPECT_EQ(subs_->remove_stream("t", "s1", "m/b").http, 204);
  EXPECT_EQ(subs_->remove_stream("t", "s1", "m/b").http, 204);  // idempotent
  json::value got = body(subs_->get("t", "s1"));
  ASSERT_EQ(got.at("streams").as_array().size(), 1u);
  EXPECT_EQ(got.at("streams").at(0).at("link_type").as_string(), "explicit");
  EXPECT_EQ(subs_->remove("t", "s1").http, 204);
  EXPECT_EQ(subs_->get("t", "s1").http, 404);
  EXPECT_EQ(subs_->remove("t", "s1").http, 404);
  restart();
  EXPECT_EQ(subs_->get("t", "s1").http, 404);
}

TEST_F(SubscriptionsTest, GlobLinksOfDeletedStreamsAreForgottenExplicitOnesKept) {
  create("t", "wake");
  create("t", "events/gone", {"{\"x\":1}"});
  create("t", "events/named", {"{\"x\":1}"});
  SubscriptionConfig c = pull("events/*", "wake");
  c.streams = {"events/named"};
  ASSERT_EQ(subs_->put("t", "s1", c, "http://h").http, 201);
  ASSERT_TRUE(store_->remove("t", "events/gone"));
  ASSERT_TRUE(store_->remove("t", "events/named"));
  restart();  // every subscription is looked at again: idle, so its links are pruned
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::vector<std::string> paths;
  do {
    paths.clear();
    json::value got = body(subs_->get("t", "s1"));
    for (const auto& l : got.at("streams").as_array()) {
      paths.emplace_back(l.at("path").as_string());
    }
    if (paths.size() == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  } while (std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(paths, (std::vector<std::string>{"events/named"}));
}

TEST_F(SubscriptionsTest, TheWakeStreamIsNeverOneOfItsOwnStreams) {
  create("t", "wake");
  SubscriptionConfig c;
  c.streams = {"a", "wake"};
  c.wake_stream = "wake";
  EXPECT_EQ(subs_->put("t", "s1", c, "http://h").http, 400);
  c.streams = {"a"};
  ASSERT_EQ(subs_->put("t", "s1", c, "http://h").http, 201);
  EXPECT_EQ(subs_->add_streams("t", "s1", {"wake"}).http, 400);
}

// Session TTLs retire a stream only when it is idle, atomically with appends: an append after
// the retirement is refused, never acknowledged and then lost.
TEST_F(SubscriptionsTest, RetireIfIdleIsAtomicWithAppends) {
  auto s = create("t", "ttl", {"{\"a\":1}"});
  int64_t now = now_unix_millis();
  EXPECT_FALSE(s->retire_if_idle(now, 60'000));            // used just now
  EXPECT_TRUE(s->retire_if_idle(now + 120'000, 60'000));   // idle for two minutes
  EXPECT_FALSE(s->retire_if_idle(now + 240'000, 60'000));  // once only
  auto p = std::make_shared<std::promise<AppendResult>>();
  auto f = p->get_future();
  AppendRequest req;
  req.messages = {"{\"b\":2}"};
  s->append(std::move(req), [p](AppendResult r) { p->set_value(std::move(r)); });
  AppendResult r = f.get();
  EXPECT_NE(r.outcome, AppendResult::Outcome::kAppended);
}

}  // namespace
}  // namespace ds
