// LoopClock: an sb::Clock whose monotonic reading is a libuv loop's, the time its timers use.
#pragma once

#include <cstdint>

#include "base/clock.h"

struct uv_loop_s;

namespace sb {

// mono_ms is uv_now: cached once per loop iteration, so every callback of one iteration sees
// the same "now" and a deadline compared against it agrees with the loop's timers. wall_ms is
// the system clock (what is recorded or shared across processes). Use it on the loop's thread.
class LoopClock final : public Clock {
 public:
  explicit LoopClock(uv_loop_s* loop) : loop_(loop) {}
  uint64_t mono_ms() const override;
  int64_t wall_ms() const override;

 private:
  uv_loop_s* loop_;
};

}  // namespace sb
