// Timer: one uv_timer_t owned by RAII; its memory is freed in the close callback, never before.
#pragma once

#include <cstdint>
#include <functional>

struct uv_loop_s;
struct uv_timer_s;

namespace sb {

// Destroying the Timer stops it and closes the handle; the callback never runs afterwards.
// The callback is set once per start(), not per tick, so a repeating timer allocates nothing.
// Destroy it before its loop is closed (the loop must still run the close callback).
class Timer {
 public:
  explicit Timer(uv_loop_s* loop);
  // A timer with one callback for its whole life, armed with again(); an owner that re-arms
  // from inside the callback then never replaces the std::function that is running.
  Timer(uv_loop_s* loop, std::function<void()> cb);
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  // Runs `cb` after `timeout_ms`, then every `repeat_ms` if that is not 0. Restarting an
  // active timer replaces its schedule and callback.
  void start(uint64_t timeout_ms, std::function<void()> cb, uint64_t repeat_ms = 0);
  // Restarts with the callback already given (no allocation).
  void again(uint64_t timeout_ms, uint64_t repeat_ms = 0);
  void stop();
  bool active() const;
  // The loop's time when it is due (0 when not active).
  uint64_t due_ms() const;

 private:
  struct Handle;
  Handle* h_;
};

}  // namespace sb
