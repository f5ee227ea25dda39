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

TEST(SmsIds, AnOutcomeRecordsItsPartsWithTheReference) {
  auto t = sms_task();
  sqlite3* db = sqlite_handle(*t);
  std::vector<RecipientRow> rows;
  ASSERT_TRUE(t->claim(0, 10, rows, true).ok());
  Outcome o;
  o.id = 1;
  o.status = RcptStatus::kDeferred;
  o.code = 0x08;
  o.reply = "ESME_RSYSERR";
  o.attempts = 1;
  o.time = 100;
  o.sms_ids = {"m1", "", ""};  // part 1 of 3 taken, part 2 refused, part 3 never sent
  o.sms_ref = 200;
  Outcome single;
  single.id = 2;
  single.status = RcptStatus::kSent;
  single.attempts = 1;
  single.sms_ids = {"m9"};
  ASSERT_TRUE(t->record({o, single}).ok());
  auto p = partial_sms(db, 1);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->ids, (std::vector<std::string>{"m1", "", ""}));
  EXPECT_EQ(p->concat_ref, 200);
  EXPECT_TRUE(p->resumable());
  EXPECT_EQ(count(db, "SELECT ref FROM sms_ids WHERE message_id = 'm9'"), -1);
  EXPECT_FALSE(partial_sms(db, 2)->resumable());  // one part, sent
}

TEST(SmsIds, TheLatestMessageOnlyAsAPhoneJoinsParts) {
  auto t = sms_task();
  sqlite3* db = sqlite_handle(*t);
  // Sent whole (every part), then reset and sent again with the same reference (refs restart
  // with each process): part 1 again starts a new message, it does not complete the old one.
  ASSERT_TRUE(record_sms_ids(db, 1, {"a", "b", "c"}, 0, 5).ok());
  EXPECT_FALSE(partial_sms(db, 1)->resumable());  // complete: nothing to resume
  ASSERT_TRUE(record_sms_ids(db, 1, {"d", "", ""}, 0, 5).ok());
  auto p = partial_sms(db, 1);
  EXPECT_EQ(p->ids, (std::vector<std::string>{"d", "", ""}));
  EXPECT_TRUE(p->resumable());
  // Another reference, or another number of parts (the text changed): a new message.
  ASSERT_TRUE(record_sms_ids(db, 1, {"", "e", ""}, 0, 6).ok());
  EXPECT_EQ(partial_sms(db, 1)->ids, (std::vector<std::string>{"", "e", ""}));
  EXPECT_EQ(partial_sms(db, 1)->concat_ref, 6);
  ASSERT_TRUE(record_sms_ids(db, 1, {"f", ""}, 0, 6).ok());
  EXPECT_EQ(partial_sms(db, 1)->ids, (std::vector<std::string>{"f", ""}));
  // Rows without a reference (recorded before it was kept) can be reported, never resumed.
  ASSERT_TRUE(record_sms_ids(db, 2, {"g", ""}).ok());
  EXPECT_EQ(partial_sms(db, 2)->concat_ref, -1);
  EXPECT_FALSE(partial_sms(db, 2)->resumable());
}

TEST(SmsIds, ATableWithoutTheRefColumnGainsIt) {
  auto t = sms_task();
  sqlite3* db = sqlite_handle(*t);
  // sms_ids as the first version created it.
  ASSERT_EQ(sqlite3_exec(db,
                         "CREATE TABLE sms_ids(message_id TEXT NOT NULL, rcpt_id INTEGER NOT "
                         "NULL, part INTEGER NOT NULL, parts INTEGER NOT NULL, submitted INTEGER "
                         "NOT NULL, state INTEGER NOT NULL DEFAULT 0, done INTEGER NOT NULL "
                         "DEFAULT 0); INSERT INTO sms_ids VALUES('old', 1, 1, 2, 1, 0, 0);",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  auto before = partial_sms(db, 1);  // readable: nothing to resume without a reference
  ASSERT_TRUE(before.ok());
  EXPECT_FALSE(before->resumable());
  ASSERT_TRUE(record_sms_ids(db, 2, {"new", ""}, 0, 7).ok());  // migrates, then records
  EXPECT_EQ(count(db, "SELECT ref FROM sms_ids WHERE message_id = 'old'"), -1);
  EXPECT_EQ(partial_sms(db, 2)->concat_ref, 7);
  EXPECT_TRUE(ensure_sms_ids_schema(db).ok());  // idempotent once migrated
}

}  // namespace
}  // namespace sb
