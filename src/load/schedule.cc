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
    global_total_ = warm_slots_ + measured;
    total_ = local_count(global_total_);
  } else if (cfg_.messages != 0 && cfg_.shards > 1) {
    cfg_.messages = cfg_.messages / cfg_.shards + (cfg_.shard < cfg_.messages % cfg_.shards);
  }
}

uint64_t LoadSchedule::local_count(uint64_t global_n) const {
  return global_n > cfg_.shard ? (global_n - cfg_.shard - 1) / cfg_.shards + 1 : 0;
}

void LoadSchedule::start() { start_at(clock_.mono_us()); }

void LoadSchedule::start_at(uint64_t mono_us) {
  start_us_ = mono_us;
  started_ = true;
}

uint64_t LoadSchedule::due_at_global(uint64_t k) const {
  return start_us_ + static_cast<uint64_t>(std::llround(static_cast<double>(k) * 1e6 / cfg_.rate));
}

uint64_t LoadSchedule::due_count(uint64_t now_us) const {
  if (now_us < start_us_) return 0;
  // The timeline's slots 0..n-1 are due when due_at_global(n-1) <= now; computed, then
  // corrected for rounding.
  auto n = static_cast<uint64_t>(static_cast<double>(now_us - start_us_) * cfg_.rate / 1e6) + 1;
  while (n > 0 && due_at_global(n - 1) > now_us) --n;
  while (due_at_global(n) <= now_us) ++n;
  uint64_t mine = local_count(n);
  return mine < total_ ? mine : total_;
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
    out.intended_us = due_at_global(global_index(taken_));
    out.measured = global_index(taken_) >= warm_slots_;
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
  return due_at_global(global_index(taken_));
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
  return due_at_global(global_total_);
}

uint64_t LoadSchedule::remaining() const {
  if (closed_) return 0;
  if (open_loop()) return total_ > taken_ ? total_ - taken_ : 0;
  if (cfg_.messages != 0)
    return cfg_.messages > measured_taken_ ? cfg_.messages - measured_taken_ : 0;
  return exhausted() ? 0 : UINT64_MAX;
}

}  // namespace sb
