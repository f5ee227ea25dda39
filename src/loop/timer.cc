// Timer: one uv_timer_t owned by RAII; its memory is freed in the close callback, never before.
#include "loop/timer.h"

#include <uv.h>

#include <utility>

namespace sb {

struct Timer::Handle {
  uv_timer_t t;
  std::function<void()> cb;
  bool closing = false;
};

Timer::Timer(uv_loop_s* loop) : h_(new Handle) {
  uv_timer_init(loop, &h_->t);
  h_->t.data = h_;
}

Timer::Timer(uv_loop_s* loop, std::function<void()> cb) : Timer(loop) { h_->cb = std::move(cb); }

Timer::~Timer() {
  uv_timer_stop(&h_->t);
  h_->closing = true;
  h_->cb = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&h_->t),
           [](uv_handle_t* p) { delete static_cast<Handle*>(p->data); });
}

void Timer::start(uint64_t timeout_ms, std::function<void()> cb, uint64_t repeat_ms) {
  h_->cb = std::move(cb);
  again(timeout_ms, repeat_ms);
}

void Timer::again(uint64_t timeout_ms, uint64_t repeat_ms) {
  uv_timer_start(
      &h_->t,
      [](uv_timer_t* t) {
        auto* h = static_cast<Handle*>(t->data);
        if (!h->cb) return;
        // The callback may restart or destroy its Timer, which replaces or clears h->cb: it
        // runs from a local so the closure executing is never the one destroyed. Moving a
        // std::function does not allocate.
        std::function<void()> running = std::move(h->cb);
        h->cb = nullptr;
        running();
        // Not replaced by start() and not closed by ~Timer: the callback stays for the next
        // tick. (After ~Timer the Handle lives until its close callback, so this is safe.)
        if (!h->cb && !h->closing) h->cb = std::move(running);
      },
      timeout_ms, repeat_ms);
}

void Timer::stop() { uv_timer_stop(&h_->t); }

bool Timer::active() const {
  return uv_is_active(reinterpret_cast<const uv_handle_t*>(&h_->t)) != 0;
}

uint64_t Timer::due_ms() const {
  return active() ? uv_now(h_->t.loop) + uv_timer_get_due_in(&h_->t) : 0;
}

}  // namespace sb
