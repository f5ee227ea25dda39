// Slots from a shared rate bucket: spent on time or dropped.
#include "throttle/slot_pool.h"

#include <algorithm>

namespace sb {

uint64_t SlotPool::grace_us(const RateSpec& rate) {
  return std::clamp<uint64_t>(rate.period_ms * 10, 10'000, 250'000);  // P/100 in µs
}

uint64_t SlotPool::pace_interval_us(const RateSpec& rate) {
  const uint64_t span = rate.period_ms * 1000 + 2 * grace_us(rate);
  const uint64_t n = std::max<uint64_t>(rate.count, 1);
  return (span + n - 1) / n;
}

uint64_t SlotPool::horizon_us(const RateSpec& rate) {
  return std::clamp<uint64_t>(4 * pace_interval_us(rate), 50'000, 1'000'000);
}

void SlotPool::add(uint64_t first_us, uint64_t interval_us, uint64_t count) {
  if (count == 0) return;
  runs_.push_back(Run{first_us, std::max<uint64_t>(interval_us, 1), count});
}

void SlotPool::expire(uint64_t now_us) {
  if (now_us <= grace_us_) return;
  const uint64_t oldest = now_us - grace_us_;  // a slot before this is too late to spend
  while (!runs_.empty()) {
    Run& r = runs_.front();
    if (r.first_us >= oldest) return;
    const uint64_t late = (oldest - r.first_us + r.interval_us - 1) / r.interval_us;
    if (late >= r.count) {
      expired_ += r.count;
      runs_.pop_front();
      continue;
    }
    expired_ += late;
    r.first_us += late * r.interval_us;
    r.count -= late;
    return;
  }
}

uint64_t SlotPool::take(uint64_t now_us) {
  expire(now_us);
  if (runs_.empty()) return kEmpty;
  Run& r = runs_.front();
  if (r.first_us > now_us) return (r.first_us + 999) / 1000;
  ++spent_;
  r.first_us += r.interval_us;
  if (--r.count == 0) runs_.pop_front();
  return 0;
}

uint64_t SlotPool::last_us() const {
  if (runs_.empty()) return 0;
  const Run& r = runs_.back();
  return r.first_us + (r.count - 1) * r.interval_us;
}

uint64_t SlotPool::held(uint64_t now_us) const {
  const uint64_t oldest = now_us > grace_us_ ? now_us - grace_us_ : 0;
  uint64_t n = 0;
  for (const Run& r : runs_) {
    if (r.first_us >= oldest) {
      n += r.count;
    } else {
      const uint64_t late = (oldest - r.first_us + r.interval_us - 1) / r.interval_us;
      if (late < r.count) n += r.count - late;
    }
  }
  return n;
}

}  // namespace sb
