// The settlement ledger: claim, settle once, and the violations it names.
#include "engine/id_set.h"
#include "engine/ledger.h"

#include <gtest/gtest.h>

#include <random>
#include <unordered_set>

namespace sb {
namespace {

TEST(Ledger, SettlesEachClaimOnce) {
  Ledger l(false);
  l.claim(1, "a@x.example");
  l.claim(2, "b@x.example");
  EXPECT_EQ(l.open_count(), 2u);
  EXPECT_TRUE(l.settle(1, Settle::kSent));
  EXPECT_FALSE(l.empty());
  EXPECT_TRUE(l.settle(2, Settle::kReleased));
  EXPECT_TRUE(l.empty());
  EXPECT_EQ(l.settled(Settle::kSent), 1u);
  EXPECT_EQ(l.settled(Settle::kReleased), 1u);
  EXPECT_EQ(l.settled_total(), l.claimed());
  EXPECT_EQ(l.close_run(), 0u);
  EXPECT_EQ(l.violations(), 0u);
}

TEST(Ledger, CountsViolationsWhenNotStrict) {
  Ledger l(false);
  l.claim(7, "a@x.example");
  EXPECT_TRUE(l.settle(7, Settle::kFailed));
  EXPECT_FALSE(l.settle(7, Settle::kFailed));  // twice
  EXPECT_FALSE(l.settle(8, Settle::kSent));    // never claimed
  l.claim(9, "c@x.example");
  EXPECT_EQ(l.close_run(), 1u);  // open at the end
  EXPECT_EQ(l.violations(), 3u);
}

TEST(LedgerDeathTest, StrictAbortsNamingTheRecipient) {
  EXPECT_DEATH(
      {
        Ledger l(true);
        l.claim(5, "who@x.example");
        l.settle(5, Settle::kSent);
        l.settle(5, Settle::kSent);
      },
      "recipient 5 settled twice");
  EXPECT_DEATH(
      {
        Ledger l(true);
        l.claim(6, "left@x.example");
        l.close_run();
      },
      "recipient 6 <left@x.example> claimed but never settled");
}

TEST(Obligation, MovesAndIsConsumedOnce) {
  Obligation a(42);
  Obligation b(std::move(a));
  EXPECT_FALSE(a.open());  // NOLINT(bugprone-use-after-move): the point of the test
  EXPECT_TRUE(b.open());
  EXPECT_EQ(b.consume(), 42);
  EXPECT_FALSE(b.open());
}

TEST(ObligationDeathTest, DroppedOpenAborts) {
  // The engine's tests run strict (fake_env.cc sets SMTPBLAST_LEDGER_STRICT).
  EXPECT_DEATH({ Obligation o(3); }, "recipient 3 dropped unsettled");
}


// The ledger's flat id set against std::unordered_set under random inserts and erases (ids
// consecutive, as claims come, and scattered), through growth and tombstone purges.
TEST(IdSetTest, AgreesWithUnorderedSet) {
  std::mt19937_64 rng(7);
  IdSet s;
  std::unordered_set<int64_t> ref;
  int64_t next = 0;
  for (int i = 0; i < 200000; ++i) {
    const uint64_t op = rng() % 10;
    int64_t id = op < 4 ? next++ : static_cast<int64_t>(rng() % (next + 1));
    if (op < 6) {
      ASSERT_EQ(s.insert(id), ref.insert(id).second) << "insert " << id;
    } else {
      ASSERT_EQ(s.erase(id), ref.erase(id) == 1) << "erase " << id;
    }
    ASSERT_EQ(s.size(), ref.size());
  }
  for (int64_t id = 0; id <= next; ++id) ASSERT_EQ(s.contains(id), ref.count(id) == 1) << id;
  size_t seen = 0;
  s.for_each([&](int64_t id) {
    ++seen;
    EXPECT_EQ(ref.count(id), 1u) << id;
  });
  EXPECT_EQ(seen, ref.size());
  s.clear();
  EXPECT_TRUE(s.empty());
  EXPECT_FALSE(s.contains(0));
}

}  // namespace
}  // namespace sb
