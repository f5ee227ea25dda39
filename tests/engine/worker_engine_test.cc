// The worker engine's policies on a FakeClock: destinations (backoff, starvation, a dead one),
// the daily limit and --limit stops, grouping, hand-over, a stop; the ledger ends empty.
#include <gtest/gtest.h>

#include "engine/harness.h"

namespace sb::test {
namespace {

std::vector<std::string> emails(size_t n, const std::vector<std::string>& domains) {
  std::vector<std::string> v;
  for (size_t i = 0; i < n; ++i)
    v.push_back("u" + std::to_string(i) + "@" + domains[i % domains.size()]);
  return v;
}

void expect_settled(Harness& h, uint64_t claimed) {
  EXPECT_TRUE(h.ledger().empty());
  EXPECT_EQ(h.ledger().violations(), 0u);
  EXPECT_EQ(h.ledger().claimed(), claimed);
  EXPECT_EQ(h.ledger().settled_total(), claimed);
  EXPECT_EQ(h.counts().get(RcptStatus::kInFlight), 0u);
}

TEST(WorkerEngine, RelaySendsEveryone) {
  Harness h(emails(1200, {"a.example"}), HarnessOptions{});
  ASSERT_TRUE(h.run());
  expect_settled(h, 1200);
  EXPECT_EQ(h.counts().get(RcptStatus::kSent), 1200u);
  EXPECT_EQ(h.coordinator().sent(), 1200u);
}

TEST(WorkerEngine, DeferredRecipientsRetryWithBackoffThenStayDeferred) {
  HarnessOptions o;
  o.plan.weights = {0, 0, 1, 0, 0, 0, 0, 0};  // 451 to everyone
  o.max_attempts = 3;
  o.retry_delay_ms = 1000;
  Harness h(emails(20, {"a.example"}), o);
  uint64_t t0 = h.clock().mono_ms();
  ASSERT_TRUE(h.run());
  expect_settled(h, 20);
  EXPECT_EQ(h.counts().get(RcptStatus::kDeferred), 20u);
  EXPECT_EQ(h.coordinator().attempts(), 60u);
  EXPECT_EQ(h.coordinator().deferred_attempts(), 60u);
  EXPECT_GE(h.clock().mono_ms() - t0, 1000u + 2000u);  // two backoffs: 1 s, then 2 s
}

TEST(WorkerEngine, DestinationFailingEveryConnectionBacksOffAndDefers) {
  HarnessOptions o;
  o.direct = true;
  o.plan.dead = "dead.example";
  o.max_attempts = 2;
  o.retry_delay_ms = 500;
  Harness h(emails(40, {"dead.example", "live.example"}), o);
  ASSERT_TRUE(h.run());
  expect_settled(h, 40);
  auto c = h.counts();
  EXPECT_EQ(c.get(RcptStatus::kSent), 20u);
  EXPECT_EQ(c.get(RcptStatus::kDeferred), 20u);
}

TEST(WorkerEngine, StarvedDestinationsGetTheConnectionInTurn) {
  HarnessOptions o;
  o.direct = true;
  o.connections = 1;  // one connection for three destinations
  Harness h(emails(90, {"a.example", "b.example", "c.example"}), o);
  ASSERT_TRUE(h.run());
  expect_settled(h, 90);
  EXPECT_EQ(h.counts().get(RcptStatus::kSent), 90u);
}

TEST(WorkerEngine, DnsFailuresFailOrDefer) {
  HarnessOptions o;
  o.direct = true;
  o.max_attempts = 2;
  o.mx["gone.example"] = dns::MxStatus::kPermanent;
  o.mx["slow.example"] = dns::MxStatus::kTemporary;
  Harness h(emails(30, {"gone.example", "slow.example", "ok.example"}), o);
  ASSERT_TRUE(h.run());
  expect_settled(h, 30);
  auto c = h.counts();
  EXPECT_EQ(c.get(RcptStatus::kFailed), 10u);
  EXPECT_EQ(c.get(RcptStatus::kDeferred), 10u);
  EXPECT_EQ(c.get(RcptStatus::kSent), 10u);
}

TEST(WorkerEngine, DailyLimitStopsTheRunAndReleasesTheRest) {
  HarnessOptions o;
  o.daily_limit = 10;
  Harness h(emails(30, {"a.example"}), o);
  ASSERT_TRUE(h.run());
  expect_settled(h, h.ledger().claimed());
  EXPECT_TRUE(h.coordinator().daily_reported());
  auto c = h.counts();
  EXPECT_EQ(c.get(RcptStatus::kSent), 10u);
  EXPECT_EQ(c.get(RcptStatus::kUnsent), 20u);
}

TEST(WorkerEngine, LimitStopsNewMessages) {
  HarnessOptions o;
  o.limit = 7;
  Harness h(emails(30, {"a.example"}), o);
  ASSERT_TRUE(h.run());
  expect_settled(h, h.ledger().claimed());
  EXPECT_TRUE(h.coordinator().limit_reported());
  EXPECT_EQ(h.counts().get(RcptStatus::kSent), 7u);
  EXPECT_EQ(h.counts().get(RcptStatus::kUnsent), 23u);
}

TEST(WorkerEngine, SameContentGroupsRecipientsPerTransaction) {
  HarnessOptions o;
  o.direct = true;
  o.same_content = true;
  o.max_rcpt_per_txn = 10;
  o.connections = 1;
  Harness h(emails(30, {"a.example"}), o);
  ASSERT_TRUE(h.run());
  expect_settled(h, 30);
  EXPECT_EQ(h.counts().get(RcptStatus::kSent), 30u);
  EXPECT_EQ(h.loop(0).txns, 3u);
}

TEST(WorkerEngine, HandsRecipientsToTheWorkerOwningTheirDestination) {
  HarnessOptions o;
  o.direct = true;
  o.workers = 4;
  o.connections = 8;
  std::vector<std::string> domains;
  for (int i = 0; i < 25; ++i) domains.push_back("d" + std::to_string(i) + ".example");
  Harness h(emails(500, domains), o);
  ASSERT_TRUE(h.run());
  expect_settled(h, 500);
  EXPECT_EQ(h.counts().get(RcptStatus::kSent), 500u);
  EXPECT_GT(h.shared().dns().handed_over, 0u);
}

TEST(WorkerEngine, SignalStopsNewWorkAndReleasesWhatWasNotStarted) {
  HarnessOptions o;
  o.plan.weights = {1, 0, 1, 0, 0, 0, 0, 0};
  Harness h(emails(2000, {"a.example"}), o);
  for (int i = 0; i < 5; ++i) h.turn();
  h.signal();
  ASSERT_TRUE(h.run());
  expect_settled(h, h.ledger().claimed());
  auto c = h.counts();
  EXPECT_GT(c.get(RcptStatus::kUnsent), 0u);
  EXPECT_EQ(c.get(RcptStatus::kInFlight), 0u);
}

}  // namespace
}  // namespace sb::test
