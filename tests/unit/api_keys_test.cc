// store::ApiKeys dump/restore (the bucket mirror of the key table): a dump restored into a fresh
// catalog authenticates the same keys for the same tenants, keeps revocations, holds no key in
// clear, and a malformed dump is refused without writing anything.
#include "store/api_keys.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "temp_dir.h"

namespace ds {
namespace {

std::unique_ptr<Catalog> open_catalog(const std::string& path) {
  std::unique_ptr<Catalog> c;
  Status s = Catalog::open(path, &c);
  EXPECT_TRUE(s) << s.message();
  return c;
}

TEST(ApiKeysTest, ADumpRestoredIntoAFreshCatalogAuthenticatesTheSameKeys) {
  test::TempDir tmp;
  auto a = open_catalog(tmp / "a.db");
  ApiKeys keys(a.get());
  std::string k1, k2, k3;
  ASSERT_TRUE(keys.create("acme", &k1));
  ASSERT_TRUE(keys.create("globex", &k2));
  ASSERT_TRUE(keys.create("acme", &k3));
  ASSERT_TRUE(keys.revoke(k3));
  std::string dump;
  ASSERT_TRUE(keys.dump(&dump));
  for (const std::string& k : {k1, k2, k3}) EXPECT_EQ(dump.find(k), std::string::npos);

  auto b = open_catalog(tmp / "b.db");
  Status s = ApiKeys::restore(b.get(), dump);
  ASSERT_TRUE(s) << s.message();
  ApiKeys restored(b.get());
  EXPECT_TRUE(restored.any_active());
  EXPECT_EQ(restored.tenant_for(k1), std::optional<std::string>("acme"));
  EXPECT_EQ(restored.tenant_for(k2), std::optional<std::string>("globex"));
  EXPECT_EQ(restored.tenant_for(k3), std::nullopt);  // revoked stays revoked
  EXPECT_EQ(restored.tenant_for("dsk_not_a_key"), std::nullopt);
  std::string again;
  ASSERT_TRUE(restored.dump(&again));
  EXPECT_EQ(again, dump);  // the same table, in the same order

  // Restoring twice adds nothing and changes nothing.
  ASSERT_TRUE(ApiKeys::restore(b.get(), dump));
  ASSERT_TRUE(restored.dump(&again));
  EXPECT_EQ(again, dump);
}

TEST(ApiKeysTest, AMalformedDumpIsRefusedAndWritesNothing) {
  test::TempDir tmp;
  auto c = open_catalog(tmp / "c.db");
  const std::string good_hash(64, 'a');
  const std::vector<std::string> bads = {
           std::string(""), std::string("[]"), std::string("{\"keys\":{}}"),
           std::string("{\"keys\":[1]}"),
           // the second entry lacks a tenant: the whole dump is refused, the first not kept
           "{\"keys\":[{\"hash\":\"" + good_hash +
               "\",\"prefix\":\"dsk_x\",\"tenant\":\"t\",\"created_ms\":1,\"revoked\":false},"
               "{\"hash\":\"" + std::string(64, 'b') +
               "\",\"prefix\":\"dsk_y\",\"created_ms\":1,\"revoked\":false}]}",
           "{\"keys\":[{\"hash\":\"short\",\"prefix\":\"p\",\"tenant\":\"t\",\"created_ms\":1,"
           "\"revoked\":false}]}",
       };
  for (const std::string& bad : bads) {
    Status s = ApiKeys::restore(c.get(), bad);
    EXPECT_FALSE(s) << bad;
    EXPECT_EQ(s.code(), Status::Code::kCorruption) << bad;
  }
  ApiKeys keys(c.get());
  EXPECT_FALSE(keys.any_active());
}

}  // namespace
}  // namespace ds
