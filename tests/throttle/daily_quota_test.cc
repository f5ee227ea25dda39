// Daily quota: exact rolling-window promise, resume times, the serialised state.
#include "throttle/daily_quota.h"

#include <gtest/gtest.h>

#include <random>

#include "throttle/sliding_window.h"

namespace sb {
namespace {

constexpr uint64_t kMin = 60'000;
constexpr uint64_t kDay = DailyQuota::kWindowMs;
constexpr uint64_t kEpoch = 1'709'510'400'000;

TEST(DailyQuota, RandomTrafficNeverExceedsTheLimitInAnyRollingDay) {
  std::mt19937 rng(7);
  DailyQuota q(500);
  std::vector<uint64_t> at, w;
  uint64_t now = kEpoch + 12'345;
  while (now < kEpoch + 5 * kDay) {
    const uint64_t k = 1 + rng() % 20;
    const uint64_t next = q.check(now, k);
    if (next == 0) {
      q.take(now, k);
      at.push_back(now);
      w.push_back(k);
      now += rng() % (10 * kMin);
    } else {
      ASSERT_GT(next, now);
      ASSERT_NE(q.check(next, k), DailyQuota::kNever);
      EXPECT_EQ(q.check(next, k), 0u);  // the resume time is a real one
      if (next > now + 1) {
        EXPECT_NE(q.check(next - 1, k), 0u);  // and the earliest
      }
      now = next + rng() % 1000;
    }
  }
  EXPECT_LE(testing::max_in_window(at, kDay, &w), 500u);
  EXPECT_GT(at.size(), 100u);
}

TEST(DailyQuota, SerialiseRoundTripAndCompactness) {
  DailyQuota q(10'000);
  const uint64_t t0 = kEpoch + 9 * 3'600'000;
  for (int i = 0; i < 3'000; ++i) q.take(t0 + uint64_t(i) * 2'000, 1 + uint64_t(i % 3));
  q.take(t0 + 10 * 3'600'000, 4);  // a lone minute hours later: a run of empty minutes
  const uint64_t now = t0 + 11 * 3'600'000;
  const std::string s = q.serialise(now);
  EXPECT_EQ(s.substr(0, 4), "dq1 ");
  EXPECT_NE(s.find(",z"), std::string::npos) << s;
  EXPECT_LT(s.size(), 1'000u);

  DailyQuota r(10'000);
  ASSERT_TRUE(r.restore(s).ok()) << r.restore(s).error().describe();
  EXPECT_EQ(r.count(now), q.count(now));
  EXPECT_EQ(r.count(now), 6'004u);
  EXPECT_EQ(r.serialise(now), s);
  for (uint64_t probe : {now, now + kDay / 2, t0 + kDay + 30 * kMin, now + kDay}) {
    EXPECT_EQ(r.check(probe, 5'000), q.check(probe, 5'000)) << probe;
    EXPECT_EQ(r.count(probe), q.count(probe)) << probe;
  }
  // A day after the last charge everything has left the window.
  EXPECT_EQ(q.count(t0 + 10 * 3'600'000 + kDay + kMin), 0u);
  EXPECT_EQ(q.serialise(t0 + 10 * 3'600'000 + kDay + kMin), "dq1");
}

TEST(DailyQuota, EmptyAndGarbage) {
  DailyQuota q(5);
  EXPECT_EQ(q.serialise(kEpoch), "dq1");
  EXPECT_TRUE(q.restore("dq1").ok());
  const char* bad[] = {"",           "dq0 1 2",  "dq1 x 2",       "dq1 5",     "dq1 5 ",
                       "dq1 5 1,,2", "dq1 5 z0", "dq1 5 1,z9999", "dq1 5 1;2", "dq1 5 0"};
  for (const char* b : bad) {
    auto st = q.restore(b);
    EXPECT_FALSE(st.ok()) << b;
  }
  // A failed restore leaves the state alone.
  q.take(kEpoch, 2);
  EXPECT_FALSE(q.restore("dq1 junk").ok());
  EXPECT_EQ(q.count(kEpoch), 2u);
}

TEST(DailyQuota, LimitMayChangeBetweenRuns) {
  DailyQuota a(100);
  a.take(kEpoch, 80);
  DailyQuota b(50);
  ASSERT_TRUE(b.restore(a.serialise(kEpoch)).ok());
  EXPECT_EQ(b.remaining(kEpoch + 1), 0u);
  EXPECT_NE(b.check(kEpoch + 1, 1), 0u);
}

TEST(DailyQuota, ClockSteppingBackKeepsCounts) {
  DailyQuota q(10);
  q.take(kEpoch + kDay, 10);
  EXPECT_NE(q.check(kEpoch, 1), 0u);
  EXPECT_EQ(q.count(kEpoch), 10u);
}

}  // namespace
}  // namespace sb
