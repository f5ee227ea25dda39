// The task file's SMS id table: created on first use, one row per part, empty ids skipped.
#include "store/sms_ids.h"

#include <gtest/gtest.h>

#include "store/task_store.h"

namespace sb {
namespace {

std::unique_ptr<TaskStore> sms_task() {
  auto st = TaskStore::open(":memory:", true);
  EXPECT_TRUE(st.ok());
  EXPECT_TRUE((*st)->import_csv_buffer("email\na@example.com\nb@example.com\n", "l.csv").ok());
  return std::move(st).value();
}

int64_t count(sqlite3* db, const char* sql) {
  sqlite3_stmt* s = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &s, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  int64_t n = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
  sqlite3_finalize(s);
  return n;
}

TEST(SmsIds, RecordsOneRowPerPartAndCreatesTheTableOnce) {
  auto t = sms_task();
  sqlite3* db = sqlite_handle(*t);
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(record_sms_ids(db, 1, {"abc"}, 100).ok());
  ASSERT_TRUE(record_sms_ids(db, 2, {"p1", "", "p3"}, 100).ok());  // part 2 not accepted
  ASSERT_TRUE(ensure_sms_ids_schema(db).ok());                     // idempotent
  EXPECT_EQ(count(db, "SELECT count(*) FROM sms_ids"), 3);
  EXPECT_EQ(count(db, "SELECT part FROM sms_ids WHERE message_id = 'p3'"), 3);
  EXPECT_EQ(count(db, "SELECT parts FROM sms_ids WHERE message_id = 'p3'"), 3);
  EXPECT_EQ(count(db, "SELECT rcpt_id FROM sms_ids WHERE message_id = 'abc'"), 1);
  EXPECT_EQ(count(db, "SELECT submitted FROM sms_ids WHERE message_id = 'abc'"), 100);
}

TEST(SmsIds, InsideTheCallersTransactionRollsBackWithIt) {
  auto t = sms_task();
  sqlite3* db = sqlite_handle(*t);
  ASSERT_TRUE(ensure_sms_ids_schema(db).ok());
  ASSERT_EQ(sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr), SQLITE_OK);
  ASSERT_TRUE(record_sms_ids(db, 1, {"x"}).ok());
  ASSERT_EQ(sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
  EXPECT_EQ(count(db, "SELECT count(*) FROM sms_ids"), 0);
}

TEST(SmsIds, NoIdsWritesNothing) {
  auto t = sms_task();
  sqlite3* db = sqlite_handle(*t);
  ASSERT_TRUE(record_sms_ids(db, 1, {}).ok());
  ASSERT_TRUE(record_sms_ids(db, 1, {"", ""}).ok());
  EXPECT_EQ(count(db, "SELECT count(*) FROM sqlite_master WHERE name = 'sms_ids'"), 0);
}

TEST(SmsIds, PartialSmsGivesTheAcceptedPartsAndTheirReference) {
  auto t = sms_task();
  sqlite3* db = sqlite_handle(*t);
  auto none = partial_sms(db, 1);  // no table yet
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->ids.empty());
  ASSERT_TRUE(record_sms_ids(db, 1, {"a", "", "c"}, 0, 77).ok());
  auto p = partial_sms(db, 1);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->ids, (std::vector<std::string>{"a", "", "c"}));
  EXPECT_EQ(p->concat_ref, 77);
  ASSERT_TRUE(record_sms_ids(db, 1, {"", "b", ""}, 0, 77).ok());  // the missing part, later
  EXPECT_EQ(partial_sms(db, 1)->ids, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(partial_sms(db, 2)->ids.empty());
}

}  // namespace
}  // namespace sb
