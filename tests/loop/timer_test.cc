// sb::Timer on a real uv loop: one-shot, repeat, stop, restart, destruction, and LoopClock.
#include "loop/timer.h"

#include <gtest/gtest.h>
#include <uv.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "loop/loop_clock.h"

namespace sb {
namespace {

class TimerTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(uv_loop_init(&loop_), 0); }
  // Every Timer must be gone by now; the loop then closes only if their handles were closed
  // (a handle left open makes uv_loop_close return UV_EBUSY), and ASan sees no leak.
  void TearDown() override {
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }
  void run() { uv_run(&loop_, UV_RUN_DEFAULT); }
  uv_loop_t loop_;
};

TEST_F(TimerTest, FiresOnce) {
  Timer t(&loop_);
  int fired = 0;
  EXPECT_FALSE(t.active());
  EXPECT_EQ(t.due_ms(), 0u);
  uint64_t before = uv_now(&loop_);
  t.start(5, [&] { ++fired; });
  EXPECT_TRUE(t.active());
  EXPECT_GE(t.due_ms(), before + 5);
  run();  // returns once nothing is active: the one-shot timer is not
  EXPECT_EQ(fired, 1);
  EXPECT_FALSE(t.active());
  EXPECT_GE(uv_now(&loop_), before + 5);
}

TEST_F(TimerTest, RepeatsUntilStopped) {
  Timer t(&loop_);
  int fired = 0;
  t.start(
      1,
      [&] {
        if (++fired == 3) t.stop();
      },
      1);
  run();
  EXPECT_EQ(fired, 3);
  EXPECT_FALSE(t.active());
}

TEST_F(TimerTest, StoppedBeforeItsTimeNeverFires) {
  Timer t(&loop_);
  int fired = 0;
  t.start(1, [&] { ++fired; });
  t.stop();
  run();
  EXPECT_EQ(fired, 0);
  // again() re-arms with the callback it already has.
  t.again(1);
  run();
  EXPECT_EQ(fired, 1);
}

TEST_F(TimerTest, RestartReplacesScheduleAndCallback) {
  Timer t(&loop_);
  std::string log;
  t.start(10'000, [&] { log += "old"; });
  t.start(1, [&] { log += "new"; });
  run();
  EXPECT_EQ(log, "new");
}

TEST_F(TimerTest, DestroyedBeforeFiringNeverCallsBack) {
  int fired = 0;
  auto t = std::make_unique<Timer>(&loop_);
  t->start(1, [&] { ++fired; });
  t.reset();
  run();
  EXPECT_EQ(fired, 0);  // and TearDown shows the handle was closed and freed
}

TEST_F(TimerTest, DestroyedByAnotherCallbackInTheSameIterationNeverCallsBack) {
  int fired = 0;
  auto victim = std::make_unique<Timer>(&loop_);
  Timer killer(&loop_);
  // libuv runs timers due at the same time in the order they were started: the killer first.
  killer.start(1, [&] { victim.reset(); });
  victim->start(1, [&] { ++fired; });
  run();
  EXPECT_EQ(fired, 0);
  EXPECT_EQ(victim, nullptr);
}

TEST_F(TimerTest, LifelongCallbackRearmedFromInsideItself) {
  int fired = 0;
  std::unique_ptr<Timer> t;
  t = std::make_unique<Timer>(&loop_, [&] {
    if (++fired < 4) t->again(1);
  });
  t->again(1);
  run();
  EXPECT_EQ(fired, 4);
}

TEST_F(TimerTest, RestartFromInsideTheCallbackKeepsTheRunningClosureAlive) {
  // A capture big enough to live on the heap: if start() destroyed the running closure, the
  // read of `tag` after it would be a use after free (ASan) or read the new closure's data.
  std::vector<std::string> seen;
  Timer t(&loop_);
  std::string tag1(64, 'a');
  std::string tag2(64, 'b');
  t.start(1, [&, tag1, pad = std::string(200, 'x')] {
    t.start(1, [&, tag2, pad] { seen.push_back(tag2.substr(0, 1)); });
    seen.push_back(tag1.substr(0, 1) + std::to_string(pad.size()));
  });
  run();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], "a200");
  EXPECT_EQ(seen[1], "b");
}

TEST_F(TimerTest, DestroyedInsideItsOwnCallback) {
  int after = 0;
  auto t = std::make_unique<Timer>(&loop_);
  std::string capture(300, 'z');  // heap-stored closure
  t->start(
      1,
      [&, capture] {
        t.reset();
        after = static_cast<int>(capture.size());  // the closure is still alive here
      },
      1);
  run();
  EXPECT_EQ(after, 300);
}

TEST_F(TimerTest, LoopClockIsTheLoopsTime) {
  LoopClock clock(&loop_);
  EXPECT_EQ(clock.mono_ms(), uv_now(&loop_));
  Timer t(&loop_);
  uint64_t at_fire = 0;
  uint64_t before = clock.mono_ms();
  t.start(20, [&] { at_fire = clock.mono_ms(); });
  run();
  EXPECT_GE(at_fire, before + 20);
  // The loop may refresh its time again after the callback (the poll after the last
  // timer does), so the loop's time afterwards is at least the time seen at the fire.
  EXPECT_LE(at_fire, uv_now(&loop_));
  int64_t wall = SystemClock::instance().wall_ms();
  EXPECT_LE(std::llabs(clock.wall_ms() - wall), 1000);
}

}  // namespace
}  // namespace sb
