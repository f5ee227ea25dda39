// AIMD on its own: halving with a floor, one cut per event, additive growth capped at the
// ceiling, and the measured-rate start when no rate is configured.
#include "throttle/aimd.h"

#include <gtest/gtest.h>

namespace sb {
namespace {

TEST(Aimd, HalvesDownToTheFloor) {
  AimdConfig cfg;
  Aimd a(cfg, 0.5);
  EXPECT_FALSE(a.active());
  uint64_t now = 1'000'000;
  for (int i = 0; i < 20; ++i, now += 10 * 60'000) a.on_pushback(now, 0);
  EXPECT_TRUE(a.active());
  EXPECT_DOUBLE_EQ(a.rate(), cfg.floor_per_s);
  EXPECT_EQ(a.cuts(), 20u);
}

TEST(Aimd, OneCutPerEventWithinTheHold) {
  Aimd a(AimdConfig{}, 10);
  EXPECT_TRUE(a.on_pushback(1'000'000, 0));
  EXPECT_FALSE(a.on_pushback(1'000'500, 0));
  EXPECT_FALSE(a.on_pushback(1'001'999, 0));
  EXPECT_TRUE(a.on_pushback(1'002'000, 0));
  EXPECT_DOUBLE_EQ(a.rate(), 2.5);
}

TEST(Aimd, GrowsAdditivelyAndSwitchesOffAtTheCeiling) {
  Aimd a(AimdConfig{}, 10);
  uint64_t now = 1'000'000;
  a.on_pushback(now, 0);
  EXPECT_DOUBLE_EQ(a.rate(), 5);
  a.on_success(now + 9'999);
  EXPECT_DOUBLE_EQ(a.rate(), 5);
  int windows = 0;
  while (a.active()) {
    now += 10'000;
    a.on_success(now);
    ++windows;
  }
  EXPECT_EQ(windows, 10);  // 5 -> 10 in steps of 0.5
  EXPECT_DOUBLE_EQ(a.rate(), 0);
  EXPECT_EQ(a.check(now), 0u);
}

TEST(Aimd, PacesAtTheCutRate) {
  Aimd a(AimdConfig{}, 4);
  const uint64_t t0 = 1'000'000;
  a.on_pushback(t0, 0);  // 2/s: the next send waits 500 ms
  EXPECT_EQ(a.check(t0 + 1), t0 + 500);
  EXPECT_EQ(a.check(t0 + 500), 0u);
  a.take(t0 + 500);
  EXPECT_EQ(a.check(t0 + 600), t0 + 1'000);
}

TEST(Aimd, UnconfiguredStartsFromTheMeasuredRate) {
  Aimd a(AimdConfig{}, 0);
  a.on_pushback(1'000'000, 240);
  EXPECT_DOUBLE_EQ(a.ceiling(), 240);
  EXPECT_DOUBLE_EQ(a.rate(), 120);
  // A second event while active keeps the ceiling.
  a.on_pushback(1'010'000, 5);
  EXPECT_DOUBLE_EQ(a.ceiling(), 240);
  EXPECT_DOUBLE_EQ(a.rate(), 60);
}

}  // namespace
}  // namespace sb
