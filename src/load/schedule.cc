#include "load/schedule.h"

#include <cmath>

namespace sb {

LoadSchedule::LoadSchedule(const Clock& clock, const ScheduleConfig& cfg)
    : clock_(clock), cfg_(cfg) {
  if (cfg_.rate > 0) {
    // Slot k is due at k / rate: the warm-up holds the slots before its end, the measured
    // part the next `messages`, or those due before the end of the duration.
    warm_slots_ = static_cast<uint64_t>(std::ceil(cfg_.rate * cfg_.warmup_us / 1e6 - 1e-9));
    uint64_t measured =
        cfg_.messages != 0
            ? cfg_.messages
            : static_cast<uint64_t>(std::ceil(cfg_.rate * cfg_.duration_us / 1e6 - 1e-9));
    total_ = warm_slots_ + measured;
  }
}

void LoadSchedule::start() {
  start_us_ = clock_.mono_us();
  started_ = true;
}

uint64_t LoadSchedule::due_at(uint64_t k) const {
  return start_us_ + static_cast<uint64_t>(std::llround(static_cast<double>(k) * 1e6 / cfg_.rate));
}

uint64_t LoadSchedule::due_count(uint64_t now_us) const {
  if (now_us < start_us_) return 0;
  // Slots 0..n-1 are due when due_at(n-1) <= now; computed, then corrected for rounding.
  auto n = static_cast<uint64_t>(static_cast<double>(now_us - start_us_) * cfg_.rate / 1e6) + 1;
  while (n > 0 && due_at(n - 1) > now_us) --n;
  while (due_at(n) <= now_us) ++n;
  return n < total_ ? n : total_;
}

bool LoadSchedule::exhausted() const {
  if (closed_) return true;
  if (open_loop()) return taken_ >= total_;
  if (cfg_.messages != 0) return measured_taken_ >= cfg_.messages;
  return started_ && clock_.mono_us() >= measure_start_us() + cfg_.duration_us;
}

bool LoadSchedule::take(Slot& out) {
  if (!started_ || exhausted()) return false;
  uint64_t now = clock_.mono_us();
  if (open_loop()) {
    if (due_count(now) <= taken_) return false;
    out.intended_us = due_at(taken_);
    out.measured = taken_ >= warm_slots_;
  } else {
    out.intended_us = now;
    out.measured = now >= measure_start_us();
  }
  ++taken_;
  if (out.measured) ++measured_taken_;
  return true;
}

uint64_t LoadSchedule::next_due_us() const {
  if (!started_ || exhausted()) return 0;
  if (!open_loop()) return clock_.mono_us();
  return due_at(taken_);
}

uint64_t LoadSchedule::backlog() const {
  if (!started_ || closed_ || !open_loop()) return 0;
  uint64_t due = due_count(clock_.mono_us());
  return due > taken_ ? due - taken_ : 0;
}

uint64_t LoadSchedule::close() {
  uint64_t never = 0;
  if (!closed_ && open_loop() && total_ > taken_) never = total_ - taken_;
  closed_ = true;
  return never;
}

uint64_t LoadSchedule::nominal_end_us() const {
  if (cfg_.messages == 0) return measure_start_us() + cfg_.duration_us;
  if (!open_loop()) return 0;
  return due_at(total_);
}

}  // namespace sb
