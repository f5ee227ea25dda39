// Tests of claims recorded as ranges (store/claims.cc): what is in flight, for readers, after a
// kill, and across retry passes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <string>
#include <vector>

#include "store/task_store.h"
#include "store/temp_dir.h"

namespace sb {
namespace {

using test::TempDir;
using ::testing::ElementsAre;

class ClaimsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = TaskStore::open(path_, true);
    ASSERT_TRUE(t.ok());
    ASSERT_TRUE(
        (*t)->import_csv(dir_.write("l.csv", "email\na@x.t\nb@x.t\nc@x.t\nd@x.t\ne@x.t\n")).ok());
  }
  std::unique_ptr<TaskStore> open(bool read_only = false) {
    auto r = read_only ? TaskStore::open_read_only(path_) : TaskStore::open(path_, false);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().describe());
    return r.ok() ? std::move(r).value() : nullptr;
  }
  // An integer read from the file itself, as another program would.
  int64_t sql_int(const std::string& sql) {
    sqlite3* db = nullptr;
    sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
    sqlite3_stmt* st = nullptr;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
      v = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
  }
  // The running store's counts (kept from its own claims and outcomes) are what a fresh scan
  // of the file gives.
  void expect_counts_as_scanned(TaskStore& run) {
    auto kept = run.counts(false);
    auto scanned = open(true)->counts(false);
    ASSERT_TRUE(kept.ok() && scanned.ok());
    EXPECT_EQ(kept->by_status, scanned->by_status);
    EXPECT_EQ(kept->total, scanned->total);
  }
  void sql_exec(const std::string& sql) {
    sqlite3* db = nullptr;
    sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr);
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  static Outcome outcome(int64_t id, RcptStatus s, int code = 250) {
    Outcome o;
    o.id = id;
    o.status = s;
    o.code = code;
    o.reply = "r";
    o.attempts = 1;
    o.time = 1;
    return o;
  }
  static Outcome release(int64_t id, RcptStatus s) {
    Outcome o;
    o.id = id;
    o.status = s;
    o.status_only = true;
    return o;
  }
  static std::vector<int64_t> ids(Result<std::vector<std::pair<RecipientRow, Outcome>>> l) {
    std::vector<int64_t> out;
    EXPECT_TRUE(l.ok());
    if (l.ok()) {
      for (const auto& [r, o] : *l) out.push_back(r.id);
    }
    return out;
  }

  TempDir dir_;
  std::string path_ = dir_.file("t.db");
};

// A run claims 1-4, settles 1 (sent), 2 (deferred) and 3 (released unstarted), and is killed
// with 4 under way: readers see exactly 4 in flight, and the next run takes it as such.
TEST_F(ClaimsTest, KilledRunLeavesExactlyItsUnsettledClaimsInFlight) {
  auto run = open();
  std::vector<RecipientRow> rows;
  ASSERT_TRUE(run->claim(0, 4, rows, true).ok());
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(sql_int("SELECT count(*) FROM recipients WHERE status = 5"), 0);  // one row a batch
  ASSERT_TRUE(run->record({outcome(1, RcptStatus::kSent), outcome(2, RcptStatus::kDeferred, 451),
                           release(3, RcptStatus::kUnsent)})
                  .ok());
  {
    auto reader = open(true);  // `status` while the run goes on
    auto c = reader->counts();
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c->get(RcptStatus::kSent), 1u);
    EXPECT_EQ(c->get(RcptStatus::kDeferred), 1u);
    EXPECT_EQ(c->get(RcptStatus::kInFlight), 1u);
    EXPECT_EQ(c->get(RcptStatus::kUnsent), 2u);
    EXPECT_EQ(c->by_code.at(0), 1u);  // the in-flight row, as when it had status 5
    EXPECT_THAT(ids(reader->list(RcptStatus::kInFlight, 10)), ElementsAre(4));
    EXPECT_THAT(ids(reader->list(RcptStatus::kUnsent, 10)), ElementsAre(3, 5));
    EXPECT_THAT(ids(reader->list({RcptStatus::kUnsent, RcptStatus::kInFlight}, 2)),
                ElementsAre(3, 4));
    std::vector<RecipientRow> peek;
    ASSERT_TRUE(reader->claim(0, 10, peek, false).ok());
    ASSERT_EQ(peek.size(), 4u);
    EXPECT_EQ(peek[0].status, RcptStatus::kDeferred);
    EXPECT_EQ(peek[1].status, RcptStatus::kUnsent);
    EXPECT_EQ(peek[2].status, RcptStatus::kInFlight);
  }
  run.reset();  // kill -9: nothing more is written
  auto next = open();
  rows.clear();
  ASSERT_TRUE(next->claim(0, 10, rows, true).ok());
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0].status, RcptStatus::kDeferred);
  EXPECT_EQ(rows[1].status, RcptStatus::kUnsent);
  EXPECT_EQ(rows[2].status, RcptStatus::kInFlight);
  EXPECT_EQ(rows[3].status, RcptStatus::kUnsent);
  EXPECT_EQ(sql_int("SELECT status FROM recipients WHERE id = 4"), 5);  // a status again
  auto c = next->counts(false);
  EXPECT_EQ(c->get(RcptStatus::kInFlight), 4u);
  std::vector<Outcome> all;
  for (const RecipientRow& r : rows) all.push_back(outcome(r.id, RcptStatus::kSent));
  ASSERT_TRUE(next->record(all).ok());
  c = next->counts(false);
  EXPECT_EQ(c->get(RcptStatus::kSent), 5u);
  EXPECT_EQ(sql_int("SELECT count(*) FROM claimed_ranges"), 0);
  EXPECT_EQ(sql_int("SELECT count(*) FROM claimed_settled"), 0);
}

// Ranges whose rows are all settled go as the run goes; a retry pass claims a deferred row
// again, and it is in flight again.
TEST_F(ClaimsTest, SettledRangesGoAndRetryPassesClaimAgain) {
  auto run = open();
  ASSERT_TRUE(run->counts(false).ok());  // as a run starts: from here on counts are kept
  std::vector<RecipientRow> rows;
  ASSERT_TRUE(run->claim(0, 2, rows, true).ok());
  ASSERT_TRUE(run->claim(2, 2, rows, true).ok());
  expect_counts_as_scanned(*run);
  ASSERT_TRUE(
      run->record({outcome(1, RcptStatus::kDeferred, 451), outcome(2, RcptStatus::kSent)}).ok());
  EXPECT_EQ(sql_int("SELECT count(*) FROM claimed_ranges"), 1);   // (2, 4] is still open
  EXPECT_EQ(sql_int("SELECT count(*) FROM claimed_settled"), 0);  // below every open claim
  rows.clear();
  ASSERT_TRUE(run->claim(0, 10, rows, true).ok());  // the retry pass: 1, 3, 4, 5
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0].status, RcptStatus::kDeferred);
  EXPECT_EQ(rows[1].status, RcptStatus::kInFlight);
  EXPECT_EQ(rows[3].status, RcptStatus::kUnsent);
  auto c = open(true)->counts(false);
  EXPECT_EQ(c->get(RcptStatus::kInFlight), 4u);
  expect_counts_as_scanned(*run);
  ASSERT_TRUE(run->record({outcome(3, RcptStatus::kFailed, 550), outcome(1, RcptStatus::kDeferred),
                           release(5, RcptStatus::kUnsent)})
                  .ok());
  expect_counts_as_scanned(*run);
  c = open(true)->counts(false);
  EXPECT_EQ(c->get(RcptStatus::kInFlight), 1u);
  EXPECT_EQ(c->get(RcptStatus::kDeferred), 1u);
  EXPECT_EQ(c->get(RcptStatus::kUnsent), 1u);
  ASSERT_TRUE(run->record({outcome(4, RcptStatus::kSent)}).ok());
  EXPECT_EQ(sql_int("SELECT count(*) FROM claimed_ranges"), 0);
  c = open(true)->counts(false);
  EXPECT_EQ(c->get(RcptStatus::kInFlight), 0u);
  EXPECT_EQ(c->get(RcptStatus::kDeferred), 1u);
  expect_counts_as_scanned(*run);
  // Metadata changes no count; a write through this connection that bypasses the store does.
  ASSERT_TRUE(run->set_meta("note", "x").ok());
  expect_counts_as_scanned(*run);
  // Another program's change to the file is seen (the kept counts are dropped).
  sql_exec("UPDATE recipients SET status = 17 WHERE id = 5");
  c = run->counts(false);
  EXPECT_EQ(c->unknown, 1u);
  EXPECT_EQ(c->get(RcptStatus::kUnsent), 0u);
}

// reset and an import with --replace read in-flight rows in SQL: a killed run's claims are
// statuses again before they do.
TEST_F(ClaimsTest, ResetAndReplaceSeeAKilledRunsClaims) {
  {
    auto run = open();
    std::vector<RecipientRow> rows;
    ASSERT_TRUE(run->claim(0, 2, rows, true).ok());
  }
  auto t = open();
  ImportOptions o;
  o.mode = ImportMode::kReplace;
  auto r = t->import_csv(dir_.write("m.csv", "email\nz@x.t\n"), o);
  EXPECT_FALSE(r.ok());  // in flight counts as attempted
  ASSERT_TRUE(t->reset(true).ok());
  EXPECT_EQ(t->counts(false)->get(RcptStatus::kInFlight), 2u);  // --errors leaves them
  ASSERT_TRUE(t->reset(false).ok());
  EXPECT_EQ(t->counts(false)->get(RcptStatus::kUnsent), 5u);
}

}  // namespace
}  // namespace sb
