// The shared rate bucket and daily quota against a real PostgreSQL (the ctest fixture
// pg_server): concurrent clients never get more than the limit in any window.
#include "pg/pg_throttle.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "fakes/pg_test_server.h"
#include "throttle/sliding_window.h"

namespace sb {
namespace {

using ::sb::testing::max_in_window;
using ::sb::testing::unique_pg_name;

std::unique_ptr<PgBlocking> connect_or_fail(const std::string& url) {
  auto db = PgBlocking::connect(url);
  EXPECT_TRUE(db.ok()) << (db.ok() ? "" : db.error().message);
  if (!db.ok()) return nullptr;
  EXPECT_TRUE(pg_throttle_schema(**db).ok());
  return std::move(db).value();
}

// Four clients ask for batches of slots as fast as they can for 1.5 s: the slots they were
// given (server clock) are distinct, at least one interval apart, so no window of P holds more
// than N; and none is lost (the total matches the elapsed time).
TEST(PgRateBucket, ConcurrentClientsShareOneBucketExactly) {
  SB_REQUIRE_PG_URL(url);
  const std::string key = unique_pg_name("bucket");
  const RateSpec rate{200, 1000};
  const uint64_t interval = SlotPool::pace_interval_us(rate);
  const uint64_t horizon = SlotPool::horizon_us(rate);
  constexpr int kClients = 4;
  std::vector<std::vector<uint64_t>> got(kClients);
  std::atomic<int> errors{0};
  std::atomic<uint64_t> first_now{UINT64_MAX}, last_now{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      auto db = connect_or_fail(url);
      if (!db) return;
      const auto stop = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
      while (std::chrono::steady_clock::now() < stop) {
        auto s = pg_take_slots(*db, key, interval, 1 + c * 7, horizon);
        if (!s.ok()) {
          ++errors;
          return;
        }
        if (s->count == 0) {
          EXPECT_GT(s->first_us, s->server_now_us + horizon);
          continue;
        }
        EXPECT_LE(s->first_us, s->server_now_us + horizon);
        EXPECT_EQ(s->interval_us, interval);
        for (uint64_t i = 0; i < s->count; ++i) got[c].push_back(s->first_us + i * interval);
        uint64_t v = first_now.load();
        while (s->server_now_us < v && !first_now.compare_exchange_weak(v, s->server_now_us)) {
        }
        v = last_now.load();
        while (s->server_now_us > v && !last_now.compare_exchange_weak(v, s->server_now_us)) {
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(errors.load(), 0);
  std::vector<uint64_t> all;
  for (auto& g : got) all.insert(all.end(), g.begin(), g.end());
  std::sort(all.begin(), all.end());
  ASSERT_GT(all.size(), 100u);
  for (size_t i = 1; i < all.size(); ++i) ASSERT_GE(all[i] - all[i - 1], interval) << i;
  EXPECT_LE(max_in_window(all, rate.period_ms * 1000), rate.count);
  // Every client got some, and the bucket handed out one slot per interval from the first
  // ask to the last one's horizon: nothing lost between the clients.
  for (auto& g : got) EXPECT_FALSE(g.empty());
  const uint64_t span = last_now.load() + horizon - first_now.load();
  EXPECT_GE(all.size() + 2, span / interval * 9 / 10) << span;
  EXPECT_LE(all.size(), span / interval + 2) << span;
}

// Three nodes' PgRate, each with its own thread and connection, spent by busy senders: the
// times they were allowed to start never put more than N in a window of P, and they got close
// to the rate between them.
TEST(PgRate, ThreeNodesSpendOneRate) {
  SB_REQUIRE_PG_URL(url);
  const std::string key = unique_pg_name("rate");
  const RateSpec rate{40, 1000};
  const SystemClock& clock = SystemClock::instance();
  std::vector<std::unique_ptr<PgRate>> nodes;
  for (int i = 0; i < 3; ++i) {
    auto r = PgRate::start(url, key, rate, clock);
    ASSERT_TRUE(r.ok()) << r.error().message;
    nodes.push_back(std::move(r).value());
  }
  std::vector<std::vector<uint64_t>> sent(3);
  std::vector<std::thread> senders;
  const uint64_t t0 = static_cast<uint64_t>(clock.wall_ms());
  const uint64_t end = t0 + 2500;
  for (int i = 0; i < 3; ++i) {
    senders.emplace_back([&, i] {
      for (;;) {
        const uint64_t now = static_cast<uint64_t>(clock.wall_ms());
        if (now >= end) return;
        const uint64_t at = nodes[i]->take(now);
        if (at == 0) {
          sent[i].push_back(now);
          continue;
        }
        std::this_thread::sleep_for(
            std::chrono::milliseconds(at > now ? std::min<uint64_t>(at - now, 5) : 1));
      }
    });
  }
  for (auto& t : senders) t.join();
  std::vector<uint64_t> all;
  for (int i = 0; i < 3; ++i) {
    all.insert(all.end(), sent[i].begin(), sent[i].end());
    auto st = nodes[i]->stats();
    EXPECT_EQ(st.errors, 0u) << st.last_error;
    EXPECT_GT(st.spent, 0u) << "node " << i;
  }
  std::sort(all.begin(), all.end());
  // Start times in whole ms: a window of P holds at most N (the guard leaves room for more
  // than the ms rounding).
  EXPECT_LE(max_in_window(all, rate.period_ms), rate.count);
  // 2.5 s at 40/s less the 2 % guard and the first round trips: well over 80.
  EXPECT_GE(all.size(), 80u);
}

// Four threads reserve a daily quota of 100 in chunks of 7 until refused: exactly 100 granted,
// and the refusal says when the window frees up; given back, it is reserved again.
TEST(PgQuota, ConcurrentReservationsStopAtTheLimit) {
  SB_REQUIRE_PG_URL(url);
  const std::string account = unique_pg_name("account");
  std::atomic<uint64_t> granted{0};
  std::vector<std::thread> threads;
  const uint64_t now = static_cast<uint64_t>(SystemClock::instance().wall_ms());
  for (int c = 0; c < 4; ++c) {
    threads.emplace_back([&] {
      auto q = PgQuota::open(url);
      ASSERT_TRUE(q.ok()) << q.error().message;
      for (;;) {
        auto g = (*q)->reserve(account, 100, 7, now);
        ASSERT_TRUE(g.ok()) << g.error().message;
        if (g->granted == 0) {
          EXPECT_EQ(g->used, 100u);
          // The counts leave the window 24 h (and up to a minute) after they were charged.
          EXPECT_GT(g->resume_at, now + 86'340'000);
          EXPECT_LT(g->resume_at, now + 86'470'000);
          return;
        }
        granted += g->granted;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(granted.load(), 100u);

  auto q = PgQuota::open(url);
  ASSERT_TRUE(q.ok());
  auto used = (*q)->used(account, now);
  ASSERT_TRUE(used.ok());
  EXPECT_EQ(*used, 100u);
  // A node reserves 5 more after giving 5 back (the minute it was charged to).
  auto g = (*q)->reserve(account, 100, 5, now);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->granted, 0u);
  ASSERT_TRUE((*q)->give_back(account, now, 5, now).ok());
  used = (*q)->used(account, now);
  ASSERT_TRUE(used.ok());
  EXPECT_EQ(*used, 95u);
  g = (*q)->reserve(account, 100, 9, now + 1);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->granted, 5u);
  EXPECT_EQ(g->used, 100u);
  // Another account is counted apart.
  g = (*q)->reserve(account + "_other", 100, 9, now);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->granted, 9u);
}

// The rule of issue 13: a node refused because other live nodes hold reservations they have
// not sent waits (others_held > 0); the refusal is final only when nobody holds any. Holds
// follow what each node reports, go down with a give-back, end with the run, and stop
// counting once their lease runs out.
TEST(PgQuota, ARefusalIsFinalOnlyWhenNoLiveNodeHoldsTheRest) {
  SB_REQUIRE_PG_URL(url);
  const std::string account = unique_pg_name("held");
  const uint64_t now = static_cast<uint64_t>(SystemClock::instance().wall_ms());
  auto a = PgQuota::open(url), b = PgQuota::open(url), c = PgQuota::open(url);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  (*a)->set_holder("a (epoch 1)", 30000);
  (*b)->set_holder("b (epoch 2)", 30000);
  (*c)->set_holder("c (epoch 3)", 300);
  auto g = (*a)->reserve_holding(account, 10, 7, 0, now);
  ASSERT_TRUE(g.ok()) << g.error().message;
  EXPECT_EQ(g->granted, 7u);
  g = (*b)->reserve_holding(account, 10, 7, 0, now);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->granted, 3u);
  EXPECT_EQ(g->others_held, 7u);
  // b spent its 3 and asks again: a still holds 7 unsent, so b is to wait.
  g = (*b)->reserve_holding(account, 10, 7, 0, now);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->granted, 0u);
  EXPECT_EQ(g->others_held, 7u);
  auto h = (*b)->holds(account);
  ASSERT_TRUE(h.ok());
  ASSERT_EQ(h->size(), 1u);  // b holds nothing now: only a is listed
  EXPECT_EQ((*h)[0].holder, "a (epoch 1)");
  EXPECT_EQ((*h)[0].n, 7u);
  EXPECT_FALSE((*h)[0].until.empty());
  // a sent 5 of them, then its run ends with 2 unsent: given back, b gets them.
  ASSERT_TRUE((*a)->report_held(account, 2, false).ok());
  g = (*b)->reserve_holding(account, 10, 7, 0, now);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->others_held, 2u);
  ASSERT_TRUE((*a)->give_back(account, now, 2, now).ok());
  ASSERT_TRUE((*a)->report_held(account, 0, true).ok());
  g = (*b)->reserve_holding(account, 10, 7, 0, now);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->granted, 2u);
  EXPECT_EQ(g->others_held, 0u);
  // c asks while b holds its 2: wait; once b reports them sent, c's refusal is final.
  g = (*c)->reserve_holding(account, 10, 7, 0, now);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->granted, 0u);
  EXPECT_EQ(g->others_held, 2u);
  ASSERT_TRUE((*b)->report_held(account, 0, false).ok());
  g = (*c)->reserve_holding(account, 10, 7, 0, now);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->granted, 0u);
  EXPECT_EQ(g->others_held, 0u);
  EXPECT_GT(g->resume_at, now);
  auto used = (*c)->used(account, now);
  ASSERT_TRUE(used.ok());
  EXPECT_EQ(*used, 10u);
  // A holder that stops renewing (killed) makes the others wait for one lease at most: its
  // tokens then stay counted as used.
  const std::string other = unique_pg_name("held_lease");
  g = (*c)->reserve_holding(other, 5, 5, 0, now);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->granted, 5u);
  g = (*a)->reserve_holding(other, 5, 1, 0, now);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->others_held, 5u);
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  g = (*a)->reserve_holding(other, 5, 1, 0, now);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->granted, 0u);
  EXPECT_EQ(g->others_held, 0u);
  used = (*a)->used(other, now);
  ASSERT_TRUE(used.ok());
  EXPECT_EQ(*used, 5u);
}

}  // namespace
}  // namespace sb
