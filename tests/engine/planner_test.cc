// The planner: claims open obligations; suppression settles them; shard by domain; release.
#include "engine/planner.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>

#include "engine/channel.h"
#include "engine/run_shared.h"

namespace sb {
namespace {

std::unique_ptr<TaskStore> store_with(size_t n, const std::vector<std::string>& domains) {
  auto s = std::move(TaskStore::open(":memory:", true)).value();
  std::string csv = "email\n";
  for (size_t i = 0; i < n; ++i)
    csv += "u" + std::to_string(i) + "@" + domains[i % domains.size()] + "\n";
  EXPECT_TRUE(s->import_csv_buffer(csv, "list.csv").ok());
  return s;
}

TEST(Planner, RelayBatchesClaimAndOpenObligations) {
  auto store = store_with(600, {"a.example"});
  Ledger ledger(false);
  FakeClock clock;
  Planner p(*store, ledger, clock, nullptr, Planner::Options{});
  std::vector<JournalEntry> out;
  std::vector<std::pair<size_t, RowsCmd>> cmds;
  p.serve({0}, false, out, cmds);
  ASSERT_EQ(cmds.size(), 1u);
  EXPECT_EQ(cmds[0].second.rows.size(), Planner::kBatch);
  EXPECT_EQ(cmds[0].second.obs.size(), Planner::kBatch);
  EXPECT_FALSE(cmds[0].second.exhausted);
  EXPECT_EQ(ledger.open_count(), Planner::kBatch);
  for (auto& ob : cmds[0].second.obs) ledger.settle(ob.consume(), Settle::kSent);
  cmds.clear();
  p.serve({0}, false, out, cmds);
  EXPECT_EQ(cmds[0].second.rows.size(), 600 - Planner::kBatch);
  EXPECT_TRUE(cmds[0].second.exhausted);
  EXPECT_TRUE(p.exhausted());
  for (auto& [w, c] : cmds) {
    for (auto& ob : c.obs) ledger.settle(ob.consume(), Settle::kSent);
  }
  cmds.clear();
  p.serve({0}, false, out, cmds);  // nothing left: an empty, exhausted batch
  EXPECT_TRUE(cmds[0].second.rows.empty());
  EXPECT_TRUE(cmds[0].second.exhausted);
}

TEST(Planner, AWorkerThatRanDryGetsTheLargerBatchItAsksFor) {
  auto store = store_with(3000, {"a.example"});
  Ledger ledger(false);
  FakeClock clock;
  Planner::Options o;
  o.workers = 2;
  Planner p(*store, ledger, clock, nullptr, o);
  std::vector<JournalEntry> out;
  std::vector<std::pair<size_t, RowsCmd>> cmds;
  p.want(0, 4 * Planner::kBatch);
  p.want(1, 1);  // below a batch: a batch
  p.serve({0, 1}, false, out, cmds);
  ASSERT_EQ(cmds.size(), 2u);
  EXPECT_EQ(cmds[0].second.rows.size(), 4 * Planner::kBatch);
  EXPECT_EQ(cmds[1].second.rows.size(), Planner::kBatch);
  EXPECT_EQ(ledger.open_count(), 5 * Planner::kBatch);
  for (auto& [w, c] : cmds) {
    for (auto& ob : c.obs) ledger.settle(ob.consume(), Settle::kSent);
  }
  // A request larger than what is left: the rest, and the end.
  cmds.clear();
  p.serve({0}, false, out, cmds);
  EXPECT_EQ(cmds[0].second.rows.size(), 3000 - 5 * Planner::kBatch);
  EXPECT_TRUE(cmds[0].second.exhausted);
  for (auto& [w, c] : cmds) {
    for (auto& ob : c.obs) ledger.settle(ob.consume(), Settle::kSent);
  }
}

TEST(Planner, SuppressedRecipientsSettleAtOnceAndNeverReachAWorker) {
  auto store = store_with(10, {"a.example"});
  auto sup = std::make_shared<SuppressionList>();
  std::string path = ::testing::TempDir() + "/sup.txt";
  {
    std::ofstream f(path);
    f << "u3@a.example\nu7@a.example\n";
  }
  ASSERT_TRUE(sup->load_file(path).ok());
  Ledger ledger(false);
  FakeClock clock;
  Planner::Options o;
  o.suppress = sup;
  Planner p(*store, ledger, clock, nullptr, o);
  std::vector<JournalEntry> out;
  std::vector<std::pair<size_t, RowsCmd>> cmds;
  p.serve({0}, false, out, cmds);
  EXPECT_EQ(cmds[0].second.rows.size(), 8u);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].out.status, RcptStatus::kSuppressed);
  EXPECT_EQ(ledger.claimed(), 10u);
  EXPECT_EQ(ledger.settled(Settle::kSuppressed), 2u);
  EXPECT_EQ(ledger.open_count(), 8u);
  for (auto& ob : cmds[0].second.obs) ledger.settle(ob.consume(), Settle::kReleased);
}

TEST(Planner, DirectShardsByDomainAndFollowsLearntOwners) {
  auto store = store_with(40, {"a.example", "b.example", "c.example", "d.example"});
  Ledger ledger(false);
  FakeClock clock;
  CoordinatorInbox inbox;
  RunShared shared(0, inbox);
  Planner::Options o;
  o.workers = 3;
  o.direct = true;
  Planner p(*store, ledger, clock, &shared, o);
  p.learn_owner("a.example", 2);
  std::vector<JournalEntry> out;
  std::vector<std::pair<size_t, RowsCmd>> cmds;
  p.serve({0, 1, 2}, false, out, cmds);
  EXPECT_EQ(shared.in_transit(), 40);
  std::map<std::string, std::set<size_t>> owners;
  size_t rows = 0;
  for (auto& [w, c] : cmds) {
    for (auto& r : c.rows) owners[r.email.substr(r.email.find('@') + 1)].insert(w);
    rows += c.rows.size();
    EXPECT_TRUE(c.exhausted);
    for (auto& ob : c.obs) ledger.settle(ob.consume(), Settle::kSent);
  }
  EXPECT_EQ(rows, 40u);
  for (auto& [domain, ws] : owners) EXPECT_EQ(ws.size(), 1u) << domain;  // one worker a domain
  EXPECT_EQ(*owners["a.example"].begin(), 2u);
}

TEST(Planner, StoppingReleasesWhatItHolds) {
  auto store = store_with(100, {"a.example", "b.example", "c.example", "d.example", "e.example",
                                "f.example", "g.example", "h.example"});
  Ledger ledger(false);
  FakeClock clock;
  CoordinatorInbox inbox;
  RunShared shared(0, inbox);
  Planner::Options o;
  o.workers = 2;
  o.direct = true;
  Planner p(*store, ledger, clock, &shared, o);
  std::vector<JournalEntry> out;
  std::vector<std::pair<size_t, RowsCmd>> cmds;
  p.serve({0}, false, out, cmds);  // worker 1 did not ask: its rows stay held
  size_t given = 0;
  for (auto& [w, c] : cmds) {
    given += c.rows.size();
    for (auto& ob : c.obs) ledger.settle(ob.consume(), Settle::kSent);
  }
  EXPECT_EQ(p.held() + given, 100u);
  EXPECT_GT(p.held(), 0u);
  cmds.clear();
  p.serve({}, true, out, cmds);
  EXPECT_EQ(p.held(), 0u);
  EXPECT_TRUE(ledger.empty());
  EXPECT_EQ(shared.in_transit(), static_cast<int64_t>(given));  // given rows: workers' to settle
  ASSERT_TRUE(store
                  ->record([&] {
                    std::vector<Outcome> v;
                    for (auto& e : out) v.push_back(e.out);
                    return v;
                  }())
                  .ok());
  auto c = std::move(store->counts(false)).value();
  EXPECT_EQ(c.get(RcptStatus::kInFlight), given);  // the released ones are unsent again
  EXPECT_EQ(c.get(RcptStatus::kUnsent), 100 - given);
}

}  // namespace
}  // namespace sb
