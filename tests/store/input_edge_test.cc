// Issue 18/12 edge cases of the store: list replace/append, unknown statuses, several statuses
// listed, header-only reads, file modes, read-only opens, capped messages.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "store/accounting.h"
#include "store/eml_files.h"
#include "store/read_file.h"
#include "store/task_store.h"
#include "store/temp_dir.h"

namespace sb {
namespace {

using test::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

class InputEdgeTest : public ::testing::Test {
 protected:
  std::unique_ptr<TaskStore> open_task() {
    auto r = TaskStore::open(task_path_, true);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().describe());
    return r.ok() ? std::move(r).value() : nullptr;
  }
  Result<ImportReport> import_text(TaskStore& t, std::string_view csv,
                                   ImportMode mode = ImportMode::kNew) {
    ImportOptions o;
    o.mode = mode;
    return t.import_csv(dir_.write("list" + std::to_string(n_++) + ".csv", csv), o);
  }
  static std::vector<std::string> emails(TaskStore& t) {
    std::vector<RecipientRow> rows;
    EXPECT_TRUE(t.claim(0, 1000, rows).ok());
    std::vector<std::string> out;
    for (const auto& r : rows) out.push_back(r.email);
    return out;
  }
  // Runs SQL on the task file through a second connection (what a hand edit would do).
  void exec_sql(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(task_path_.c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << err;
    sqlite3_free(err);
    sqlite3_close(db);
  }
  static unsigned mode_of(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return st.st_mode & 0777;
  }

  TempDir dir_;
  std::string task_path_ = dir_.file("task.db");
  int n_ = 0;
};

// Issue 18: a task whose list nobody was mailed from can take another list.
TEST_F(InputEdgeTest, ReplaceWhileNothingWasSent) {
  auto t = open_task();
  ASSERT_TRUE(import_text(*t, "email,name\na@x.test,A\nbad\n").ok());
  auto again = import_text(*t, "email,city\nb@x.test,Oslo\n");
  ASSERT_FALSE(again.ok());
  EXPECT_THAT(again.error().message, HasSubstr("--replace"));
  auto r = import_text(*t, "email,city\nb@x.test,Oslo\nc@x.test,Rome\na@x.test,Bonn\n",
                       ImportMode::kReplace);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->removed, 2u);
  EXPECT_EQ(r->imported, 3u);
  EXPECT_THAT(t->field_names(), ElementsAre("city"));
  EXPECT_THAT(emails(*t), ElementsAre("b@x.test", "c@x.test", "a@x.test"));
  auto c = t->counts();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->total, 3u);
  // A reopened store agrees, and the address index is back (a duplicate would be refused).
  t.reset();
  t = open_task();
  EXPECT_THAT(t->field_names(), ElementsAre("city"));
  auto src = t->get_meta("sb.source");
  ASSERT_TRUE(src.ok() && src->has_value());
  EXPECT_THAT(**src, HasSubstr("list2.csv"));
}

TEST_F(InputEdgeTest, ReplaceIsRefusedOnceARecipientWasAttempted) {
  auto t = open_task();
  ASSERT_TRUE(import_text(*t, "email\na@x.test\nb@x.test\n").ok());
  Outcome o;
  o.id = 1;
  o.status = RcptStatus::kDeferred;
  o.code = 451;
  o.attempts = 1;
  ASSERT_TRUE(t->record({o}).ok());
  auto r = import_text(*t, "email\nc@x.test\n", ImportMode::kReplace);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message, HasSubstr("1 recipients were already sent to or attempted"));
  EXPECT_THAT(emails(*t), ElementsAre("a@x.test", "b@x.test"));  // untouched
}

// Issue 12: late subscribers.
TEST_F(InputEdgeTest, AppendAddsNewRowsAndSkipsAddressesAlreadyThere) {
  auto t = open_task();
  ASSERT_TRUE(import_text(*t, "email,name,city\na@x.test,A,Oslo\nb@x.test,B,Rome\nbad,X,Y\n").ok());
  // Other column order and case; A@X.TEST is a; one new duplicate within the file; the bad
  // row is already in the task as failed.
  auto r = import_text(*t,
                       "City,EMAIL,Name\nBonn,c@x.test,C\nOslo,A@X.TEST,A\nBonn,c@x.test,C2\n"
                       "Y,bad,X\nLima,d@x.test,D\n",
                       ImportMode::kAppend);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->imported, 2u);
  EXPECT_EQ(r->already_present, 2u);
  EXPECT_EQ(r->duplicates, 1u);
  EXPECT_EQ(r->invalid, 0u);
  std::vector<RecipientRow> rows;
  ASSERT_TRUE(t->claim(0, 100, rows).ok());
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[2].email, "c@x.test");
  EXPECT_THAT(rows[2].values, ElementsAre("C", "Bonn"));  // the task's field order
  EXPECT_EQ(rows[3].email, "d@x.test");
  // The same file again adds nothing.
  auto again = import_text(*t, "email,name,city\nd@x.test,D,Lima\n", ImportMode::kAppend);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->imported, 0u);
  EXPECT_EQ(again->already_present, 1u);
}

TEST_F(InputEdgeTest, AppendNeedsTheTasksColumns) {
  auto t = open_task();
  ASSERT_TRUE(import_text(*t, "email,name,city\na@x.test,A,Oslo\n").ok());
  auto r = import_text(*t, "email,name,zip\nb@x.test,B,123\n", ImportMode::kAppend);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message,
              HasSubstr("its columns are not the task's merge fields (missing: 'city'; not in "
                        "the task: 'zip')"));
  EXPECT_THAT(emails(*t), ElementsAre("a@x.test"));
}

// A header with trailing unnamed columns (a spreadsheet's stray commas): rows that stop
// before them still line up.
TEST_F(InputEdgeTest, RowsMayOmitTrailingUnnamedColumns) {
  auto t = open_task();
  auto r = import_text(*t, "email,name,,\na@x.test,A\nb@x.test,B,,\nc@x.test\n");
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->imported, 2u);
  EXPECT_EQ(r->invalid, 1u);
  EXPECT_THAT(r->problems, ElementsAre("line 1: column 3 has no name; its values are ignored",
                                       "line 1: column 4 has no name; its values are ignored",
                                       "line 4: 1 field, header has 4"));
}

// Issue 18: out-of-range statuses were dropped from the counts (total != sum of the parts).
TEST_F(InputEdgeTest, UnknownStatusValuesAreCountedNotDropped) {
  {
    auto t = open_task();
    ASSERT_TRUE(import_text(*t, "email\na@x.test\nb@x.test\nc@x.test\nd@x.test\n").ok());
  }
  exec_sql("UPDATE recipients SET status = 9 WHERE id = 1;"
           "UPDATE recipients SET status = -1 WHERE id = 2;"
           "UPDATE recipients SET status = 'sent' WHERE id = 3;");
  auto t = open_task();
  auto c = t->counts();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->total, 4u);
  EXPECT_EQ(c->get(RcptStatus::kUnsent), 1u);
  EXPECT_EQ(c->get(RcptStatus::kSent), 0u);  // the text 'sent' is not status 1
  EXPECT_EQ(c->unknown, 3u);
  EXPECT_THAT(c->unknown_values, ::testing::UnorderedElementsAre("9", "-1", "sent"));
}

TEST_F(InputEdgeTest, ListSeveralStatusesInIdOrder) {
  auto t = open_task();
  ASSERT_TRUE(import_text(*t, "email\na@x.test\nb@x.test\nc@x.test\nd@x.test\n").ok());
  std::vector<Outcome> v(3);
  v[0].id = 1, v[0].status = RcptStatus::kDeferred;
  v[1].id = 2, v[1].status = RcptStatus::kSent;
  v[2].id = 3, v[2].status = RcptStatus::kFailed;
  ASSERT_TRUE(t->record(v).ok());
  auto rows = t->list({RcptStatus::kFailed, RcptStatus::kDeferred}, 100);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].first.email, "a@x.test");
  EXPECT_EQ((*rows)[0].second.status, RcptStatus::kDeferred);
  EXPECT_EQ((*rows)[1].first.email, "c@x.test");
  EXPECT_EQ((*rows)[1].second.status, RcptStatus::kFailed);
}

TEST_F(InputEdgeTest, ReadCsvFieldsChecksTheHeaderOnly) {
  auto f = TaskStore::read_csv_fields(dir_.write("h.csv", "Name;email;;city\nx;y\n\"open"),
                                      CsvOptions{"", ';'});
  ASSERT_TRUE(f.ok()) << f.error().describe();
  EXPECT_THAT(*f, ElementsAre("Name", "city"));
  auto bad = TaskStore::read_csv_fields(dir_.write("b.csv", "mail,name\n"));
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.error().message, HasSubstr("no 'email' column"));
  auto empty = TaskStore::read_csv_fields(dir_.write("e.csv", ""));
  ASSERT_FALSE(empty.ok());
  EXPECT_THAT(empty.error().message, HasSubstr("the file is empty"));
  EXPECT_FALSE(std::filesystem::exists(task_path_));
}

// Issue 18: a 100,000-column header without an email column was one 789 KB error line.
TEST_F(InputEdgeTest, MissingEmailColumnListIsCapped) {
  std::string header;
  for (int i = 0; i < 100000; ++i) header += (i ? ",c" : "c") + std::to_string(i);
  auto t = open_task();
  auto r = import_text(*t, header + "\n");
  ASSERT_FALSE(r.ok());
  EXPECT_LT(r.error().message.size(), 500u);
  EXPECT_THAT(r.error().message, HasSubstr("… and 99,9"));
}

// Issue 18: task, WAL and shm files, accounting logs and backup copies were 0644.
TEST_F(InputEdgeTest, NewFilesAreOwnerOnlyWhateverTheUmask) {
  mode_t old = ::umask(0);
  {
    auto t = open_task();
    ASSERT_TRUE(import_text(*t, "email\na@x.test\n").ok());
    Outcome o;
    o.id = 1;
    o.status = RcptStatus::kSent;
    ASSERT_TRUE(t->record({o}).ok());  // the WAL and shm files exist while it is open
    EXPECT_EQ(mode_of(task_path_), 0600u);
    EXPECT_EQ(mode_of(task_path_ + "-wal"), 0600u);
    EXPECT_EQ(mode_of(task_path_ + "-shm"), 0600u);
    auto log = AccountingLog::open(dir_.file("acct.csv"));
    ASSERT_TRUE(log.ok());
    EXPECT_EQ(mode_of(dir_.file("acct.csv")), 0600u);
    std::string written;
    ASSERT_TRUE(write_eml_atomically(dir_.path().string(), "m.eml", {"x"}, &written).ok());
    EXPECT_EQ(mode_of(written), 0600u);
    ASSERT_TRUE(
        write_eml_atomically(dir_.path().string(), "p.eml", {"x"}, &written, false, kSharedFile)
            .ok());
    EXPECT_EQ(mode_of(written), 0666u);  // --pickup: for another program; the umask decides
  }
  ::umask(old);
  // An existing file keeps the mode it was given (sharing a task is a deliberate chmod).
  ASSERT_EQ(::chmod(task_path_.c_str(), 0640), 0);
  auto t = open_task();
  EXPECT_EQ(mode_of(task_path_), 0640u);
}

TEST_F(InputEdgeTest, ReadOnlyOpenWritesNothing) {
  {
    auto t = open_task();
    ASSERT_TRUE(import_text(*t, "email\na@x.test\n").ok());
  }
  ASSERT_FALSE(std::filesystem::exists(task_path_ + "-wal"));
  auto before = std::filesystem::last_write_time(task_path_);
  auto r = TaskStore::open_read_only(task_path_);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  auto c = (*r)->counts();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->get(RcptStatus::kUnsent), 1u);
  EXPECT_FALSE((*r)->set_meta("x", "y").ok());
  EXPECT_EQ(std::filesystem::last_write_time(task_path_), before);
  auto missing = TaskStore::open_read_only(dir_.file("nope.db"));
  ASSERT_FALSE(missing.ok());
  EXPECT_FALSE(std::filesystem::exists(dir_.file("nope.db")));
}

// A writer killed mid-transaction in rollback-journal mode (an import) leaves a hot journal;
// a read-only open (status, export) said "attempt to write a readonly database".
TEST_F(InputEdgeTest, ReadOnlyOpenAfterAWriterWasKilledMidTransaction) {
  {
    auto t = open_task();
    ASSERT_TRUE(import_text(*t, "email\na@x.test\nb@x.test\n").ok());
  }
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    sqlite3* db = nullptr;
    if (sqlite3_open(task_path_.c_str(), &db) != SQLITE_OK) _exit(1);
    sqlite3_exec(db, "PRAGMA journal_mode=DELETE; PRAGMA cache_size=1; BEGIN; "
                 "DELETE FROM recipients;", nullptr, nullptr, nullptr);
    _exit(0);  // killed: no COMMIT, no ROLLBACK, the journal stays
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_TRUE(std::filesystem::exists(task_path_ + "-journal"));
  auto r = TaskStore::open_read_only(task_path_);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  auto c = (*r)->counts();
  ASSERT_TRUE(c.ok()) << c.error().describe();
  EXPECT_EQ(c->get(RcptStatus::kUnsent), 2u);
}

// Issue 18: an unreadable template said only "cannot read".
TEST_F(InputEdgeTest, ReadWholeFileSaysWhy) {
  auto missing = read_whole_file(dir_.file("none.eml"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().message, "cannot read " + dir_.file("none.eml") + ": no such file");
  auto dir = read_whole_file(dir_.path().string());
  ASSERT_FALSE(dir.ok());
  EXPECT_THAT(dir.error().message, HasSubstr("it is a directory"));
  auto ok = read_whole_file(dir_.write("t.eml", "Subject: x\n\nbody\n"));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, "Subject: x\n\nbody\n");
}

}  // namespace
}  // namespace sb
