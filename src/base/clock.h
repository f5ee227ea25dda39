// Clock: the only way engine code reads time, so every policy runs on a FakeClock in tests.
#pragma once

#include <cstdint>

namespace sb {

// Two readings: a monotonic one for timers, timeouts and backoff, and the wall clock (Unix
// epoch) for what is recorded or shared with other processes (outcome times, throttle
// windows, the rolling daily quota).
class Clock {
 public:
  virtual ~Clock() = default;
  virtual uint64_t mono_ms() const = 0;
  virtual int64_t wall_ms() const = 0;
  int64_t wall_s() const { return wall_ms() / 1000; }
  // The monotonic reading in microseconds, for latencies below a millisecond (the load
  // generator's histograms); a clock without finer resolution scales its milliseconds.
  virtual uint64_t mono_us() const { return mono_ms() * 1000; }
};

// std::chrono::steady_clock and system_clock.
class SystemClock final : public Clock {
 public:
  uint64_t mono_ms() const override { return mono_now_ms(); }
  int64_t wall_ms() const override { return wall_now_ms(); }
  uint64_t mono_us() const override { return mono_now_us(); }
  // The same readings without an instance (no virtual call, no static-local guard): for the
  // loop's clock, which reads the wall clock per recipient.
  static uint64_t mono_now_ms();
  static uint64_t mono_now_us();
  static int64_t wall_now_ms();
  // One process-wide instance for code that has no clock handed to it.
  static const SystemClock& instance();
};

// Time moves only when a test says so; both readings move together.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t wall_start_ms = 1'767'225'600'000)  // 2026-01-01T00:00:00Z
      : wall_(wall_start_ms) {}
  uint64_t mono_ms() const override { return mono_; }
  int64_t wall_ms() const override { return wall_; }
  uint64_t mono_us() const override { return mono_ * 1000 + sub_us_; }
  void advance(uint64_t ms) {
    mono_ += ms;
    wall_ += static_cast<int64_t>(ms);
  }
  // Microsecond steps; whole milliseconds carry into both readings.
  void advance_us(uint64_t us) {
    uint64_t total = sub_us_ + us;
    sub_us_ = total % 1000;
    advance(total / 1000);
  }
  // A wall-clock step (NTP, a suspended laptop) that the monotonic clock does not see.
  void jump_wall(int64_t delta_ms) { wall_ += delta_ms; }

 private:
  uint64_t mono_ = 1'000'000;  // not 0: code may use 0 as "never"
  uint64_t sub_us_ = 0;        // microseconds past mono_
  int64_t wall_;
};

}  // namespace sb
