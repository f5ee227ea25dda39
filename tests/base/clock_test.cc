// The clocks: SystemClock reads the real time, FakeClock moves only when told.
#include "base/clock.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>

namespace sb {
namespace {

TEST(SystemClock, MonotonicNeverGoesBackAndWallIsTheEpoch) {
  const Clock& c = SystemClock::instance();
  EXPECT_EQ(&SystemClock::instance(), &c);  // one instance
  uint64_t prev = c.mono_ms();
  for (int i = 0; i < 1000; ++i) {
    uint64_t now = c.mono_ms();
    EXPECT_GE(now, prev);
    prev = now;
  }
  int64_t t = static_cast<int64_t>(std::time(nullptr));
  EXPECT_LE(std::llabs(c.wall_s() - t), 2);
  EXPECT_EQ(c.wall_s(), c.wall_ms() / 1000);  // within the same second, practically always
}

TEST(FakeClock, MovesOnlyWhenTold) {
  FakeClock c;
  EXPECT_EQ(c.wall_ms(), 1'767'225'600'000);  // 2026-01-01T00:00:00Z
  EXPECT_EQ(c.wall_s(), 1'767'225'600);
  EXPECT_NE(c.mono_ms(), 0u);  // 0 may mean "never" to the code under test
  uint64_t m0 = c.mono_ms();
  EXPECT_EQ(c.mono_ms(), m0);
  c.advance(1500);
  EXPECT_EQ(c.mono_ms(), m0 + 1500);
  EXPECT_EQ(c.wall_ms(), 1'767'225'601'500);
  EXPECT_EQ(c.wall_s(), 1'767'225'601);
}

TEST(FakeClock, WallJumpsLeaveMonotonicAlone) {
  FakeClock c(1'000'000);
  uint64_t m0 = c.mono_ms();
  c.jump_wall(-3'600'000);  // an NTP step back by an hour
  EXPECT_EQ(c.wall_ms(), 1'000'000 - 3'600'000);
  EXPECT_EQ(c.mono_ms(), m0);
  c.advance(10);
  EXPECT_EQ(c.mono_ms(), m0 + 10);
  EXPECT_EQ(c.wall_ms(), 1'000'000 - 3'600'000 + 10);
}

TEST(FakeClock, UsableThroughTheInterface) {
  FakeClock fake;
  const Clock& c = fake;
  uint64_t before = c.mono_ms();
  fake.advance(7);
  EXPECT_EQ(c.mono_ms() - before, 7u);
}

}  // namespace
}  // namespace sb
