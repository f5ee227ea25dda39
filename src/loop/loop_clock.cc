// LoopClock: an sb::Clock whose monotonic reading is a libuv loop's, the time its timers use.
#include "loop/loop_clock.h"

#include <uv.h>

namespace sb {

uint64_t LoopClock::mono_ms() const { return uv_now(loop_); }

int64_t LoopClock::wall_ms() const { return SystemClock::wall_now_ms(); }

}  // namespace sb
