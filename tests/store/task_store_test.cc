// Tests of the SQLite task store: open/identify, CSV import rules, claim, record, counts, reset.
#include "store/task_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "store/temp_dir.h"

namespace sb {
namespace {

using test::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class TaskStoreTest : public ::testing::Test {
 protected:
  // Opens (creating) task.db in the temp dir; fails the test on error.
  std::unique_ptr<TaskStore> open_task(bool create = true) {
    auto r = TaskStore::open(task_path_, create);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().describe());
    return r.ok() ? std::move(r).value() : nullptr;
  }
  // Imports csv text from a file named list.csv.
  Result<ImportReport> import_text(TaskStore& t, std::string_view csv) {
    return t.import_csv(dir_.write("list.csv", csv));
  }
  std::vector<RecipientRow> claim_all(TaskStore& t) {
    std::vector<RecipientRow> rows;
    auto n = t.claim(0, 1000, rows);
    EXPECT_TRUE(n.ok());
    return rows;
  }
  static std::vector<std::string> emails(const std::vector<RecipientRow>& rows) {
    std::vector<std::string> out;
    for (const auto& r : rows) out.push_back(r.email);
    return out;
  }

  TempDir dir_;
  std::string task_path_ = dir_.file("task.db");
};

TEST_F(TaskStoreTest, ImportsHeaderAndFieldsAligned) {
  auto t = open_task();
  ASSERT_TRUE(t);
  EXPECT_FALSE(t->imported());
  auto r =
      import_text(*t, "first, Email ,city\nAnn,ann@example.com,Oslo\nBob,bob@example.com,Rome\n");
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->imported, 2u);
  EXPECT_EQ(r->duplicates, 0u);
  EXPECT_EQ(r->invalid, 0u);
  EXPECT_TRUE(r->problems.empty());
  EXPECT_TRUE(t->imported());
  EXPECT_THAT(t->field_names(), ElementsAre("first", "city"));
  auto rows = claim_all(*t);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].email, "ann@example.com");
  EXPECT_THAT(rows[0].values, ElementsAre("Ann", "Oslo"));
  EXPECT_THAT(rows[1].values, ElementsAre("Bob", "Rome"));
  EXPECT_EQ(rows[0].attempts, 0u);
  EXPECT_LT(rows[0].id, rows[1].id);
}

TEST_F(TaskStoreTest, StripsUtf8Bom) {
  auto t = open_task();
  auto r = import_text(*t,
                       "\xEF\xBB\xBF"
                       "email,name\na@example.com,Ann\n");
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->imported, 1u);
  EXPECT_THAT(t->field_names(), ElementsAre("name"));
}

TEST_F(TaskStoreTest, SkipsBlankLines) {
  auto t = open_task();
  auto r = import_text(*t, "\n\nemail,name\n\na@example.com,A\n   \n,\nb@example.com,B\n\n");
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->imported, 2u);
  EXPECT_EQ(r->invalid, 0u);
  EXPECT_TRUE(r->problems.empty());
}

TEST_F(TaskStoreTest, QuotedFieldsWithNewlinesAndDoubledQuotes) {
  auto t = open_task();
  // The duplicate on physical line 5 proves line numbers count the record's start line.
  auto r = import_text(*t,
                       "email,note\n"
                       "a@example.com,\"line one\nline \"\"two\"\", with comma\"\n"
                       "\"b@example.com\",plain\n"
                       "A@EXAMPLE.com,dup\n");
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->imported, 2u);
  EXPECT_EQ(r->duplicates, 1u);
  EXPECT_THAT(r->problems, ElementsAre("line 5: duplicate of line 2 (A@EXAMPLE.com)"));
  auto rows = claim_all(*t);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_THAT(rows[0].values, ElementsAre("line one\nline \"two\", with comma"));
  EXPECT_EQ(rows[1].email, "b@example.com");
}

TEST_F(TaskStoreTest, CrlfAndLfGiveTheSameRowsAndLines) {
  for (const char* eol : {"\n", "\r\n"}) {
    TempDir d;
    auto t = TaskStore::open(d.file("t.db"), true);
    ASSERT_TRUE(t.ok());
    std::string csv = std::string("email,name") + eol + "a@example.com,Ann" + eol + eol +
                      "bad-address,Bob" + eol + "c@example.com,\"C" + eol + "D\"" + eol;
    auto r = (*t)->import_csv(d.write("l.csv", csv));
    ASSERT_TRUE(r.ok()) << r.error().describe();
    EXPECT_EQ(r->imported, 2u) << "eol " << (eol[0] == '\r' ? "CRLF" : "LF");
    EXPECT_EQ(r->invalid, 1u);
    EXPECT_THAT(r->problems, ElementsAre("line 4: invalid address: no '@' (bad-address)"));
    std::vector<RecipientRow> rows;
    ASSERT_TRUE((*t)->claim(0, 10, rows).ok());
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_THAT(rows[0].values, ElementsAre("Ann"));  // no stray CR
    EXPECT_THAT(rows[1].values, ElementsAre(std::string("C") + eol + "D"));
  }
}

TEST_F(TaskStoreTest, LastLineWithoutNewline) {
  auto t = open_task();
  auto r = import_text(*t, "email\na@example.com\nb@example.com");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->imported, 2u);
}

TEST_F(TaskStoreTest, MissingEmailColumnWritesNothing) {
  auto t = open_task();
  std::string path = dir_.write("L.csv", "a, b ,c\n1,2,3\n");
  auto r = t->import_csv(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().domain, ErrDomain::kInput);
  EXPECT_EQ(r.error().message, path +
                                   ": no 'email' column in the header (found: a, b, c); if "
                                   "the columns are separated by something other than a comma, "
                                   "give --csv-delimiter");
  EXPECT_FALSE(t->imported());
  auto c = t->counts();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->total, 0u);
  // Still importable afterwards, and a reopened store agrees nothing was imported.
  t.reset();
  t = open_task(false);
  EXPECT_FALSE(t->imported());
  EXPECT_TRUE(t->field_names().empty());
  auto ok = import_text(*t, "email\na@example.com\n");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->imported, 1u);
}

TEST_F(TaskStoreTest, DuplicateHeaderIsAnError) {
  auto t = open_task();
  std::string path = dir_.write("dup.csv", "email,Name,city,NAME\nx@example.com,a,b,c\n");
  auto r = t->import_csv(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().domain, ErrDomain::kInput);
  EXPECT_THAT(r.error().message, HasSubstr(path));
  EXPECT_THAT(r.error().message, HasSubstr("'NAME' appears twice in the header (columns 2 and 4)"));
  EXPECT_FALSE(t->imported());
  EXPECT_EQ(t->counts()->total, 0u);
}

TEST_F(TaskStoreTest, EmptyFileIsAnError) {
  auto t = open_task();
  auto r = import_text(*t, "\xEF\xBB\xBF\n\n");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message, HasSubstr("list.csv: the file is empty"));
  auto missing = t->import_csv(dir_.file("nope.csv"));
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.error().message, HasSubstr("cannot open " + dir_.file("nope.csv")));
}

TEST_F(TaskStoreTest, HeaderOnlyImportsNothingButCounts) {
  auto t = open_task();
  auto r = import_text(*t, "email,name\n");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->imported, 0u);
  EXPECT_TRUE(t->imported());
}

TEST_F(TaskStoreTest, DuplicatesAreReportedCountedAndImportedOnce) {
  auto t = open_task();
  auto r = import_text(*t,
                       "email\n"
                       "a@example.com\n"
                       "A@Example.COM\n"  // same mailbox: whole address compared lower-cased
                       "b@example.com\n"
                       " a@example.com \n"  // trimmed
                       "b@example.com\n");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->imported, 2u);
  EXPECT_EQ(r->duplicates, 3u);
  EXPECT_THAT(r->problems, ElementsAre("line 3: duplicate of line 2 (A@Example.COM)",
                                       "line 5: duplicate of line 2 (a@example.com)",
                                       "line 6: duplicate of line 4 (b@example.com)"));
  EXPECT_THAT(emails(claim_all(*t)), ElementsAre("a@example.com", "b@example.com"));
  EXPECT_EQ(t->counts()->total, 2u);
}

TEST_F(TaskStoreTest, InvalidAddressesAreStoredAsFailed) {
  auto t = open_task();
  std::string long_addr = std::string(64, 'l') + "@" + std::string(63, 'd') + "." +
                          std::string(63, 'e') + "." + std::string(62, 'f');
  ASSERT_EQ(long_addr.size(), 255u);
  auto r = import_text(*t, "email,n\nok@example.com,1\nnope,2\n,3\nx@localhost,4\n" + long_addr +
                               ",5\nx@y@example.com,6\n");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->imported, 1u);
  EXPECT_EQ(r->invalid, 5u);
  ASSERT_EQ(r->problems.size(), 5u);
  EXPECT_EQ(r->problems[0], "line 3: invalid address: no '@' (nope)");
  EXPECT_EQ(r->problems[1], "line 4: invalid address: empty address");
  EXPECT_THAT(r->problems[3], HasSubstr("line 6: invalid address: longer than 254 octets"));
  auto c = t->counts();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->total, 6u);
  EXPECT_EQ(c->get(RcptStatus::kFailed), 5u);
  EXPECT_EQ(c->get(RcptStatus::kUnsent), 1u);
  EXPECT_EQ(c->by_code.at(0), 5u);
  auto failed = t->list(RcptStatus::kFailed, 100);
  ASSERT_TRUE(failed.ok());
  ASSERT_EQ(failed->size(), 5u);
  EXPECT_EQ((*failed)[0].first.email, "nope");
  EXPECT_THAT((*failed)[0].first.values, ElementsAre("2"));
  EXPECT_EQ((*failed)[0].second.reply, "invalid address: no '@'");
  EXPECT_EQ((*failed)[0].second.status, RcptStatus::kFailed);
  EXPECT_GT((*failed)[0].second.time, 0);
  EXPECT_THAT(emails(claim_all(*t)), ElementsAre("ok@example.com"));
}

TEST_F(TaskStoreTest, InternationalAddressesAreAccepted) {
  auto t = open_task();
  auto r = import_text(*t, "email\njörg@bücher.de\nпочта@пример.рф\nuser@xn--bcher-kva.de\n");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->imported, 3u);
  EXPECT_EQ(r->invalid, 0u);
  EXPECT_THAT(emails(claim_all(*t)),
              ElementsAre("jörg@bücher.de", "почта@пример.рф", "user@xn--bcher-kva.de"));
}

// Issue 12/18: a row shorter than the header used to get empty values silently; now, like a
// longer one, it is failed with the reason (its values may have moved columns).
TEST_F(TaskStoreTest, ShortLongAndUnnamedColumns) {
  auto t = open_task();
  auto r = import_text(*t,
                       "name,email,,city\n"
                       "Ann,a@example.com,ignored,Oslo\n"
                       "Bob,b@example.com\n"               // short: bad row
                       "Cy,c@example.com,x,Rome,,\n"       // trailing empties: fine
                       "Di,d@example.com,x,Paris,extra\n"  // extra value: bad row
                       "Ed\n"                              // no address at all: bad row
                       "Fay,,x,Bonn\n");                   // no address
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_THAT(t->field_names(), ElementsAre("name", "city"));
  EXPECT_EQ(r->imported, 2u);
  EXPECT_EQ(r->invalid, 4u);
  EXPECT_THAT(
      r->problems,
      ElementsAre("line 1: column 3 has no name; its values are ignored",
                  "line 3: 2 fields, header has 4", "line 5: 5 fields, header has 4",
                  "line 6: 1 field, header has 4", "line 7: invalid address: empty address"));
  auto rows = claim_all(*t);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_THAT(rows[0].values, ElementsAre("Ann", "Oslo"));
  EXPECT_THAT(rows[1].values, ElementsAre("Cy", "Rome"));
  auto failed = t->list(RcptStatus::kFailed, 10);
  ASSERT_TRUE(failed.ok());
  ASSERT_EQ(failed->size(), 4u);
  EXPECT_EQ((*failed)[0].first.email, "b@example.com");
  EXPECT_EQ((*failed)[0].second.reply, "bad row: 2 fields, header has 4");
  EXPECT_EQ((*failed)[1].second.reply, "bad row: 5 fields, header has 4");
}

TEST_F(TaskStoreTest, SecondImportIsRefused) {
  auto t = open_task();
  ASSERT_TRUE(import_text(*t, "email\na@example.com\n").ok());
  auto again = import_text(*t, "email\nb@example.com\n");
  ASSERT_FALSE(again.ok());
  EXPECT_THAT(again.error().message, HasSubstr("already holds an imported recipient list"));
  EXPECT_EQ(t->counts()->total, 1u);
}

TEST_F(TaskStoreTest, ReopenKeepsEverything) {
  {
    auto t = open_task();
    ASSERT_TRUE(import_text(*t, "email,first\na@example.com,Ann\nb@example.com,Bob\n").ok());
    ASSERT_TRUE(t->set_meta("title", "March").ok());
    auto rows = claim_all(*t);
    ASSERT_TRUE(t->record({{rows[0].id, RcptStatus::kSent, 250, "2.0.0 Ok", 1, 1700000000}}).ok());
  }
  auto t = open_task(false);
  ASSERT_TRUE(t);
  EXPECT_TRUE(t->imported());
  EXPECT_THAT(t->field_names(), ElementsAre("first"));
  EXPECT_EQ(t->get_meta("title")->value_or(""), "March");
  auto rows = claim_all(*t);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].email, "b@example.com");
  EXPECT_THAT(rows[0].values, ElementsAre("Bob"));
  auto sent = t->list(RcptStatus::kSent, 10);
  ASSERT_TRUE(sent.ok());
  ASSERT_EQ(sent->size(), 1u);
  EXPECT_EQ((*sent)[0].second.code, 250);
  EXPECT_EQ((*sent)[0].second.reply, "2.0.0 Ok");
  EXPECT_EQ((*sent)[0].second.time, 1700000000);
  EXPECT_THAT((*sent)[0].first.values, ElementsAre("Ann"));
}

TEST_F(TaskStoreTest, ClaimPagesAndSkipsFinishedRecipients) {
  auto t = open_task();
  std::string csv = "email\n";
  for (int i = 1; i <= 10; ++i) csv += "r" + std::to_string(i) + "@example.com\n";
  ASSERT_TRUE(import_text(*t, csv).ok());
  auto all = claim_all(*t);
  ASSERT_EQ(all.size(), 10u);
  // r2 sent, r3 failed, r4 suppressed: skipped; r5 deferred, r6 in flight: claimed again.
  ASSERT_TRUE(t->record({{all[1].id, RcptStatus::kSent, 250, "ok", 1, 1},
                         {all[2].id, RcptStatus::kFailed, 550, "no such user", 1, 1},
                         {all[3].id, RcptStatus::kSuppressed, 0, "suppressed", 0, 1},
                         {all[4].id, RcptStatus::kDeferred, 451, "later", 1, 1},
                         {all[5].id, RcptStatus::kInFlight, 0, "", 0, 1}})
                  .ok());
  std::vector<std::string> seen;
  int64_t after = 0;
  std::vector<size_t> pages;
  for (;;) {
    std::vector<RecipientRow> page;
    auto n = t->claim(after, 3, page);
    ASSERT_TRUE(n.ok());
    if (*n == 0) break;
    ASSERT_EQ(*n, page.size());
    pages.push_back(*n);
    for (auto& r : page) seen.push_back(r.email);
    after = page.back().id;
  }
  EXPECT_THAT(pages, ElementsAre(3u, 3u, 1u));
  EXPECT_THAT(seen,
              ElementsAre("r1@example.com", "r5@example.com", "r6@example.com", "r7@example.com",
                          "r8@example.com", "r9@example.com", "r10@example.com"));
  // claim appends to the vector it is given and reports attempts made so far.
  std::vector<RecipientRow> out(1);
  auto n = t->claim(all[3].id, 1, out);
  ASSERT_TRUE(n.ok());
  ASSERT_EQ(n.value(), 1u);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].email, "r5@example.com");
  EXPECT_EQ(out[1].attempts, 1u);
}

TEST_F(TaskStoreTest, RecordThenCounts) {
  auto t = open_task();
  ASSERT_TRUE(import_text(*t, "email\na@x.com\nb@x.com\nc@x.com\nd@x.com\nbad\n").ok());
  auto rows = claim_all(*t);
  ASSERT_EQ(rows.size(), 4u);
  std::string long_reply(600, 'r');
  long_reply.replace(511, 2, "é");  // the cap must not cut the two-octet é in half
  ASSERT_TRUE(t->record({{rows[0].id, RcptStatus::kSent, 250, "ok", 1, 10},
                         {rows[1].id, RcptStatus::kSent, 250, "ok", 2, 10},
                         {rows[2].id, RcptStatus::kDeferred, 421, long_reply, 1, 10}})
                  .ok());
  auto c = t->counts();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->total, 5u);
  EXPECT_EQ(c->get(RcptStatus::kSent), 2u);
  EXPECT_EQ(c->get(RcptStatus::kDeferred), 1u);
  EXPECT_EQ(c->get(RcptStatus::kUnsent), 1u);
  EXPECT_EQ(c->get(RcptStatus::kFailed), 1u);
  EXPECT_EQ(c->get(RcptStatus::kSuppressed), 0u);
  EXPECT_EQ(c->by_code, (std::map<int, uint64_t>{{0, 1}, {250, 2}, {421, 1}}));
  auto deferred = t->list(RcptStatus::kDeferred, 10);
  ASSERT_TRUE(deferred.ok());
  ASSERT_EQ(deferred->size(), 1u);
  EXPECT_EQ((*deferred)[0].second.reply.size(), 511u);
  EXPECT_EQ((*deferred)[0].second.attempts, 1u);
  // An empty batch is fine; an unknown status is refused before anything is written.
  EXPECT_TRUE(t->record({}).ok());
  EXPECT_FALSE(t->record({{rows[3].id, static_cast<RcptStatus>(9), 0, "", 1, 1}}).ok());
  EXPECT_EQ(t->counts()->get(RcptStatus::kUnsent), 1u);
}

TEST_F(TaskStoreTest, ResetAllAndErrorsOnly) {
  auto t = open_task();
  ASSERT_TRUE(import_text(*t, "email\na@x.com\nb@x.com\nc@x.com\nd@x.com\ne@x.com\nbad\n").ok());
  auto rows = claim_all(*t);
  ASSERT_EQ(rows.size(), 5u);
  auto mark = [&] {
    ASSERT_TRUE(t->record({{rows[0].id, RcptStatus::kSent, 250, "ok", 1, 1},
                           {rows[1].id, RcptStatus::kFailed, 550, "no", 2, 1},
                           {rows[2].id, RcptStatus::kDeferred, 451, "later", 3, 1},
                           {rows[3].id, RcptStatus::kSuppressed, 0, "s", 0, 1}})
                    .ok());
  };
  mark();
  ASSERT_TRUE(t->reset(true).ok());
  auto c = t->counts();
  EXPECT_EQ(c->get(RcptStatus::kSent), 1u);
  EXPECT_EQ(c->get(RcptStatus::kSuppressed), 1u);
  EXPECT_EQ(c->get(RcptStatus::kUnsent), 3u);
  EXPECT_EQ(c->get(RcptStatus::kFailed), 1u);  // the invalid address stays failed
  auto again = claim_all(*t);
  EXPECT_THAT(emails(again), ElementsAre("b@x.com", "c@x.com", "e@x.com"));
  for (auto& r : again) EXPECT_EQ(r.attempts, 0u) << r.email;

  mark();
  ASSERT_TRUE(t->reset(false).ok());
  c = t->counts();
  EXPECT_EQ(c->get(RcptStatus::kUnsent), 5u);
  EXPECT_EQ(c->get(RcptStatus::kFailed), 1u);
  EXPECT_EQ(c->by_code, (std::map<int, uint64_t>{{0, 1}}));
  auto failed = t->list(RcptStatus::kFailed, 10);
  ASSERT_EQ(failed->size(), 1u);
  EXPECT_EQ((*failed)[0].first.email, "bad");
}

TEST_F(TaskStoreTest, MetaGetSet) {
  auto t = open_task();
  auto missing = t->get_meta("template_hash");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
  ASSERT_TRUE(t->set_meta("template_hash", "abc").ok());
  ASSERT_TRUE(t->set_meta("template_hash", "def").ok());
  EXPECT_EQ(t->get_meta("template_hash")->value_or(""), "def");
  auto reserved = t->set_meta("sb.schema_version", "9");
  ASSERT_FALSE(reserved.ok());
  EXPECT_THAT(reserved.error().message, HasSubstr("reserved"));
  EXPECT_EQ(t->get_meta("sb.schema_version")->value_or(""), "1");
}

TEST_F(TaskStoreTest, MissingFileWithoutCreate) {
  auto r = TaskStore::open(task_path_, false);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().domain, ErrDomain::kStore);
  EXPECT_EQ(r.error().message, "task file " + task_path_ + " does not exist");
  EXPECT_FALSE(std::filesystem::exists(task_path_));
}

TEST_F(TaskStoreTest, UsesWalMode) {
  auto t = open_task();
  ASSERT_TRUE(import_text(*t, "email\na@x.com\n").ok());
  t.reset();
  // Byte 18 of a SQLite header is the file format write version: 2 means WAL.
  std::ifstream f(task_path_, std::ios::binary);
  char header[20] = {};
  f.read(header, sizeof header);
  EXPECT_EQ(header[18], 2);
}

TEST_F(TaskStoreTest, ImportWhileAnotherConnectionHasTheFileOpen) {
  auto t = open_task();
  // A reader (say `smtpblast status`) keeps the journal mode from being switched for the
  // bulk import; the import must still work, in WAL mode.
  auto reader = TaskStore::open(task_path_, false);
  ASSERT_TRUE(reader.ok());
  ASSERT_TRUE((*reader)->counts().ok());
  auto r = import_text(*t, "email,n\na@x.com,1\nb@x.com,2\n");
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->imported, 2u);
  auto c = (*reader)->counts();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->total, 2u);
}

TEST_F(TaskStoreTest, OtherSqliteDatabaseIsNotATaskFile) {
  std::string other = dir_.file("other.db");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(other.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(
      sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES (1);", nullptr, nullptr, nullptr),
      SQLITE_OK);
  sqlite3_close(db);
  auto before = std::filesystem::file_size(other);
  for (bool create : {false, true}) {
    auto r = TaskStore::open(other, create);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().domain, ErrDomain::kStore);
    EXPECT_THAT(r.error().message, HasSubstr(other + " is not an smtpblast task file"));
  }
  // Left untouched: not switched to WAL, nothing added.
  EXPECT_EQ(std::filesystem::file_size(other), before);
  EXPECT_FALSE(std::filesystem::exists(other + "-wal"));
}

TEST_F(TaskStoreTest, GarbageFileIsRejected) {
  std::string junk(8192, '\0');
  for (size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<char>((i * 7919) % 251);
  std::string path = dir_.write("junk.db", junk);
  auto r = TaskStore::open(path, true);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().domain, ErrDomain::kStore);
  EXPECT_THAT(r.error().message, HasSubstr(path + " is not an smtpblast task file"));
  std::string text = dir_.write("list.txt", "email\na@b.com\n");
  auto r2 = TaskStore::open(text, false);
  ASSERT_FALSE(r2.ok());
  EXPECT_THAT(r2.error().message, HasSubstr(text + " is not an smtpblast task file"));
}

TEST_F(TaskStoreTest, DamagedTaskFileIsCorrupt) {
  {
    auto t = open_task();
    std::string csv = "email,name\n";
    for (int i = 0; i < 2000; ++i) {
      csv += "user" + std::to_string(i) + "@example.com,Name " + std::to_string(i) + "\n";
    }
    ASSERT_TRUE(import_text(*t, csv).ok());
  }
  // Keep the SQLite header page, scribble over every page after it.
  auto size = std::filesystem::file_size(task_path_);
  ASSERT_GT(size, 8192u);
  {
    std::fstream f(task_path_, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4096);
    std::string junk(size - 4096, '\xA5');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  auto r = TaskStore::open(task_path_, false);
  if (r.ok()) {
    // SQLite only notices when it reads a damaged page; the first real query must say so.
    auto c = (*r)->counts();
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.error().message.find(task_path_ + " is corrupt: "), 0u) << c.error().message;
  } else {
    EXPECT_EQ(r.error().domain, ErrDomain::kStore);
    EXPECT_EQ(r.error().message.find(task_path_ + " is corrupt: "), 0u) << r.error().message;
  }
}

TEST_F(TaskStoreTest, InMemoryTask) {
  auto r = TaskStore::open(":memory:", true);
  ASSERT_TRUE(r.ok());
  auto rep = (*r)->import_csv_buffer("email,x\na@b.com,1\n", "mem.csv");
  ASSERT_TRUE(rep.ok());
  EXPECT_EQ(rep->imported, 1u);
  auto bad = (*r)->import_csv_buffer("x\n1\n", "mem.csv");
  ASSERT_FALSE(bad.ok());
}

TEST_F(TaskStoreTest, ProblemsAreCapped) {
  auto t = open_task();
  std::string csv = "email\n";
  for (int i = 0; i < 100; ++i) csv += "bad" + std::to_string(i) + "\n";
  auto r = import_text(*t, csv);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->invalid, 100u);
  EXPECT_EQ(r->problems.size(), 20u);
}

TEST(StatusNameTest, Names) {
  EXPECT_STREQ(status_name(RcptStatus::kUnsent), "unsent");
  EXPECT_STREQ(status_name(RcptStatus::kInFlight), "in-flight");
  EXPECT_STREQ(status_name(RcptStatus::kSuppressed), "suppressed");
}

// Issue 4: a claim marks its rows in flight in the same transaction; a release puts back
// only the status; a later claim (a resume after kill -9) takes in-flight rows again.
TEST_F(TaskStoreTest, ClaimMarksInFlightAndReleaseRestoresStatus) {
  auto t = open_task();
  ASSERT_TRUE(import_text(*t, "email\na@x.test\nb@x.test\nc@x.test\n").ok());
  Outcome d;
  d.id = 2;
  d.status = RcptStatus::kDeferred;
  d.code = 451;
  d.reply = "later";
  d.attempts = 1;
  ASSERT_TRUE(t->record({d}).ok());
  std::vector<RecipientRow> rows;
  ASSERT_TRUE(t->claim(0, 2, rows, true).ok());
  ASSERT_THAT(emails(rows), ElementsAre("a@x.test", "b@x.test"));
  EXPECT_EQ(rows[0].status, RcptStatus::kUnsent);
  EXPECT_EQ(rows[1].status, RcptStatus::kDeferred);
  auto c = t->counts(false);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->get(RcptStatus::kInFlight), 2u);
  EXPECT_EQ(c->get(RcptStatus::kUnsent), 1u);
  // A resume (cursor back at 0) claims the in-flight rows again, reporting them as such.
  std::vector<RecipientRow> again;
  ASSERT_TRUE(t->claim(0, 10, again, true).ok());
  ASSERT_EQ(again.size(), 3u);
  EXPECT_EQ(again[0].status, RcptStatus::kInFlight);
  // Releases: status only; the deferred row keeps its code, reply and attempts.
  Outcome r1;
  r1.id = 1;
  r1.status = RcptStatus::kUnsent;
  r1.status_only = true;
  Outcome r2 = r1;
  r2.id = 2;
  r2.status = RcptStatus::kDeferred;
  ASSERT_TRUE(t->record({r1, r2}).ok());
  auto l = t->list(RcptStatus::kDeferred, 10);
  ASSERT_TRUE(l.ok());
  ASSERT_EQ(l->size(), 1u);
  EXPECT_EQ((*l)[0].second.code, 451);
  EXPECT_EQ((*l)[0].second.reply, "later");
  EXPECT_EQ((*l)[0].second.attempts, 1u);
  c = t->counts(false);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->get(RcptStatus::kUnsent), 1u);
  EXPECT_EQ(c->get(RcptStatus::kInFlight), 1u);  // c@x.test, still claimed
}

// A list longer than ImportOptions::dedup_in_memory is deduplicated through the address index
// from there on: the same report, lines and rows as with every address held in memory.
TEST_F(TaskStoreTest, DedupPastTheInMemoryCapMatchesInMemory) {
  const std::string csv =
      "email,name\n"
      "a@example.com,A\n"
      "b@example.com,\"two\nlines\"\n"  // a row of two lines: the next row is line 5
      "A@Example.COM,a again\n"
      "nope,bad\n"  // invalid: stored as failed, not deduplicated
      "c@example.com,C\n"
      "b@EXAMPLE.com,b again\n"
      "nope,bad again\n"
      "d@example.com,D\n"
      "c@example.com,c again\n";
  struct Out {
    ImportReport report;
    std::vector<std::string> rows;
  };
  auto run = [&](size_t cap, const std::string& name) {
    auto t = TaskStore::open(dir_.file(name), true);
    EXPECT_TRUE(t.ok());
    ImportOptions o;
    o.dedup_in_memory = cap;
    auto r = (*t)->import_csv_buffer(csv, "list.csv", o);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().describe());
    Out out{r.ok() ? *r : ImportReport{}, {}};
    // Appending the same list again: every address is in the task (through the index).
    auto again = (*t)->import_csv_buffer(csv + "e@example.com,E\n", "list.csv",
                                         {.mode = ImportMode::kAppend, .dedup_in_memory = cap});
    EXPECT_TRUE(again.ok());
    if (again.ok()) {
      EXPECT_EQ(again->imported, 1u);
      EXPECT_EQ(again->already_present, 9u);  // every row of the list, the 2 bad ones too
      EXPECT_EQ(again->duplicates, 0u);
    }
    std::vector<RecipientRow> rows;
    EXPECT_TRUE((*t)->claim(0, 100, rows).ok());
    for (const auto& row : rows) out.rows.push_back(row.email + "/" + row.values.at(0));
    return out;
  };
  Out memory = run(size_t{1} << 20, "memory.db");
  for (size_t cap : {0u, 1u, 2u, 3u}) {
    Out index = run(cap, "index" + std::to_string(cap) + ".db");
    EXPECT_EQ(index.report.imported, 4u) << cap;
    EXPECT_EQ(index.report.duplicates, memory.report.duplicates) << cap;
    EXPECT_EQ(index.report.invalid, memory.report.invalid) << cap;
    EXPECT_EQ(index.report.problems, memory.report.problems) << cap;
    EXPECT_EQ(index.rows, memory.rows) << cap;
  }
  EXPECT_THAT(memory.report.problems, ElementsAre("line 5: duplicate of line 2 (A@Example.COM)",
                                                  ::testing::HasSubstr("line 6: invalid address"),
                                                  "line 8: duplicate of line 3 (b@EXAMPLE.com)",
                                                  ::testing::HasSubstr("line 9: invalid address"),
                                                  "line 11: duplicate of line 7 (c@example.com)"));
}

}  // namespace
}  // namespace sb
