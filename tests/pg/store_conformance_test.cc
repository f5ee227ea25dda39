// One suite of task store tests run against both backends (SQLite and PostgreSQL), and the
// PostgreSQL store's own contract: leases, takeover, the fence, the schema version.
#include <gtest/gtest.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "pg/pg_server.h"
#include "pg/pg_store.h"
#include "pg/task_open.h"
#include "store/task_store.h"

namespace sb {
namespace {

using testing::PgServer;

constexpr std::string_view kCsv =
    "email,name\n"
    "a@example.com,Ann\n"
    "not-an-address,Bad\n"
    "b@example.com,Bob\n"
    "c@example.com,\"Cy, \"\"Jr\"\"\"\n";

std::string unique_task(const std::string& base) {
  static int n = 0;
  return base + "_" + std::to_string(getpid()) + "_" + std::to_string(++n);
}

Result<std::unique_ptr<PgTaskStore>> open_pg(const std::string& task, bool node = true,
                                             const std::string& name = "") {
  PgStoreOptions o;
  o.conninfo = PgServer::get().conninfo();
  o.task = task;
  o.create = true;
  o.node = node;
  o.node_name = name;
  return PgTaskStore::open(o);
}

class StoreConformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "sqlite") {
      auto s = TaskStore::open(":memory:", true);
      ASSERT_TRUE(s.ok()) << s.error().message;
      store_ = std::move(s).value();
      return;
    }
    if (!PgServer::get().up()) GTEST_SKIP() << PgServer::get().why();
    task_ = unique_task("conf");
    auto s = open_pg(task_);
    ASSERT_TRUE(s.ok()) << s.error().message;
    store_ = std::move(s).value();
  }
  void import() {
    auto r = store_->import_csv_buffer(kCsv, "list.csv");
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->imported, 3u);
    EXPECT_EQ(r->invalid, 1u);
  }
  std::unique_ptr<TaskStore> store_;
  std::string task_;  // PostgreSQL only
};

TEST_P(StoreConformance, ImportKeepsFieldsAndCountsAddUp) {
  EXPECT_FALSE(store_->imported());
  import();
  EXPECT_TRUE(store_->imported());
  EXPECT_EQ(store_->field_names(), std::vector<std::string>{"name"});
  auto c = store_->counts();
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->total, 4u);
  EXPECT_EQ(c->get(RcptStatus::kUnsent), 3u);
  EXPECT_EQ(c->get(RcptStatus::kFailed), 1u);
  auto again = store_->import_csv_buffer(kCsv, "list.csv");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().domain, ErrDomain::kInput);
  auto src = store_->get_meta("sb.source");
  ASSERT_TRUE(src.ok());
  EXPECT_EQ(src->value_or(""), "list.csv");
}

TEST_P(StoreConformance, ClaimMarksInFlightInIdOrderWithValues) {
  import();
  std::vector<RecipientRow> rows;
  auto n = store_->claim(0, 10, rows, true);
  ASSERT_TRUE(n.ok()) << n.error().message;
  ASSERT_EQ(*n, 3u);
  EXPECT_EQ(rows[0].email, "a@example.com");
  EXPECT_EQ(rows[2].values, std::vector<std::string>{"Cy, \"Jr\""});
  EXPECT_LT(rows[0].id, rows[1].id);
  EXPECT_EQ(rows[1].status, RcptStatus::kUnsent);
  auto c = store_->counts(false);
  EXPECT_EQ(c->get(RcptStatus::kInFlight), 3u);
  std::vector<RecipientRow> more;
  auto m = store_->claim(rows.back().id, 10, more, true);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(*m, 0u);
}

TEST_P(StoreConformance, OutcomesAndReleasesAreRecorded) {
  import();
  std::vector<RecipientRow> rows;
  ASSERT_TRUE(store_->claim(0, 10, rows, true).ok());
  ASSERT_EQ(rows.size(), 3u);
  std::vector<Outcome> outs(3);
  outs[0] = {rows[0].id, RcptStatus::kSent, 250, "ok", 1, 100, false};
  outs[1] = {rows[1].id, RcptStatus::kDeferred, 451, "later", 1, 100, false};
  outs[2] = {rows[2].id, RcptStatus::kUnsent, 0, "", 0, 0, true};  // released unstarted
  ASSERT_TRUE(store_->record(outs).ok());
  auto c = store_->counts();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->get(RcptStatus::kSent), 1u);
  EXPECT_EQ(c->get(RcptStatus::kDeferred), 1u);
  EXPECT_EQ(c->get(RcptStatus::kUnsent), 1u);
  EXPECT_EQ(c->get(RcptStatus::kInFlight), 0u);
  EXPECT_EQ(c->by_code[250], 1u);
  auto l = store_->list(RcptStatus::kDeferred, 10);
  ASSERT_TRUE(l.ok());
  ASSERT_EQ(l->size(), 1u);
  EXPECT_EQ((*l)[0].second.reply, "later");
  EXPECT_EQ((*l)[0].second.code, 451);
  EXPECT_EQ((*l)[0].first.values, std::vector<std::string>{"Bob"});
}

TEST_P(StoreConformance, LaterOutcomeInOneBatchWins) {
  import();
  std::vector<RecipientRow> rows;
  ASSERT_TRUE(store_->claim(0, 1, rows, true).ok());
  ASSERT_EQ(rows.size(), 1u);
  std::vector<Outcome> outs(2);
  outs[0] = {rows[0].id, RcptStatus::kDeferred, 451, "later", 1, 100, false};
  outs[1] = {rows[0].id, RcptStatus::kSent, 250, "ok", 2, 101, false};
  ASSERT_TRUE(store_->record(outs).ok());
  auto l = store_->list(RcptStatus::kSent, 10);
  ASSERT_TRUE(l.ok());
  ASSERT_EQ(l->size(), 1u);
  EXPECT_EQ((*l)[0].second.attempts, 2u);
}

TEST_P(StoreConformance, MetaAndReservedKeys) {
  ASSERT_TRUE(store_->set_meta("title", "March").ok());
  ASSERT_TRUE(store_->set_meta("title", "April").ok());
  auto v = store_->get_meta("title");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->value_or(""), "April");
  EXPECT_FALSE(store_->get_meta("nothing")->has_value());
  EXPECT_FALSE(store_->set_meta("sb.schema_version", "9").ok());
}

TEST_P(StoreConformance, ResetErrorsKeepsRejectedRows) {
  import();
  std::vector<RecipientRow> rows;
  ASSERT_TRUE(store_->claim(0, 10, rows, true).ok());
  std::vector<Outcome> outs(3);
  outs[0] = {rows[0].id, RcptStatus::kSent, 250, "ok", 1, 100, false};
  outs[1] = {rows[1].id, RcptStatus::kFailed, 550, "no", 1, 100, false};
  outs[2] = {rows[2].id, RcptStatus::kDeferred, 451, "later", 1, 100, false};
  ASSERT_TRUE(store_->record(outs).ok());
  ASSERT_TRUE(store_->reset(true).ok());
  auto c = store_->counts(false);
  EXPECT_EQ(c->get(RcptStatus::kUnsent), 2u);
  EXPECT_EQ(c->get(RcptStatus::kSent), 1u);
  EXPECT_EQ(c->get(RcptStatus::kFailed), 1u);  // the address rejected at import
  ASSERT_TRUE(store_->reset(false).ok());
  c = store_->counts(false);
  EXPECT_EQ(c->get(RcptStatus::kUnsent), 3u);
}

TEST_P(StoreConformance, DeferredRowsAfterTheCursorAreClaimedAgain) {
  import();
  std::vector<RecipientRow> rows;
  ASSERT_TRUE(store_->claim(0, 10, rows, true).ok());
  std::vector<Outcome> outs;
  for (const auto& r : rows) outs.push_back({r.id, RcptStatus::kDeferred, 451, "x", 1, 1, false});
  ASSERT_TRUE(store_->record(outs).ok());
  // A PostgreSQL node keeps its deferred rows (a retry in this run) until it ends: the next
  // run (a new node) claims them as the next SQLite run would.
  if (!task_.empty()) {
    store_.reset();
    auto again = open_pg(task_);
    ASSERT_TRUE(again.ok());
    store_ = std::move(again).value();
  }
  std::vector<RecipientRow> second;
  ASSERT_TRUE(store_->claim(rows[0].id, 10, second, true).ok());
  ASSERT_EQ(second.size(), 2u);
  EXPECT_EQ(second[0].status, RcptStatus::kDeferred);
  EXPECT_EQ(second[0].attempts, 1u);
}

INSTANTIATE_TEST_SUITE_P(PgAndSqlite, StoreConformance, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& p) { return p.param; });

// --- PostgreSQL only --------------------------------------------------------------------

class PgStore : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!PgServer::get().up()) GTEST_SKIP() << PgServer::get().why();
    auto d = PgBlocking::connect(PgServer::get().conninfo());
    ASSERT_TRUE(d.ok()) << d.error().message;
    admin_ = std::move(d).value();
  }
  // As if the node had died: its lease and its rows' deadlines are over.
  void expire(const PgTaskStore& s) {
    ASSERT_TRUE(admin_
                    ->exec("UPDATE smtpblast_nodes SET lease_until = now() - interval '1 s' "
                           "WHERE epoch = $1",
                           {std::to_string(s.epoch())})
                    .ok());
    ASSERT_TRUE(admin_
                    ->exec("UPDATE smtpblast_recipients SET lease_deadline = now() - "
                           "interval '1 s' WHERE epoch = $1",
                           {std::to_string(s.epoch())})
                    .ok());
  }
  std::unique_ptr<PgBlocking> admin_;
};

TEST_F(PgStore, NodesClaimDisjointRowsAndWaitForEachOther) {
  std::string task = unique_task("disjoint");
  auto a = open_pg(task, true, "node-a");
  auto b = open_pg(task, true, "node-b");
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE((*a)->import_csv_buffer(kCsv, "l.csv").ok());
  std::vector<RecipientRow> ra, rb;
  ASSERT_TRUE((*a)->claim(0, 2, ra, true).ok());
  ASSERT_TRUE((*b)->claim(0, 10, rb, true).ok());
  ASSERT_EQ(ra.size(), 2u);
  ASSERT_EQ(rb.size(), 1u);
  EXPECT_NE(ra[0].id, rb[0].id);
  EXPECT_NE(ra[1].id, rb[0].id);
  EXPECT_TRUE((*b)->more_later());  // a holds rows: b must not end its run yet
  ASSERT_TRUE((*a)->record({{ra[0].id, RcptStatus::kSent, 250, "ok", 1, 1, false},
                            {ra[1].id, RcptStatus::kSent, 250, "ok", 1, 1, false}})
                  .ok());
  EXPECT_FALSE((*b)->more_later());
  auto nodes = (*a)->nodes();
  ASSERT_TRUE(nodes.ok());
  ASSERT_EQ(nodes->size(), 2u);
  EXPECT_TRUE((*nodes)[0].alive);
  auto counts = (*a)->node_counts();
  ASSERT_TRUE(counts.ok());
  bool found = false;
  for (const auto& c : *counts) {
    if (c.node == "node-a") {
      found = true;
      EXPECT_EQ(c.sent, 2u);
    }
  }
  EXPECT_TRUE(found);
}

TEST_F(PgStore, ExpiredLeaseIsTakenOverAndTheFenceRefusesTheLateOwner) {
  std::string task = unique_task("fence");
  auto a = open_pg(task, true, "node-a");
  auto b = open_pg(task, true, "node-b");
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE((*a)->import_csv_buffer(kCsv, "l.csv").ok());
  std::vector<RecipientRow> ra, rb;
  ASSERT_TRUE((*a)->claim(0, 10, ra, true).ok());
  ASSERT_EQ(ra.size(), 3u);
  ASSERT_TRUE((*b)->claim(0, 10, rb, true).ok());
  EXPECT_EQ(rb.size(), 0u);  // a's leases are live
  expire(**a);
  ASSERT_TRUE((*b)->claim(1000, 10, rb, true).ok());  // behind b's cursor: taken over anyway
  ASSERT_EQ(rb.size(), 3u);
  EXPECT_EQ(rb[0].status, RcptStatus::kInFlight);
  // a wakes up and reports: refused, nothing changes.
  ASSERT_TRUE((*a)->record({{ra[0].id, RcptStatus::kFailed, 550, "late", 1, 1, false}}).ok());
  EXPECT_EQ((*a)->fenced(), 1u);
  ASSERT_TRUE((*b)->record({{rb[0].id, RcptStatus::kSent, 250, "ok", 2, 2, false}}).ok());
  EXPECT_EQ((*b)->fenced(), 0u);
  auto sent = (*b)->list(RcptStatus::kSent, 10);
  ASSERT_TRUE(sent.ok());
  ASSERT_EQ(sent->size(), 1u);
  EXPECT_EQ((*sent)[0].second.reply, "ok");
  auto who = admin_->exec("SELECT done_by FROM smtpblast_recipients WHERE task = $1 AND id = $2",
                          {task, std::to_string(rb[0].id)});
  ASSERT_TRUE(who.ok());
  EXPECT_EQ(who->text(0, 0), "node-b");
}

TEST_F(PgStore, ATakenOverRowReleasedUnsentIsClaimableAgain) {
  // A row taken over was in flight before the claim (its previous status): released unsent
  // by its new owner (stopping, say), it must become unsent again, not an ownerless in-flight
  // row that no claim finds (the cause of a restart test's "224 unsent" at the end).
  std::string task = unique_task("retake");
  auto a = open_pg(task, true, "node-a");
  auto b = open_pg(task, true, "node-b");
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE((*a)->import_csv_buffer(kCsv, "l.csv").ok());
  std::vector<RecipientRow> ra, rb, rc;
  ASSERT_TRUE((*a)->claim(0, 10, ra, true).ok());
  expire(**a);
  ASSERT_TRUE((*b)->claim(0, 10, rb, true).ok());
  ASSERT_EQ(rb.size(), 3u);
  ASSERT_EQ(rb[0].status, RcptStatus::kInFlight);
  ASSERT_TRUE((*b)->record({{rb[0].id, rb[0].status, 0, "", 0, 0, true}}).ok());
  auto counts = (*b)->counts(false);
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->get(RcptStatus::kUnsent), 1u);
  auto c = open_pg(task, true, "node-c");
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE((*c)->claim(0, 10, rc, true).ok());
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(rc[0].id, rb[0].id);
}

TEST_F(PgStore, DeferredRowsStayWithTheirNodeUntilItEnds) {
  std::string task = unique_task("deferred");
  auto a = open_pg(task, true, "node-a");
  auto b = open_pg(task, true, "node-b");
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE((*a)->import_csv_buffer(kCsv, "l.csv").ok());
  std::vector<RecipientRow> ra, rb;
  ASSERT_TRUE((*a)->claim(0, 1, ra, true).ok());
  ASSERT_TRUE((*a)->record({{ra[0].id, RcptStatus::kDeferred, 451, "x", 1, 1, false}}).ok());
  ASSERT_TRUE((*b)->claim(0, 10, rb, true).ok());
  EXPECT_EQ(rb.size(), 2u);  // not a's deferred row: a may retry it in this run
  // a's retry is accepted: the row is still a's.
  ASSERT_TRUE((*a)->record({{ra[0].id, RcptStatus::kSent, 250, "ok", 2, 2, false}}).ok());
  EXPECT_EQ((*a)->fenced(), 0u);
  auto c = (*a)->counts(false);
  EXPECT_EQ(c->get(RcptStatus::kSent), 1u);
}

TEST_F(PgStore, ANodeThatEndsReleasesWhatItHolds) {
  std::string task = unique_task("release");
  auto b = open_pg(task, true, "node-b");
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE((*b)->import_csv_buffer(kCsv, "l.csv").ok());
  {
    auto a = open_pg(task, true, "node-a");
    ASSERT_TRUE(a.ok());
    std::vector<RecipientRow> ra;
    ASSERT_TRUE((*a)->claim(0, 10, ra, true).ok());  // as if the answer had been lost
  }
  std::vector<RecipientRow> rb;
  ASSERT_TRUE((*b)->claim(0, 10, rb, true).ok());
  EXPECT_EQ(rb.size(), 3u);
  auto nodes = (*b)->nodes();
  ASSERT_TRUE(nodes.ok());
  ASSERT_EQ(nodes->size(), 2u);
  EXPECT_TRUE((*nodes)[1].finished);
  EXPECT_FALSE((*nodes)[1].alive);
}

TEST_F(PgStore, NewerSchemaIsRefusedNamingTheVersion) {
  std::string db = unique_task("sb_newer");
  ASSERT_TRUE(admin_->exec("CREATE DATABASE " + db).ok());
  PgStoreOptions o;
  o.conninfo = PgServer::get().url(db);
  o.task = "t";
  o.create = true;
  ASSERT_TRUE(PgTaskStore::open(o).ok());
  auto d = PgBlocking::connect(o.conninfo);
  ASSERT_TRUE(d.ok());
  const std::string newer = std::to_string(kPgSchemaVersion + 1);
  ASSERT_TRUE((*d)->exec("UPDATE smtpblast_schema SET version = " + newer).ok());
  auto s = PgTaskStore::open(o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().domain, ErrDomain::kConfig);
  EXPECT_NE(s.error().message.find("version " + newer), std::string::npos) << s.error().message;
}

TEST_F(PgStore, VersionOneIsUpgradedInPlace) {
  // Version 1 had one (task, status, id) index; version 2 has partial indexes of the
  // claimable rows. Opening the task (any verb) upgrades it; the rows stay as they were.
  std::string db = unique_task("sb_v1");
  ASSERT_TRUE(admin_->exec("CREATE DATABASE " + db).ok());
  PgStoreOptions o;
  o.conninfo = PgServer::get().url(db);
  o.task = "t";
  o.create = true;
  {
    auto s = PgTaskStore::open(o);
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->import_csv_buffer(kCsv, "l.csv").ok());
  }
  auto d = PgBlocking::connect(o.conninfo);
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE((*d)->exec_script("DROP INDEX smtpblast_recipients_unsent; "
                                "DROP INDEX smtpblast_recipients_held; "
                                "CREATE INDEX smtpblast_recipients_status "
                                "ON smtpblast_recipients (task, status, id); "
                                "UPDATE smtpblast_schema SET version = 1")
                  .ok());
  o.create = false;
  o.node = true;
  auto s = PgTaskStore::open(o);
  ASSERT_TRUE(s.ok()) << s.error().message;
  auto v = (*d)->exec(
      "SELECT (SELECT version FROM smtpblast_schema), "
      "to_regclass('smtpblast_recipients_status') IS NULL, "
      "to_regclass('smtpblast_recipients_unsent') IS NOT NULL");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->int64(0, 0), kPgSchemaVersion);
  EXPECT_EQ(v->text(0, 1), "t");
  EXPECT_EQ(v->text(0, 2), "t");
  std::vector<RecipientRow> rows;
  ASSERT_TRUE((*s)->claim(0, 10, rows, true).ok());
  EXPECT_EQ(rows.size(), 3u);
}

TEST_F(PgStore, ClaimsFromTheCursorAndWrapsForReleasedRows) {
  std::string task = unique_task("cursor");
  auto a = open_pg(task, true, "node-a");
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE((*a)->import_csv_buffer(kCsv, "l.csv").ok());
  std::vector<RecipientRow> first, second;
  ASSERT_TRUE((*a)->claim(0, 1, first, true).ok());
  ASSERT_EQ(first.size(), 1u);
  // Released behind the cursor (as a stopping node does): claimed again once the rows after
  // the cursor ran out.
  ASSERT_TRUE((*a)->record({{first[0].id, RcptStatus::kUnsent, 0, "", 0, 0, true}}).ok());
  ASSERT_TRUE((*a)->claim(first[0].id, 10, second, true).ok());
  ASSERT_EQ(second.size(), 3u);
  EXPECT_EQ(second[0].id, first[0].id);
}

TEST_F(PgStore, MissingTaskAndBadUrlsAreNamed) {
  auto r = open_task_store(PgServer::get().task_url(unique_task("nothing")), TaskOpen::kRead);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("no task"), std::string::npos) << r.error().message;
  auto no_task = open_task_store(PgServer::get().url(), TaskOpen::kRead);
  ASSERT_FALSE(no_task.ok());
  EXPECT_EQ(no_task.error().domain, ErrDomain::kConfig);
  auto pw = parse_pg_task_url("postgresql://u:pw@127.0.0.1/db?task=x");
  ASSERT_FALSE(pw.ok());
  EXPECT_EQ(pw.error().message.find("pw@"), std::string::npos);
  auto ok = parse_pg_task_url("postgresql://u@127.0.0.1:5/db?sslmode=disable&task=march");
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->task, "march");
  EXPECT_EQ(ok->conninfo, "postgresql://u@127.0.0.1:5/db?sslmode=disable");
}

}  // namespace
}  // namespace sb
