// store::Catalog: a catalog written by an earlier version (no `pending` column) opens, gains the
// column, and keeps its rows, which count as complete.
#include "store/catalog.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <memory>
#include <string>
#include <vector>

#include "temp_dir.h"

namespace ds {
namespace {

TEST(CatalogTest, AnOlderCatalogGainsThePendingColumnAndKeepsItsRows) {
  test::TempDir tmp;
  const std::string path = tmp / "catalog.db";
  {
    // The streams table as it was before the column existed, with one row.
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    const char* sql =
        "CREATE TABLE streams ("
        "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  tenant TEXT NOT NULL, path TEXT NOT NULL, kind INTEGER NOT NULL,"
        "  content_type TEXT NOT NULL, ttl_seconds INTEGER, expires_at TEXT,"
        "  created_ms INTEGER NOT NULL, fork_source INTEGER, fork_offset INTEGER NOT NULL,"
        "  fork_request TEXT NOT NULL, soft_deleted INTEGER NOT NULL DEFAULT 0,"
        "  UNIQUE(tenant, path));"
        "INSERT INTO streams (tenant, path, kind, content_type, created_ms, fork_offset,"
        "  fork_request) VALUES ('t', 'old', 0, 'text/plain', 1, 0, '');";
    ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  std::unique_ptr<Catalog> c;
  Status s = Catalog::open(path, &c);
  ASSERT_TRUE(s) << s.message();
  StreamRecord added;
  added.tenant = "t";
  added.path = "new";
  added.content_type = "text/plain";
  added.pending = true;
  ASSERT_TRUE(c->insert_stream(&added));
  std::vector<StreamRecord> rows;
  ASSERT_TRUE(c->for_each_stream([&](const StreamRecord& r) { rows.push_back(r); }));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].path, "old");
  EXPECT_FALSE(rows[0].pending);
  EXPECT_EQ(rows[1].path, "new");
  EXPECT_TRUE(rows[1].pending);
  ASSERT_TRUE(c->clear_pending(added.id));
  c.reset();
  // Opening it again (the column exists now) changes nothing.
  ASSERT_TRUE(Catalog::open(path, &c));
  rows.clear();
  ASSERT_TRUE(c->for_each_stream([&](const StreamRecord& r) { rows.push_back(r); }));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_FALSE(rows[1].pending);
}

}  // namespace
}  // namespace ds
