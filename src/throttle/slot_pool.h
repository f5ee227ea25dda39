// SlotPool: send times handed out by a rate limiter kept elsewhere (PostgreSQL's shared bucket
// row), held by one node and spent by its workers; RemoteRate, the seam SharedThrottle asks.
#pragma once

#include <cstdint>
#include <deque>

#include "throttle/rate_spec.h"

namespace sb {

// A limit counted outside this process: SharedThrottle asks it before each message (or each
// connection) once the local checks passed. Thread-safe implementations only.
class RemoteRate {
 public:
  virtual ~RemoteRate() = default;
  // 0: go, one unit used. Otherwise the wall time (ms) to ask again.
  virtual uint64_t take(uint64_t now_ms) = 0;
};

// A shared GCRA hands out *slots*, the earliest times messages may start, T apart. A node takes
// them in small batches (one round trip for many messages at high rates) and may start a
// message at a slot's time, never before it, and not much after it either: a slot spent late
// crowds the next one (held by another node, spent on time), and enough of that would put N+1
// messages into a window. So a slot expires `grace` after its time, unused, and the bucket's
// interval leaves room for that lateness: pace_interval_us() paces N slots over P + 2·grace, so
// N+1 messages started within grace of their slots span at least P + grace — the remaining grace
// absorbs the difference in delivery time to the receiver, where the limit is measured.
//
// Pure and single-threaded: times are passed in (wall µs, already in this node's clock).
class SlotPool {
 public:
  static constexpr uint64_t kEmpty = UINT64_MAX;

  // How late a slot may be spent for `rate`: P/100, between 10 ms and 250 ms (a 1/s limit
  // loses 2 % of its rate to the guard, 30/min 0.8 %, anything per hour or day nothing).
  static uint64_t grace_us(const RateSpec& rate);
  // The bucket's emission interval for `rate`, in µs, rounded up (never faster than N per
  // P + 2·grace).
  static uint64_t pace_interval_us(const RateSpec& rate);
  // How far ahead a node asks for slots: about 4 intervals, between 50 ms and 1 s. Longer
  // means fewer round trips but slots that sit unused longer when a node stops.
  static uint64_t horizon_us(const RateSpec& rate);

  explicit SlotPool(uint64_t grace_us) : grace_us_(grace_us) {}

  // `count` slots granted: the first at `first_us`, then every `interval_us`.
  void add(uint64_t first_us, uint64_t interval_us, uint64_t count);
  // 0: a slot due at or before `now_us` (and not expired) is spent. Otherwise the wall time in
  // ms, rounded up, when the next one is due; kEmpty when none is held.
  uint64_t take(uint64_t now_us);
  // The time of the last slot held (0 when empty): the batch reaches that far.
  uint64_t last_us() const;
  // Slots held and not yet expired at `now_us`.
  uint64_t held(uint64_t now_us) const;

  uint64_t spent() const { return spent_; }
  uint64_t expired() const { return expired_; }

 private:
  struct Run {
    uint64_t first_us, interval_us, count;
  };
  void expire(uint64_t now_us);

  uint64_t grace_us_;
  std::deque<Run> runs_;  // in time order: batches are added as they are granted
  uint64_t spent_ = 0;
  uint64_t expired_ = 0;
};

}  // namespace sb
