// SlotPool: slots spent on time, never early, dropped when late; the guard's arithmetic.
#include "throttle/slot_pool.h"

#include <gtest/gtest.h>

namespace sb {
namespace {

TEST(SlotPool, SpendsSlotsAtTheirTimeAndNeverBefore) {
  SlotPool p(10'000);
  EXPECT_EQ(p.take(1'000'000), SlotPool::kEmpty);
  p.add(2'000'000, 500'000, 3);         // 2.0 s, 2.5 s, 3.0 s
  EXPECT_EQ(p.take(1'999'999), 2000u);  // not yet: due at 2000 ms
  EXPECT_EQ(p.take(2'000'000), 0u);
  EXPECT_EQ(p.take(2'000'001), 2500u);
  EXPECT_EQ(p.take(2'505'000), 0u);  // 5 ms late: within grace
  EXPECT_EQ(p.held(2'505'000), 1u);
  EXPECT_EQ(p.last_us(), 3'000'000u);
  EXPECT_EQ(p.take(3'010'000), 0u);  // exactly grace late
  EXPECT_EQ(p.take(3'010'000), SlotPool::kEmpty);
  EXPECT_EQ(p.spent(), 3u);
  EXPECT_EQ(p.expired(), 0u);
}

TEST(SlotPool, SlotsTooLateExpireUnused) {
  SlotPool p(10'000);
  p.add(1'000'000, 1'000, 100);  // 1.000 s .. 1.099 s
  // At 1.050 s the slots before 1.040 s are too late: 40 expire, 1.040 is spent.
  EXPECT_EQ(p.take(1'050'000), 0u);
  EXPECT_EQ(p.expired(), 40u);
  EXPECT_EQ(p.held(1'050'000), 59u);
  // Later runs are kept in order; a whole run that is past expires at once.
  p.add(5'000'000, 1'000, 2);
  EXPECT_EQ(p.take(4'000'000), 5000u);
  EXPECT_EQ(p.expired(), 99u);
  EXPECT_EQ(p.take(5'000'000), 0u);
}

TEST(SlotPool, GuardKeepsEveryWindowAtTheLimit) {
  // N+1 slots spent up to grace late span at least P + grace: a receiver that sees them
  // within grace of each other never counts N+1 in a window of P.
  for (RateSpec r : {RateSpec{60, 60'000}, RateSpec{30, 60'000}, RateSpec{1000, 1000},
                     RateSpec{7, 3'600'000}, RateSpec{1, 1000}}) {
    const uint64_t g = SlotPool::grace_us(r), t = SlotPool::pace_interval_us(r);
    EXPECT_GE(r.count * t, r.period_ms * 1000 + 2 * g) << r.describe();
    EXPECT_GE(g, 10'000u);
    EXPECT_LE(g, 250'000u);
    // The price: at most 2 % of the rate (plus µs rounding).
    EXPECT_LE(double(r.count * t), double(r.period_ms) * 1000 * 1.0201 + double(r.count))
        << r.describe();
    EXPECT_GE(SlotPool::horizon_us(r), 50'000u);
    EXPECT_LE(SlotPool::horizon_us(r), 1'000'000u);
  }
}

}  // namespace
}  // namespace sb
