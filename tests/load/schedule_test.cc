#include "load/schedule.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace sb {
namespace {

// Takes everything due now.
int drain(LoadSchedule& s, std::vector<LoadSchedule::Slot>* out = nullptr) {
  int n = 0;
  LoadSchedule::Slot slot;
  while (s.take(slot)) {
    if (out != nullptr) out->push_back(slot);
    ++n;
  }
  return n;
}

TEST(LoadSchedule, OpenLoopReleasesOnTheTimelineAtTheRate) {
  FakeClock clock;
  LoadSchedule s(clock, ScheduleConfig{.rate = 10, .duration_us = 10'000'000});
  s.start();
  uint64_t t0 = s.start_us();
  std::vector<LoadSchedule::Slot> got;
  EXPECT_EQ(drain(s, &got), 1);  // slot 0 is due at once
  EXPECT_EQ(s.next_due_us(), t0 + 100'000);
  clock.advance(99);
  EXPECT_EQ(drain(s), 0);
  clock.advance(1);
  EXPECT_EQ(drain(s, &got), 1);
  for (int i = 0; i < 200; ++i) {
    clock.advance(50);
    drain(s, &got);
  }
  ASSERT_EQ(got.size(), 100u);  // 10/s for 10 s, then nothing more
  for (size_t k = 0; k < got.size(); ++k) {
    EXPECT_EQ(got[k].intended_us, t0 + k * 100'000) << k;
    EXPECT_TRUE(got[k].measured);
  }
  EXPECT_TRUE(s.exhausted());
  EXPECT_EQ(s.next_due_us(), 0u);
  EXPECT_EQ(s.nominal_end_us(), t0 + 10'000'000);
}

TEST(LoadSchedule, AStallBuildsABacklogWhoseIntendedTimesStayOnTheTimeline) {
  FakeClock clock;
  LoadSchedule s(clock, ScheduleConfig{.rate = 1000, .duration_us = 10'000'000});
  s.start();
  uint64_t t0 = s.start_us();
  clock.advance(2000);  // nothing taken for 2 s: the server stalled
  EXPECT_EQ(s.backlog(), 2001u);
  std::vector<LoadSchedule::Slot> got;
  EXPECT_EQ(drain(s, &got), 2001);
  // Latency counts from the intended time, so the first one waited the whole stall.
  EXPECT_EQ(got.front().intended_us, t0);
  EXPECT_EQ(clock.mono_us() - got.front().intended_us, 2'000'000u);
  EXPECT_EQ(got.back().intended_us, t0 + 2'000'000);
  EXPECT_EQ(s.backlog(), 0u);
}

TEST(LoadSchedule, HighRatesKeepMicrosecondSpacing) {
  FakeClock clock;
  LoadSchedule s(clock, ScheduleConfig{.rate = 50000, .messages = 1000});
  s.start();
  int n = drain(s);
  for (int i = 0; i < 100 && !s.exhausted(); ++i) {
    clock.advance_us(333);
    n += drain(s);
  }
  EXPECT_EQ(n, 1000);
  EXPECT_TRUE(s.exhausted());
  EXPECT_EQ(s.nominal_end_us(), s.start_us() + 20'000);  // 1000 at 50,000/s
}

TEST(LoadSchedule, WarmupSlotsAreNotMeasured) {
  FakeClock clock;
  LoadSchedule s(clock, ScheduleConfig{.rate = 10, .warmup_us = 1'000'000, .messages = 5});
  s.start();
  std::vector<LoadSchedule::Slot> got;
  for (int i = 0; i < 30; ++i) {
    drain(s, &got);
    clock.advance(100);
  }
  ASSERT_EQ(got.size(), 15u);
  for (size_t k = 0; k < got.size(); ++k) EXPECT_EQ(got[k].measured, k >= 10) << k;
  EXPECT_EQ(s.measured_taken(), 5u);
}

TEST(LoadSchedule, CloseCountsWhatNeverStarted) {
  FakeClock clock;
  LoadSchedule s(clock, ScheduleConfig{.rate = 100, .duration_us = 1'000'000});
  s.start();
  clock.advance(500);
  drain(s);  // 51 taken (0 ms .. 500 ms)
  clock.advance(600);
  EXPECT_EQ(s.close(), 49u);
  LoadSchedule::Slot slot;
  EXPECT_FALSE(s.take(slot));
  EXPECT_TRUE(s.exhausted());
}

TEST(LoadSchedule, ClosedLoopTakesAtOnceUntilTheMessagesOrTheTime) {
  FakeClock clock;
  LoadSchedule by_count(clock, ScheduleConfig{.rate = 0, .messages = 3});
  by_count.start();
  std::vector<LoadSchedule::Slot> got;
  EXPECT_EQ(drain(by_count, &got), 3);
  EXPECT_EQ(got[0].intended_us, clock.mono_us());
  EXPECT_TRUE(by_count.exhausted());

  LoadSchedule by_time(clock,
                       ScheduleConfig{.rate = 0, .warmup_us = 1'000'000, .duration_us = 2'000'000});
  by_time.start();
  LoadSchedule::Slot slot;
  ASSERT_TRUE(by_time.take(slot));
  EXPECT_FALSE(slot.measured);
  clock.advance(1000);
  ASSERT_TRUE(by_time.take(slot));
  EXPECT_TRUE(slot.measured);
  clock.advance(2000);
  EXPECT_FALSE(by_time.take(slot));
  EXPECT_TRUE(by_time.exhausted());
  EXPECT_EQ(by_time.close(), 0u);
}

TEST(LoadSchedule, ShardsSplitOneTimelineAndTheClosedLoopsMessages) {
  FakeClock clock;
  ScheduleConfig cfg{.rate = 1000, .warmup_us = 10'000, .messages = 25};
  LoadSchedule whole(clock, cfg);
  std::vector<LoadSchedule> shards;
  for (uint32_t i = 0; i < 3; ++i) {
    ScheduleConfig c = cfg;
    c.shard = i;
    c.shards = 3;
    shards.emplace_back(clock, c);
  }
  uint64_t t0 = clock.mono_us();
  whole.start_at(t0);
  for (auto& s : shards) s.start_at(t0);
  EXPECT_EQ(shards[0].remaining(), 12u);  // slots 0, 3, ... 33 of 35
  EXPECT_EQ(shards[2].remaining(), 11u);
  std::vector<LoadSchedule::Slot> want, got;
  for (int ms = 0; ms < 40; ++ms) {
    drain(whole, &want);
    for (auto& s : shards) drain(s, &got);
    clock.advance(1);
  }
  ASSERT_EQ(want.size(), 35u);
  ASSERT_EQ(got.size(), 35u);
  auto by_time = [](const auto& a, const auto& b) { return a.intended_us < b.intended_us; };
  std::sort(got.begin(), got.end(), by_time);
  for (size_t k = 0; k < want.size(); ++k) {
    EXPECT_EQ(got[k].intended_us, want[k].intended_us) << k;
    EXPECT_EQ(got[k].measured, want[k].measured) << k;
  }
  uint64_t measured = 0;
  for (auto& s : shards) {
    measured += s.measured_taken();
    EXPECT_TRUE(s.exhausted());
    EXPECT_EQ(s.remaining(), 0u);
    EXPECT_EQ(s.nominal_end_us(), whole.nominal_end_us());
  }
  EXPECT_EQ(measured, 25u);

  // Closed loop: 10 messages over 4 shards, 3 3 2 2.
  uint64_t sum = 0;
  for (uint32_t i = 0; i < 4; ++i) {
    LoadSchedule s(clock, ScheduleConfig{.rate = 0, .messages = 10, .shard = i, .shards = 4});
    s.start();
    int n = drain(s);
    EXPECT_EQ(n, i < 2 ? 3 : 2) << i;
    sum += static_cast<uint64_t>(n);
  }
  EXPECT_EQ(sum, 10u);
}

}  // namespace
}  // namespace sb
