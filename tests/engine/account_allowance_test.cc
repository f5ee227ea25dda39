// AccountAllowance against a shared quota: a refusal while other nodes hold the rest waits
// (ask again shortly), one with nothing held elsewhere stops the run (issue 13).
#include "engine/account_allowance.h"

#include <gtest/gtest.h>

#include <deque>

#include "engine/channel.h"

namespace sb {
namespace {

// A scripted shared quota: each reserve answers the next grant and records what the caller
// said it held.
class ScriptedQuota final : public QuotaSource {
 public:
  std::deque<Grant> answers;
  std::vector<uint64_t> held_said, given_back, reported;
  bool ended = false;
  Result<Grant> reserve(const std::string&, uint64_t, uint64_t, uint64_t) override {
    return reserve_holding("", 0, 0, 0, 0);
  }
  Result<Grant> reserve_holding(const std::string&, uint64_t, uint64_t, uint64_t held,
                                uint64_t) override {
    held_said.push_back(held);
    Grant g = answers.empty() ? Grant{} : answers.front();
    if (!answers.empty()) answers.pop_front();
    return g;
  }
  Status give_back(const std::string&, uint64_t, uint64_t n, uint64_t) override {
    given_back.push_back(n);
    return {};
  }
  Status report_held(const std::string&, uint64_t held, bool done) override {
    if (done) ended = true;
    reported.push_back(held);
    return {};
  }
  Result<uint64_t> used(const std::string&, uint64_t) override { return uint64_t{0}; }
  const std::string& path() const override { return path_; }

 private:
  std::string path_ = "scripted";
};

struct Rig {
  FakeClock clock;
  CoordinatorInbox inbox;
  RunShared shared{0, inbox};
  ScriptedQuota* quota = nullptr;
  std::unique_ptr<AccountAllowance> allowance;
  Rig() {
    auto q = std::make_unique<ScriptedQuota>();
    quota = q.get();
    allowance = std::make_unique<AccountAllowance>(std::move(q), "acct", 45, false, shared, clock);
    shared.set_account_limited(true);
  }
  uint64_t now() const { return static_cast<uint64_t>(clock.wall_ms()); }
};

TEST(AccountAllowance, WaitsWhileOtherNodesHoldTheRestAndStopsOnceNobodyDoes) {
  Rig r;
  r.quota->answers = {{13, 45, 0, 0}, {0, 45, 99, 20}, {0, 45, 99, 3}, {0, 45, 99, 0}};
  r.allowance->top_up(false);
  EXPECT_EQ(r.shared.allowance(), 13);
  uint64_t resume = 0;
  ASSERT_TRUE(r.shared.take_allowance(13, &resume));
  // Spent; the workers ask for more: others hold 20, so wait (no resume_at: no exit 3).
  EXPECT_FALSE(r.shared.take_allowance(1, &resume));
  r.allowance->top_up(false);
  EXPECT_EQ(r.shared.account_resume_at(), 0u);
  EXPECT_EQ(r.shared.account_retry_at(), r.now() + AccountAllowance::kRetryMs);
  EXPECT_FALSE(r.shared.take_allowance(1, &resume));
  EXPECT_EQ(resume, 0u);
  // Not before the retry time.
  r.allowance->top_up(false);
  EXPECT_EQ(r.quota->held_said.size(), 2u);
  r.clock.advance(AccountAllowance::kRetryMs);
  r.allowance->top_up(false);
  EXPECT_EQ(r.quota->held_said.size(), 3u);
  EXPECT_EQ(r.shared.account_resume_at(), 0u);
  // Nobody holds any: the refusal is final, with the quota's resume time.
  r.clock.advance(AccountAllowance::kRetryMs);
  r.allowance->top_up(false);
  EXPECT_EQ(r.shared.account_resume_at(), 99u);
  EXPECT_FALSE(r.shared.take_allowance(1, &resume));
  EXPECT_EQ(resume, 99u);
  EXPECT_EQ(r.quota->held_said, (std::vector<uint64_t>{0, 0, 0, 0}));
  (void)r.allowance->return_unused();
  EXPECT_TRUE(r.quota->ended);
}

TEST(AccountAllowance, AWaitingNodeGivesBackARemainderItCannotUse) {
  // A transaction of 5 with 3 left: refused while another node holds 2. The 3 go back, so
  // the two nodes do not wait for each other's remainder.
  Rig r;
  r.quota->answers = {{3, 43, 0, 0}, {0, 45, 99, 2}};
  r.allowance->top_up(false);
  uint64_t resume = 0;
  EXPECT_FALSE(r.shared.take_allowance(5, &resume));
  r.allowance->top_up(false);
  EXPECT_EQ(r.quota->held_said.back(), 3u);
  EXPECT_EQ(r.quota->given_back, (std::vector<uint64_t>{3}));
  EXPECT_EQ(r.shared.allowance(), 0);
  EXPECT_NE(r.shared.account_retry_at(), 0u);
}

TEST(AccountAllowance, ReportsWhatItHoldsWhenItChangesAndRenews) {
  Rig r;
  r.allowance->set_shared(1000);
  r.quota->answers = {{32, 32, 0, 0}};
  r.allowance->top_up(false);
  uint64_t resume = 0;
  ASSERT_TRUE(r.shared.take_allowance(1, &resume));
  r.allowance->top_up(false);  // changed, but reported a moment ago
  EXPECT_TRUE(r.quota->reported.empty());
  r.clock.advance(AccountAllowance::kReportMs);
  r.allowance->top_up(false);
  EXPECT_EQ(r.quota->reported, (std::vector<uint64_t>{31}));
  r.clock.advance(AccountAllowance::kReportMs);
  r.allowance->top_up(false);  // unchanged: not again until the renewal
  EXPECT_EQ(r.quota->reported.size(), 1u);
  r.clock.advance(1000);
  r.allowance->top_up(false);
  EXPECT_EQ(r.quota->reported, (std::vector<uint64_t>{31, 31}));
}

TEST(AccountAllowance, WhatANodeHoldsUnusedGoesBack) {
  // A node with tokens and nothing to send (another node holds the recipients and waits for
  // quota): after kIdleMs they go back, so the two do not wait for each other.
  Rig r;
  r.allowance->set_shared(100000);
  r.quota->answers = {{20, 45, 0, 0}};
  r.allowance->top_up(false);
  uint64_t resume = 0;
  ASSERT_TRUE(r.shared.take_allowance(2, &resume));
  r.clock.advance(1);
  r.allowance->top_up(false);  // 18 held, seen now
  r.clock.advance(AccountAllowance::kIdleMs - 1);
  r.allowance->top_up(false);
  EXPECT_TRUE(r.quota->given_back.empty());
  r.clock.advance(1);
  r.allowance->top_up(false);
  EXPECT_EQ(r.quota->given_back, (std::vector<uint64_t>{18}));
  EXPECT_EQ(r.shared.allowance(), 0);
  EXPECT_EQ(r.quota->reported.back(), 0u);
}

TEST(AccountAllowance, AHoldStaysAliveAfterAFinalRefusalAndWhileStopping) {
  // A node with 13 reserved and nothing to send is refused more with nobody else holding any
  // (final: resume_at). It may still spend or give back its 13, so its hold must not lapse:
  // a waiting node that saw it lapse took the quota for spent and stopped for good (exit 3
  // with 32 of 45 sent; test_pg_nodes, 1 round in 12 with the test's 2 s lease).
  Rig r;
  const uint64_t renew = 600;
  r.allowance->set_shared(renew);
  r.quota->answers = {{13, 45, 0, 0}, {0, 45, 99, 0}};
  r.allowance->top_up(false);
  r.clock.advance(1);
  r.allowance->top_up(false);  // 13 is under half a chunk: asks for more, refused, final
  ASSERT_EQ(r.shared.account_resume_at(), 99u);
  const size_t before = r.quota->reported.size();
  r.clock.advance(renew);
  r.allowance->top_up(false);
  ASSERT_EQ(r.quota->reported.size(), before + 1);
  EXPECT_EQ(r.quota->reported.back(), 13u);
  // Stopping: nothing more is reserved, and the hold is still renewed until return_unused().
  r.clock.advance(renew);
  r.allowance->top_up(true);
  EXPECT_EQ(r.quota->reported.back(), 13u);
  EXPECT_EQ(r.quota->reported.size(), before + 2);
  EXPECT_EQ(r.quota->held_said.size(), 2u);
  (void)r.allowance->return_unused();
  EXPECT_EQ(r.quota->given_back, (std::vector<uint64_t>{13}));
  EXPECT_TRUE(r.quota->ended);
}

TEST(AccountAllowance, AfterGivingBackWhatItHeldUnusedItReservesOnlyWhenAWorkerAsks) {
  // A node without recipients gives its 20 back after kIdleMs. It must not take them again in
  // the next step (it has under half a chunk, which once meant "top up"): the node holding the
  // recipients was waiting for exactly these, and two idle nodes passed them between them.
  Rig r;
  r.allowance->set_shared(100000);
  r.quota->answers = {{20, 20, 0, 0}, {20, 20, 0, 0}};
  r.allowance->top_up(false);
  r.clock.advance(1);
  r.allowance->top_up(false);  // 20 held, seen now
  r.clock.advance(AccountAllowance::kIdleMs);
  r.allowance->top_up(false);
  EXPECT_EQ(r.quota->given_back, (std::vector<uint64_t>{20}));
  EXPECT_EQ(r.quota->held_said.size(), 1u) << "took back what it had just given";
  for (int i = 0; i < 5; ++i) {
    r.clock.advance(AccountAllowance::kRetryMs);
    r.allowance->top_up(false);
  }
  EXPECT_EQ(r.quota->held_said.size(), 1u) << "reserved with no worker asking";
  EXPECT_EQ(r.shared.allowance(), 0);
  // A worker has recipients now and finds nothing: the next top-up reserves.
  uint64_t resume = 0;
  EXPECT_FALSE(r.shared.take_allowance(1, &resume));
  r.allowance->top_up(false);
  EXPECT_EQ(r.quota->held_said.size(), 2u);
  EXPECT_EQ(r.shared.allowance(), 20);
}

}  // namespace
}  // namespace sb
